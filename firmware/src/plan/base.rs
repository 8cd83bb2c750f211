//! The fixed chains of the table, and the small per-trigger and per-rate-class chains.
//! The base chains have the same rules whatever the number of forwards.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{per_proto, rate_unit, rule, trigger_map, NFPROTO_IPV4, PROTOS};
use crate::config::{RateLimit, Trigger};
use crate::ruleset::{
    BaseChain, Chain, ChainType, CmpOp, CtState, DataType, DynsetOp, ElemData, ElemKey, Element,
    Field, Hook, Limit, Policy, Rule, Ruleset, Set, SetData, SetFlags, Stmt, Value, Verdict,
};

fn base(
    name: &str,
    kind: ChainType,
    hook: Hook,
    priority: i32,
    policy: Policy,
    rules: Vec<Rule>,
) -> Chain {
    Chain {
        name: name.into(),
        base: Some(BaseChain {
            kind,
            hook,
            priority,
            policy,
        }),
        rules,
    }
}

fn regular(name: &str, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.into(),
        base: None,
        rules,
    }
}

fn accept() -> Stmt {
    Stmt::Verdict(Verdict::Accept)
}

/// `inbound`: new connections that passed the allow-list (or come from the LAN through
/// the WAN address), looked up by port in the shared maps. Rate-limit classes and log
/// chains come first: a dropped connection is not a hit.
pub(super) fn inbound(triggers: bool) -> Chain {
    fn vmap(map: String) -> Stmt {
        Stmt::Vmap {
            key: vec![Field::ThDport],
            map,
        }
    }
    fn counter(map: String) -> Stmt {
        Stmt::CounterMap {
            key: vec![Field::ThDport],
            map,
        }
    }
    fn dnat_port(map: String) -> Stmt {
        Stmt::DnatMap {
            key: vec![Field::ThDport],
            map,
            with_port: true,
        }
    }
    fn dnat_host(map: String) -> Stmt {
        Stmt::DnatMap {
            key: vec![Field::ThDport],
            map,
            with_port: false,
        }
    }
    type Step = (&'static str, fn(String) -> Stmt);
    let mut steps: Vec<Step> = vec![
        ("special", vmap),
        ("ctr", counter),
        ("dnat_port", dnat_port),
        ("dnat_host", dnat_host),
    ];
    if triggers {
        steps.push(("trigger_in", vmap));
    }
    let rules = steps
        .into_iter()
        .flat_map(|(map, make)| {
            PROTOS.map(|p| rule(vec![Stmt::L4Proto(p), make(per_proto(map, p))]))
        })
        .collect();
    regular("inbound", rules)
}

/// `dstnat`: the WAN allow-list check, then `inbound` for connections to the WAN address;
/// hairpin from the LAN.
pub(super) fn dstnat(lan: &str, wan: &str, hairpin: bool) -> Chain {
    let mut rules = Vec::new();
    for p in PROTOS {
        rules.push(rule(vec![
            Stmt::Iifname(CmpOp::Eq, wan.into()),
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::L4Proto(p),
            Stmt::Lookup {
                key: vec![Field::ThDport, Field::IpSaddr],
                set: per_proto("allow", p),
                negate: true,
            },
            Stmt::Verdict(Verdict::Drop),
        ]));
    }
    // Only connections to the router's own WAN address are forwarded, not packets that
    // arrive on the WAN addressed to a LAN host directly. With no WAN address known yet
    // (DHCP pending) nothing is forwarded: the router fails closed.
    rules.push(rule(vec![
        Stmt::Iifname(CmpOp::Eq, wan.into()),
        Stmt::NfProto(NFPROTO_IPV4),
        Stmt::Lookup {
            key: vec![Field::IpDaddr],
            set: "wan_addrs".into(),
            negate: false,
        },
        Stmt::Verdict(Verdict::Jump("inbound".into())),
    ]));
    if hairpin {
        // LAN clients that use the WAN address are already inside: no WAN allow-list.
        rules.push(rule(vec![
            Stmt::Iifname(CmpOp::Eq, lan.into()),
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::Lookup {
                key: vec![Field::IpDaddr],
                set: "wan_addrs".into(),
                negate: false,
            },
            Stmt::Verdict(Verdict::Jump("inbound".into())),
        ]));
    }
    base(
        "dstnat",
        ChainType::Nat,
        Hook::Prerouting,
        -100,
        Policy::Accept,
        rules,
    )
}

fn conntrack_rules() -> [Rule; 2] {
    [
        rule(vec![
            Stmt::CtState(vec![CtState::Established, CtState::Related]),
            accept(),
        ]),
        rule(vec![
            Stmt::CtState(vec![CtState::Invalid]),
            Stmt::Verdict(Verdict::Drop),
        ]),
    ]
}

/// `input`: the router itself answers only the LAN, loopback and replies.
pub(super) fn input(lan: &str) -> Chain {
    let mut rules = conntrack_rules().to_vec();
    rules.push(rule(vec![Stmt::Iifname(CmpOp::Eq, "lo".into()), accept()]));
    rules.push(rule(vec![Stmt::Iifname(CmpOp::Eq, lan.into()), accept()]));
    base(
        "input",
        ChainType::Filter,
        Hook::Input,
        0,
        Policy::Drop,
        rules,
    )
}

/// `forward`: trigger bookkeeping, replies, DNATed connections, LAN→WAN.
pub(super) fn forward(lan: &str, wan: &str, triggers: bool) -> Chain {
    let mut rules = Vec::new();
    if triggers {
        // Before the conntrack shortcut, so every outbound packet refreshes its trigger.
        for p in PROTOS {
            rules.push(rule(vec![
                Stmt::Iifname(CmpOp::Eq, lan.into()),
                Stmt::Oifname(CmpOp::Eq, wan.into()),
                Stmt::NfProto(NFPROTO_IPV4),
                Stmt::L4Proto(p),
                Stmt::Vmap {
                    key: vec![Field::ThDport],
                    map: per_proto("trigger_out", p),
                },
            ]));
        }
    }
    rules.extend(conntrack_rules());
    rules.push(rule(vec![Stmt::CtStatusDnat, accept()]));
    rules.push(rule(vec![
        Stmt::Iifname(CmpOp::Eq, lan.into()),
        Stmt::Oifname(CmpOp::Eq, wan.into()),
        accept(),
    ]));
    base(
        "forward",
        ChainType::Filter,
        Hook::Forward,
        0,
        Policy::Drop,
        rules,
    )
}

/// `srcnat`: masquerade to the WAN, and hairpinned connections back into the LAN.
pub(super) fn srcnat(lan: &str, wan: &str) -> Chain {
    let rules = vec![
        rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::Oifname(CmpOp::Eq, wan.into()),
            Stmt::Masquerade,
        ]),
        // Hairpin: without this the LAN server would answer the LAN client directly, and
        // the client would drop a reply from an address it never called.
        rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::Oifname(CmpOp::Eq, lan.into()),
            Stmt::Lookup {
                key: vec![Field::IpSaddr],
                set: "lan_nets".into(),
                negate: false,
            },
            Stmt::CtStatusDnat,
            Stmt::Masquerade,
        ]),
    ];
    base(
        "srcnat",
        ChainType::Nat,
        Hook::Postrouting,
        100,
        Policy::Accept,
        rules,
    )
}

/// A rate-limit class: one meter keyed by `th dport . ip saddr`, so each source gets its
/// own bucket per forwarded port, and one chain that drops what is over the rate.
pub(super) fn rate_class(rs: &mut Ruleset, name: &str, rl: &RateLimit) {
    let unit = rate_unit(rl.per);
    // A source's bucket must outlive one rate period, or it would refill early.
    let keep = Duration::from_secs((2 * unit.seconds()).max(60));
    rs.sets.push(Set {
        name: name.into(),
        key: vec![DataType::InetService, DataType::Ipv4Addr],
        data: None,
        flags: SetFlags {
            dynamic: true,
            timeout: true,
            ..SetFlags::default()
        },
        timeout: Some(keep),
        size: Some(65535),
        elements: Vec::new(),
    });
    rs.chains.push(regular(
        name,
        vec![rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::DynsetLimit {
                op: DynsetOp::Add,
                set: name.into(),
                key: vec![Field::ThDport, Field::IpSaddr],
                limit: Limit {
                    rate: u64::from(rl.connections),
                    unit,
                    burst: rl.burst,
                    over: true,
                },
            },
            Stmt::Verdict(Verdict::Drop),
        ])],
    ));
}

/// A trigger: its dynamic host map (holding `open`, the host it is open to right now, if
/// any), its counter, and its two small chains.
pub(super) fn trigger(rs: &mut Ruleset, t: &Trigger, open: Option<&(Ipv4Addr, Duration)>) {
    let map = trigger_map(&t.name);
    rs.sets.push(Set {
        name: map.clone(),
        key: vec![DataType::NfProto],
        data: Some(SetData::Types(vec![DataType::Ipv4Addr])),
        flags: SetFlags {
            dynamic: true,
            timeout: true,
            ..SetFlags::default()
        },
        timeout: Some(Duration::from_secs(u64::from(t.timeout_secs))),
        size: Some(16),
        elements: open
            .map(|(host, left)| Element {
                key: ElemKey::Single(vec![Value::NfProto(NFPROTO_IPV4)]),
                data: Some(ElemData::Values(vec![Value::Ipv4(*host)])),
                // Never longer than the (possibly shortened) trigger timeout.
                timeout: Some((*left).min(Duration::from_secs(u64::from(t.timeout_secs)))),
            })
            .into_iter()
            .collect(),
    });
    rs.counters.push(map.clone());
    rs.chains.push(regular(
        &format!("{map}_in"),
        vec![
            rule(vec![Stmt::CounterRef(map.clone())]),
            rule(vec![Stmt::DnatMap {
                key: vec![Field::MetaNfProto],
                map: map.clone(),
                with_port: false,
            }]),
        ],
    ));
    // The key is constant (every IPv4 packet has nfproto ipv4): one host per trigger.
    // `update` refreshes the timeout on every outbound packet but keeps the first host,
    // so a second LAN host cannot steal ports that are in use.
    rs.chains.push(regular(
        &format!("{map}_out"),
        vec![rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::DynsetData {
                op: DynsetOp::Update,
                set: map,
                key: vec![Field::MetaNfProto],
                data: vec![Field::IpSaddr],
            },
        ])],
    ));
}
