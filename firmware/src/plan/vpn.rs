//! The firewall side of the VPN tunnel (issue 9): which LAN devices' packets carry the
//! tunnel mark, the kill switch, the Port Fail guard, the tunnel devices' DNS, and the
//! provider's forwarded port. Planned only while `vpn` is present and enabled.
//!
//! The policy-routing rules that send marked packets into the tunnel live elsewhere
//! (`crate::vpn`); here the firewall makes sure that whatever the routes say, nothing of
//! a tunnel device leaves by the WAN (the kill switch), nothing but WireGuard's own UDP
//! reaches the endpoint's address in clear (the Port Fail guard), and the provider's
//! port is reachable through the tunnel only.

use super::base::base;
use super::open::{OpenPort, Provenance, Target};
use super::{elem, per_proto, plain_set, range, rule, HostFacts, NFPROTO_IPV4, PROTOS};
use crate::config::{Config, Vpn};
use crate::names;
use crate::ruleset::{
    ChainType, CmpOp, DataType, ElemKey, Element, Field, Hook, MarkKey, Policy, Rule, Ruleset, Set,
    SetData, SetFlags, Stmt, Value, Verdict,
};
use crate::vpn::{CT_DNS_REDIRECT, CT_FROM_TUNNEL, TUNNEL_MARK};

/// Priority of `vpn_mark`: netfilter's mangle priority (`NF_IP_PRI_MANGLE`), after
/// conntrack (-200) and before destination NAT (-100) and the routing decision.
const MANGLE: i32 = -150;
const DNS_PORT: u16 = 53;

/// The `vpn` section if it is to be planned at all.
pub(super) fn active(cfg: &Config) -> Option<&Vpn> {
    cfg.vpn.as_ref().filter(|v| v.enabled)
}

/// The provider's forwarded port as open ports (TCP and UDP), when port forwarding is
/// configured and the provider holds a port for us right now.
pub(super) fn provider_ports(vpn: &Vpn, facts: &HostFacts) -> Vec<OpenPort> {
    let (Some(pf), Some(held)) = (&vpn.port_forward, facts.vpn_port) else {
        return Vec::new();
    };
    if held.expires_in.is_zero() {
        return Vec::new();
    }
    PROTOS
        .iter()
        .map(|&proto| OpenPort {
            provenance: Provenance::VpnProvider,
            proto,
            external: (held.port, held.port),
            target: Target::Host {
                addr: pf.to,
                first_port: pf.to_port.unwrap_or(held.port),
            },
            allow: Vec::new(),
            expiry: Some(held.expires_in),
            special: None,
            counter: None,
        })
        .collect()
}

fn mark(v: u32) -> Stmt {
    Stmt::Mark(MarkKey::Meta, v)
}

fn set_mark(v: u32) -> Stmt {
    Stmt::SetMark(MarkKey::Meta, v)
}

fn iif(name: &str) -> Stmt {
    Stmt::Iifname(CmpOp::Eq, name.into())
}

fn oif(name: &str) -> Stmt {
    Stmt::Oifname(CmpOp::Eq, name.into())
}

/// Adds the tunnel's sets, counters, chains and rules to a planned table. `vpn_dnat` is
/// the provider port's DNAT elements per protocol (TCP, UDP), filled by `open::fill`.
pub(super) fn amend(
    rs: &mut Ruleset,
    vpn: &Vpn,
    lan: &str,
    wan: &str,
    vpn_dnat: [Vec<Element>; 2],
    learned_macs: &[crate::config::MacAddr],
) {
    let wg = vpn.interface.as_str();
    for c in [
        names::VPN_KILL_SWITCH,
        names::VPN_PORT_FAIL,
        names::VPN_DNS_BLOCKED,
    ] {
        rs.counters.push(c.to_string());
    }
    if !vpn.devices.all {
        rs.sets.push(plain_set(
            names::VPN_HOSTS,
            DataType::Ipv4Addr,
            true,
            super::merged_prefixes(&vpn.devices.hosts)
                .into_iter()
                .map(|(lo, hi)| elem(range(lo, hi), None, None))
                .collect(),
        ));
        let mut macs: Vec<[u8; 6]> = vpn
            .devices
            .macs
            .iter()
            .chain(learned_macs)
            .map(|m| m.0)
            .collect();
        macs.sort_unstable();
        macs.dedup();
        rs.sets.push(plain_set(
            names::VPN_MACS,
            DataType::EtherAddr,
            false,
            macs.into_iter()
                .map(|m| elem(ElemKey::Single(vec![Value::Mac(m)]), None, None))
                .collect(),
        ));
    }
    if vpn.port_forward.is_some() {
        for (p, elements) in PROTOS.into_iter().zip(vpn_dnat) {
            rs.sets.push(Set {
                name: per_proto(names::VPN_DNAT, p),
                key: vec![DataType::InetService],
                data: Some(SetData::Types(vec![
                    DataType::Ipv4Addr,
                    DataType::InetService,
                ])),
                flags: SetFlags {
                    timeout: true,
                    ..SetFlags::default()
                },
                timeout: None,
                size: None,
                elements,
            });
        }
    }

    let endpoint = vpn.peer.endpoint;
    let to_endpoint = || Stmt::Match(Field::IpDaddr, Value::Ipv4(*endpoint.ip()));
    let port_fail = || {
        rule(vec![
            oif(wan),
            to_endpoint(),
            Stmt::CounterRef(names::VPN_PORT_FAIL.into()),
            Stmt::Verdict(Verdict::Drop),
        ])
    };
    let tunnel_dev = || [iif(lan), mark(TUNNEL_MARK)];

    // forward: the kill switch first (it holds for established connections too), then
    // the Port Fail guard for LAN packets; LAN → tunnel beside LAN → WAN.
    let mut first = Vec::new();
    if vpn.kill_switch {
        let mut r = tunnel_dev().to_vec();
        r.extend([
            Stmt::Oifname(CmpOp::Neq, wg.into()),
            Stmt::Oifname(CmpOp::Neq, lan.into()),
            Stmt::CounterRef(names::VPN_KILL_SWITCH.into()),
            Stmt::Verdict(Verdict::Drop),
        ]);
        first.push(rule(r));
    }
    first.push(port_fail());
    if let Some(c) = chain(rs, names::FORWARD) {
        c.rules.splice(0..0, first);
        c.rules.push(rule(vec![
            iif(lan),
            oif(wg),
            Stmt::Verdict(Verdict::Accept),
        ]));
    }

    // input: tunnel devices' DNS to the router itself would resolve outside the tunnel.
    // Redirected IPv4 DNS never gets here; what does (IPv6, or any DNS with no tunnel
    // resolver) is dropped.
    if let Some(c) = chain(rs, names::INPUT) {
        let blocked = PROTOS.map(|p| {
            let mut r = tunnel_dev().to_vec();
            r.extend([
                Stmt::L4Proto(p),
                Stmt::Match(Field::ThDport, Value::Port(DNS_PORT)),
                Stmt::CounterRef(names::VPN_DNS_BLOCKED.into()),
                Stmt::Verdict(Verdict::Drop),
            ]);
            rule(r)
        });
        c.rules.splice(0..0, blocked);
    }

    // dstnat: the tunnel devices' DNS to the tunnel's resolver (before hairpin: a query
    // to the WAN address is DNS too), and the provider's port, from the tunnel only.
    let mut nat = Vec::new();
    if let Some(dns) = vpn.dns.first() {
        for p in PROTOS {
            let mut r = tunnel_dev().to_vec();
            r.extend([
                Stmt::NfProto(NFPROTO_IPV4),
                Stmt::L4Proto(p),
                Stmt::Match(Field::ThDport, Value::Port(DNS_PORT)),
                Stmt::SetMark(MarkKey::Ct, CT_DNS_REDIRECT),
                Stmt::Dnat {
                    addr: *dns,
                    port: Some(DNS_PORT),
                },
            ]);
            nat.push(rule(r));
        }
    }
    if vpn.port_forward.is_some() {
        for p in PROTOS {
            nat.push(rule(vec![
                iif(wg),
                Stmt::NfProto(NFPROTO_IPV4),
                Stmt::L4Proto(p),
                Stmt::DnatMap {
                    key: vec![Field::ThDport],
                    map: per_proto(names::VPN_DNAT, p),
                    with_port: true,
                },
            ]));
        }
    }
    if let Some(c) = chain(rs, names::DSTNAT) {
        c.rules.splice(0..0, nat);
    }

    // flows: a redirected DNS connection is DNATed but no forward's: let it live.
    if !vpn.dns.is_empty() {
        if let Some(c) = chain(rs, names::FLOWS) {
            c.rules.insert(
                0,
                rule(vec![
                    Stmt::Mark(MarkKey::Ct, CT_DNS_REDIRECT),
                    Stmt::Verdict(Verdict::Accept),
                ]),
            );
        }
    }

    if let Some(c) = chain(rs, names::SRCNAT) {
        c.rules.push(rule(vec![
            Stmt::NfProto(NFPROTO_IPV4),
            oif(wg),
            Stmt::Masquerade,
        ]));
    }

    rs.chains.push(mark_chain(vpn, lan));
    rs.chains.push(base(
        names::OUTPUT,
        ChainType::Filter,
        Hook::Output,
        0,
        Policy::Accept,
        vec![
            rule(vec![
                oif(wan),
                to_endpoint(),
                Stmt::L4Proto(UDP),
                Stmt::Match(Field::ThDport, Value::Port(endpoint.port())),
                mark(vpn.fwmark),
                Stmt::Verdict(Verdict::Accept),
            ]),
            port_fail(),
        ],
    ));
}

const UDP: u8 = crate::names::UDP;

/// `vpn_mark`: the tunnel mark on the tunnel devices' packets (every family: IPv6 is
/// marked too, so the kill switch drops it), and on replies of connections that came in
/// through the tunnel (they must go back through it, whichever LAN host answers).
fn mark_chain(vpn: &Vpn, lan: &str) -> crate::ruleset::Chain {
    let wg = vpn.interface.as_str();
    let mut rules: Vec<Rule> = Vec::new();
    if vpn.devices.all {
        rules.push(rule(vec![iif(lan), set_mark(TUNNEL_MARK)]));
    } else {
        for key in [Field::IpSaddr, Field::EtherSaddr] {
            let set = if key == Field::IpSaddr {
                names::VPN_HOSTS
            } else {
                names::VPN_MACS
            };
            rules.push(rule(vec![
                iif(lan),
                Stmt::Lookup {
                    key: vec![key],
                    set: set.into(),
                    negate: false,
                },
                set_mark(TUNNEL_MARK),
            ]));
        }
    }
    rules.push(rule(vec![
        iif(wg),
        Stmt::CtState(vec![crate::ruleset::CtState::New]),
        Stmt::SetMark(MarkKey::Ct, CT_FROM_TUNNEL),
    ]));
    rules.push(rule(vec![
        iif(lan),
        Stmt::Mark(MarkKey::Ct, CT_FROM_TUNNEL),
        set_mark(TUNNEL_MARK),
    ]));
    base(
        names::VPN_MARK,
        ChainType::Filter,
        Hook::Prerouting,
        MANGLE,
        Policy::Accept,
        rules,
    )
}

fn chain<'a>(rs: &'a mut Ruleset, name: &str) -> Option<&'a mut crate::ruleset::Chain> {
    rs.chains.iter_mut().find(|c| c.name == name)
}
