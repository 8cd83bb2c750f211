//! One model of an open port, whatever opened it. Config forwards and triggers become
//! [`OpenPort`]s, and the shared per-protocol sets and maps are filled from that list
//! alone; a UPnP/NAT-PMP/PCP lease or a VPN provider's port will be one more `OpenPort`,
//! i.e. more set and map elements, never more rules.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{anywhere, elem, jump, merged_prefixes, port_key, Shared};
use crate::config::{Ipv4Net, Timestamp};
use crate::names;
use crate::portmap::Mapping;
use crate::ruleset::{ElemData, ElemKey, Value, Verdict};

/// Why a port is open: who asked for it, so status and logs can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// A static forward of the config, by name.
    Forward(String),
    /// A port trigger of the config, by name.
    Trigger(String),
    /// A mapping a LAN client requested (UPnP IGD, NAT-PMP or PCP).
    Lease {
        /// The protocol it came by (`upnp`, `natpmp`, `pcp`).
        via: String,
        /// The LAN client that holds it.
        client: Ipv4Addr,
    },
    /// The port a VPN provider forwards to us.
    VpnProvider,
}

/// Where an open port's connections go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A fixed LAN host; `first_port` is where the external range's first port lands
    /// (ports map one to one).
    Host { addr: Ipv4Addr, first_port: u16 },
    /// Whatever LAN host holds the trigger right now (decided by the kernel).
    TriggerHolder,
}

/// One open external port range of one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenPort {
    pub provenance: Provenance,
    /// IP protocol number (6 or 17).
    pub proto: u8,
    /// External port range, inclusive.
    pub external: (u16, u16),
    pub target: Target,
    /// WAN sources allowed; empty means anyone.
    pub allow: Vec<Ipv4Net>,
    /// Time left until the kernel closes it, if it expires.
    pub expiry: Option<Duration>,
    /// A chain new connections pass first (rate-limit class or log chain).
    pub special: Option<Verdict>,
    /// The named counter of its hits, if it has its own.
    pub counter: Option<String>,
}

impl OpenPort {
    /// The chain-name stem of the trigger it belongs to, if any.
    fn trigger(&self) -> Option<&str> {
        match &self.provenance {
            Provenance::Trigger(name) => Some(name),
            _ => None,
        }
    }
}

/// A client's lease as an open port; None once it has expired at `now`. A lease with a
/// remote host is open to that host only (UPnP NewRemoteHost).
pub fn lease_port(m: &Mapping, now: Timestamp, now_ms: Option<u64>) -> Option<OpenPort> {
    let left = super::time_left(m.expires_at, now, now_ms);
    if left.is_zero() {
        return None;
    }
    Some(OpenPort {
        provenance: Provenance::Lease {
            via: m.via.as_str().to_string(),
            client: m.client,
        },
        proto: m.proto.number(),
        external: (m.external_port, m.external_port),
        target: Target::Host {
            addr: m.client,
            first_port: m.internal_port,
        },
        allow: m
            .remote_host
            .and_then(|h| Ipv4Net::new(h, 32).ok())
            .into_iter()
            .collect(),
        expiry: Some(left),
        special: None,
        counter: None,
    })
}

/// Adds one open port's elements to its protocol's shared sets and maps. `lan` is the LAN
/// subnets: hairpin connections come from there, allow-list or not.
pub(super) fn fill(s: &mut Shared, op: &OpenPort, lan: &[Ipv4Net]) {
    let (first, last) = op.external;
    let ports = (Value::Port(first), Value::Port(last));
    let timeout = op.expiry;
    // The VPN provider's port is reachable through the tunnel only: it has its own DNAT
    // map, and nothing of it in the WAN path's allow-list or maps; only its flows are
    // shared.
    let vpn = op.provenance == Provenance::VpnProvider;
    let sources: Vec<(Value, Value)> = if vpn {
        Vec::new()
    } else if op.allow.is_empty() {
        vec![anywhere()]
    } else {
        merged_prefixes(&op.allow)
    };
    for src in sources {
        s.allow
            .push(elem(ElemKey::ConcatRange(vec![ports, src]), None, timeout));
    }
    let key = port_key(ports.0, ports.1);
    let (addr, int_first) = match &op.target {
        Target::TriggerHolder => {
            // The holder is only known to the kernel: DNAT and the flow check go
            // through the trigger's own chains.
            if let Some(t) = op.trigger() {
                s.trigger_in.push(elem(
                    key.clone(),
                    Some(jump(&names::trigger_in_chain(t))),
                    None,
                ));
                s.trigger_flow
                    .push(elem(key, Some(jump(&names::trigger_flow_chain(t))), None));
            }
            return;
        }
        Target::Host { addr, first_port } => (*addr, *first_port),
    };
    let count = u32::from(last.saturating_sub(first)) + 1;
    let offset = |i: u32| u16::try_from(i).unwrap_or(u16::MAX);
    if vpn {
        for i in 0..count {
            s.vpn_dnat.push(elem(
                ElemKey::Single(vec![Value::Port(first.saturating_add(offset(i)))]),
                Some(ElemData::Values(vec![
                    Value::Ipv4(addr),
                    Value::Port(int_first.saturating_add(offset(i))),
                ])),
                timeout,
            ));
        }
    } else {
        wan_maps(s, op, key, addr, int_first);
    }
    flows(s, op, lan, addr, int_first);
}

/// The WAN path's per-port maps: special chain, counter, DNAT.
fn wan_maps(s: &mut Shared, op: &OpenPort, key: ElemKey, addr: Ipv4Addr, int_first: u16) {
    let (first, last) = op.external;
    let timeout = op.expiry;
    if let Some(v) = &op.special {
        s.special.push(elem(
            key.clone(),
            Some(ElemData::Verdict(v.clone())),
            timeout,
        ));
    }
    if let Some(c) = &op.counter {
        s.counters.push(elem(
            key.clone(),
            Some(ElemData::Counter(c.clone())),
            timeout,
        ));
    }
    let count = u32::from(last.saturating_sub(first)) + 1;
    let offset = |i: u32| u16::try_from(i).unwrap_or(u16::MAX);
    let kept = int_first == first;
    if kept {
        // Ports stay as they are: one interval element.
        s.dnat_host.push(elem(
            key,
            Some(ElemData::Values(vec![Value::Ipv4(addr)])),
            timeout,
        ));
    } else {
        // Translated ports: one element per port keeps the mapping a plain lookup.
        for i in 0..count {
            s.dnat_port.push(elem(
                ElemKey::Single(vec![Value::Port(first.saturating_add(offset(i)))]),
                Some(ElemData::Values(vec![
                    Value::Ipv4(addr),
                    Value::Port(int_first.saturating_add(offset(i))),
                ])),
                timeout,
            ));
        }
    }
}

/// The live-flow elements of an open port (`flows_*`).
fn flows(s: &mut Shared, op: &OpenPort, lan: &[Ipv4Net], addr: Ipv4Addr, int_first: u16) {
    let (first, last) = op.external;
    let ports = (Value::Port(first), Value::Port(last));
    let timeout = op.expiry;
    let count = u32::from(last.saturating_sub(first)) + 1;
    let offset = |i: u32| u16::try_from(i).unwrap_or(u16::MAX);
    let kept = int_first == first;
    // Who may keep a connection: the WAN allow-list plus the LAN (hairpin), as disjoint
    // spans: the kernel's concatenated interval sets refuse overlapping elements.
    let peers: Vec<(Value, Value)> = if op.allow.is_empty() {
        vec![anywhere()]
    } else {
        let mut all = op.allow.clone();
        all.extend_from_slice(lan);
        merged_prefixes(&all)
    };
    let host = (Value::Ipv4(addr), Value::Ipv4(addr));
    // (external ports, internal ports) pairs: the whole range when ports are kept, else
    // one pair per port so that a flow to a port another mapping used does not match.
    let pairs: Vec<((Value, Value), (Value, Value))> = if kept {
        vec![(ports, ports)]
    } else {
        (0..count)
            .map(|i| {
                let e = Value::Port(first.saturating_add(offset(i)));
                let n = Value::Port(int_first.saturating_add(offset(i)));
                ((e, e), (n, n))
            })
            .collect()
    };
    for (e, n) in &pairs {
        for peer in &peers {
            s.flows.push(elem(
                ElemKey::ConcatRange(vec![*e, *peer, host, *n]),
                None,
                timeout,
            ));
        }
    }
}
