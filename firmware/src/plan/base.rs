//! The fixed chains of the table, and the small per-trigger and per-rate-class chains.
//! The base chains have the same rules whatever the number of forwards.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{per_proto, rate_unit, rule, trigger_map, NFPROTO_IPV4, NFPROTO_IPV6, PROTOS};
use crate::config::{RateLimit, Trigger};
use crate::names;
use crate::ruleset::{
    BaseChain, Chain, ChainType, CmpOp, CtDir, CtKey, CtState, DataType, DynsetOp, ElemData,
    ElemKey, Element, Field, Hook, Limit, Policy, RateUnit, Rule, Ruleset, Set, SetData, SetFlags,
    Stmt, Value, Verdict,
};

pub(super) fn base(
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
        (names::SPECIAL, vmap),
        (names::CTR, counter),
        (names::DNAT_PORT, dnat_port),
        (names::DNAT_HOST, dnat_host),
    ];
    if triggers {
        steps.push((names::TRIGGER_IN, vmap));
    }
    let rules = steps
        .into_iter()
        .flat_map(|(map, make)| {
            PROTOS.map(|p| rule(vec![Stmt::L4Proto(p), make(per_proto(map, p))]))
        })
        .collect();
    regular(names::INBOUND, rules)
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
                set: per_proto(names::ALLOW, p),
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
            set: names::WAN_ADDRS.into(),
            negate: false,
        },
        Stmt::Verdict(Verdict::Jump(names::INBOUND.into())),
    ]));
    if hairpin {
        // LAN clients that use the WAN address are already inside: no WAN allow-list.
        rules.push(rule(vec![
            Stmt::Iifname(CmpOp::Eq, lan.into()),
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::Lookup {
                key: vec![Field::IpDaddr],
                set: names::WAN_ADDRS.into(),
                negate: false,
            },
            Stmt::Verdict(Verdict::Jump(names::INBOUND.into())),
        ]));
    }
    base(
        names::DSTNAT,
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

/// `input`: the router itself answers only the LAN, loopback, replies, and from the WAN
/// the ICMPv6 and DHCPv6 that IPv6 on the WAN link needs (RFC 4890; docs/decisions.md).
pub(super) fn input(lan: &str, wan: &str) -> Chain {
    let [established, invalid] = conntrack_rules();
    let mut rules = vec![established];
    let icmpv6 = |ty: u8| {
        vec![
            Stmt::Iifname(CmpOp::Eq, wan.into()),
            Stmt::NfProto(NFPROTO_IPV6),
            Stmt::L4Proto(ICMPV6),
            Stmt::Match(Field::Icmpv6Type, Value::Byte(ty)),
        ]
    };
    // Neighbour discovery only from on-link senders: hop limit 255 cannot be forged from
    // beyond the link (RFC 4861).
    for ty in [
        ND_ROUTER_SOLICIT,
        ND_ROUTER_ADVERT,
        ND_NEIGHBOR_SOLICIT,
        ND_NEIGHBOR_ADVERT,
    ] {
        let mut r = icmpv6(ty);
        r.push(Stmt::Match(Field::Ip6HopLimit, Value::Byte(255)));
        r.push(accept());
        rules.push(rule(r));
    }
    // Errors (before the invalid drop: an error about a connection conntrack has
    // forgotten is still worth reading, and the kernel checks it against its sockets).
    for ty in [
        ICMPV6_DEST_UNREACH,
        ICMPV6_PACKET_TOO_BIG,
        ICMPV6_TIME_EXCEEDED,
        ICMPV6_PARAM_PROBLEM,
    ] {
        let mut r = icmpv6(ty);
        r.push(accept());
        rules.push(rule(r));
    }
    // Echo, rate-limited as a whole: RFC 4890 recommends answering it.
    let mut echo = icmpv6(ICMPV6_ECHO_REQUEST);
    echo.push(Stmt::Limit(Limit {
        rate: 10,
        unit: RateUnit::Second,
        burst: 20,
        over: false,
    }));
    echo.push(accept());
    rules.push(rule(echo));
    // DHCPv6 replies to the router's client (server port 547 to client port 546).
    rules.push(rule(vec![
        Stmt::Iifname(CmpOp::Eq, wan.into()),
        Stmt::NfProto(NFPROTO_IPV6),
        Stmt::L4Proto(UDP_PROTO),
        Stmt::UdpPorts {
            sport: 547,
            dport: 546,
        },
        accept(),
    ]));
    rules.push(invalid);
    rules.push(rule(vec![Stmt::Iifname(CmpOp::Eq, "lo".into()), accept()]));
    rules.push(rule(vec![Stmt::Iifname(CmpOp::Eq, lan.into()), accept()]));
    base(
        names::INPUT,
        ChainType::Filter,
        Hook::Input,
        0,
        Policy::Drop,
        rules,
    )
}

const ICMP: u8 = 1;
const ICMPV6: u8 = 58;
const UDP_PROTO: u8 = 17;
const ICMPV6_DEST_UNREACH: u8 = 1;
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
const ICMPV6_TIME_EXCEEDED: u8 = 3;
const ICMPV6_PARAM_PROBLEM: u8 = 4;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;

/// `forward`: trigger bookkeeping, the live-intent check of DNATed connections, replies,
/// LAN→WAN.
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
                    map: per_proto(names::TRIGGER_OUT, p),
                },
            ]));
        }
    }
    // Every packet of a DNATed connection, both directions, before the established
    // shortcut: `flows` accepts it only while the intent that opened it still holds.
    rules.push(rule(vec![
        Stmt::CtStatusDnat,
        Stmt::Verdict(Verdict::Jump(names::FLOWS.into())),
    ]));
    rules.extend(conntrack_rules());
    rules.push(rule(vec![
        Stmt::Iifname(CmpOp::Eq, lan.into()),
        Stmt::Oifname(CmpOp::Eq, wan.into()),
        accept(),
    ]));
    base(
        names::FORWARD,
        ChainType::Filter,
        Hook::Forward,
        0,
        Policy::Drop,
        rules,
    )
}

/// The conntrack tuple a forward's flow is checked by: external port . WAN peer .
/// internal host . internal port.
pub(super) fn flow_key() -> Vec<Field> {
    vec![
        Field::Ct(CtDir::Original, CtKey::ProtoDst),
        Field::Ct(CtDir::Original, CtKey::IpSaddr),
        Field::Ct(CtDir::Reply, CtKey::IpSaddr),
        Field::Ct(CtDir::Reply, CtKey::ProtoSrc),
    ]
}

/// `flows`: a DNATed connection lives while its tuple is in `flows_*` (built from the
/// same forwards as the DNAT maps, with the same expiry timeouts) or, for a trigger's
/// open ports, while its LAN host still holds the trigger. Anything else is dropped and
/// counted: the forward was removed, disabled, narrowed, re-pointed or expired.
/// ICMP errors about a DNATed connection (conntrack state `related`) pass unchecked: they
/// carry no data, path-MTU discovery needs them, and `nft` cannot type a conntrack port
/// without a TCP/UDP packet to read it from.
pub(super) fn flows(triggers: bool) -> Chain {
    let mut rules = Vec::new();
    for p in PROTOS {
        rules.push(rule(vec![
            Stmt::L4Proto(p),
            Stmt::Lookup {
                key: flow_key(),
                set: per_proto(names::FLOWS_SET, p),
                negate: false,
            },
            accept(),
        ]));
    }
    if triggers {
        for p in PROTOS {
            rules.push(rule(vec![
                Stmt::L4Proto(p),
                Stmt::Vmap {
                    key: vec![Field::Ct(CtDir::Original, CtKey::ProtoDst)],
                    map: per_proto(names::TRIGGER_FLOW, p),
                },
            ]));
        }
    }
    rules.push(rule(vec![
        Stmt::CtState(vec![CtState::Related]),
        Stmt::L4Proto(ICMP),
        accept(),
    ]));
    rules.push(rule(vec![
        Stmt::CounterRef(names::FLOWS_CUT.into()),
        Stmt::Verdict(Verdict::Drop),
    ]));
    regular(names::FLOWS, rules)
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
                set: names::LAN_NETS.into(),
                negate: false,
            },
            Stmt::CtStatusDnat,
            Stmt::Masquerade,
        ]),
    ];
    base(
        names::SRCNAT,
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
    // `limit rate` (not `over`) matches while the source is under its rate, so `return`
    // lets it on. Over the rate, or when the meter is full and the source has no bucket
    // (the add fails, which stops the rule), the packet falls through to a counted drop:
    // a full meter fails closed instead of letting every new source through unlimited.
    // (A separate `KEY @meter return` rule cannot tell the two apart: a lookup evaluates
    // the element's limit again.)
    rs.chains.push(regular(
        name,
        vec![
            rule(vec![
                Stmt::NfProto(NFPROTO_IPV4),
                Stmt::DynsetLimit {
                    op: DynsetOp::Add,
                    set: name.into(),
                    key: vec![Field::ThDport, Field::IpSaddr],
                    limit: Limit {
                        rate: u64::from(rl.connections),
                        unit,
                        burst: rl.burst,
                        over: false,
                    },
                },
                Stmt::Verdict(Verdict::Return),
            ]),
            rule(vec![
                Stmt::CounterRef(names::RATE_LIMITED.into()),
                Stmt::Verdict(Verdict::Drop),
            ]),
        ],
    ));
}

/// A trigger: its dynamic host map (holding `open`, the host it is open to right now, if
/// any), the size-1 set of that holder, its counter, and its three small chains.
pub(super) fn trigger(rs: &mut Ruleset, t: &Trigger, open: Option<&(Ipv4Addr, Duration)>) {
    let map = trigger_map(&t.name);
    let holder = names::trigger_holder(&t.name);
    let timeout = Duration::from_secs(u64::from(t.timeout_secs));
    // Never longer than the (possibly shortened) trigger timeout.
    let left = open.map(|(host, left)| (*host, (*left).min(timeout)));
    let dynamic = SetFlags {
        dynamic: true,
        timeout: true,
        ..SetFlags::default()
    };
    rs.sets.push(Set {
        name: map.clone(),
        key: vec![DataType::NfProto],
        data: Some(SetData::Types(vec![DataType::Ipv4Addr])),
        flags: dynamic,
        timeout: Some(timeout),
        size: Some(16),
        elements: left
            .map(|(host, left)| Element {
                key: ElemKey::Single(vec![Value::NfProto(NFPROTO_IPV4)]),
                data: Some(ElemData::Values(vec![Value::Ipv4(host)])),
                timeout: Some(left),
            })
            .into_iter()
            .collect(),
    });
    // Size 1: while one host holds the trigger, an `update` by another finds the set full
    // and fails, which stops the rule before it could refresh the host map.
    rs.sets.push(Set {
        name: holder.clone(),
        key: vec![DataType::Ipv4Addr],
        data: None,
        flags: dynamic,
        timeout: Some(timeout),
        size: Some(1),
        elements: left
            .map(|(host, left)| Element {
                key: ElemKey::Single(vec![Value::Ipv4(host)]),
                data: None,
                timeout: Some(left),
            })
            .into_iter()
            .collect(),
    });
    rs.counters.push(map.clone());
    rs.chains.push(regular(
        &names::trigger_in_chain(&t.name),
        vec![
            rule(vec![Stmt::CounterRef(map.clone())]),
            rule(vec![Stmt::DnatMap {
                key: vec![Field::MetaNfProto],
                map: map.clone(),
                with_port: false,
            }]),
        ],
    ));
    // The map's key is constant (every IPv4 packet has nfproto ipv4): one host per
    // trigger. Only the holder's packets get past the holder update, so only they refresh
    // the map; another LAN host neither takes the ports over nor keeps them open.
    rs.chains.push(regular(
        &names::trigger_out_chain(&t.name),
        vec![rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::DynsetKey {
                op: DynsetOp::Update,
                set: holder.clone(),
                key: vec![Field::IpSaddr],
            },
            Stmt::DynsetData {
                op: DynsetOp::Update,
                set: map,
                key: vec![Field::MetaNfProto],
                data: vec![Field::IpSaddr],
            },
        ])],
    ));
    // A connection to the open ports lives while its LAN host still holds the trigger.
    rs.chains.push(regular(
        &names::trigger_flow_chain(&t.name),
        vec![rule(vec![
            Stmt::Lookup {
                key: vec![Field::Ct(CtDir::Reply, CtKey::IpSaddr)],
                set: holder,
                negate: false,
            },
            accept(),
        ])],
    ));
}
