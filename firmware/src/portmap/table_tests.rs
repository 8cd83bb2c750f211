use super::*;
use crate::config::{Config, PortRange, Protocol};
use std::net::Ipv4Addr;

const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
const OTHER: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
const T0: Timestamp = Timestamp(1_800_000_000);

fn policy(mode: UpnpMode, rules: &str) -> Policy {
    let text = format!(
        r#"{{"version":1,"lan":{{"interface":"lan0","subnets":["192.168.1.0/24"]}},
        "wan":{{"interface":"wan0"}},
        "forwards":[{{"name":"web","protocol":"tcp","external_port":"50050","internal_host":"192.168.1.30"}}],
        "upnp":{{"mode":"{mode}","allow":{rules}}}}}"#
    );
    Policy::of(&Config::parse(&text).expect("test config parses"))
}

fn allow_list() -> Policy {
    policy(
        UpnpMode::AllowList,
        r#"[{"hosts":["192.168.1.10/32"],"external_ports":"50000-50100","protocol":"both"}]"#,
    )
}

fn req(via: Via, client: Ipv4Addr, ext: u16, int: u16) -> MapRequest {
    MapRequest {
        via,
        client,
        mac: None,
        internal_client: client,
        proto: Proto::Tcp,
        external_port: ext,
        exact: via == Via::Upnp,
        internal_port: int,
        lifetime_secs: 600,
        description: "test".into(),
        remote_host: None,
        nonce: None,
    }
}

#[test]
fn allowed_host_gets_its_port_and_others_are_refused() {
    let p = allow_list();
    let mut t = Table::default();
    let g = t
        .map(&p, &req(Via::Upnp, HOST, 50000, 50000), T0)
        .expect("granted");
    assert_eq!(g.mapping.external_port, 50000);
    assert_eq!(g.lifetime_secs, 600);
    assert_eq!(g.mapping.expires_at, Timestamp(T0.0 + 600));
    assert!(!g.refreshed);
    // Another host, same request: no rule names it.
    let e = t
        .map(&p, &req(Via::Upnp, OTHER, 50001, 50001), T0)
        .unwrap_err();
    assert!(matches!(e, Refusal::NotAllowed(_)), "{e:?}");
    // A mapping pointing at another host.
    let mut r = req(Via::Upnp, HOST, 50002, 50002);
    r.internal_client = OTHER;
    assert_eq!(t.map(&p, &r, T0), Err(Refusal::OtherHost));
    // Outside the rule's range, and a risky port.
    assert!(matches!(
        t.map(&p, &req(Via::Upnp, HOST, 22, 22), T0),
        Err(Refusal::NotAllowed(_))
    ));
    // The port another host holds: the protocol's conflict.
    let mut wide = allow_list();
    wide.upnp.allow[0]
        .hosts
        .push("192.168.1.20/32".parse().expect("net"));
    assert!(matches!(
        t.map(&wide, &req(Via::Upnp, OTHER, 50000, 50000), T0),
        Err(Refusal::Conflict { port: 50000, .. })
    ));
    // A port a forward claims, even inside the rule.
    assert!(matches!(
        t.map(&p, &req(Via::Upnp, HOST, 50050, 50050), T0),
        Err(Refusal::Reserved { port: 50050, .. })
    ));
    assert_eq!(t.mappings().len(), 1);
}

#[test]
fn off_refuses_everything_and_default_config_is_off() {
    let cfg = Config::parse(
        r#"{"version":1,"lan":{"interface":"l","subnets":["192.168.1.0/24"]},"wan":{"interface":"w"}}"#,
    )
    .expect("parses");
    let p = Policy::of(&cfg);
    let mut t = Table::default();
    assert_eq!(
        t.map(&p, &req(Via::Natpmp, HOST, 50000, 50000), T0),
        Err(Refusal::Off)
    );
}

#[test]
fn leases_are_clamped_and_zero_gets_the_maximum() {
    let mut p = allow_list();
    p.upnp.max_lease_secs = 3_600;
    let mut t = Table::default();
    let mut r = req(Via::Upnp, HOST, 50000, 50000);
    r.lifetime_secs = 0;
    assert_eq!(t.map(&p, &r, T0).expect("granted").lifetime_secs, 3_600);
    r.external_port = 50001;
    r.lifetime_secs = 1_000_000;
    assert_eq!(t.map(&p, &r, T0).expect("granted").lifetime_secs, 3_600);
    p.upnp.allow[0].max_lease_secs = Some(60);
    r.external_port = 50002;
    assert_eq!(t.map(&p, &r, T0).expect("granted").lifetime_secs, 60);
}

#[test]
fn identical_re_add_refreshes_the_lease() {
    let p = allow_list();
    let mut t = Table::default();
    t.map(&p, &req(Via::Upnp, HOST, 50000, 50000), T0)
        .expect("granted");
    let later = Timestamp(T0.0 + 300);
    let g = t
        .map(&p, &req(Via::Upnp, HOST, 50000, 50000), later)
        .expect("refreshed");
    assert!(g.refreshed);
    assert_eq!(g.mapping.expires_at, Timestamp(later.0 + 600));
    assert_eq!(g.mapping.created_at, T0);
    assert_eq!(t.mappings().len(), 1);
}

#[test]
fn natpmp_picks_another_allowed_port_and_renews_by_internal_port() {
    let p = allow_list();
    let mut t = Table::default();
    // Suggested port outside the rule: the internal port is outside too, so the first
    // free port of the rule is given.
    let g = t
        .map(&p, &req(Via::Natpmp, HOST, 8080, 8080), T0)
        .expect("granted");
    assert_eq!(g.mapping.external_port, 50000);
    let g2 = t
        .map(&p, &req(Via::Natpmp, HOST, 0, 8080), T0)
        .expect("renewed");
    assert!(g2.refreshed);
    assert_eq!(g2.mapping.external_port, 50000);
    let g3 = t
        .map(&p, &req(Via::Natpmp, HOST, 50000, 9090), T0)
        .expect("granted");
    assert_eq!(g3.mapping.external_port, 50001, "50000 is taken");
    let gone = t
        .unmap(&Unmap::AllOfClient {
            via: Via::Natpmp,
            client: HOST,
            proto: Some(Proto::Tcp),
        })
        .expect("deleted");
    assert_eq!(gone.len(), 2);
}

#[test]
fn pcp_renewal_and_delete_need_the_same_nonce() {
    let p = allow_list();
    let mut t = Table::default();
    let mut r = req(Via::Pcp, HOST, 50010, 50010);
    r.nonce = Some([1; 12]);
    t.map(&p, &r, T0).expect("granted");
    let mut thief = r.clone();
    thief.nonce = Some([2; 12]);
    assert_eq!(t.map(&p, &thief, T0), Err(Refusal::NotOwner));
    let del = |n: u8| Unmap::Internal {
        via: Via::Pcp,
        client: HOST,
        proto: Proto::Tcp,
        internal_port: 50010,
        nonce: Some([n; 12]),
    };
    assert_eq!(t.unmap(&del(2)), Err(Refusal::NotOwner));
    assert!(t.map(&p, &r, T0).expect("renewed").refreshed);
    assert_eq!(t.unmap(&del(1)).expect("deleted").len(), 1);
    assert_eq!(t.unmap(&del(1)), Err(Refusal::NotFound));
}

#[test]
fn only_the_holder_deletes_and_ranges_delete_only_its_own() {
    let mut p = allow_list();
    p.upnp.allow[0]
        .hosts
        .push("192.168.1.20/32".parse().expect("net"));
    let mut t = Table::default();
    t.map(&p, &req(Via::Upnp, HOST, 50000, 50000), T0)
        .expect("granted");
    t.map(&p, &req(Via::Upnp, OTHER, 50001, 50001), T0)
        .expect("granted");
    let ext = |c, port| Unmap::External {
        client: c,
        proto: Proto::Tcp,
        external_port: port,
    };
    assert_eq!(t.unmap(&ext(OTHER, 50000)), Err(Refusal::NotOwner));
    assert_eq!(t.unmap(&ext(OTHER, 50099)), Err(Refusal::NotFound));
    let gone = t
        .unmap(&Unmap::Range {
            client: HOST,
            proto: Proto::Tcp,
            first: 1,
            last: 65535,
        })
        .expect("deleted");
    assert_eq!(gone.len(), 1);
    assert_eq!(t.mappings()[0].client, OTHER);
}

#[test]
fn per_host_quota_and_risky_ports() {
    let mut p = policy(
        UpnpMode::AllowList,
        r#"[{"hosts":["192.168.1.0/24"],"external_ports":"1-65535"},
            {"hosts":["192.168.1.10/32"],"external_ports":"3389"}]"#,
    );
    p.upnp.max_per_host = 2;
    let mut t = Table::default();
    // A rule naming 3389 narrowly allows it for .10; the wide rule does not for .20.
    t.map(&p, &req(Via::Upnp, HOST, 3389, 3389), T0)
        .expect("named");
    assert!(matches!(
        t.map(&p, &req(Via::Upnp, OTHER, 445, 445), T0),
        Err(Refusal::NotAllowed(_))
    ));
    t.map(&p, &req(Via::Upnp, HOST, 40000, 40000), T0)
        .expect("granted");
    assert_eq!(
        t.map(&p, &req(Via::Upnp, HOST, 40001, 40001), T0),
        Err(Refusal::Quota(2))
    );
    // The router's own ports are never granted.
    assert!(matches!(
        t.map(&p, &req(Via::Upnp, OTHER, 5000, 5000), T0),
        Err(Refusal::Reserved { .. })
    ));
    assert!(matches!(
        t.map(&p, &req(Via::Upnp, OTHER, 80, 80), T0),
        Err(Refusal::Reserved { .. })
    ));
}

#[test]
fn ask_mode_queues_then_approval_once_lets_the_retry_through() {
    let p = policy(UpnpMode::Ask, "[]");
    let mut t = Table::default();
    let r = req(Via::Upnp, HOST, 6000, 6000);
    assert_eq!(t.map(&p, &r, T0), Err(Refusal::Pending));
    assert_eq!(t.map(&p, &r, T0), Err(Refusal::Pending));
    let q = t.pending();
    assert_eq!(q.len(), 1, "retries merge");
    assert_eq!(q[0].asks, 2);
    assert_eq!(t.decide(q[0].id, Decision::Once, T0), Some(None));
    assert_eq!(
        t.decide(q[0].id, Decision::Once, T0),
        None,
        "gone once decided"
    );
    assert_eq!(
        t.map(&p, &r, T0).expect("approved").mapping.external_port,
        6000
    );
    // Approved once: kept in ask mode, closed when the mode becomes allow_list.
    assert!(t.reconcile(&p, T0).is_empty());
    let mut strict = p.clone();
    strict.upnp.mode = UpnpMode::AllowList;
    assert_eq!(t.reconcile(&strict, T0).len(), 1);
}

#[test]
fn ask_mode_deny_refuses_retries_and_always_makes_a_rule() {
    let p = policy(UpnpMode::Ask, "[]");
    let mut t = Table::default();
    let r = req(Via::Natpmp, HOST, 7000, 7000);
    assert_eq!(t.map(&p, &r, T0), Err(Refusal::Pending));
    let id = t.pending()[0].id;
    assert_eq!(t.decide(id, Decision::Deny, T0), Some(None));
    assert!(matches!(t.map(&p, &r, T0), Err(Refusal::NotAllowed(_))));
    assert!(
        t.pending().is_empty(),
        "a denied request is not queued again"
    );
    let r2 = req(Via::Upnp, OTHER, 7001, 7002);
    assert_eq!(t.map(&p, &r2, T0), Err(Refusal::Pending));
    let id = t.pending()[0].id;
    let rule = t
        .decide(id, Decision::Always, T0)
        .flatten()
        .expect("a rule");
    assert_eq!(rule.hosts, vec!["192.168.1.20/32".parse().expect("net")]);
    assert_eq!(rule.external_ports.to_string(), "7001");
    assert_eq!(
        rule.internal_ports.map(|r| r.to_string()),
        Some("7002".into())
    );
    assert_eq!(rule.protocol, Protocol::Tcp);
    // With the rule in the config the request is granted.
    let mut with = p.clone();
    with.upnp.allow.push(rule);
    t.map(&with, &r2, T0).expect("granted by the new rule");
}

#[test]
fn the_queue_is_bounded() {
    let p = policy(UpnpMode::Ask, "[]");
    let mut t = Table::default();
    for port in 1000..1200 {
        assert_eq!(
            t.map(&p, &req(Via::Upnp, HOST, port, port), T0),
            Err(Refusal::Pending)
        );
    }
    assert_eq!(t.pending().len(), MAX_PENDING);
}

#[test]
fn config_changes_close_what_is_no_longer_allowed() {
    let p = allow_list();
    let mut t = Table::default();
    t.map(&p, &req(Via::Upnp, HOST, 50000, 50000), T0)
        .expect("granted");
    t.map(&p, &req(Via::Upnp, HOST, 50001, 50001), T0)
        .expect("granted");
    // A forward now claims 50001.
    let mut claimed = p.clone();
    claimed
        .claimed
        .push((6, PortRange::single(50001), "forward `new`".into()));
    let closed = t.reconcile(&claimed, T0);
    assert_eq!(closed.len(), 1);
    assert!(closed[0].1.contains("forward `new`"), "{}", closed[0].1);
    // Off closes the rest.
    let mut off = p.clone();
    off.upnp.mode = UpnpMode::Off;
    assert_eq!(t.reconcile(&off, T0).len(), 1);
    assert!(t.mappings().is_empty());
}

#[test]
fn expiry_and_saving_keep_absolute_times() {
    let p = allow_list();
    let mut t = Table::default();
    t.map(&p, &req(Via::Upnp, HOST, 50000, 50000), T0)
        .expect("granted");
    let text = serde_json::to_string(&t).expect("saves");
    let back: Table = serde_json::from_str(&text).expect("loads");
    assert_eq!(back.mappings(), t.mappings());
    assert_eq!(t.next_expiry(), Some(Timestamp(T0.0 + 600)));
    assert!(t.expire(Timestamp(T0.0 + 599)).is_empty());
    assert_eq!(t.expire(Timestamp(T0.0 + 600)).len(), 1);
    assert!(Table::with(back.mappings(), Timestamp(T0.0 + 601))
        .mappings()
        .is_empty());
}

#[test]
fn a_mac_rule_matches_by_mac() {
    let p = policy(
        UpnpMode::AllowList,
        r#"[{"macs":["aa:bb:cc:dd:ee:ff"],"external_ports":"60000"}]"#,
    );
    let mut t = Table::default();
    let mut r = req(Via::Upnp, HOST, 60000, 60000);
    assert!(matches!(t.map(&p, &r, T0), Err(Refusal::NotAllowed(_))));
    r.mac = Some("aa:bb:cc:dd:ee:ff".parse().expect("mac"));
    t.map(&p, &r, T0).expect("granted by MAC");
}

// ---- attacks found by the issue 8 review: each failed before its fix ----

/// The owner approves once a request for "any external port" (NAT-PMP suggested port 0,
/// internal 8080). The UI showed "external port: any, internal 8080"; "always" would have
/// made a rule for 8080 only. The retry may name any port instead, risky ones included:
/// here 3389 (Remote Desktop), which no narrow rule and no approval ever named.
#[test]
fn attack_once_approval_of_any_port_does_not_open_a_risky_port() {
    let p = policy(UpnpMode::Ask, "[]");
    let mut t = Table::default();
    let asked = req(Via::Natpmp, HOST, 0, 8080);
    assert_eq!(t.map(&p, &asked, T0), Err(Refusal::Pending));
    let q = t.pending();
    assert_eq!(q[0].external_port, 0, "shown to the owner as 'any'");
    assert_eq!(t.decide(q[0].id, Decision::Once, T0), Some(None));
    let retry = req(Via::Natpmp, HOST, 3389, 8080);
    if let Ok(g) = t.map(&p, &retry, T0) {
        assert_eq!(
            g.mapping.external_port,
            8080,
            "approving 'any port → 8080' once opened {}/tcp ({:?})",
            g.mapping.external_port,
            risky(g.mapping.external_port)
        );
    }
}

/// Lowering `max_lease_secs` (or restoring a lease saved under a longer maximum, or with a
/// clock that ran ahead) keeps the old expiry: a lease of a day stays a day after the owner
/// said "at most a minute". The config says leases are clamped to the maximum.
#[test]
fn attack_reconcile_clamps_leases_to_a_lowered_maximum() {
    let p = allow_list();
    let mut t = Table::default();
    let mut r = req(Via::Upnp, HOST, 50000, 50000);
    r.lifetime_secs = 0; // "permanent": gets the section's maximum, a day
    let g = t.map(&p, &r, T0).expect("granted");
    assert_eq!(g.lifetime_secs, 86_400);
    let mut short = p.clone();
    short.upnp.max_lease_secs = 60;
    let closed = t.reconcile(&short, T0);
    let left: Vec<u64> = t.mappings().iter().map(|m| m.expires_at.0 - T0.0).collect();
    assert!(
        !closed.is_empty() || left.iter().all(|&s| s <= 60),
        "max_lease_secs lowered to 60, yet the lease keeps {left:?} s"
    );
}

/// The owner approves once "tcp 6000 → 192.168.1.10:6000" (what the queue showed). The
/// client then re-adds the same external port pointing at another internal port — here
/// 3389, the host's Remote Desktop — and the refresh of an approved mapping takes any
/// internal port without asking again: the owner approved 6000 → 6000, not 6000 → 3389.
#[test]
fn attack_refresh_of_a_once_approved_mapping_keeps_the_approved_internal_port() {
    let p = policy(UpnpMode::Ask, "[]");
    let mut t = Table::default();
    let r = req(Via::Upnp, HOST, 6000, 6000);
    assert_eq!(t.map(&p, &r, T0), Err(Refusal::Pending));
    let id = t.pending()[0].id;
    assert_eq!(t.decide(id, Decision::Once, T0), Some(None));
    t.map(&p, &r, T0).expect("approved once");
    let switched = req(Via::Upnp, HOST, 6000, 3389);
    if let Ok(g) = t.map(&p, &switched, Timestamp(T0.0 + 1)) {
        assert_eq!(
            g.mapping.internal_port, 6000,
            "the approved mapping now points at internal port {}",
            g.mapping.internal_port
        );
    }
}
