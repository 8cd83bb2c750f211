//! Planner tests: a snapshot of the example config's ruleset, and the properties that
//! matter for the datapath (dispatch through maps, expiry as element timeouts).

use super::*;
use crate::config::Config;
use crate::render::render;

const NOW: Timestamp = Timestamp(1_795_888_800); // 2026-11-28T18:00:00Z

fn example() -> Config {
    Config::parse(include_str!("../../examples/home.json")).unwrap()
}

fn facts() -> HostFacts {
    HostFacts {
        wan_addrs: vec!["203.0.113.2".parse().unwrap()],
    }
}

/// The planned ruleset of the example, as `nft` text. To accept a deliberate change, run
/// `UPDATE_SNAPSHOTS=1 cargo test -p portcullis --lib plan` and review the diff.
#[test]
fn snapshot_of_the_example_plan() {
    let cfg = example();
    assert!(!crate::config::validate(&cfg, NOW).has_errors());
    let text = render(&plan(&cfg, &facts(), NOW));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/plan/snapshot.nft");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let want = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        text, want,
        "planned ruleset changed; see the doc comment to update"
    );
}

#[test]
fn dispatch_is_by_map_whatever_the_number_of_forwards() {
    let mut cfg = example();
    cfg.lan.subnets = vec!["10.0.0.0/16".parse().unwrap()];
    let one = plan(&cfg, &facts(), NOW);
    let template = cfg.forwards[1].clone();
    cfg.forwards = (0..1000u16)
        .map(|i| {
            let mut f = template.clone();
            f.name = format!("f{i}");
            f.external_port = crate::config::PortRange::single(30000 + i);
            f.internal_host = std::net::Ipv4Addr::from(0x0a00_0000 + u32::from(i) + 2);
            f
        })
        .collect();
    let many = plan(&cfg, &facts(), NOW);
    // The path every packet takes (base chains) does not grow with the forward count.
    for base in ["dstnat", "input", "forward", "srcnat"] {
        assert_eq!(
            one.chain(base).unwrap().rules.len(),
            many.chain(base).unwrap().rules.len(),
            "{base}"
        );
    }
    // Each forward adds one element per protocol to the inbound maps.
    assert_eq!(many.set("inbound_tcp").unwrap().elements.len(), 1000 + 1);
    assert_eq!(many.set("inbound_udp").unwrap().elements.len(), 1000);
}

#[test]
fn expiring_forwards_carry_the_remaining_time_as_element_timeout() {
    let cfg = example();
    let rs = plan(&cfg, &facts(), NOW);
    let el = rs
        .set("inbound_tcp")
        .unwrap()
        .elements
        .iter()
        .find(|e| e.data == Some(ElemData::Verdict(Verdict::Jump("fwd_friend-ssh".into()))))
        .unwrap();
    let expires: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(el.timeout, Some(Duration::from_secs(expires.0 - NOW.0)));
}

#[test]
fn expired_and_disabled_forwards_are_not_planned() {
    let mut cfg = example();
    cfg.forwards[0].enabled = false;
    let later: Timestamp = "2031-01-01T00:00:00Z".parse().unwrap();
    let rs = plan(&cfg, &facts(), later);
    assert!(rs.chain("fwd_web").is_none());
    assert!(rs.chain("fwd_friend-ssh").is_none());
    assert!(rs.chain("fwd_game").is_some());
}

#[test]
fn hairpin_rules_need_a_wan_address() {
    let rs = plan(&example(), &HostFacts::default(), NOW);
    assert_eq!(rs.chain("dstnat").unwrap().rules.len(), 2);
    let rs = plan(&example(), &facts(), NOW);
    assert_eq!(rs.chain("dstnat").unwrap().rules.len(), 4);
}

#[test]
fn overlapping_allow_list_prefixes_are_merged() {
    let nets: Vec<crate::config::Ipv4Net> = ["10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "1.2.3.4"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let merged = merged_prefixes(&nets);
    let keys: Vec<_> = merged.iter().map(|e| e.key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            ElemKey::Single(vec![Value::Ipv4("1.2.3.4".parse().unwrap())]),
            ElemKey::Range(
                Value::Ipv4("10.0.0.0".parse().unwrap()),
                Value::Ipv4("11.255.255.255".parse().unwrap())
            ),
        ]
    );
}

#[test]
fn shifted_ranges_map_port_by_port() {
    let mut cfg = example();
    cfg.forwards[1].internal_port = Some("37015-37020".parse().unwrap());
    let rs = plan(&cfg, &facts(), NOW);
    let map = rs.set("fwd_game_ports").unwrap();
    assert_eq!(map.elements.len(), 6);
    assert_eq!(
        map.elements[5],
        Element {
            key: ElemKey::Single(vec![Value::Port(27020)]),
            data: Some(ElemData::Values(vec![
                Value::Ipv4("192.168.1.20".parse().unwrap()),
                Value::Port(37020)
            ])),
            timeout: None,
        }
    );
}
