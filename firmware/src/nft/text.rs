//! Short `nft`-style text of a rule, only for naming a rejected rule in errors (the
//! authoritative printer is `crate::render`; this module must not depend on it so the
//! netlink layer stands alone).

use std::fmt::Write;

use crate::ruleset::{
    CmpOp, CtState, DynsetOp, Field, Limit, LogLevel, RateUnit, Rule, Stmt, Verdict,
};

fn fields(f: &[Field]) -> String {
    let names: Vec<&str> = f
        .iter()
        .map(|f| match f {
            Field::IpSaddr => "ip saddr",
            Field::IpDaddr => "ip daddr",
            Field::ThDport => "th dport",
            Field::MetaL4Proto => "meta l4proto",
            Field::MetaNfProto => "meta nfproto",
        })
        .collect();
    names.join(" . ")
}

fn limit(l: &Limit) -> String {
    let unit = match l.unit {
        RateUnit::Second => "second",
        RateUnit::Minute => "minute",
        RateUnit::Hour => "hour",
        RateUnit::Day => "day",
    };
    let over = if l.over { "over " } else { "" };
    format!(
        "limit rate {over}{}/{unit} burst {} packets",
        l.rate, l.burst
    )
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Accept => "accept".into(),
        Verdict::Drop => "drop".into(),
        Verdict::Return => "return".into(),
        Verdict::Jump(c) => format!("jump {c}"),
        Verdict::Goto(c) => format!("goto {c}"),
    }
}

fn op(o: CmpOp) -> &'static str {
    match o {
        CmpOp::Eq => "",
        CmpOp::Neq => "!= ",
    }
}

fn dynop(o: DynsetOp) -> &'static str {
    match o {
        DynsetOp::Add => "add",
        DynsetOp::Update => "update",
    }
}

/// One statement in `nft` syntax.
pub fn stmt_text(s: &Stmt) -> String {
    match s {
        Stmt::Iifname(o, n) => format!("iifname {}\"{n}\"", op(*o)),
        Stmt::Oifname(o, n) => format!("oifname {}\"{n}\"", op(*o)),
        Stmt::NfProto(2) => "meta nfproto ipv4".into(),
        Stmt::NfProto(10) => "meta nfproto ipv6".into(),
        Stmt::NfProto(p) => format!("meta nfproto {p}"),
        Stmt::L4Proto(6) => "meta l4proto tcp".into(),
        Stmt::L4Proto(17) => "meta l4proto udp".into(),
        Stmt::L4Proto(p) => format!("meta l4proto {p}"),
        Stmt::CtState(st) => {
            let names: Vec<&str> = st
                .iter()
                .map(|s| match s {
                    CtState::Invalid => "invalid",
                    CtState::Established => "established",
                    CtState::Related => "related",
                    CtState::New => "new",
                })
                .collect();
            format!("ct state {}", names.join(","))
        }
        Stmt::CtStatusDnat => "ct status dnat".into(),
        Stmt::Lookup { key, set, negate } => {
            format!("{} {}@{set}", fields(key), if *negate { "!= " } else { "" })
        }
        Stmt::Vmap { key, map } => format!("{} vmap @{map}", fields(key)),
        Stmt::Limit(l) => limit(l),
        Stmt::Log { prefix, level } => {
            let level = match level {
                LogLevel::Warn => "warn",
                LogLevel::Notice => "notice",
                LogLevel::Info => "info",
            };
            format!("log prefix \"{prefix}\" level {level}")
        }
        Stmt::CounterRef(c) => format!("counter name \"{c}\""),
        Stmt::CounterMap { key, map } => format!("counter name {} map @{map}", fields(key)),
        Stmt::DynsetLimit {
            op,
            set,
            key,
            limit: l,
        } => {
            format!("{} @{set} {{ {} {} }}", dynop(*op), fields(key), limit(l))
        }
        Stmt::DynsetData { op, set, key, data } => {
            format!(
                "{} @{set} {{ {} : {} }}",
                dynop(*op),
                fields(key),
                fields(data)
            )
        }
        Stmt::Dnat {
            addr,
            port: Some(p),
        } => format!("dnat ip to {addr}:{p}"),
        Stmt::Dnat { addr, port: None } => format!("dnat ip to {addr}"),
        Stmt::DnatMap { key, map, .. } => format!("dnat ip to {} map @{map}", fields(key)),
        Stmt::Masquerade => "masquerade".into(),
        Stmt::Verdict(v) => verdict(v),
    }
}

/// A whole rule, statements separated by spaces.
pub fn rule_text(r: &Rule) -> String {
    let mut s = String::new();
    for (i, st) in r.stmts.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let _ = write!(s, "{}", stmt_text(st));
    }
    s
}
