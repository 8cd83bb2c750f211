//! The planner: config + host facts + now → the ruleset value. Pure: no sockets, no clock.
//!
//! Shape of the table (see docs/architecture.md):
//! - `dstnat` dispatches WAN packets by `th dport` through the verdict maps `inbound_tcp`
//!   and `inbound_udp` (interval maps, O(1)-ish lookups) into one small chain per forward
//!   or trigger. Adding forwards adds map elements and chains, never rules to a linear path.
//! - A forward's chain checks its allow-list set, its per-source meter, logs, counts and
//!   DNATs. Its map element carries a kernel timeout when the forward expires, so the port
//!   closes on time even if the daemon is dead.
//! - A trigger's outbound range (maps `trigger_out_*`, in the forward hook) records the LAN
//!   host in the dynamic map `trg_NAME` with a timeout; inbound packets to its open range
//!   are DNATed to whatever host that map holds. The kernel forgets the host on timeout.
//! - `forward` lets through only established/related, DNATed, and LAN→WAN traffic;
//!   `input` admits only LAN, loopback and replies. `srcnat` masquerades LAN→WAN and
//!   hairpinned connections.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::{Config, Forward, Per, Timestamp, Trigger};
use crate::ruleset::{
    BaseChain, Chain, ChainType, CmpOp, CtState, DataType, DynsetOp, ElemData, ElemKey, Element,
    Field, Hook, Limit, LogLevel, Policy, RateUnit, Rule, Ruleset, Set, SetData, SetFlags, Stmt,
    Value, Verdict,
};

/// The table Portcullis owns. Nothing outside it is ever touched.
pub const TABLE: &str = "portcullis";

const NFPROTO_IPV4: u8 = 2;
const TCP: u8 = 6;
const UDP: u8 = 17;

/// Log prefix of forward hits; the daemon and the UI find hits in the kernel log by it.
pub const LOG_PREFIX: &str = "portcullis fwd ";

/// What the planner needs to know about the host, gathered before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// IPv4 addresses currently on the WAN interface (for hairpin NAT). May be empty
    /// while DHCP has not answered; hairpin rules are then left out.
    pub wan_addrs: Vec<Ipv4Addr>,
}

/// Chain name of a forward.
pub fn forward_chain(name: &str) -> String {
    format!("fwd_{name}")
}

/// Counter name of a forward (same as its chain).
pub fn forward_counter(name: &str) -> String {
    forward_chain(name)
}

/// Name of a trigger's dynamic map, which holds the LAN host it is open to.
pub fn trigger_map(name: &str) -> String {
    format!("trg_{name}")
}

/// Name of the inbound dispatch map for a protocol number.
pub fn inbound_map(proto: u8) -> &'static str {
    if proto == TCP {
        "inbound_tcp"
    } else {
        "inbound_udp"
    }
}

fn trigger_out_map(proto: u8) -> &'static str {
    if proto == TCP {
        "trigger_out_tcp"
    } else {
        "trigger_out_udp"
    }
}

/// Is this forward in force at `now`? Disabled and expired forwards are not planned.
pub fn forward_active(f: &Forward, now: Timestamp) -> bool {
    f.enabled && f.expires_at.is_none_or(|t| t > now)
}

/// Plans the whole table. The config must have passed validation.
pub fn plan(cfg: &Config, facts: &HostFacts, now: Timestamp) -> Ruleset {
    let lan = cfg.lan.interface.as_str();
    let wan = cfg.wan.interface.as_str();
    let forwards: Vec<&Forward> = cfg
        .forwards
        .iter()
        .filter(|f| forward_active(f, now))
        .collect();
    let triggers: Vec<&Trigger> = cfg.triggers.iter().filter(|t| t.enabled).collect();

    let mut rs = Ruleset {
        table: TABLE.to_string(),
        counters: Vec::new(),
        sets: Vec::new(),
        chains: Vec::new(),
    };

    rs.sets.push(Set {
        name: "lan_nets".into(),
        key: vec![DataType::Ipv4Addr],
        data: None,
        flags: SetFlags {
            interval: true,
            ..SetFlags::default()
        },
        timeout: None,
        size: None,
        elements: cfg
            .lan
            .subnets
            .iter()
            .map(|n| element(range(Value::Ipv4(n.network()), Value::Ipv4(n.broadcast()))))
            .collect(),
    });
    rs.sets.push(Set {
        name: "wan_addrs".into(),
        key: vec![DataType::Ipv4Addr],
        data: None,
        flags: SetFlags::default(),
        timeout: None,
        size: None,
        elements: facts
            .wan_addrs
            .iter()
            .map(|a| element(ElemKey::Single(vec![Value::Ipv4(*a)])))
            .collect(),
    });

    let mut inbound: [Vec<Element>; 2] = [Vec::new(), Vec::new()];
    for f in &forwards {
        let chain = forward_chain(&f.name);
        let timeout = f
            .expires_at
            .map(|t| Duration::from_secs(t.0.saturating_sub(now.0)));
        for &p in f.protocol.numbers() {
            inbound[usize::from(p == UDP)].push(Element {
                key: port_key(f.external_port.first_port(), f.external_port.last_port()),
                data: Some(ElemData::Verdict(Verdict::Jump(chain.clone()))),
                timeout,
            });
        }
        plan_forward(&mut rs, f, lan);
    }
    let mut outbound: [Vec<Element>; 2] = [Vec::new(), Vec::new()];
    for t in &triggers {
        for &p in t.open_protocol.numbers() {
            inbound[usize::from(p == UDP)].push(Element {
                key: port_key(t.open_port.first_port(), t.open_port.last_port()),
                data: Some(ElemData::Verdict(Verdict::Jump(format!(
                    "trg_{}_in",
                    t.name
                )))),
                timeout: None,
            });
        }
        for &p in t.trigger_protocol.numbers() {
            outbound[usize::from(p == UDP)].push(Element {
                key: port_key(t.trigger_port.first_port(), t.trigger_port.last_port()),
                data: Some(ElemData::Verdict(Verdict::Jump(format!(
                    "trg_{}_out",
                    t.name
                )))),
                timeout: None,
            });
        }
        plan_trigger(&mut rs, t);
    }
    let [in_tcp, in_udp] = inbound;
    let [out_tcp, out_udp] = outbound;
    for (proto, elements) in [(TCP, in_tcp), (UDP, in_udp)] {
        rs.sets.push(port_vmap(inbound_map(proto), true, elements));
    }
    let has_triggers = !triggers.is_empty();
    if has_triggers {
        for (proto, elements) in [(TCP, out_tcp), (UDP, out_udp)] {
            rs.sets
                .push(port_vmap(trigger_out_map(proto), false, elements));
        }
    }

    rs.chains
        .push(dstnat_chain(lan, wan, !facts.wan_addrs.is_empty()));
    rs.chains.push(input_chain(lan));
    rs.chains.push(forward_chain_base(lan, wan, has_triggers));
    rs.chains.push(srcnat_chain(lan, wan));
    rs
}

fn element(key: ElemKey) -> Element {
    Element {
        key,
        data: None,
        timeout: None,
    }
}

fn range(lo: Value, hi: Value) -> ElemKey {
    if lo == hi {
        ElemKey::Single(vec![lo])
    } else {
        ElemKey::Range(lo, hi)
    }
}

fn port_key(first: u16, last: u16) -> ElemKey {
    range(Value::Port(first), Value::Port(last))
}

/// A `th dport` → verdict interval map. Inbound maps also carry timeouts (expiring forwards).
fn port_vmap(name: &str, timeouts: bool, elements: Vec<Element>) -> Set {
    Set {
        name: name.into(),
        key: vec![DataType::InetService],
        data: Some(SetData::Verdict),
        flags: SetFlags {
            interval: true,
            timeout: timeouts,
            ..SetFlags::default()
        },
        timeout: None,
        size: None,
        elements,
    }
}

fn rule(stmts: Vec<Stmt>) -> Rule {
    Rule { stmts }
}

fn rate_unit(p: Per) -> RateUnit {
    match p {
        Per::Second => RateUnit::Second,
        Per::Minute => RateUnit::Minute,
        Per::Hour => RateUnit::Hour,
    }
}

fn plan_forward(rs: &mut Ruleset, f: &Forward, lan: &str) {
    let chain = forward_chain(&f.name);
    let mut rules = Vec::new();
    if !f.allow_from.is_empty() {
        let set = format!("{chain}_allow");
        rs.sets.push(Set {
            name: set.clone(),
            key: vec![DataType::Ipv4Addr],
            data: None,
            flags: SetFlags {
                interval: true,
                ..SetFlags::default()
            },
            timeout: None,
            size: None,
            elements: merged_prefixes(&f.allow_from),
        });
        // LAN clients that hairpin through the WAN address are not subject to the WAN
        // allow-list: they are already inside.
        rules.push(rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::Iifname(CmpOp::Neq, lan.to_string()),
            Stmt::Lookup {
                key: vec![Field::IpSaddr],
                set,
                negate: true,
            },
            Stmt::Verdict(Verdict::Drop),
        ]));
    }
    if let Some(rl) = &f.rate_limit {
        let set = format!("{chain}_rl");
        let unit = rate_unit(rl.per);
        // A source's bucket must outlive one rate period, or it would refill early.
        let keep = Duration::from_secs((2 * unit.seconds()).max(60));
        rs.sets.push(Set {
            name: set.clone(),
            key: vec![DataType::Ipv4Addr],
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
        rules.push(rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::DynsetLimit {
                op: DynsetOp::Add,
                set,
                key: vec![Field::IpSaddr],
                limit: Limit {
                    rate: u64::from(rl.connections),
                    unit,
                    burst: rl.burst,
                    over: true,
                },
            },
            Stmt::Verdict(Verdict::Drop),
        ]));
    }
    if f.log {
        rules.push(rule(vec![
            Stmt::Limit(Limit {
                rate: 10,
                unit: RateUnit::Minute,
                burst: 5,
                over: false,
            }),
            Stmt::Log {
                prefix: format!("{LOG_PREFIX}{}: ", f.name),
                level: LogLevel::Info,
            },
        ]));
    }
    rs.counters.push(forward_counter(&f.name));
    rules.push(rule(vec![Stmt::CounterRef(forward_counter(&f.name))]));

    let ext = f.external_port;
    let int = f.internal_range();
    if ext == int {
        // Ports stay as they are: no transport match needed.
        rules.push(rule(vec![Stmt::Dnat {
            addr: f.internal_host,
            port: None,
        }]));
    } else if int.count() == 1 {
        for &p in f.protocol.numbers() {
            rules.push(rule(vec![
                Stmt::L4Proto(p),
                Stmt::Dnat {
                    addr: f.internal_host,
                    port: Some(int.first_port()),
                },
            ]));
        }
    } else {
        // A shifted range: one map element per port keeps the lookup O(1).
        let map = format!("{chain}_ports");
        rs.sets.push(Set {
            name: map.clone(),
            key: vec![DataType::InetService],
            data: Some(SetData::Types(vec![
                DataType::Ipv4Addr,
                DataType::InetService,
            ])),
            flags: SetFlags::default(),
            timeout: None,
            size: None,
            elements: (0..ext.count())
                .map(|i| Element {
                    key: ElemKey::Single(vec![Value::Port(
                        ext.first_port()
                            .saturating_add(u16::try_from(i).unwrap_or(u16::MAX)),
                    )]),
                    data: Some(ElemData::Values(vec![
                        Value::Ipv4(f.internal_host),
                        Value::Port(
                            int.first_port()
                                .saturating_add(u16::try_from(i).unwrap_or(u16::MAX)),
                        ),
                    ])),
                    timeout: None,
                })
                .collect(),
        });
        for &p in f.protocol.numbers() {
            rules.push(rule(vec![
                Stmt::L4Proto(p),
                Stmt::DnatMap {
                    key: vec![Field::ThDport],
                    map: map.clone(),
                    with_port: true,
                },
            ]));
        }
    }
    rs.chains.push(Chain {
        name: chain,
        base: None,
        rules,
    });
}

/// Allow-list prefixes as interval elements, overlapping ones merged (the kernel refuses
/// overlapping intervals, and `10.0.0.0/8` plus `10.1.0.0/16` is a reasonable thing to type).
fn merged_prefixes(nets: &[crate::config::Ipv4Net]) -> Vec<Element> {
    let mut spans: Vec<(u32, u32)> = nets
        .iter()
        .map(|n| (u32::from(n.network()), u32::from(n.broadcast())))
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (lo, hi) in spans {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
        .into_iter()
        .map(|(lo, hi)| {
            element(range(
                Value::Ipv4(Ipv4Addr::from(lo)),
                Value::Ipv4(Ipv4Addr::from(hi)),
            ))
        })
        .collect()
}

fn plan_trigger(rs: &mut Ruleset, t: &Trigger) {
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
        elements: Vec::new(),
    });
    rs.counters.push(map.clone());
    rs.chains.push(Chain {
        name: format!("{map}_in"),
        base: None,
        rules: vec![
            rule(vec![Stmt::CounterRef(map.clone())]),
            rule(vec![Stmt::DnatMap {
                key: vec![Field::MetaNfProto],
                map: map.clone(),
                with_port: false,
            }]),
        ],
    });
    // The key is constant (every IPv4 packet has nfproto ipv4): one host per trigger.
    // `update` refreshes the timeout on every outbound packet but keeps the first host,
    // so a second LAN host cannot steal ports that are in use.
    rs.chains.push(Chain {
        name: format!("{map}_out"),
        base: None,
        rules: vec![rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::DynsetData {
                op: DynsetOp::Update,
                set: map,
                key: vec![Field::MetaNfProto],
                data: vec![Field::IpSaddr],
            },
        ])],
    });
}

fn dstnat_chain(lan: &str, wan: &str, hairpin: bool) -> Chain {
    let mut rules = Vec::new();
    for p in [TCP, UDP] {
        rules.push(rule(vec![
            Stmt::Iifname(CmpOp::Eq, wan.into()),
            Stmt::NfProto(NFPROTO_IPV4),
            Stmt::L4Proto(p),
            Stmt::Vmap {
                key: vec![Field::ThDport],
                map: inbound_map(p).into(),
            },
        ]));
    }
    if hairpin {
        for p in [TCP, UDP] {
            rules.push(rule(vec![
                Stmt::Iifname(CmpOp::Eq, lan.into()),
                Stmt::NfProto(NFPROTO_IPV4),
                Stmt::Lookup {
                    key: vec![Field::IpDaddr],
                    set: "wan_addrs".into(),
                    negate: false,
                },
                Stmt::L4Proto(p),
                Stmt::Vmap {
                    key: vec![Field::ThDport],
                    map: inbound_map(p).into(),
                },
            ]));
        }
    }
    Chain {
        name: "dstnat".into(),
        base: Some(BaseChain {
            kind: ChainType::Nat,
            hook: Hook::Prerouting,
            priority: -100,
            policy: Policy::Accept,
        }),
        rules,
    }
}

fn conntrack_rules() -> [Rule; 2] {
    [
        rule(vec![
            Stmt::CtState(vec![CtState::Established, CtState::Related]),
            Stmt::Verdict(Verdict::Accept),
        ]),
        rule(vec![
            Stmt::CtState(vec![CtState::Invalid]),
            Stmt::Verdict(Verdict::Drop),
        ]),
    ]
}

fn input_chain(lan: &str) -> Chain {
    let mut rules = conntrack_rules().to_vec();
    rules.push(rule(vec![
        Stmt::Iifname(CmpOp::Eq, "lo".into()),
        Stmt::Verdict(Verdict::Accept),
    ]));
    rules.push(rule(vec![
        Stmt::Iifname(CmpOp::Eq, lan.into()),
        Stmt::Verdict(Verdict::Accept),
    ]));
    Chain {
        name: "input".into(),
        base: Some(BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Input,
            priority: 0,
            policy: Policy::Drop,
        }),
        rules,
    }
}

fn forward_chain_base(lan: &str, wan: &str, triggers: bool) -> Chain {
    let mut rules = Vec::new();
    if triggers {
        // Before the conntrack shortcut, so every outbound packet refreshes its trigger.
        for p in [TCP, UDP] {
            rules.push(rule(vec![
                Stmt::Iifname(CmpOp::Eq, lan.into()),
                Stmt::Oifname(CmpOp::Eq, wan.into()),
                Stmt::NfProto(NFPROTO_IPV4),
                Stmt::L4Proto(p),
                Stmt::Vmap {
                    key: vec![Field::ThDport],
                    map: trigger_out_map(p).into(),
                },
            ]));
        }
    }
    rules.extend(conntrack_rules());
    rules.push(rule(vec![
        Stmt::CtStatusDnat,
        Stmt::Verdict(Verdict::Accept),
    ]));
    rules.push(rule(vec![
        Stmt::Iifname(CmpOp::Eq, lan.into()),
        Stmt::Oifname(CmpOp::Eq, wan.into()),
        Stmt::Verdict(Verdict::Accept),
    ]));
    Chain {
        name: "forward".into(),
        base: Some(BaseChain {
            kind: ChainType::Filter,
            hook: Hook::Forward,
            priority: 0,
            policy: Policy::Drop,
        }),
        rules,
    }
}

fn srcnat_chain(lan: &str, wan: &str) -> Chain {
    Chain {
        name: "srcnat".into(),
        base: Some(BaseChain {
            kind: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: 100,
            policy: Policy::Accept,
        }),
        rules: vec![
            rule(vec![
                Stmt::NfProto(NFPROTO_IPV4),
                Stmt::Oifname(CmpOp::Eq, wan.into()),
                Stmt::Masquerade,
            ]),
            // Hairpin: a LAN client reached a LAN server through the WAN address; without
            // this the server would answer the client directly and the client would drop it.
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
        ],
    }
}

#[cfg(test)]
mod tests;
