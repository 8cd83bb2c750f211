//! A small ruleset that uses every statement and every kind of set, shaped like what the
//! planner produces for one web forward, one port-range forward and one trigger.
//!
//! Shared by the golden-byte unit tests and the kernel tests (which load its rendered text
//! with `nft -f` and compare listings), so it is public but hidden from docs.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::ruleset::*;

fn ip(s: &str) -> Value {
    Value::Ipv4(s.parse().expect("test address"))
}

fn range(a: &str, b: &str) -> ElemKey {
    ElemKey::Range(ip(a), ip(b))
}

fn elem(key: ElemKey) -> Element {
    Element {
        key,
        data: None,
        timeout: None,
    }
}

fn jump(key: ElemKey, chain: &str, timeout: Option<Duration>) -> Element {
    Element {
        key,
        data: Some(ElemData::Verdict(Verdict::Jump(chain.into()))),
        timeout,
    }
}

fn set(name: &str, key: DataType, flags: SetFlags, elements: Vec<Element>) -> Set {
    Set {
        name: name.into(),
        key: vec![key],
        data: None,
        flags,
        timeout: None,
        size: None,
        elements,
    }
}

fn rule(stmts: Vec<Stmt>) -> Rule {
    Rule { stmts }
}

const INTERVAL: SetFlags = SetFlags {
    constant: false,
    interval: true,
    timeout: false,
    dynamic: false,
};
const DYNAMIC: SetFlags = SetFlags {
    constant: false,
    interval: false,
    timeout: true,
    dynamic: true,
};

/// The representative ruleset (table `name`).
pub fn example_ruleset(name: &str) -> Ruleset {
    use Field::*;
    let port = |p| ElemKey::Single(vec![Value::Port(p)]);
    let ports = |a, b| ElemKey::Range(Value::Port(a), Value::Port(b));
    let limit = |rate, unit, over| Limit {
        rate,
        unit,
        burst: 5,
        over,
    };
    let sets = vec![
        set(
            "fwd_web_allow",
            DataType::Ipv4Addr,
            INTERVAL,
            vec![
                elem(range("10.0.0.0", "10.255.255.255")),
                elem(ElemKey::Single(vec![ip("1.2.3.4")])),
            ],
        ),
        Set {
            timeout: Some(Duration::from_secs(60)),
            size: Some(65535),
            ..set("fwd_web_rl", DataType::Ipv4Addr, DYNAMIC, vec![])
        },
        set(
            "wan_addrs",
            DataType::Ipv4Addr,
            SetFlags::default(),
            vec![elem(ElemKey::Single(vec![ip("203.0.113.2")]))],
        ),
        set(
            "lan_nets",
            DataType::Ipv4Addr,
            INTERVAL,
            vec![elem(range("192.168.1.0", "192.168.1.255"))],
        ),
        Set {
            data: Some(SetData::Verdict),
            flags: SetFlags {
                timeout: true,
                ..INTERVAL
            },
            ..set(
                "inbound_tcp",
                DataType::InetService,
                INTERVAL,
                vec![
                    jump(port(8080), "fwd_web", None),
                    jump(
                        ports(9000, 9010),
                        "fwd_rng",
                        Some(Duration::from_secs(3600)),
                    ),
                    jump(ports(7000, 7010), "trg_irc_in", None),
                ],
            )
        },
        Set {
            data: Some(SetData::Types(vec![
                DataType::Ipv4Addr,
                DataType::InetService,
            ])),
            ..set(
                "fwd_rng_ports",
                DataType::InetService,
                SetFlags::default(),
                vec![Element {
                    key: port(9000),
                    data: Some(ElemData::Values(vec![
                        ip("192.168.1.10"),
                        Value::Port(19000),
                    ])),
                    timeout: None,
                }],
            )
        },
        Set {
            data: Some(SetData::Types(vec![DataType::Ipv4Addr])),
            timeout: Some(Duration::from_secs(600)),
            size: Some(65535),
            ..set("trg_irc", DataType::NfProto, DYNAMIC, vec![])
        },
        Set {
            data: Some(SetData::Verdict),
            ..set(
                "trigger_out_tcp",
                DataType::InetService,
                INTERVAL,
                vec![jump(ports(6660, 6669), "trg_irc_out", None)],
            )
        },
    ];
    let dnat = |proto| {
        rule(vec![
            Stmt::L4Proto(proto),
            Stmt::Dnat {
                addr: Ipv4Addr::new(192, 168, 1, 10),
                port: Some(80),
            },
        ])
    };
    let chains = vec![
        Chain {
            name: "fwd_web".into(),
            base: None,
            rules: vec![
                rule(vec![
                    Stmt::NfProto(2),
                    Stmt::Iifname(CmpOp::Neq, "lan0".into()),
                    Stmt::Lookup {
                        key: vec![IpSaddr],
                        set: "fwd_web_allow".into(),
                        negate: true,
                    },
                    Stmt::Verdict(Verdict::Drop),
                ]),
                rule(vec![
                    Stmt::NfProto(2),
                    Stmt::DynsetLimit {
                        op: DynsetOp::Add,
                        set: "fwd_web_rl".into(),
                        key: vec![IpSaddr],
                        limit: limit(10, RateUnit::Second, true),
                    },
                    Stmt::Verdict(Verdict::Drop),
                ]),
                rule(vec![
                    Stmt::Limit(limit(10, RateUnit::Minute, false)),
                    Stmt::Log {
                        prefix: "portcullis fwd web: ".into(),
                        level: LogLevel::Info,
                    },
                ]),
                rule(vec![Stmt::CounterRef("fwd_web".into())]),
                dnat(6),
                dnat(17),
            ],
        },
        Chain {
            name: "fwd_rng".into(),
            base: None,
            rules: vec![rule(vec![
                Stmt::L4Proto(6),
                Stmt::DnatMap {
                    key: vec![ThDport],
                    map: "fwd_rng_ports".into(),
                    with_port: true,
                },
            ])],
        },
        Chain {
            name: "trg_irc_in".into(),
            base: None,
            rules: vec![rule(vec![Stmt::DnatMap {
                key: vec![MetaNfProto],
                map: "trg_irc".into(),
                with_port: false,
            }])],
        },
        Chain {
            name: "trg_irc_out".into(),
            base: None,
            rules: vec![rule(vec![Stmt::DynsetData {
                op: DynsetOp::Update,
                set: "trg_irc".into(),
                key: vec![MetaNfProto],
                data: vec![IpSaddr],
            }])],
        },
        Chain {
            name: "dstnat".into(),
            base: Some(BaseChain {
                kind: ChainType::Nat,
                hook: Hook::Prerouting,
                priority: -100,
                policy: Policy::Accept,
            }),
            rules: vec![
                rule(vec![
                    Stmt::Iifname(CmpOp::Eq, "wan0".into()),
                    Stmt::NfProto(2),
                    Stmt::L4Proto(6),
                    Stmt::Vmap {
                        key: vec![ThDport],
                        map: "inbound_tcp".into(),
                    },
                ]),
                rule(vec![
                    Stmt::Iifname(CmpOp::Eq, "lan0".into()),
                    Stmt::NfProto(2),
                    Stmt::Lookup {
                        key: vec![IpDaddr],
                        set: "wan_addrs".into(),
                        negate: false,
                    },
                    Stmt::L4Proto(6),
                    Stmt::Vmap {
                        key: vec![ThDport],
                        map: "inbound_tcp".into(),
                    },
                ]),
            ],
        },
        Chain {
            name: "forward".into(),
            base: Some(BaseChain {
                kind: ChainType::Filter,
                hook: Hook::Forward,
                priority: 0,
                policy: Policy::Drop,
            }),
            rules: vec![
                rule(vec![
                    Stmt::Iifname(CmpOp::Eq, "lan0".into()),
                    Stmt::Oifname(CmpOp::Eq, "wan0".into()),
                    Stmt::NfProto(2),
                    Stmt::L4Proto(6),
                    Stmt::Vmap {
                        key: vec![ThDport],
                        map: "trigger_out_tcp".into(),
                    },
                ]),
                rule(vec![
                    Stmt::CtState(vec![CtState::Established, CtState::Related]),
                    Stmt::Verdict(Verdict::Accept),
                ]),
                rule(vec![
                    Stmt::CtState(vec![CtState::Invalid]),
                    Stmt::Verdict(Verdict::Drop),
                ]),
                rule(vec![Stmt::CtStatusDnat, Stmt::Verdict(Verdict::Accept)]),
            ],
        },
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
                    Stmt::NfProto(2),
                    Stmt::Oifname(CmpOp::Eq, "wan0".into()),
                    Stmt::Masquerade,
                ]),
                rule(vec![
                    Stmt::NfProto(2),
                    Stmt::Oifname(CmpOp::Eq, "lan0".into()),
                    Stmt::Lookup {
                        key: vec![IpSaddr],
                        set: "lan_nets".into(),
                        negate: false,
                    },
                    Stmt::CtStatusDnat,
                    Stmt::Masquerade,
                ]),
            ],
        },
    ];
    Ruleset {
        table: name.into(),
        counters: vec!["fwd_web".into()],
        initial_counts: Default::default(),
        sets,
        chains,
    }
}

/// Corner cases the planner may not produce today but the encoder must get right:
/// concatenations, open and adjacent intervals, constant sets, every verdict and log level,
/// `dnat` without a port, dependency insertion in the middle of a rule.
pub fn edge_ruleset(name: &str) -> Ruleset {
    use Field::*;
    let v4 = |a| ElemKey::Single(vec![ip(a)]);
    let port = Value::Port;
    let data = |vs: Vec<Value>| Some(ElemData::Values(vs));
    let verdict = |v| Some(ElemData::Verdict(v));
    let with = |key, data, timeout| Element { key, data, timeout };
    let dyn_set = |name: &str, key: Vec<DataType>, data: Option<SetData>| Set {
        name: name.into(),
        key,
        data,
        flags: DYNAMIC,
        timeout: Some(Duration::from_secs(60)),
        size: Some(1000),
        elements: vec![],
    };
    let sets = vec![
        set(
            "s_zero",
            DataType::Ipv4Addr,
            INTERVAL,
            vec![
                elem(range("0.0.0.0", "0.255.255.255")),
                elem(range("255.255.255.0", "255.255.255.255")),
            ],
        ),
        set(
            "s_adj",
            DataType::InetService,
            INTERVAL,
            vec![
                elem(ElemKey::Single(vec![port(20)])),
                elem(ElemKey::Range(port(6), port(10))),
                elem(ElemKey::Range(port(1), port(5))),
            ],
        ),
        set(
            "s_all",
            DataType::Ipv4Addr,
            INTERVAL,
            vec![elem(range("0.0.0.0", "255.255.255.255"))],
        ),
        set(
            "s_const",
            DataType::InetProto,
            SetFlags {
                constant: true,
                ..SetFlags::default()
            },
            vec![
                elem(ElemKey::Single(vec![Value::Proto(6)])),
                elem(ElemKey::Single(vec![Value::Proto(17)])),
            ],
        ),
        Set {
            key: vec![DataType::Ipv4Addr, DataType::InetService],
            ..set(
                "s_cat",
                DataType::Ipv4Addr,
                SetFlags::default(),
                vec![elem(ElemKey::Single(vec![ip("1.2.3.4"), port(80)]))],
            )
        },
        Set {
            key: vec![
                DataType::Ipv4Addr,
                DataType::InetProto,
                DataType::InetService,
            ],
            flags: SetFlags {
                timeout: true,
                ..SetFlags::default()
            },
            ..set(
                "s_cat3",
                DataType::Ipv4Addr,
                SetFlags::default(),
                vec![with(
                    ElemKey::Single(vec![ip("1.2.3.4"), Value::Proto(6), port(80)]),
                    None,
                    Some(Duration::from_secs(300)),
                )],
            )
        },
        Set {
            data: Some(SetData::Verdict),
            ..set(
                "m_v",
                DataType::Ipv4Addr,
                SetFlags::default(),
                vec![
                    with(v4("4.4.4.4"), verdict(Verdict::Return), None),
                    with(v4("1.1.1.1"), verdict(Verdict::Accept), None),
                    with(v4("2.2.2.2"), verdict(Verdict::Drop), None),
                    with(v4("3.3.3.3"), verdict(Verdict::Goto("c2".into())), None),
                ],
            )
        },
        Set {
            key: vec![DataType::InetService, DataType::Ipv4Addr],
            data: Some(SetData::Types(vec![
                DataType::Ipv4Addr,
                DataType::InetService,
            ])),
            ..set(
                "m_sp",
                DataType::Ipv4Addr,
                SetFlags::default(),
                vec![with(
                    ElemKey::Single(vec![port(443), ip("203.0.113.2")]),
                    data(vec![ip("192.168.1.20"), port(8443)]),
                    None,
                )],
            )
        },
        Set {
            data: Some(SetData::Types(vec![DataType::Ipv4Addr])),
            timeout: Some(Duration::from_secs(30)),
            ..set(
                "m_to",
                DataType::Ipv4Addr,
                SetFlags::default(),
                vec![with(v4("1.1.1.1"), data(vec![ip("2.2.2.2")]), None)],
            )
        },
        dyn_set(
            "m_dyn",
            vec![DataType::Ipv4Addr],
            Some(SetData::Types(vec![DataType::Ipv4Addr])),
        ),
        dyn_set(
            "s_rl2",
            vec![DataType::Ipv4Addr, DataType::InetService],
            None,
        ),
    ];
    let r = rule;
    let c1 = vec![
        r(vec![
            Stmt::Lookup {
                key: vec![IpSaddr, ThDport],
                set: "s_cat".into(),
                negate: false,
            },
            Stmt::Verdict(Verdict::Accept),
        ]),
        r(vec![
            Stmt::NfProto(2),
            Stmt::Lookup {
                key: vec![IpSaddr, MetaL4Proto, ThDport],
                set: "s_cat3".into(),
                negate: false,
            },
            Stmt::Verdict(Verdict::Goto("c2".into())),
        ]),
        r(vec![
            Stmt::Lookup {
                key: vec![MetaL4Proto],
                set: "s_const".into(),
                negate: true,
            },
            Stmt::Verdict(Verdict::Return),
        ]),
        r(vec![
            Stmt::NfProto(2),
            Stmt::Dnat {
                addr: Ipv4Addr::new(1, 2, 3, 4),
                port: None,
            },
        ]),
        r(vec![
            Stmt::L4Proto(6),
            Stmt::DnatMap {
                key: vec![IpDaddr],
                map: "m_to".into(),
                with_port: false,
            },
        ]),
        r(vec![
            Stmt::L4Proto(6),
            Stmt::DnatMap {
                key: vec![ThDport, IpDaddr],
                map: "m_sp".into(),
                with_port: true,
            },
        ]),
        r(vec![Stmt::DynsetData {
            op: DynsetOp::Add,
            set: "m_dyn".into(),
            key: vec![IpSaddr],
            data: vec![IpDaddr],
        }]),
        r(vec![Stmt::DynsetLimit {
            op: DynsetOp::Update,
            set: "s_rl2".into(),
            key: vec![IpSaddr, ThDport],
            limit: Limit {
                rate: 5,
                unit: RateUnit::Hour,
                burst: 2,
                over: false,
            },
        }]),
        r(vec![Stmt::Log {
            prefix: "x".into(),
            level: LogLevel::Warn,
        }]),
        r(vec![Stmt::Log {
            prefix: "y".into(),
            level: LogLevel::Notice,
        }]),
        r(vec![Stmt::Limit(Limit {
            rate: 100,
            unit: RateUnit::Day,
            burst: 10,
            over: true,
        })]),
        r(vec![
            Stmt::CtState(vec![CtState::New, CtState::Invalid]),
            Stmt::Verdict(Verdict::Drop),
        ]),
        r(vec![
            Stmt::Iifname(CmpOp::Eq, "averyverylongnm".into()),
            Stmt::Oifname(CmpOp::Neq, "x".into()),
            Stmt::Lookup {
                key: vec![IpSaddr],
                set: "m_v".into(),
                negate: false,
            },
            Stmt::Vmap {
                key: vec![IpDaddr],
                map: "m_v".into(),
            },
        ]),
    ];
    let chains = vec![
        Chain {
            name: "c1".into(),
            base: None,
            rules: c1,
        },
        Chain {
            name: "c2".into(),
            base: None,
            rules: vec![],
        },
        Chain {
            name: "out".into(),
            base: Some(BaseChain {
                kind: ChainType::Filter,
                hook: Hook::Output,
                priority: 0,
                policy: Policy::Accept,
            }),
            rules: vec![r(vec![Stmt::Verdict(Verdict::Jump("c2".into()))])],
        },
    ];
    Ruleset {
        table: name.into(),
        counters: vec![],
        initial_counts: Default::default(),
        sets,
        chains,
    }
}

/// The shared-set shapes of the redesigned planner: counter maps (objref maps, with
/// element timeouts and an open-ended range), concatenated interval sets and maps
/// (pipapo: `KEY`/`KEY_END` elements, set `DESC` with field lengths) looked up negated,
/// and a concatenated per-key meter.
pub fn shared_ruleset(name: &str) -> Ruleset {
    use Field::*;
    let port = Value::Port;
    let cr = |parts: &[(Value, Value)]| ElemKey::ConcatRange(parts.to_vec());
    let ctr = |key, name: &str, timeout| Element {
        key,
        data: Some(ElemData::Counter(name.into())),
        timeout,
    };
    let hour = Some(Duration::from_secs(3600));
    let concat_interval = SetFlags {
        timeout: true,
        ..INTERVAL
    };
    let sets = vec![
        Set {
            data: Some(SetData::Counter),
            ..set(
                "ctr_tcp",
                DataType::InetService,
                concat_interval,
                vec![
                    ctr(ElemKey::Single(vec![port(8080)]), "fwd_web", None),
                    ctr(ElemKey::Range(port(27015), port(27020)), "fwd_game", hour),
                    ctr(ElemKey::Range(port(65000), port(65535)), "fwd_web", None),
                ],
            )
        },
        Set {
            data: Some(SetData::Counter),
            ..set(
                "ctr_udp",
                DataType::InetService,
                SetFlags::default(),
                vec![ctr(ElemKey::Single(vec![port(27015)]), "fwd_game", None)],
            )
        },
        Set {
            key: vec![DataType::InetService, DataType::Ipv4Addr],
            ..set(
                "allow_tcp",
                DataType::InetService,
                concat_interval,
                vec![
                    elem(cr(&[
                        (port(8080), port(8080)),
                        (ip("198.51.100.0"), ip("198.51.100.255")),
                    ])),
                    elem(cr(&[
                        (port(27015), port(27020)),
                        (ip("0.0.0.0"), ip("255.255.255.255")),
                    ])),
                    Element {
                        timeout: hour,
                        ..elem(cr(&[
                            (port(2222), port(2222)),
                            (ip("198.51.100.77"), ip("198.51.100.77")),
                        ]))
                    },
                ],
            )
        },
        Set {
            key: vec![DataType::InetService, DataType::Ipv4Addr],
            size: Some(1024),
            ..set(
                "allow_udp",
                DataType::InetService,
                INTERVAL,
                vec![elem(cr(&[
                    (port(27015), port(27020)),
                    (ip("10.0.0.0"), ip("10.0.0.5")),
                ]))],
            )
        },
        Set {
            key: vec![DataType::InetService, DataType::Ipv4Addr],
            data: Some(SetData::Verdict),
            ..set(
                "inbound",
                DataType::InetService,
                concat_interval,
                vec![
                    jump(
                        cr(&[
                            (port(8080), port(8080)),
                            (ip("203.0.113.0"), ip("203.0.113.255")),
                        ]),
                        "fwd_web",
                        None,
                    ),
                    jump(
                        cr(&[
                            (port(27015), port(27020)),
                            (ip("203.0.113.2"), ip("203.0.113.2")),
                        ]),
                        "fwd_game",
                        hour,
                    ),
                ],
            )
        },
        Set {
            key: vec![DataType::InetService, DataType::Ipv4Addr],
            timeout: Some(Duration::from_secs(120)),
            size: Some(65535),
            ..set("rl_30_minute_10", DataType::InetService, DYNAMIC, vec![])
        },
    ];
    let drop = Stmt::Verdict(Verdict::Drop);
    let chains = vec![
        Chain {
            name: "fwd_web".into(),
            base: None,
            rules: vec![rule(vec![Stmt::Verdict(Verdict::Accept)])],
        },
        Chain {
            name: "fwd_game".into(),
            base: None,
            rules: vec![rule(vec![Stmt::Verdict(Verdict::Accept)])],
        },
        Chain {
            name: "forward".into(),
            base: Some(BaseChain {
                kind: ChainType::Filter,
                hook: Hook::Forward,
                priority: 0,
                policy: Policy::Drop,
            }),
            rules: vec![
                rule(vec![
                    Stmt::L4Proto(6),
                    Stmt::CounterMap {
                        key: vec![ThDport],
                        map: "ctr_tcp".into(),
                    },
                ]),
                rule(vec![
                    Stmt::L4Proto(17),
                    Stmt::CounterMap {
                        key: vec![ThDport],
                        map: "ctr_udp".into(),
                    },
                ]),
                rule(vec![
                    Stmt::NfProto(2),
                    Stmt::L4Proto(6),
                    Stmt::Lookup {
                        key: vec![ThDport, IpSaddr],
                        set: "allow_tcp".into(),
                        negate: true,
                    },
                    drop.clone(),
                ]),
                rule(vec![
                    Stmt::NfProto(2),
                    Stmt::L4Proto(17),
                    Stmt::Lookup {
                        key: vec![ThDport, IpSaddr],
                        set: "allow_udp".into(),
                        negate: true,
                    },
                    drop.clone(),
                ]),
                rule(vec![
                    Stmt::NfProto(2),
                    Stmt::DynsetLimit {
                        op: DynsetOp::Add,
                        set: "rl_30_minute_10".into(),
                        key: vec![ThDport, IpSaddr],
                        limit: Limit {
                            rate: 30,
                            unit: RateUnit::Minute,
                            burst: 10,
                            over: true,
                        },
                    },
                    drop,
                ]),
                rule(vec![
                    Stmt::L4Proto(6),
                    Stmt::Vmap {
                        key: vec![ThDport, IpDaddr],
                        map: "inbound".into(),
                    },
                ]),
            ],
        },
    ];
    Ruleset {
        table: name.into(),
        counters: vec!["fwd_web".into(), "fwd_game".into()],
        initial_counts: Default::default(),
        sets,
        chains,
    }
}
