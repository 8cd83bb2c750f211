//! Kernel tests of incremental updates (`Nft::apply_delta`). They need root, `ip` and
//! `nft` 1.0.6; each case runs in fresh network namespaces that a guard deletes again.
//!
//! The reference for "right" is a fresh full apply of the wanted ruleset in another
//! namespace: after a delta, `nft -j list table` must be the same, apart from what a
//! delta deliberately keeps (counter values, the contents of dynamic sets).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use portcullis::config::{Config, Forward, PortRange, Protocol, Timestamp};
use portcullis::delta::{Planned, ShapeChange};
use portcullis::nft::{DeltaOutcome, Nft, NftError};
use portcullis::plan::{self, HostFacts};
use portcullis::ruleset::{ElemData, ElemKey, Element, Ruleset, Value};
use serde_json::Value as Json;

#[path = "fixtures/netns.rs"]
#[allow(dead_code)] // not every helper is used by every test crate
mod netns;
use netns::Netns;

const TABLE: &str = plan::TABLE;

fn example() -> Config {
    Config::parse(include_str!("../examples/home.json")).expect("example parses")
}

fn facts() -> HostFacts {
    HostFacts {
        wan_addrs: vec![Ipv4Addr::new(203, 0, 113, 2)],
        ..HostFacts::default()
    }
}

/// A forward without a log chain: adding or removing it changes only elements.
fn plain_forward(name: &str, port: u16, host: [u8; 4]) -> Forward {
    let mut f = example().forwards[2].clone();
    f.name = name.into();
    f.protocol = Protocol::Tcp;
    f.external_port = PortRange::single(port);
    f.internal_host = Ipv4Addr::from(host);
    f.internal_port = None;
    f.allow_from = vec!["198.51.100.0/24".parse().expect("prefix")];
    f.expires_at = None;
    f
}

/// The example with one forward added (`nas`), one removed (`game`, TCP and UDP) and one
/// changed (`friend-ssh` goes to another host and expires later).
fn changed(cfg: &Config) -> Config {
    let mut next = cfg.clone();
    next.forwards.retain(|f| f.name != "game");
    next.forwards
        .push(plain_forward("nas", 5000, [192, 168, 1, 40]));
    let ssh = next
        .forwards
        .iter_mut()
        .find(|f| f.name == "friend-ssh")
        .expect("friend-ssh");
    ssh.internal_host = Ipv4Addr::new(192, 168, 1, 31);
    ssh.expires_at = ssh.expires_at.map(|t| Timestamp(t.0 + 86_400));
    next
}

/// `nft -j list table inet portcullis` without what legitimately differs between a table
/// changed by deltas and a fresh one: handles, counter values, time left of elements,
/// and the elements of `rs`'s dynamic sets (`nft -j` does not print the `dynamic` flag).
/// Element lists are sorted (hash sets list in hash order), and so are counters.
fn normalized_json(ns: &Netns, rs: &Ruleset) -> Vec<Json> {
    let text = ns.nft_cli(&["-j", "list", "table", "inet", TABLE]);
    let mut j: Json = serde_json::from_str(&text).expect("nft -j output");
    let dynamic: Vec<&str> = rs
        .sets
        .iter()
        .filter(|s| s.flags.dynamic)
        .map(|s| s.name.as_str())
        .collect();
    let Some(Json::Array(mut list)) = j.get_mut("nftables").map(Json::take) else {
        panic!("no nftables array in {text}");
    };
    list.retain(|o| o.get("metainfo").is_none());
    for o in list.iter_mut() {
        strip(o);
        if let Some(c) = o.get_mut("counter").and_then(Json::as_object_mut) {
            c.remove("packets");
            c.remove("bytes");
        }
        for kind in ["set", "map"] {
            if let Some(s) = o.get_mut(kind).and_then(Json::as_object_mut) {
                let name = s.get("name").and_then(Json::as_str).unwrap_or_default();
                if dynamic.contains(&name) {
                    s.remove("elem");
                } else if let Some(Json::Array(e)) = s.get_mut("elem") {
                    e.sort_by_key(|x| x.to_string());
                }
            }
        }
    }
    // Named objects list in creation order: a delta appends new counters, a fresh table
    // has them in ruleset order. Which order has no effect; compare them sorted.
    let slots: Vec<usize> = (0..list.len())
        .filter(|&i| list[i].get("counter").is_some())
        .collect();
    let mut counters: Vec<Json> = slots.iter().map(|&i| list[i].take()).collect();
    counters.sort_by_key(|c| c.to_string());
    for (i, c) in slots.into_iter().zip(counters) {
        list[i] = c;
    }
    list
}

/// Compares two normalized listings entry by entry, printing only the first difference.
fn assert_same_listing(ours: &[Json], fresh: &[Json]) {
    for (i, (a, b)) in ours.iter().zip(fresh).enumerate() {
        assert_eq!(a, b, "entry {i} differs:\n ours: {a}\nfresh: {b}");
    }
    assert_eq!(ours.len(), fresh.len(), "number of entries");
}

/// Removes `handle` and `expires` members everywhere.
fn strip(j: &mut Json) {
    match j {
        Json::Object(m) => {
            m.remove("handle");
            m.remove("expires");
            m.values_mut().for_each(strip);
        }
        Json::Array(a) => a.iter_mut().for_each(strip),
        _ => {}
    }
}

fn counter(nft: &mut Nft, name: &str) -> Option<(u64, u64)> {
    let t = nft.read_table(TABLE).expect("read").expect("table");
    t.counters
        .iter()
        .find(|c| c.name == name)
        .map(|c| (c.packets, c.bytes))
}

fn applied(outcome: Result<DeltaOutcome, NftError>) -> portcullis::nft::DeltaReport {
    match outcome.expect("delta accepted") {
        DeltaOutcome::Applied(r) => r,
        DeltaOutcome::NeedsFullApply(c) => panic!("unexpected shape change: {c}"),
    }
}

#[test]
fn a_delta_installs_what_a_full_apply_would_and_keeps_counters_meters_and_triggers() {
    let now = Timestamp::now();
    let cfg = example();
    let mut a = plan::plan(&cfg, &facts(), now);
    // Counters with hits: the changed forward's and one that does not change.
    a.initial_counts.insert("fwd_web".into(), (7, 700));
    a.initial_counts.insert("fwd_friend-ssh".into(), (3, 300));
    let b = plan::plan(&changed(&cfg), &facts(), now);

    let ours = Netns::new();
    let mut nft = ours.nft();
    nft.apply(&a).expect("full apply");
    // What the datapath learns: a rate-limit meter entry and an open trigger.
    let meter = a
        .sets
        .iter()
        .find(|s| s.name.starts_with("rl_"))
        .expect("meter set")
        .name
        .clone();
    ours.nft_cli(&[
        "add",
        "element",
        "inet",
        TABLE,
        &meter,
        "{ 8080 . 198.51.100.9 }",
    ]);
    ours.nft_cli(&[
        "add",
        "element",
        "inet",
        TABLE,
        "trg_irc-ident",
        "{ ipv4 : 192.168.1.77 }",
    ]);

    let report = applied(nft.apply_delta(Planned::new(&a, now), Planned::new(&b, now)));
    assert_eq!(report.batches, 1);
    assert_eq!((report.counters_added, report.counters_deleted), (1, 1));
    assert_eq!((report.elements_added, report.elements_deleted), (10, 13));
    assert!(report.kept_counters.is_empty());

    let fresh = Netns::new();
    fresh.nft().apply(&b).expect("fresh full apply");
    assert_same_listing(&normalized_json(&ours, &b), &normalized_json(&fresh, &b));

    assert_eq!(counter(&mut nft, "fwd_web"), Some((7, 700)));
    assert_eq!(counter(&mut nft, "fwd_friend-ssh"), Some((3, 300)));
    assert_eq!(counter(&mut nft, "fwd_nas"), Some((0, 0)));
    assert_eq!(counter(&mut nft, "fwd_game"), None);
    let listing = ours.list(TABLE);
    assert!(listing.contains("8080 . 198.51.100.9"), "{listing}");
    assert!(listing.contains("ipv4 : 192.168.1.77"), "{listing}");
}

#[test]
fn deltas_back_and_forth_end_where_they_started() {
    let now = Timestamp::now();
    let cfg = example();
    let a = plan::plan(&cfg, &facts(), now);
    let b = plan::plan(&changed(&cfg), &facts(), now);
    let ours = Netns::new();
    let mut nft = ours.nft();
    nft.apply(&a).expect("full apply");
    applied(nft.apply_delta(Planned::new(&a, now), Planned::new(&b, now)));
    // Back, planned a little later: friend-ssh's re-added elements carry timeouts 5 s
    // shorter (the same expiry), as a fresh plan at that time has them.
    let later = Timestamp(now.0 + 5);
    let a_later = plan::plan(&cfg, &facts(), later);
    let back = applied(nft.apply_delta(Planned::new(&b, now), Planned::new(&a_later, later)));
    assert!(back.messages > 0);
    let fresh = Netns::new();
    fresh.nft().apply(&a_later).expect("fresh full apply");
    assert_same_listing(
        &normalized_json(&ours, &a_later),
        &normalized_json(&fresh, &a_later),
    );
    // Nothing left to change: nothing is sent.
    let none =
        applied(nft.apply_delta(Planned::new(&a_later, later), Planned::new(&a_later, later)));
    assert_eq!((none.batches, none.messages), (0, 0));
}

#[test]
fn a_shape_change_is_reported_and_nothing_is_sent() {
    let now = Timestamp::now();
    let cfg = example();
    let a = plan::plan(&cfg, &facts(), now);
    let mut logs = cfg.clone();
    let mut cam = plain_forward("cam", 5554, [192, 168, 1, 60]);
    cam.log = true;
    logs.forwards.push(cam);
    let b = plan::plan(&logs, &facts(), now);

    let ns = Netns::new();
    let mut nft = ns.nft();
    nft.apply(&a).expect("full apply");
    let before = ns.list(TABLE);
    let outcome = nft
        .apply_delta(Planned::new(&a, now), Planned::new(&b, now))
        .expect("no kernel error");
    assert_eq!(
        outcome,
        DeltaOutcome::NeedsFullApply(ShapeChange::Chain("fwd_cam".into()))
    );
    assert_eq!(ns.list(TABLE), before);
    assert!(!before.contains("fwd_cam"));
}

#[test]
fn a_rejected_delta_leaves_the_table_as_it_was_and_names_the_object() {
    let now = Timestamp::now();
    let cfg = example();
    let a = plan::plan(&cfg, &facts(), now);
    // Valid changes (a new forward: a counter, elements; game's elements deleted) plus
    // one the kernel refuses: a counter-map element naming a counter that does not exist.
    let mut b = plan::plan(&changed(&cfg), &facts(), now);
    let ctr = b
        .sets
        .iter_mut()
        .find(|s| s.name == "ctr_udp")
        .expect("ctr_udp");
    ctr.elements.push(Element {
        key: ElemKey::Single(vec![Value::Port(4000)]),
        data: Some(ElemData::Counter("fwd_nobody".into())),
        timeout: None,
    });

    let ns = Netns::new();
    let mut nft = ns.nft();
    nft.apply(&a).expect("full apply");
    let before = ns.list(TABLE);
    let err = nft
        .apply_delta(Planned::new(&a, now), Planned::new(&b, now))
        .expect_err("kernel refuses");
    assert!(
        matches!(&err, NftError::Rejected { object, .. } if object == "elements of set ctr_udp"),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(nix::libc::ENOENT));
    assert_eq!(ns.list(TABLE), before);
}

#[test]
fn a_counter_the_kernel_still_uses_is_kept_and_the_rest_commits() {
    // The wanted ruleset drops counter fwd_game but (as an expired, not yet collected
    // element would) an element still refers to it: the kernel refuses the deletion
    // (EBUSY), the counter is kept and reported, everything else is committed.
    let now = Timestamp::now();
    let cfg = example();
    let a = plan::plan(&cfg, &facts(), now);
    let mut next = cfg.clone();
    next.forwards
        .push(plain_forward("nas", 5000, [192, 168, 1, 40]));
    let mut b = plan::plan(&next, &facts(), now);
    b.counters.retain(|c| c != "fwd_game");

    let ns = Netns::new();
    let mut nft = ns.nft();
    nft.apply(&a).expect("full apply");
    let report = applied(nft.apply_delta(Planned::new(&a, now), Planned::new(&b, now)));
    assert_eq!(report.kept_counters, vec!["fwd_game".to_string()]);
    assert_eq!(report.batches, 2);
    assert_eq!(report.counters_deleted, 0);
    assert_eq!(counter(&mut nft, "fwd_game"), Some((0, 0)));
    assert_eq!(counter(&mut nft, "fwd_nas"), Some((0, 0)));
    let recorded = report.installed(b.clone());
    assert!(recorded.counters.contains(&"fwd_game".to_string()));
    let fresh = Netns::new();
    fresh.nft().apply(&recorded).expect("fresh full apply");
    assert_same_listing(
        &normalized_json(&ns, &recorded),
        &normalized_json(&fresh, &recorded),
    );
}

#[test]
fn an_expired_forward_needs_no_deletion_and_its_counter_waits() {
    // A forward expiring a second after it was installed: the kernel removes its elements
    // itself. The delta planned after the expiry must not delete them (ENOENT) and keeps
    // the counter while the expired element still refers to it.
    let now = Timestamp::now();
    let mut cfg = example();
    let mut brief = plain_forward("brief", 6000, [192, 168, 1, 41]);
    brief.expires_at = Some(Timestamp(now.0 + 1));
    cfg.forwards.push(brief);
    let a = plan::plan(&cfg, &facts(), now);
    let ns = Netns::new();
    let mut nft = ns.nft();
    nft.apply(&a).expect("full apply");
    // Wait (bounded) until the kernel has expired the element: listings omit expired ones.
    let deadline = Instant::now() + Duration::from_secs(10);
    while ns
        .nft_cli(&["list", "map", "inet", TABLE, "ctr_tcp"])
        .contains("6000")
    {
        assert!(Instant::now() < deadline, "element did not expire");
        std::thread::yield_now();
    }
    let after = Timestamp(now.0 + 2);
    let b = plan::plan(&cfg, &facts(), after);
    assert!(!b.counters.contains(&"fwd_brief".to_string()));
    let report = applied(nft.apply_delta(Planned::new(&a, now), Planned::new(&b, after)));
    assert_eq!(report.elements_deleted, 0);
    assert_eq!(report.kept_counters, vec!["fwd_brief".to_string()]);
    assert!(counter(&mut nft, "fwd_brief").is_some());
}

#[test]
fn adjacent_and_open_ended_intervals_are_deleted_and_added_exactly() {
    // Interval maps hold a start element and an end marker per range; adjacent ranges put
    // an end marker and a start on the same key, and a range up to 65535 has no end
    // marker. Deleting one range must take exactly its own two (or one) elements.
    let now = Timestamp::now();
    let range = |name: &str, first: u16, last: u16, host: u8| {
        let mut f = plain_forward(name, 1, [192, 168, 1, host]);
        f.external_port = PortRange::new(first, last).expect("a valid range");
        f
    };
    let mut cfg = example();
    cfg.forwards.push(range("r1", 31000, 31009, 50));
    cfg.forwards.push(range("r2", 31010, 31019, 51));
    cfg.forwards.push(range("top", 65530, 65535, 52));
    let a = plan::plan(&cfg, &facts(), now);
    let mut next = cfg.clone();
    next.forwards.retain(|f| f.name != "r1" && f.name != "top");
    if let Some(r2) = next.forwards.iter_mut().find(|f| f.name == "r2") {
        r2.internal_host = Ipv4Addr::new(192, 168, 1, 53);
    }
    let b = plan::plan(&next, &facts(), now);

    let ns = Netns::new();
    let mut nft = ns.nft();
    nft.apply(&a).expect("full apply");
    applied(nft.apply_delta(Planned::new(&a, now), Planned::new(&b, now)));
    let fresh = Netns::new();
    fresh.nft().apply(&b).expect("fresh full apply");
    assert_same_listing(&normalized_json(&ns, &b), &normalized_json(&fresh, &b));

    // And back: the ranges are added next to r2 and up to the end of the port space.
    applied(nft.apply_delta(Planned::new(&b, now), Planned::new(&a, now)));
    let fresh = Netns::new();
    fresh.nft().apply(&a).expect("fresh full apply");
    assert_same_listing(&normalized_json(&ns, &a), &normalized_json(&fresh, &a));
    assert!(ns.list(TABLE).contains("65530-65535"));
}

/// `cargo test --release -p portcullis --test nft_delta -- --ignored --nocapture`: apply
/// time of one forward added and removed again on a table of 1,000 (and 10,000) forwards,
/// at the end of the config and in its middle, as a delta and as a full re-apply. Prints
/// medians; asserts nothing about time.
#[test]
#[ignore = "measurement; prints timings"]
fn measure_delta_against_full_apply() {
    println!("| forwards | change | delta (ms) | diff alone (ms) | messages | full apply (ms) | read back + full apply (ms) |");
    println!("|---:|---|---:|---:|---:|---:|---:|");
    for n in [1000, 10_000] {
        measure(n);
    }
}

fn measure(n: u16) {
    let runs = if n > 1000 { 7 } else { 21 };
    let now = Timestamp::now();
    let mut cfg = example();
    cfg.lan.subnets = vec!["10.0.0.0/16".parse().expect("prefix")];
    cfg.forwards = (0..n)
        .map(|i| {
            let [hi, lo] = (i + 2).to_be_bytes();
            plain_forward(&format!("f{i}"), 20_000 + i, [10, 0, hi, lo])
        })
        .collect();
    let base = plan::plan(&cfg, &facts(), now);
    let mut more = cfg.clone();
    more.forwards
        .push(plain_forward("extra", 40_000, [10, 0, 9, 9]));
    let mut less = cfg.clone();
    less.forwards.remove(usize::from(n / 2));
    let ns = Netns::new();
    let mut nft = ns.nft();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    for (what, other) in [
        ("one added at the end, removed again", more),
        ("one in the middle removed, added again", less),
    ] {
        let other = plan::plan(&other, &facts(), now);
        nft.apply(&base).expect("full apply");
        let (mut full, mut engine, mut delta, mut diff_only) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut msgs = 0;
        for i in 0..runs {
            let (from, to) = if i % 2 == 0 {
                (&base, &other)
            } else {
                (&other, &base)
            };
            let t = Instant::now();
            let d = portcullis::delta::diff(Planned::new(from, now), Planned::new(to, now))
                .expect("same shape");
            diff_only.push(t.elapsed());
            assert!(!d.is_empty());
            let t = Instant::now();
            let r = applied(nft.apply_delta(Planned::new(from, now), Planned::new(to, now)));
            delta.push(t.elapsed());
            msgs = r.messages;
        }
        for i in 0..runs {
            let to: &Ruleset = if i % 2 == 0 { &other } else { &base };
            let t = Instant::now();
            nft.apply(to).expect("full apply");
            full.push(t.elapsed());
        }
        // As the engine replaces the table today: counters and trigger hosts read first.
        for i in 0..runs {
            let to: &Ruleset = if i % 2 == 0 { &other } else { &base };
            let t = Instant::now();
            portcullis::readback::kernel_view(&mut nft, TABLE).expect("read back");
            nft.apply(to).expect("full apply");
            engine.push(t.elapsed());
        }
        println!(
            "| {n} | {what} | {:.2} | {:.2} | {msgs} | {:.1} | {:.1} |",
            median(delta),
            median(diff_only),
            median(full),
            median(engine),
        );
    }
}
