//! Golden bytes of the statements issue 9 added (`meta mark` and `ct mark` matches and
//! sets, `ether saddr` with its `meta iiftype` dependency, `ether_addr` sets, the
//! provider port's DNAT map), against what `nft` 1.0.6 sends. The fixture is the
//! tunnel's part of a real plan (`plan::vpn_tests::sample_plan`); to regenerate:
//!
//! ```text
//! cargo test -p portcullis --lib nft::vpn_golden::print_vpn_text -- --ignored --nocapture
//! # copy the table into testdata/vpn.nft, then as root:
//! sh testdata/capture.sh testdata/vpn.nft > testdata/vpn.hex
//! ```

use super::batch::encode_apply_batch_with;
use super::golden::{assert_same_messages, unhex};
use crate::names;
use crate::ruleset::{Chain, Rule, Ruleset, Stmt};

fn is_new(s: &Stmt) -> bool {
    matches!(s, Stmt::Mark(..) | Stmt::SetMark(..))
        || matches!(s, Stmt::DnatMap { map, .. } if map.starts_with("vpn_"))
        || matches!(s, Stmt::CounterRef(c) if c.starts_with("vpn_"))
}

/// The tunnel's counters, sets and chains of the sample plan, and of the other chains
/// only the rules the tunnel added (in chains of the same names and hooks).
pub(crate) fn vpn_ruleset(table: &str) -> Ruleset {
    let rs = crate::plan::vpn_tests::sample_plan();
    let chains = rs
        .chains
        .iter()
        .filter_map(|c| {
            let whole = c.name == names::VPN_MARK || c.name == names::OUTPUT;
            let rules: Vec<Rule> = c
                .rules
                .iter()
                .filter(|r| whole || r.stmts.iter().any(is_new))
                .cloned()
                .collect();
            (!rules.is_empty()).then(|| Chain {
                name: c.name.clone(),
                base: c.base,
                rules,
            })
        })
        .collect();
    Ruleset {
        table: table.into(),
        counters: rs
            .counters
            .iter()
            .filter(|c| c.starts_with("vpn_"))
            .cloned()
            .collect(),
        initial_counts: Default::default(),
        sets: rs
            .sets
            .iter()
            .filter(|s| s.name.starts_with("vpn_"))
            .cloned()
            .collect(),
        chains,
    }
}

#[test]
fn whole_vpn_batch_equals_nft() {
    // sh testdata/capture.sh testdata/vpn.nft > testdata/vpn.hex
    let nft = unhex(include_str!("testdata/vpn.hex"));
    let rs = vpn_ruleset("vpn");
    let ours = encode_apply_batch_with(&rs, 0, 0);
    assert_same_messages(ours.bytes(), &nft);
}

#[test]
#[ignore = "prints the issue 9 fixture as nft text, for regenerating testdata"]
fn print_vpn_text() {
    print!("{}", crate::render::render(&vpn_ruleset("vpn")));
}
