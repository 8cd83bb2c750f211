//! The planner: config + host facts + now → the ruleset value. Pure: no sockets, no clock.
//!
//! Shape of the table (see docs/architecture.md). Per-forward data lives in a few shared
//! sets and maps, never in per-forward sets or linear rules: the kernel finds sets by name
//! with a linear walk, so a set per forward would make applying O(n²), and a rule per
//! forward would make every new connection pay for every forward.
//! - `dstnat` drops WAN connections whose `th dport . ip saddr` is not in `allow_tcp` /
//!   `allow_udp` (one concatenated interval set per protocol holds every forward's
//!   allow-list), then jumps to `inbound`; LAN clients addressing the WAN address (hairpin)
//!   jump to `inbound` directly.
//! - `inbound` looks the port up in maps: `special_*` (jump to a rate-limit class chain or a
//!   per-forward log chain, only for forwards that want them), `ctr_*` (the forward's named
//!   counter), `dnat_port_*` (translated ports) and `dnat_host_*` (ports kept), and
//!   `trigger_in_*` for triggers.
//! - Every element of a forward carries a kernel timeout when the forward expires, so the
//!   port closes on time even if the daemon is dead.
//! - A trigger's outbound range (maps `trigger_out_*`, in the forward hook) records the LAN
//!   host in the size-1 set `trg_NAME.holder` and, only if that succeeded (it is the
//!   holder), in the dynamic map `trg_NAME`, both with the trigger's timeout; inbound
//!   packets to its open range are DNATed to whatever host that map holds. The kernel
//!   forgets the host on timeout.
//! - `forward` sends every packet of a DNATed connection to `flows`, which accepts it only
//!   while the intent that opened it still holds (`flows_*`: external port . WAN peer .
//!   internal host . internal port of every active forward; for trigger ports, the LAN
//!   host must still be the holder) and drops the rest; then established/related and
//!   LAN→WAN. `input` admits LAN, loopback, replies and the ICMPv6/DHCPv6 the router's
//!   WAN IPv6 needs. `srcnat` masquerades LAN→WAN and hairpinned connections.
//! - Forwards and triggers first become [`OpenPort`]s; the shared sets are filled from
//!   that list alone.
//! - With an enabled `vpn` (issue 9; `plan/vpn.rs`): `vpn_mark` (prerouting, mangle
//!   priority -150) sets the tunnel mark on the tunnel devices' packets (every LAN packet,
//!   or by the sets `vpn_hosts` / `vpn_macs`), the conntrack mark `CT_FROM_TUNNEL` on
//!   connections arriving through the tunnel, and the tunnel mark on the LAN side of
//!   those (their replies route back through it). `forward` begins with the kill switch
//!   (marked packets leaving by anything but the tunnel or the LAN: counted drop,
//!   `vpn_kill_switch`) and the Port Fail guard (anything to the endpoint's address by the
//!   WAN: counted drop, `vpn_port_fail`), and accepts LAN → tunnel. The base chain
//!   `output` lets only WireGuard's own UDP (its fwmark) reach the endpoint by the WAN.
//!   `dstnat` redirects the tunnel devices' DNS to the tunnel's resolver with the
//!   conntrack mark `CT_DNS_REDIRECT`, which `flows` accepts; what DNS of theirs still
//!   reaches `input` is dropped (`vpn_dns_blocked`). The provider's port is one more
//!   `OpenPort` (provenance `VpnProvider`): its DNAT is in `vpn_dnat_*`, used only for
//!   packets arriving through the tunnel, its flows in the shared `flows_*`. `srcnat`
//!   masquerades into the tunnel.

mod base;
mod open;
mod vpn;

pub use open::{OpenPort, Provenance, Target};

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::{Config, Forward, Ipv4Net, Per, RateLimit, Timestamp, Trigger};
use crate::ruleset::{
    DataType, ElemData, ElemKey, Element, Limit, LogLevel, RateUnit, Rule, Ruleset, Set, SetData,
    SetFlags, Stmt, Value, Verdict,
};

use crate::names::{self, TCP, UDP};
pub use crate::names::{forward_counter, per_proto, trigger_map, LOG_PREFIX, TABLE};

const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const PROTOS: [u8; 2] = [TCP, UDP];

/// What the planner needs to know about the host, gathered before planning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// IPv4 addresses currently on the WAN interface (for hairpin NAT). May be empty
    /// while DHCP has not answered; hairpin rules are then left out.
    pub wan_addrs: Vec<Ipv4Addr>,
    /// State the installed table holds that a replacement must keep.
    pub carried: Carried,
    /// Port mappings LAN clients hold (UPnP IGD, NAT-PMP, PCP leases), as the daemon's
    /// owner decided them. They are state the daemon keeps beside the config, not facts
    /// of the host, but like facts they are gathered before planning. Leases whose port a
    /// forward or trigger of the config holds are left out (the config wins).
    pub leases: Vec<crate::portmap::Mapping>,
    /// The port the VPN provider forwards to us right now (NAT-PMP over the tunnel), as
    /// the daemon's provider client holds it; none while no port is held. Planned as an
    /// open port with provenance [`Provenance::VpnProvider`], reachable only through the
    /// tunnel interface, whose elements time out when the provider's lease ends.
    pub vpn_port: Option<VpnPort>,
    /// MAC addresses the neighbour table shows for the tunnel devices chosen by IPv4
    /// address (`vpn.devices.hosts`): planned with `vpn.devices.macs`, so those devices'
    /// IPv6 is recognised (and blocked by the kill switch) too.
    pub vpn_learned_macs: Vec<crate::config::MacAddr>,
    /// The planning moment in milliseconds since the epoch, when the caller knows it
    /// (`now` is whole seconds). Element timeouts then end at `expires_at` to the
    /// millisecond instead of up to a second late. Ignored unless it lies within `now`'s
    /// second.
    pub now_ms: Option<u64>,
}

/// A port the VPN provider forwards to us (UDP and TCP, the same number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VpnPort {
    /// The provider's external port (the one the internet connects to).
    pub port: u16,
    /// Time left of the provider's lease; the kernel closes the port when it elapses.
    pub expires_in: Duration,
}

/// Datapath state read from the installed table before it is replaced, so that a config
/// change does not reset hit counts or close a trigger that is open right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carried {
    /// Counter name → (packets, bytes).
    pub counters: BTreeMap<String, (u64, u64)>,
    /// Trigger map name (`trg_NAME`) → the LAN host it is open to and the time left.
    pub trigger_hosts: BTreeMap<String, (Ipv4Addr, Duration)>,
}

/// Is this forward in force at `now`? Disabled and expired forwards are not planned.
pub fn forward_active(f: &Forward, now: Timestamp) -> bool {
    f.enabled && f.expires_at.is_none_or(|t| t > now)
}

/// Elements of the shared per-protocol sets and maps, filled forward by forward.
#[derive(Default)]
struct Shared {
    allow: Vec<Element>,
    special: Vec<Element>,
    counters: Vec<Element>,
    dnat_port: Vec<Element>,
    dnat_host: Vec<Element>,
    trigger_in: Vec<Element>,
    trigger_out: Vec<Element>,
    /// Live forwards as `external port . WAN peer . internal host . internal port`.
    flows: Vec<Element>,
    trigger_flow: Vec<Element>,
    /// The VPN provider's port: `port : LAN host . port`, reached through the tunnel only.
    vpn_dnat: Vec<Element>,
}

/// Plans the whole table. The config must have passed validation.
pub fn plan(cfg: &Config, facts: &HostFacts, now: Timestamp) -> Ruleset {
    let lan = cfg.lan.interface.as_str();
    let wan = cfg.wan.interface.as_str();
    let mut rs = Ruleset {
        table: TABLE.to_string(),
        counters: Vec::new(),
        initial_counts: BTreeMap::new(),
        sets: Vec::new(),
        chains: Vec::new(),
    };
    let mut shared: [Shared; 2] = Default::default();
    // Rate-limit classes: forwards with the same limit share one meter set and chain.
    let mut classes: BTreeMap<String, RateLimit> = BTreeMap::new();

    rs.counters.push(names::FLOWS_CUT.to_string());
    rs.counters.push(names::RATE_LIMITED.to_string());
    let mut open_ports = Vec::new();
    for f in cfg.forwards.iter().filter(|f| forward_active(f, now)) {
        let special = special_target(&mut rs, &mut classes, f);
        rs.counters.push(forward_counter(&f.name));
        open_ports.extend(forward_ports(
            f,
            cfg.forward_host(f),
            now,
            facts.now_ms,
            special,
        ));
    }
    let triggers: Vec<&Trigger> = cfg.triggers.iter().filter(|t| t.enabled).collect();
    open_ports.extend(triggers.iter().flat_map(|t| trigger_ports(t)));
    let vpn = vpn::active(cfg);
    // The provider's port, unless the config already holds that port (their flows would
    // overlap in `flows_*`); leases give way to it as to the config.
    let provider: Vec<OpenPort> = vpn
        .map(|v| vpn::provider_ports(v, facts))
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !overlaps(&open_ports, p))
        .collect();
    open_ports.extend(provider);
    let leases: Vec<OpenPort> = facts
        .leases
        .iter()
        .filter_map(|m| open::lease_port(m, now, facts.now_ms))
        .filter(|l| !overlaps(&open_ports, l))
        .collect();
    open_ports.extend(leases);
    for op in &open_ports {
        open::fill(
            &mut shared[usize::from(op.proto == UDP)],
            op,
            &cfg.lan.subnets,
        );
    }
    for t in &triggers {
        for &p in t.trigger_protocol.numbers() {
            shared[usize::from(p == UDP)].trigger_out.push(elem(
                port_key(
                    Value::Port(t.trigger_port.first_port()),
                    Value::Port(t.trigger_port.last_port()),
                ),
                Some(jump(&names::trigger_out_chain(&t.name))),
                None,
            ));
        }
        base::trigger(
            &mut rs,
            t,
            facts.carried.trigger_hosts.get(&trigger_map(&t.name)),
        );
    }
    for (name, rl) in &classes {
        base::rate_class(&mut rs, name, rl);
    }

    rs.sets.push(plain_set(
        names::LAN_NETS,
        DataType::Ipv4Addr,
        true,
        cfg.lan
            .subnets
            .iter()
            .map(|n| {
                elem(
                    range(Value::Ipv4(n.network()), Value::Ipv4(n.broadcast())),
                    None,
                    None,
                )
            })
            .collect(),
    ));
    rs.sets.push(plain_set(
        names::WAN_ADDRS,
        DataType::Ipv4Addr,
        false,
        facts
            .wan_addrs
            .iter()
            .map(|a| elem(ElemKey::Single(vec![Value::Ipv4(*a)]), None, None))
            .collect(),
    ));
    let has_triggers = !triggers.is_empty();
    let mut vpn_dnat: [Vec<Element>; 2] = Default::default();
    for ((p, mut s), d) in PROTOS.into_iter().zip(shared).zip(&mut vpn_dnat) {
        *d = std::mem::take(&mut s.vpn_dnat);
        shared_sets(&mut rs, p, s, has_triggers);
    }

    rs.chains.push(base::inbound(has_triggers));
    rs.chains
        .push(base::dstnat(lan, wan, !facts.wan_addrs.is_empty()));
    rs.chains.push(base::flows(has_triggers));
    rs.chains.push(base::input(lan, wan));
    rs.chains.push(base::forward(lan, wan, has_triggers));
    rs.chains.push(base::srcnat(lan, wan));
    if let Some(v) = vpn {
        vpn::amend(&mut rs, v, lan, wan, vpn_dnat, &facts.vpn_learned_macs);
    }
    for c in &rs.counters {
        if let Some(v) = facts.carried.counters.get(c) {
            rs.initial_counts.insert(c.clone(), *v);
        }
    }
    rs
}

/// Does `op` share a protocol and an external port with one of `ports`?
fn overlaps(ports: &[OpenPort], op: &OpenPort) -> bool {
    ports.iter().any(|o| {
        o.proto == op.proto && o.external.0 <= op.external.1 && op.external.0 <= o.external.1
    })
}

/// Where `special_*` sends a forward's new connections, if it needs more than the maps:
/// its own chain when it logs (the log prefix names it), else its rate-limit class chain.
fn special_target(
    rs: &mut Ruleset,
    classes: &mut BTreeMap<String, RateLimit>,
    f: &Forward,
) -> Option<Verdict> {
    let class = f.rate_limit.map(|rl| {
        let name = rate_class_name(&rl);
        classes.insert(name.clone(), rl);
        name
    });
    if !f.log {
        return class.map(Verdict::Jump);
    }
    let chain = forward_counter(&f.name);
    let mut rules = Vec::new();
    if let Some(c) = class {
        rules.push(rule(vec![Stmt::Verdict(Verdict::Jump(c))]));
    }
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
    rs.chains.push(crate::ruleset::Chain {
        name: chain.clone(),
        base: None,
        rules,
    });
    Some(Verdict::Jump(chain))
}

/// `rl_30_minute_10`: the chain and meter set shared by forwards with that limit.
fn rate_class_name(rl: &RateLimit) -> String {
    let per = match rl.per {
        Per::Second => "second",
        Per::Minute => "minute",
        Per::Hour => "hour",
    };
    names::rate_class(rl.connections, per, rl.burst)
}

/// Time from `now` (whole seconds; `now_ms` if it refines it) until `at`.
pub fn time_left(at: Timestamp, now: Timestamp, now_ms: Option<u64>) -> Duration {
    match now_ms.filter(|ms| ms / 1000 == now.0) {
        Some(ms) => Duration::from_millis(at.0.saturating_mul(1000).saturating_sub(ms)),
        None => Duration::from_secs(at.0.saturating_sub(now.0)),
    }
}

/// A forward as open ports, one per protocol, to `host` (its [`Config::forward_host`]).
pub fn forward_ports(
    f: &Forward,
    host: Ipv4Addr,
    now: Timestamp,
    now_ms: Option<u64>,
    special: Option<Verdict>,
) -> Vec<OpenPort> {
    let expiry = f.expires_at.map(|t| time_left(t, now, now_ms));
    f.protocol
        .numbers()
        .iter()
        .map(|&proto| OpenPort {
            provenance: Provenance::Forward(f.name.clone()),
            proto,
            external: (f.external_port.first_port(), f.external_port.last_port()),
            target: Target::Host {
                addr: host,
                first_port: f.internal_range().first_port(),
            },
            allow: f.allow_from.clone(),
            expiry,
            special: special.clone(),
            counter: Some(forward_counter(&f.name)),
        })
        .collect()
}

/// A trigger's open ports, one per protocol (they go to whoever holds it).
pub fn trigger_ports(t: &Trigger) -> Vec<OpenPort> {
    t.open_protocol
        .numbers()
        .iter()
        .map(|&proto| OpenPort {
            provenance: Provenance::Trigger(t.name.clone()),
            proto,
            external: (t.open_port.first_port(), t.open_port.last_port()),
            target: Target::TriggerHolder,
            allow: Vec::new(),
            expiry: None,
            special: None,
            counter: None,
        })
        .collect()
}

fn shared_sets(rs: &mut Ruleset, p: u8, s: Shared, triggers: bool) {
    let timeouts = SetFlags {
        interval: true,
        timeout: true,
        ..SetFlags::default()
    };
    // The engine keeps the planned ruleset as "installed": without the spare capacity
    // pushing left (up to half of each Vec; ~240 KB with 1,000 leases).
    let set = |name: &str,
               key: Vec<DataType>,
               data: Option<SetData>,
               flags,
               mut elements: Vec<Element>| {
        elements.shrink_to_fit();
        Set {
            name: per_proto(name, p),
            key,
            data,
            flags,
            timeout: None,
            size: None,
            elements,
        }
    };
    let port = vec![DataType::InetService];
    rs.sets.push(set(
        names::FLOWS_SET,
        vec![
            DataType::InetService,
            DataType::Ipv4Addr,
            DataType::Ipv4Addr,
            DataType::InetService,
        ],
        None,
        timeouts,
        s.flows,
    ));
    rs.sets.push(set(
        names::ALLOW,
        vec![DataType::InetService, DataType::Ipv4Addr],
        None,
        timeouts,
        s.allow,
    ));
    rs.sets.push(set(
        names::SPECIAL,
        port.clone(),
        Some(SetData::Verdict),
        timeouts,
        s.special,
    ));
    rs.sets.push(set(
        names::CTR,
        port.clone(),
        Some(SetData::Counter),
        timeouts,
        s.counters,
    ));
    rs.sets.push(set(
        names::DNAT_PORT,
        port.clone(),
        Some(SetData::Types(vec![
            DataType::Ipv4Addr,
            DataType::InetService,
        ])),
        timeouts,
        s.dnat_port,
    ));
    rs.sets.push(set(
        names::DNAT_HOST,
        port.clone(),
        Some(SetData::Types(vec![DataType::Ipv4Addr])),
        timeouts,
        s.dnat_host,
    ));
    if triggers {
        let interval = SetFlags {
            interval: true,
            ..SetFlags::default()
        };
        rs.sets.push(set(
            names::TRIGGER_IN,
            port.clone(),
            Some(SetData::Verdict),
            interval,
            s.trigger_in,
        ));
        rs.sets.push(set(
            names::TRIGGER_OUT,
            port.clone(),
            Some(SetData::Verdict),
            interval,
            s.trigger_out,
        ));
        rs.sets.push(set(
            names::TRIGGER_FLOW,
            port,
            Some(SetData::Verdict),
            interval,
            s.trigger_flow,
        ));
    }
}

fn plain_set(name: &str, key: DataType, interval: bool, elements: Vec<Element>) -> Set {
    Set {
        name: name.into(),
        key: vec![key],
        data: None,
        flags: SetFlags {
            interval,
            ..SetFlags::default()
        },
        timeout: None,
        size: None,
        elements,
    }
}

fn elem(key: ElemKey, data: Option<ElemData>, timeout: Option<Duration>) -> Element {
    Element { key, data, timeout }
}

fn jump(chain: &str) -> ElemData {
    ElemData::Verdict(Verdict::Jump(chain.to_string()))
}

fn anywhere() -> (Value, Value) {
    (
        Value::Ipv4(Ipv4Addr::UNSPECIFIED),
        Value::Ipv4(Ipv4Addr::BROADCAST),
    )
}

fn range(lo: Value, hi: Value) -> ElemKey {
    if lo == hi {
        ElemKey::Single(vec![lo])
    } else {
        ElemKey::Range(lo, hi)
    }
}

fn port_key(first: Value, last: Value) -> ElemKey {
    range(first, last)
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

/// Allow-list prefixes as (first, last) address spans, overlapping and adjacent ones
/// merged: the kernel refuses overlapping intervals, and `10.0.0.0/8` plus `10.1.0.0/16`
/// is a reasonable thing to type.
fn merged_prefixes(nets: &[Ipv4Net]) -> Vec<(Value, Value)> {
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
            (
                Value::Ipv4(Ipv4Addr::from(lo)),
                Value::Ipv4(Ipv4Addr::from(hi)),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod vpn_tests;
