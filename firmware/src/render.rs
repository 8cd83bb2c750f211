//! Prints a ruleset in `nft` syntax.
