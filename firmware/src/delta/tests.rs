//! The diff without a kernel: rulesets planned from configs, edited the way leases and
//! the web UI edit them, and the property that installed − deletes + adds = wanted.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::*;
use crate::config::{Config, PortRange, Protocol};
use crate::plan::{plan, Carried, HostFacts};
use crate::ruleset::{SetFlags, Value};

const NOW: Timestamp = Timestamp(1_795_888_800); // 2026-11-28T18:00:00Z

fn example() -> Config {
    Config::parse(include_str!("../../examples/home.json")).expect("example parses")
}

fn facts() -> HostFacts {
    HostFacts {
        wan_addrs: vec![Ipv4Addr::new(203, 0, 113, 2)],
        ..HostFacts::default()
    }
}

/// A plain forward (no log chain): adding or removing it changes elements only.
fn plain_forward(cfg: &Config, name: &str, port: u16, host: [u8; 4]) -> crate::config::Forward {
    let mut f = cfg.forwards[2].clone();
    f.name = name.into();
    f.protocol = Protocol::Tcp;
    f.external_port = PortRange::single(port);
    f.internal_host = Ipv4Addr::from(host);
    f.internal_port = None;
    f.allow_from = vec![];
    f.expires_at = None;
    f
}

fn diff_at(a: &Ruleset, at_a: Timestamp, b: &Ruleset, at_b: Timestamp) -> Delta {
    diff(Planned::new(a, at_a), Planned::new(b, at_b)).expect("same shape")
}

/// Applies a delta to the installed ruleset's elements in memory, as the kernel would,
/// and checks that the result is the wanted ruleset (elements compared as identities,
/// i.e. with absolute expiries; state sets skipped).
fn assert_delta_reaches(installed: Planned<'_>, wanted: Planned<'_>, d: &Delta) {
    let state = state_sets(wanted.ruleset);
    let show = |e: &Element, at: Timestamp| {
        let id = Id::of(e, Duration::from_secs(at.0));
        let key: Vec<_> = spans(id.key).collect();
        format!("{key:?} {:?} {:?}", id.data, id.expiry)
    };
    let ids = |p: Planned<'_>, s: &Set| -> Vec<String> {
        let mut v: Vec<String> = s.elements.iter().map(|e| show(e, p.at)).collect();
        v.sort();
        v
    };
    for (a, b) in installed.ruleset.sets.iter().zip(&wanted.ruleset.sets) {
        if state.contains(a.name.as_str()) {
            continue;
        }
        // What the kernel holds: installed elements that have not expired by then.
        let now = Duration::from_secs(wanted.at.0);
        let live: Vec<Element> = a
            .elements
            .iter()
            .filter(|e| {
                Id::of(e, Duration::from_secs(installed.at.0))
                    .expiry
                    .is_none_or(|x| x > now)
            })
            .cloned()
            .collect();
        let mut have = ids(
            installed,
            &Set {
                elements: live,
                ..a.clone()
            },
        );
        if let Some(sd) = d.sets.iter().find(|s| s.set == a.name) {
            for e in &sd.delete {
                let id = show(e, installed.at);
                let i = have.iter().position(|x| *x == id).expect("deleted exists");
                have.remove(i);
            }
            for e in &sd.add {
                have.push(show(e, wanted.at));
            }
            have.sort();
        }
        assert_eq!(have, ids(wanted, b), "set {}", a.name);
    }
    let mut counters: Vec<&str> = installed
        .ruleset
        .counters
        .iter()
        .map(String::as_str)
        .filter(|c| !d.delete_counters.iter().any(|x| x == c))
        .filter(|c| !d.kept_counters.iter().any(|x| x == c))
        .chain(d.add_counters.iter().map(|(c, _)| c.as_str()))
        .collect();
    counters.sort_unstable();
    let mut want: Vec<&str> = wanted.ruleset.counters.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(counters, want);
}

#[test]
fn the_same_ruleset_gives_an_empty_delta() {
    let rs = plan(&example(), &facts(), NOW);
    let d = diff_at(&rs, NOW, &rs.clone(), NOW);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(d.table, "portcullis");
}

#[test]
fn replanning_later_moves_no_expiry() {
    // friend-ssh expires in 2030: planned an hour later its timeouts are an hour shorter,
    // but its elements expire at the same instant and must not be touched.
    let later = Timestamp(NOW.0 + 3600);
    let a = plan(&example(), &facts(), NOW);
    let b = plan(&example(), &facts(), later);
    assert_ne!(a, b, "timeouts are relative to the planning time");
    let d = diff_at(&a, NOW, &b, later);
    assert!(d.is_empty(), "{d:?}");
}

#[test]
fn a_forward_added_removed_and_changed_is_elements_and_counters() {
    let cfg = example();
    let mut next = cfg.clone();
    next.forwards.retain(|f| f.name != "game");
    next.forwards
        .push(plain_forward(&cfg, "nas", 5000, [192, 168, 1, 40]));
    let ssh = next
        .forwards
        .iter_mut()
        .find(|f| f.name == "friend-ssh")
        .expect("friend-ssh");
    ssh.internal_host = Ipv4Addr::new(192, 168, 1, 31);
    let (a, b) = (plan(&cfg, &facts(), NOW), plan(&next, &facts(), NOW));
    let (ia, ib) = (Planned::new(&a, NOW), Planned::new(&b, NOW));
    let d = diff(ia, ib).expect("same shape");

    assert_eq!(d.add_counters, vec![("fwd_nas".to_string(), (0, 0))]);
    assert_eq!(d.delete_counters, vec!["fwd_game".to_string()]);
    assert!(d.kept_counters.is_empty());
    let touched: Vec<&str> = d.sets.iter().map(|s| s.set.as_str()).collect();
    assert_eq!(
        touched,
        [
            "flows_tcp",
            "allow_tcp",
            "ctr_tcp",
            "dnat_port_tcp",
            "dnat_host_tcp",
            "flows_udp",
            "allow_udp",
            "ctr_udp",
            "dnat_host_udp"
        ]
    );
    // friend-ssh's translated-port element changed host: deleted and added again with the
    // same key; its allow-list and counter elements did not change.
    let dnat = &d.sets[3];
    assert_eq!(dnat.delete.len(), 1);
    assert_eq!(dnat.add.len(), 1);
    assert_eq!(dnat.delete[0].key, dnat.add[0].key);
    assert_eq!(
        dnat.add[0].data,
        Some(ElemData::Values(vec![
            Value::Ipv4(Ipv4Addr::new(192, 168, 1, 31)),
            Value::Port(22)
        ]))
    );
    // game's elements (tcp and udp) and ssh's old ones go (its flow check has two: the
    // allow-list and the LAN for hairpin); nas's and ssh's new ones come.
    assert_eq!(d.element_counts(), (7, 11));
    assert_delta_reaches(ia, ib, &d);
}

#[test]
fn a_moved_expiry_deletes_and_adds_the_element_again() {
    let cfg = example();
    let mut next = cfg.clone();
    next.forwards[2].expires_at = Some(Timestamp(1_900_000_000));
    let later = Timestamp(NOW.0 + 60);
    let (a, b) = (plan(&cfg, &facts(), NOW), plan(&next, &facts(), later));
    let (ia, ib) = (Planned::new(&a, NOW), Planned::new(&b, later));
    let d = diff(ia, ib).expect("same shape");
    assert!(d.add_counters.is_empty() && d.delete_counters.is_empty());
    // flows_tcp, allow_tcp, ctr_tcp, dnat_port_tcp: one element each, out and in again.
    assert_eq!(d.sets.len(), 4);
    for s in &d.sets {
        // The flow check holds two per forward here (its allow-list and the LAN).
        let n = if s.set == "flows_tcp" { 2 } else { 1 };
        assert_eq!((s.delete.len(), s.add.len()), (n, n), "{}", s.set);
        assert_eq!(s.delete[0].key, s.add[0].key);
        assert_eq!(
            s.add[0].timeout,
            Some(Duration::from_secs(1_900_000_000 - later.0))
        );
    }
    assert_delta_reaches(ia, ib, &d);
}

#[test]
fn expired_elements_are_left_to_the_kernel_and_their_counter_kept() {
    // Planned after friend-ssh's expiry: it is gone from the plan, and the kernel has
    // expired its elements itself. Deleting them would fail (ENOENT), and so would deleting
    // its counter while the expired map element still refers to it (EBUSY).
    let cfg = example();
    let expiry = cfg.forwards[2].expires_at.expect("friend-ssh expires");
    let after = Timestamp(expiry.0 + 1);
    let (a, b) = (plan(&cfg, &facts(), NOW), plan(&cfg, &facts(), after));
    let d = diff_at(&a, NOW, &b, after);
    assert!(d.sets.iter().all(|s| s.delete.is_empty()), "{d:?}");
    assert!(d.sets.iter().all(|s| s.add.is_empty()), "{d:?}");
    assert!(d.delete_counters.is_empty());
    assert_eq!(d.kept_counters, vec!["fwd_friend-ssh".to_string()]);

    // Recorded as still installed (wanted + kept), a later delta deletes the counter.
    let mut recorded = b.clone();
    recorded.counters.extend(d.kept_counters.iter().cloned());
    let later = Timestamp(after.0 + 60);
    let d2 = diff_at(&recorded, after, &b, later);
    assert_eq!(d2.delete_counters, vec!["fwd_friend-ssh".to_string()]);
    assert!(d2.kept_counters.is_empty());
}

#[test]
fn elements_expiring_exactly_at_the_planning_time_count_as_expired() {
    let cfg = example();
    let expiry = cfg.forwards[2].expires_at.expect("friend-ssh expires");
    let (a, b) = (plan(&cfg, &facts(), NOW), plan(&cfg, &facts(), expiry));
    let d = diff_at(&a, NOW, &b, expiry);
    assert!(d.sets.iter().all(|s| s.delete.is_empty()), "{d:?}");
    assert_eq!(d.kept_counters, vec!["fwd_friend-ssh".to_string()]);
}

#[test]
fn dynamic_set_elements_are_kernel_state_and_never_diffed() {
    // The trigger's holder map gets an element when a trigger is carried over; the
    // rate-limit meter is filled by the datapath. Neither is ever part of a delta.
    let cfg = example();
    let mut carried = facts();
    carried.carried = Carried {
        counters: BTreeMap::new(),
        trigger_hosts: [(
            "trg_irc-ident".to_string(),
            (Ipv4Addr::new(192, 168, 1, 50), Duration::from_secs(300)),
        )]
        .into(),
    };
    let a = plan(&cfg, &facts(), NOW);
    let mut b = plan(&cfg, &carried, NOW);
    assert!(!b.set("trg_irc-ident").expect("trg map").elements.is_empty());
    let rl = b
        .sets
        .iter_mut()
        .find(|s| s.name.starts_with("rl_"))
        .expect("meter");
    rl.elements.push(Element {
        key: ElemKey::Single(vec![Value::Port(8080), Value::Ipv4(Ipv4Addr::LOCALHOST)]),
        data: None,
        timeout: None,
    });
    assert!(diff_at(&a, NOW, &b, NOW).is_empty());
    assert!(diff_at(&b, NOW, &a, NOW).is_empty());
}

#[test]
fn a_set_written_by_a_rule_is_state_even_without_the_dynamic_flag() {
    let mut a = plan(&example(), &facts(), NOW);
    for s in &mut a.sets {
        s.flags.dynamic = false;
    }
    let mut b = a.clone();
    let trg = b
        .sets
        .iter_mut()
        .find(|s| s.name == "trg_irc-ident")
        .expect("trg map");
    trg.elements.push(Element {
        key: ElemKey::Single(vec![Value::NfProto(2)]),
        data: Some(ElemData::Values(vec![Value::Ipv4(Ipv4Addr::LOCALHOST)])),
        timeout: None,
    });
    assert!(diff_at(&a, NOW, &b, NOW).is_empty());
}

#[test]
fn counter_values_to_start_from_come_with_new_counters_only() {
    let cfg = example();
    let mut next = cfg.clone();
    next.forwards
        .push(plain_forward(&cfg, "nas", 5000, [192, 168, 1, 40]));
    let a = plan(&cfg, &facts(), NOW);
    let mut b = plan(&next, &facts(), NOW);
    b.initial_counts.insert("fwd_nas".into(), (3, 300));
    b.initial_counts.insert("fwd_game".into(), (9, 900));
    let d = diff_at(&a, NOW, &b, NOW);
    assert_eq!(d.add_counters, vec![("fwd_nas".to_string(), (3, 300))]);
}

#[test]
fn single_values_and_one_value_ranges_are_the_same_element() {
    let mut a = plan(&example(), &facts(), NOW);
    let b = a.clone();
    for s in a.sets.iter_mut().filter(|s| s.flags.interval) {
        for e in &mut s.elements {
            if let ElemKey::Single(v) = &e.key {
                e.key = match v.as_slice() {
                    [x] => ElemKey::Range(*x, *x),
                    many => ElemKey::ConcatRange(many.iter().map(|x| (*x, *x)).collect()),
                };
            }
        }
    }
    assert_ne!(a, b);
    assert!(diff_at(&a, NOW, &b, NOW).is_empty());
}

#[test]
fn duplicate_elements_are_counted() {
    let a = plan(&example(), &facts(), NOW);
    let mut b = a.clone();
    let wan = b
        .sets
        .iter_mut()
        .find(|s| s.name == "wan_addrs")
        .expect("wan_addrs");
    let dup = wan.elements[0].clone();
    wan.elements.push(dup);
    let d = diff_at(&a, NOW, &b, NOW);
    assert_eq!(d.element_counts(), (1, 0));
}

#[test]
fn shape_changes_are_named() {
    let cfg = example();
    let a = plan(&cfg, &facts(), NOW);
    let check = |b: &Ruleset, want: ShapeChange| {
        assert_eq!(
            diff(Planned::new(&a, NOW), Planned::new(b, NOW)),
            Err(want.clone())
        );
        assert!(diff(Planned::new(b, NOW), Planned::new(&a, NOW)).is_err());
    };

    // A forward that logs brings its own chain.
    let mut logs = cfg.clone();
    let mut f = plain_forward(&cfg, "cam", 5554, [192, 168, 1, 60]);
    f.log = true;
    logs.forwards.push(f);
    check(
        &plan(&logs, &facts(), NOW),
        ShapeChange::Chain("fwd_cam".into()),
    );

    // The WAN address lost: the hairpin rule goes.
    check(
        &plan(&cfg, &HostFacts::default(), NOW),
        ShapeChange::Chain("dstnat".into()),
    );

    // No triggers: their maps and chains go.
    let mut quiet = cfg.clone();
    quiet.triggers.clear();
    assert!(diff(
        Planned::new(&a, NOW),
        Planned::new(&plan(&quiet, &facts(), NOW), NOW)
    )
    .is_err());

    let mut b = a.clone();
    b.table = "other".into();
    check(
        &b,
        ShapeChange::Table {
            installed: "portcullis".into(),
            wanted: "other".into(),
        },
    );

    let mut b = a.clone();
    b.sets[5].size = Some(10);
    check(&b, ShapeChange::Set(a.sets[5].name.clone()));

    let mut b = a.clone();
    b.sets[5].flags.timeout = !b.sets[5].flags.timeout;
    check(&b, ShapeChange::Set(a.sets[5].name.clone()));

    let mut b = a.clone();
    b.sets.swap(3, 4);
    check(&b, ShapeChange::Set(a.sets[3].name.clone()));

    let mut b = a.clone();
    b.sets.push(Set {
        name: "extra".into(),
        key: vec![crate::ruleset::DataType::Ipv4Addr],
        data: None,
        flags: SetFlags::default(),
        timeout: None,
        size: None,
        elements: vec![],
    });
    check(&b, ShapeChange::Set("extra".into()));

    let mut b = a.clone();
    b.chains[0].rules.pop();
    check(&b, ShapeChange::Chain(a.chains[0].name.clone()));
}

#[test]
fn constant_sets_cannot_change_in_place() {
    let mut a = plan(&example(), &facts(), NOW);
    let i = a
        .sets
        .iter()
        .position(|s| s.name == "lan_nets")
        .expect("lan_nets");
    a.sets[i].flags.constant = true;
    let mut b = a.clone();
    b.sets[i].elements.clear();
    assert_eq!(
        diff(Planned::new(&a, NOW), Planned::new(&b, NOW)),
        Err(ShapeChange::ConstantSet("lan_nets".into()))
    );
    assert_eq!(
        ShapeChange::ConstantSet("lan_nets".into()).to_string(),
        "elements of constant set lan_nets changed"
    );
}

#[test]
fn a_delta_works_on_any_ruleset_not_just_the_planners() {
    // The shared-set fixture of the encoder tests: counter maps, concatenated ranges,
    // a meter. Elements of every kind change.
    let a = crate::nft::example::shared_ruleset("shared");
    let b = crate::nft::example::shared_ruleset_changed("shared");
    let d = diff_at(&a, NOW, &b, NOW);
    assert_eq!(d.add_counters, vec![("fwd_new".to_string(), (0, 0))]);
    assert_eq!(d.delete_counters, vec!["fwd_game".to_string()]);
    let per_set: Vec<(&str, usize, usize)> = d
        .sets
        .iter()
        .map(|s| (s.set.as_str(), s.delete.len(), s.add.len()))
        .collect();
    assert_eq!(
        per_set,
        [
            ("ctr_tcp", 2, 1),
            ("ctr_udp", 1, 1),
            ("allow_tcp", 1, 1),
            ("inbound", 0, 1)
        ]
    );
    assert_delta_reaches(Planned::new(&a, NOW), Planned::new(&b, NOW), &d);
}

#[test]
fn element_order_does_not_matter() {
    let a = plan(&example(), &facts(), NOW);
    let mut b = a.clone();
    for s in &mut b.sets {
        s.elements.reverse();
        let n = s.elements.len();
        s.elements.rotate_left(1.min(n));
    }
    assert!(diff_at(&a, NOW, &b, NOW).is_empty());
    // A change at either end of a set is found as well as one in the middle.
    let allow = b
        .sets
        .iter_mut()
        .find(|s| s.name == "allow_tcp")
        .expect("allow_tcp");
    let first = allow.elements.remove(0);
    let last = allow.elements.pop().expect("elements");
    let d = diff_at(&a, NOW, &b, NOW);
    assert_eq!(d.sets.len(), 1);
    assert_eq!(d.sets[0].delete, vec![first, last]);
}

/// Random edits of a pool of forwards (added, removed, moved, re-timed, expired), planned
/// at random later times: every delta takes the installed elements the kernel still holds
/// to exactly the wanted ones.
#[test]
fn random_edits_always_reach_the_wanted_ruleset() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let base = example();
    let mut cfg = base.clone();
    let mut at = NOW;
    let mut installed = plan(&cfg, &facts(), at);
    for round in 0..300 {
        let mut next = cfg.clone();
        for _ in 0..=rand(3) {
            match rand(4) {
                0 => {
                    let i = u16::try_from(rand(40)).expect("small");
                    if !next.forwards.iter().any(|f| f.name == format!("p{i}")) {
                        let mut f =
                            plain_forward(&base, &format!("p{i}"), 40_000 + i, [10, 0, 0, 2]);
                        if rand(2) == 0 {
                            f.expires_at = Some(Timestamp(at.0 + 1 + rand(120)));
                        }
                        next.forwards.push(f);
                    }
                }
                1 if next.forwards.len() > 3 => {
                    let i = 3 + usize::try_from(rand(
                        u64::try_from(next.forwards.len() - 3).expect("fits"),
                    ))
                    .expect("fits");
                    next.forwards.remove(i);
                }
                2 if next.forwards.len() > 3 => {
                    let i = 3 + usize::try_from(rand(
                        u64::try_from(next.forwards.len() - 3).expect("fits"),
                    ))
                    .expect("fits");
                    next.forwards[i].internal_host =
                        Ipv4Addr::new(10, 0, 0, 3 + u8::try_from(rand(9)).expect("small"));
                }
                _ if next.forwards.len() > 3 => {
                    let i = 3 + usize::try_from(rand(
                        u64::try_from(next.forwards.len() - 3).expect("fits"),
                    ))
                    .expect("fits");
                    next.forwards[i].expires_at = Some(Timestamp(at.0 + 1 + rand(120)));
                }
                _ => {}
            }
        }
        let later = Timestamp(at.0 + rand(30));
        let wanted = plan(&next, &facts(), later);
        let (ia, ib) = (Planned::new(&installed, at), Planned::new(&wanted, later));
        let d = diff(ia, ib).unwrap_or_else(|c| panic!("round {round}: {c}"));
        assert_delta_reaches(ia, ib, &d);
        installed = wanted.clone();
        installed.counters.extend(d.kept_counters.iter().cloned());
        cfg = next;
        at = later;
    }
}
