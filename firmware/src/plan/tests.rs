//! Planner tests: a snapshot of the example config's ruleset, and the properties that
//! matter for the datapath (dispatch through shared maps, expiry as element timeouts).

use super::*;
use crate::config::{Config, PortRange};
use crate::render::render;

const NOW: Timestamp = Timestamp(1_795_888_800); // 2026-11-28T18:00:00Z

fn example() -> Config {
    Config::parse(include_str!("../../examples/home.json")).unwrap()
}

fn facts() -> HostFacts {
    HostFacts {
        wan_addrs: vec!["203.0.113.2".parse().unwrap()],
        ..HostFacts::default()
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

fn many(n: u16) -> Config {
    let mut cfg = example();
    cfg.lan.subnets = vec!["10.0.0.0/16".parse().unwrap()];
    let template = cfg.forwards[0].clone();
    cfg.forwards = (0..n)
        .map(|i| {
            let mut f = template.clone();
            f.name = format!("f{i}");
            f.external_port = PortRange::single(30000 + i);
            f.internal_host = std::net::Ipv4Addr::from(0x0a00_0000 + u32::from(i) + 2);
            f
        })
        .collect();
    cfg
}

#[test]
fn forwards_add_elements_not_rules_chains_or_sets() {
    let one = plan(&many(1), &facts(), NOW);
    let thousand = plan(&many(1000), &facts(), NOW);
    // Every forward of `many` logs, so each has its small log chain; nothing else grows.
    assert_eq!(thousand.chains.len() - one.chains.len(), 999);
    assert_eq!(thousand.sets.len(), one.sets.len());
    for chain in ["dstnat", "inbound", "input", "forward", "srcnat"] {
        assert_eq!(
            one.chain(chain).unwrap().rules.len(),
            thousand.chain(chain).unwrap().rules.len(),
            "{chain}"
        );
    }
    // One rate-limit class serves all thousand forwards (they share the same limit).
    assert_eq!(
        thousand
            .sets
            .iter()
            .filter(|s| s.name.starts_with("rl_"))
            .count(),
        1
    );
    assert_eq!(thousand.set("ctr_tcp").unwrap().elements.len(), 1000);
    // Two allowed prefixes per forward.
    assert_eq!(thousand.set("allow_tcp").unwrap().elements.len(), 2000 + 1);
}

fn element_of<'a>(rs: &'a Ruleset, set: &str, port: u16) -> &'a Element {
    rs.set(set)
        .unwrap()
        .elements
        .iter()
        .find(|e| match &e.key {
            ElemKey::Single(v) => v[0] == Value::Port(port),
            ElemKey::Range(lo, _) => *lo == Value::Port(port),
            ElemKey::ConcatRange(r) => r[0].0 == Value::Port(port),
        })
        .unwrap_or_else(|| panic!("no element for port {port} in {set}"))
}

#[test]
fn expiring_forwards_carry_the_remaining_time_on_every_element() {
    let rs = plan(&example(), &facts(), NOW);
    let expires: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let left = Some(Duration::from_secs(expires.0 - NOW.0));
    for set in ["allow_tcp", "ctr_tcp", "dnat_port_tcp"] {
        assert_eq!(element_of(&rs, set, 2222).timeout, left, "{set}");
    }
    assert_eq!(element_of(&rs, "ctr_tcp", 8080).timeout, None);
}

#[test]
fn expired_and_disabled_forwards_are_not_planned() {
    let mut cfg = example();
    cfg.forwards[0].enabled = false;
    let later: Timestamp = "2031-01-01T00:00:00Z".parse().unwrap();
    let rs = plan(&cfg, &facts(), later);
    let counters = &rs.counters;
    assert!(!counters.contains(&"fwd_web".to_string()));
    assert!(!counters.contains(&"fwd_friend-ssh".to_string()));
    assert!(counters.contains(&"fwd_game".to_string()));
    assert_eq!(rs.set("ctr_tcp").unwrap().elements.len(), 1);
}

#[test]
fn hairpin_rules_need_a_wan_address() {
    let rs = plan(&example(), &HostFacts::default(), NOW);
    assert_eq!(rs.chain("dstnat").unwrap().rules.len(), 3);
    let rs = plan(&example(), &facts(), NOW);
    assert_eq!(rs.chain("dstnat").unwrap().rules.len(), 4);
}

#[test]
fn empty_allow_lists_mean_anyone_and_lists_are_merged() {
    let rs = plan(&example(), &facts(), NOW);
    let game = element_of(&rs, "allow_udp", 27015);
    assert_eq!(
        game.key,
        ElemKey::ConcatRange(vec![(Value::Port(27015), Value::Port(27020)), anywhere()])
    );
    let nets: Vec<Ipv4Net> = ["10.0.0.0/8", "10.1.0.0/16", "11.0.0.0/8", "1.2.3.4"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let ip = |s: &str| Value::Ipv4(s.parse().unwrap());
    assert_eq!(
        merged_prefixes(&nets),
        vec![
            (ip("1.2.3.4"), ip("1.2.3.4")),
            (ip("10.0.0.0"), ip("11.255.255.255"))
        ]
    );
}

#[test]
fn translated_ranges_map_port_by_port_and_kept_ports_map_by_range() {
    let mut cfg = example();
    cfg.forwards[1].internal_port = Some("37015-37020".parse().unwrap());
    let rs = plan(&cfg, &facts(), NOW);
    assert_eq!(rs.set("dnat_port_udp").unwrap().elements.len(), 6);
    assert_eq!(
        element_of(&rs, "dnat_port_udp", 27020).data,
        Some(ElemData::Values(vec![
            Value::Ipv4("192.168.1.20".parse().unwrap()),
            Value::Port(37020)
        ]))
    );
    let rs = plan(&example(), &facts(), NOW);
    assert_eq!(
        element_of(&rs, "dnat_host_tcp", 27015).key,
        ElemKey::Range(Value::Port(27015), Value::Port(27020))
    );
}

#[test]
fn forwards_with_the_same_rate_limit_share_a_class() {
    let mut cfg = example();
    let mut f = cfg.forwards[0].clone();
    f.name = "web2".into();
    f.external_port = PortRange::single(8081);
    f.log = false;
    cfg.forwards.push(f);
    let rs = plan(&cfg, &facts(), NOW);
    assert_eq!(
        element_of(&rs, "special_tcp", 8081).data,
        Some(ElemData::Verdict(Verdict::Jump("rl_30_minute_10".into())))
    );
    // The logging forward goes through its own chain, which jumps to the class.
    assert_eq!(
        element_of(&rs, "special_tcp", 8080).data,
        Some(ElemData::Verdict(Verdict::Jump("fwd_web".into())))
    );
    assert_eq!(
        rs.chains
            .iter()
            .filter(|c| c.name.starts_with("rl_"))
            .count(),
        1
    );
}

#[test]
fn carried_counts_and_open_triggers_seed_the_new_table() {
    let mut f = facts();
    f.carried.counters.insert("fwd_web".into(), (7, 420));
    f.carried.counters.insert("fwd_gone".into(), (1, 60));
    f.carried.trigger_hosts.insert(
        "trg_irc-ident".into(),
        ("192.168.1.20".parse().unwrap(), Duration::from_secs(9999)),
    );
    let rs = plan(&example(), &f, NOW);
    assert_eq!(rs.initial_counts.get("fwd_web"), Some(&(7, 420)));
    // A counter whose forward is gone is not resurrected.
    assert!(!rs.initial_counts.contains_key("fwd_gone"));
    let held = &rs.set("trg_irc-ident").unwrap().elements;
    assert_eq!(held.len(), 1);
    assert_eq!(
        held[0].data,
        Some(ElemData::Values(vec![Value::Ipv4(
            "192.168.1.20".parse().unwrap()
        )]))
    );
    // Never longer than the trigger's own timeout (600 s).
    assert_eq!(held[0].timeout, Some(Duration::from_secs(600)));
}

/// Two concatenated-range keys overlap when every field's ranges intersect.
fn overlaps(a: &ElemKey, b: &ElemKey) -> bool {
    let (ElemKey::ConcatRange(a), ElemKey::ConcatRange(b)) = (a, b) else {
        panic!("not concatenated ranges: {a:?} {b:?}");
    };
    a.iter()
        .zip(b)
        .all(|((alo, ahi), (blo, bhi))| alo <= bhi && blo <= ahi)
}

#[test]
fn flow_elements_never_overlap_and_cover_allow_list_lan_and_expiry() {
    let mut cfg = example();
    // Overlapping prefixes, one that already covers the LAN, and a translated range.
    cfg.forwards[0].allow_from = ["10.0.0.0/8", "10.1.0.0/16", "192.168.0.0/16", "1.2.3.4"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    cfg.forwards[1].internal_port = Some("37015-37020".parse().unwrap());
    cfg.lan.subnets.push("10.9.0.0/24".parse().unwrap());
    assert!(!crate::config::validate(&cfg, NOW).has_errors());
    let rs = plan(&cfg, &facts(), NOW);
    for set in ["flows_tcp", "flows_udp"] {
        let els = &rs.set(set).unwrap().elements;
        for (i, a) in els.iter().enumerate() {
            for b in &els[i + 1..] {
                assert!(!overlaps(&a.key, &b.key), "{set}: {a:?} overlaps {b:?}");
            }
        }
    }
    let ip = |s: &str| Value::Ipv4(s.parse().unwrap());
    let web: Vec<&Element> = rs
        .set("flows_tcp")
        .unwrap()
        .elements
        .iter()
        .filter(|e| matches!(&e.key, ElemKey::ConcatRange(r) if r[0].0 == Value::Port(8080)))
        .collect();
    let peers: Vec<(Value, Value)> = web
        .iter()
        .map(|e| match &e.key {
            ElemKey::ConcatRange(r) => r[1],
            _ => unreachable!(),
        })
        .collect();
    // 1.2.3.4, 10/8 (covers the second LAN subnet), 192.168/16 (covers the first).
    assert_eq!(
        peers,
        vec![
            (ip("1.2.3.4"), ip("1.2.3.4")),
            (ip("10.0.0.0"), ip("10.255.255.255")),
            (ip("192.168.0.0"), ip("192.168.255.255")),
        ]
    );
    // A translated range: one element per port, each to its own internal port.
    let game = rs
        .set("flows_udp")
        .unwrap()
        .elements
        .iter()
        .find(|e| matches!(&e.key, ElemKey::ConcatRange(r) if r[0].0 == Value::Port(27020)))
        .unwrap();
    assert_eq!(
        game.key,
        ElemKey::ConcatRange(vec![
            (Value::Port(27020), Value::Port(27020)),
            anywhere(),
            (ip("192.168.1.20"), ip("192.168.1.20")),
            (Value::Port(37020), Value::Port(37020)),
        ])
    );
    // The expiring forward's flows expire with it.
    let expires: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        element_of(&rs, "flows_tcp", 2222).timeout,
        Some(Duration::from_secs(expires.0 - NOW.0))
    );
}

#[test]
fn an_unchanged_forward_plans_the_same_flow_elements() {
    // Re-applying must not cut connections: same forward, same elements, whatever else
    // changed in the config.
    let a = plan(&example(), &facts(), NOW);
    let mut cfg = example();
    cfg.forwards.remove(1);
    let b = plan(&cfg, &facts(), NOW);
    let web = |rs: &Ruleset| -> Vec<Element> {
        rs.set("flows_tcp")
            .unwrap()
            .elements
            .iter()
            .filter(|e| matches!(&e.key, ElemKey::ConcatRange(r) if r[0].0 == Value::Port(8080)))
            .cloned()
            .collect()
    };
    assert_eq!(web(&a), web(&b));
    assert!(!web(&a).is_empty());
}

#[test]
fn forwards_and_triggers_become_open_ports_with_their_provenance() {
    let cfg = example();
    let game = forward_ports(
        &cfg.forwards[1],
        cfg.forwards[1].internal_host,
        NOW,
        None,
        None,
    );
    assert_eq!(game.len(), 2, "protocol both: one open port per protocol");
    assert_eq!(game[0].provenance, Provenance::Forward("game".into()));
    assert_eq!((game[0].proto, game[1].proto), (6, 17));
    let t = trigger_ports(&cfg.triggers[0]);
    assert_eq!(t[0].provenance, Provenance::Trigger("irc-ident".into()));
    assert_eq!(t[0].target, Target::TriggerHolder);
}

#[test]
fn only_the_holder_refreshes_a_trigger_and_its_flows_check_the_holder() {
    let rs = plan(&example(), &facts(), NOW);
    let holder = rs.set("trg_irc-ident.holder").unwrap();
    assert_eq!(holder.size, Some(1));
    let out = &rs.chain("trg_irc-ident_out").unwrap().rules[0].stmts;
    let holder_update = out
        .iter()
        .position(|s| matches!(s, Stmt::DynsetKey { set, .. } if set == "trg_irc-ident.holder"));
    let map_update = out
        .iter()
        .position(|s| matches!(s, Stmt::DynsetData { set, .. } if set == "trg_irc-ident"));
    assert!(
        holder_update < map_update && holder_update.is_some(),
        "the holder update gates the map update: {out:?}"
    );
    let flow = &rs.chain("trg_irc-ident.flow").unwrap().rules[0].stmts;
    assert!(matches!(&flow[0], Stmt::Lookup { set, .. } if set == "trg_irc-ident.holder"));
}

#[test]
fn expiry_timeouts_use_milliseconds_when_known() {
    let at = Timestamp(NOW.0 + 5);
    assert_eq!(time_left(at, NOW, None), Duration::from_secs(5));
    let ms = NOW.0 * 1000 + 900;
    assert_eq!(time_left(at, NOW, Some(ms)), Duration::from_millis(4100));
    // A millisecond clock that disagrees with `now` is ignored.
    assert_eq!(time_left(at, NOW, Some(ms + 5000)), Duration::from_secs(5));
    assert_eq!(time_left(NOW, NOW, Some(ms)), Duration::ZERO);
}
