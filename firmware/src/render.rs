//! Prints a [`Ruleset`] in `nft` syntax.
//!
//! The output is what `portcullis plan` shows: readable, diffable, and loadable with
//! `nft -f`. Tests load it with the real `nft` and compare the kernel's listing with the
//! listing of the table our own netlink batch installed, so this printer and the encoder
//! are held to the same meaning.

use std::fmt::Write as _;
use std::time::Duration;

use crate::ruleset::{
    BaseChain, ChainType, CmpOp, CtDir, CtKey, CtState, DataType, DynsetOp, ElemData, ElemKey,
    Element, Field, Hook, Limit, LogLevel, MarkKey, Policy, RateUnit, Rule, Ruleset, Set, SetData,
    Stmt, Value, Verdict,
};

/// Renders the whole table as an `nft -f` script. The first line deletes any previous
/// version of the table the same way the applier does (`add` then `delete`), so the script
/// is a complete, atomic replacement.
pub fn render(rs: &Ruleset) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "table inet {}", rs.table);
    let _ = writeln!(out, "delete table inet {}", rs.table);
    let _ = writeln!(out, "table inet {} {{", rs.table);
    for c in &rs.counters {
        match rs.initial_counts.get(c) {
            Some((p, b)) if *p > 0 || *b > 0 => {
                let _ = writeln!(out, "\tcounter {c} {{\n\t\tpackets {p} bytes {b}\n\t}}\n");
            }
            _ => {
                let _ = writeln!(out, "\tcounter {c} {{\n\t}}\n");
            }
        }
    }
    for s in &rs.sets {
        render_set(&mut out, s);
    }
    for (i, c) in rs.chains.iter().enumerate() {
        let _ = writeln!(out, "\tchain {} {{", c.name);
        if let Some(b) = &c.base {
            let _ = writeln!(out, "\t\t{}", base_chain(b));
        }
        for r in &c.rules {
            let _ = writeln!(out, "\t\t{}", rule(r));
        }
        let _ = writeln!(out, "\t}}");
        if i + 1 < rs.chains.len() {
            out.push('\n');
        }
    }
    out.push_str("}\n");
    out
}

/// Renders one rule; error messages use it to show which rule the kernel refused.
pub fn render_rule(r: &Rule) -> String {
    rule(r)
}

fn render_set(out: &mut String, s: &Set) {
    let kind = if s.data.is_some() { "map" } else { "set" };
    let _ = writeln!(out, "\t{kind} {} {{", s.name);
    let key = concat_types(&s.key);
    let ty = match &s.data {
        None => key,
        Some(SetData::Verdict) => format!("{key} : verdict"),
        Some(SetData::Types(t)) => format!("{key} : {}", concat_types(t)),
        Some(SetData::Counter) => format!("{key} : counter"),
    };
    let _ = writeln!(out, "\t\ttype {ty}");
    if let Some(size) = s.size {
        let _ = writeln!(out, "\t\tsize {size}");
    }
    let mut flags = Vec::new();
    if s.flags.constant {
        flags.push("constant");
    }
    if s.flags.interval {
        flags.push("interval");
    }
    if s.flags.dynamic {
        flags.push("dynamic");
    }
    if s.flags.timeout {
        flags.push("timeout");
    }
    if !flags.is_empty() {
        let _ = writeln!(out, "\t\tflags {}", flags.join(","));
    }
    if let Some(t) = s.timeout {
        let _ = writeln!(out, "\t\ttimeout {}", duration(t));
    }
    if !s.elements.is_empty() {
        let elems: Vec<String> = s.elements.iter().map(element).collect();
        let _ = writeln!(out, "\t\telements = {{ {} }}", elems.join(",\n\t\t\t     "));
    }
    let _ = writeln!(out, "\t}}\n");
}

fn concat_types(t: &[DataType]) -> String {
    t.iter()
        .map(|d| d.nft_name())
        .collect::<Vec<_>>()
        .join(" . ")
}

fn element(e: &Element) -> String {
    let mut s = match &e.key {
        ElemKey::Single(v) => values(v),
        ElemKey::Range(lo, hi) => range(lo, hi),
        ElemKey::ConcatRange(parts) => parts
            .iter()
            .map(|(lo, hi)| range(lo, hi))
            .collect::<Vec<_>>()
            .join(" . "),
    };
    if let Some(t) = e.timeout {
        let _ = write!(s, " timeout {}", duration(t));
    }
    match &e.data {
        None => {}
        Some(ElemData::Verdict(v)) => {
            let _ = write!(s, " : {}", verdict(v));
        }
        Some(ElemData::Values(v)) => {
            let _ = write!(s, " : {}", values(v));
        }
        Some(ElemData::Counter(c)) => {
            let _ = write!(s, " : {}", quoted(c));
        }
    }
    s
}

/// An inclusive range, printed as a prefix when it is one (as `nft` does for addresses).
fn range(lo: &Value, hi: &Value) -> String {
    if let (Value::Ipv4(a), Value::Ipv4(b)) = (lo, hi) {
        let (a, b) = (u32::from(*a), u32::from(*b));
        let span = b.wrapping_sub(a);
        if a == b {
            return value(lo);
        }
        if span.wrapping_add(1).is_power_of_two() && a & span == 0 {
            let len = 32 - (span.wrapping_add(1)).trailing_zeros();
            return format!("{}/{len}", value(lo));
        }
        if a == 0 && b == u32::MAX {
            return "0.0.0.0/0".to_string();
        }
    }
    if lo == hi {
        return value(lo);
    }
    format!("{}-{}", value(lo), value(hi))
}

fn values(v: &[Value]) -> String {
    v.iter().map(value).collect::<Vec<_>>().join(" . ")
}

fn value(v: &Value) -> String {
    match v {
        Value::Ipv4(a) => a.to_string(),
        Value::Port(p) => p.to_string(),
        Value::Proto(p) => proto_name(*p),
        Value::NfProto(2) => "ipv4".to_string(),
        Value::NfProto(10) => "ipv6".to_string(),
        Value::NfProto(n) => n.to_string(),
        Value::Byte(n) => n.to_string(),
        Value::Mac(m) => m
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":"),
    }
}

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

fn base_chain(b: &BaseChain) -> String {
    let kind = match b.kind {
        ChainType::Filter => "filter",
        ChainType::Nat => "nat",
    };
    let hook = match b.hook {
        Hook::Prerouting => "prerouting",
        Hook::Input => "input",
        Hook::Forward => "forward",
        Hook::Output => "output",
        Hook::Postrouting => "postrouting",
    };
    let policy = match b.policy {
        Policy::Accept => "accept",
        Policy::Drop => "drop",
    };
    format!(
        "type {kind} hook {hook} priority {}; policy {policy};",
        b.priority
    )
}

fn rule(r: &Rule) -> String {
    r.stmts.iter().map(stmt).collect::<Vec<_>>().join(" ")
}

fn op(o: CmpOp) -> &'static str {
    match o {
        CmpOp::Eq => "",
        CmpOp::Neq => "!= ",
    }
}

fn stmt(s: &Stmt) -> String {
    match s {
        Stmt::Iifname(o, n) => format!("iifname {}{}", op(*o), quoted(n)),
        Stmt::Oifname(o, n) => format!("oifname {}{}", op(*o), quoted(n)),
        Stmt::NfProto(f) => format!("meta nfproto {}", value(&Value::NfProto(*f))),
        Stmt::L4Proto(p) => format!("meta l4proto {}", proto_name(*p)),
        Stmt::CtState(states) => {
            let names: Vec<&str> = states
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
        Stmt::CtStatusDnat => "ct status dnat".to_string(),
        Stmt::Match(f, v) => format!("{} {}", fields(&[*f]), value(v)),
        Stmt::UdpPorts { sport, dport } => format!("udp sport {sport} udp dport {dport}"),
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
            format!("log prefix {} level {level}", quoted(prefix))
        }
        Stmt::CounterRef(n) => format!("counter name {}", quoted(n)),
        Stmt::CounterMap { key, map } => format!("counter name {} map @{map}", fields(key)),
        Stmt::DynsetLimit {
            op,
            set,
            key,
            limit: l,
        } => format!("{} @{set} {{ {} {} }}", dynop(*op), fields(key), limit(l)),
        Stmt::DynsetKey { op, set, key } => {
            format!("{} @{set} {{ {} }}", dynop(*op), fields(key))
        }
        Stmt::DynsetData { op, set, key, data } => format!(
            "{} @{set} {{ {} : {} }}",
            dynop(*op),
            fields(key),
            fields(data)
        ),
        Stmt::Dnat { addr, port } => match port {
            Some(p) => format!("dnat ip to {addr}:{p}"),
            None => format!("dnat ip to {addr}"),
        },
        Stmt::DnatMap { key, map, .. } => format!("dnat ip to {} map @{map}", fields(key)),
        Stmt::Mark(k, v) => format!("{} {v:#010x}", mark(*k)),
        Stmt::SetMark(k, v) => format!("{} set {v:#010x}", mark(*k)),
        Stmt::Masquerade => "masquerade".to_string(),
        Stmt::Verdict(v) => verdict(v),
    }
}

fn mark(k: MarkKey) -> &'static str {
    match k {
        MarkKey::Meta => "meta mark",
        MarkKey::Ct => "ct mark",
    }
}

fn dynop(o: DynsetOp) -> &'static str {
    match o {
        DynsetOp::Add => "add",
        DynsetOp::Update => "update",
    }
}

fn limit(l: &Limit) -> String {
    let unit = match l.unit {
        RateUnit::Second => "second",
        RateUnit::Minute => "minute",
        RateUnit::Hour => "hour",
        RateUnit::Day => "day",
    };
    format!(
        "limit rate {}{}/{unit} burst {} packets",
        if l.over { "over " } else { "" },
        l.rate,
        l.burst
    )
}

fn fields(f: &[Field]) -> String {
    f.iter()
        .map(|f| match f {
            Field::IpSaddr => "ip saddr",
            Field::IpDaddr => "ip daddr",
            Field::ThDport => "th dport",
            Field::MetaL4Proto => "meta l4proto",
            Field::MetaNfProto => "meta nfproto",
            Field::CtProtocol => "ct protocol",
            Field::Ct(dir, key) => match (dir, key) {
                (CtDir::Original, CtKey::IpSaddr) => "ct original ip saddr",
                (CtDir::Original, CtKey::ProtoSrc) => "ct original proto-src",
                (CtDir::Original, CtKey::ProtoDst) => "ct original proto-dst",
                (CtDir::Reply, CtKey::IpSaddr) => "ct reply ip saddr",
                (CtDir::Reply, CtKey::ProtoSrc) => "ct reply proto-src",
                (CtDir::Reply, CtKey::ProtoDst) => "ct reply proto-dst",
            },
            Field::Icmpv6Type => "icmpv6 type",
            Field::Ip6HopLimit => "ip6 hoplimit",
            Field::EtherSaddr => "ether saddr",
        })
        .collect::<Vec<_>>()
        .join(" . ")
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

/// Quotes a string for nft. Names reaching here are validated to printable ASCII without
/// quotes or backslashes, so no escaping is needed.
fn quoted(s: &str) -> String {
    format!("\"{s}\"")
}

/// Formats a duration as nft does (`1h2m3s`, `500ms`).
pub fn duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".into();
    }
    let mut s = String::new();
    for (unit, len) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= len {
            let _ = write!(s, "{}{unit}", ms / len);
            ms %= len;
        }
    }
    if ms > 0 {
        let _ = write!(s, "{ms}ms");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_nft() {
        assert_eq!(duration(Duration::from_secs(600)), "10m");
        assert_eq!(duration(Duration::from_millis(3_723_500)), "1h2m3s500ms");
        assert_eq!(duration(Duration::from_secs(2 * 86_400)), "2d");
    }

    #[test]
    fn ranges_that_are_prefixes_print_as_prefixes() {
        let lo = Value::Ipv4("10.0.0.0".parse().unwrap());
        let hi = Value::Ipv4("10.255.255.255".parse().unwrap());
        assert_eq!(range(&lo, &hi), "10.0.0.0/8");
        let hi = Value::Ipv4("10.0.0.5".parse().unwrap());
        assert_eq!(range(&lo, &hi), "10.0.0.0-10.0.0.5");
        assert_eq!(range(&Value::Port(80), &Value::Port(80)), "80");
        assert_eq!(range(&Value::Port(80), &Value::Port(90)), "80-90");
    }

    #[test]
    fn concat_ranges_and_counter_data_print_like_nft() {
        let ip = |s: &str| Value::Ipv4(s.parse().unwrap());
        let e = Element {
            key: ElemKey::ConcatRange(vec![
                (Value::Port(27015), Value::Port(27020)),
                (ip("0.0.0.0"), ip("255.255.255.255")),
            ]),
            data: None,
            timeout: None,
        };
        assert_eq!(element(&e), "27015-27020 . 0.0.0.0/0");
        let e = Element {
            key: ElemKey::ConcatRange(vec![
                (Value::Port(2222), Value::Port(2222)),
                (ip("10.0.0.1"), ip("10.0.0.1")),
            ]),
            data: Some(ElemData::Counter("fwd_web".into())),
            timeout: Some(Duration::from_secs(3600)),
        };
        assert_eq!(element(&e), "2222 . 10.0.0.1 timeout 1h : \"fwd_web\"");
        let s = Stmt::CounterMap {
            key: vec![Field::ThDport],
            map: "ctr_tcp".into(),
        };
        assert_eq!(stmt(&s), "counter name th dport map @ctr_tcp");
    }
}
