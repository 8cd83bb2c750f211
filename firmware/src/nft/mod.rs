//! nf_tables over netlink, in pure Rust (see docs/decisions.md).
