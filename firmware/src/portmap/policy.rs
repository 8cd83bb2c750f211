//! What the config says about port mappings: the `upnp` section's rules, the LAN, and the
//! ports nobody may map (the router's own, every forward's and trigger's, risky services).

use std::net::Ipv4Addr;

use super::{MacAddr, Proto};
use crate::config::{Config, Ipv4Net, PortRange, Protocol, Upnp, UpnpRule, RESERVED_PORTS};

/// Services attacked constantly when open to anyone: refused to UPnP/NAT-PMP/PCP unless a
/// rule spanning at most [`RISKY_RULE_SPAN`] ports, or the owner's approval, names them.
pub const RISKY_PORTS: &[(u16, &str)] = &[
    (21, "FTP"),
    (22, "SSH"),
    (23, "Telnet"),
    (135, "Windows RPC"),
    (137, "NetBIOS"),
    (138, "NetBIOS"),
    (139, "NetBIOS"),
    (445, "SMB file sharing"),
    (1433, "SQL Server"),
    (3306, "MySQL"),
    (3389, "Remote Desktop"),
    (5900, "VNC"),
    (6379, "Redis"),
];

/// A rule "names" a risky port when its external range contains it and spans at most
/// this many ports: `"3389"` or `"137-139"` do, `"1-65535"` does not.
pub const RISKY_RULE_SPAN: u32 = 10;

/// What the config says about mappings, gathered once per decision.
#[derive(Debug, Clone)]
pub struct Policy {
    pub upnp: Upnp,
    pub lan: Vec<Ipv4Net>,
    /// Ports no mapping may take: (IP protocol, range, who has it).
    pub claimed: Vec<(u8, PortRange, String)>,
    /// The router's own LAN addresses (never a mapping's host); empty when unknown.
    pub router: Vec<Ipv4Addr>,
}

impl Policy {
    /// The policy of a config: its `upnp` section, LAN subnets, and every port its enabled
    /// forwards and triggers and the router itself claim.
    pub fn of(cfg: &Config) -> Policy {
        let mut claimed: Vec<(u8, PortRange, String)> = Vec::new();
        if let Ok(ui) = PortRange::new(cfg.management.http_port, cfg.management.http_port) {
            claimed.push((6, ui, "the router's web UI".into()));
        }
        for &(proto, port, what) in RESERVED_PORTS {
            claimed.push((
                proto,
                PortRange::single(port),
                format!("the router's {what}"),
            ));
        }
        for f in cfg.forwards.iter().filter(|f| f.enabled) {
            for &p in f.protocol.numbers() {
                claimed.push((p, f.external_port, format!("forward `{}`", f.name)));
            }
        }
        for t in cfg.triggers.iter().filter(|t| t.enabled) {
            for &p in t.open_protocol.numbers() {
                claimed.push((p, t.open_port, format!("trigger `{}`", t.name)));
            }
        }
        Policy {
            upnp: cfg.upnp.clone(),
            lan: cfg.lan.subnets.clone(),
            claimed,
            router: Vec::new(),
        }
    }

    /// The same policy, knowing the router's own LAN addresses.
    pub fn with_router(mut self, router: Vec<Ipv4Addr>) -> Policy {
        self.router = router;
        self
    }

    /// Whether `addr` can hold a mapping: inside a LAN subnet, and neither the router nor
    /// the subnet's network or broadcast address.
    pub fn usable_host(&self, addr: Ipv4Addr) -> bool {
        !self.router.contains(&addr)
            && self
                .lan
                .iter()
                .any(|n| n.contains(addr) && !n.is_network_or_broadcast(addr))
    }

    /// Whether a rule allows mapping `m` as it is.
    pub fn allows(&self, m: &super::Mapping) -> bool {
        self.rule_allowing(m.client, m.mac, m.proto, m.external_port, m.internal_port)
            .is_some()
    }

    pub(super) fn claim_of(&self, proto: Proto, port: u16) -> Option<&str> {
        self.claimed
            .iter()
            .find(|(p, r, _)| *p == proto.number() && r.contains(port))
            .map(|(_, _, who)| who.as_str())
    }

    /// Rules that apply to this host and protocol.
    pub(super) fn rules_for<'a>(
        &'a self,
        client: Ipv4Addr,
        mac: Option<MacAddr>,
        proto: Proto,
    ) -> impl Iterator<Item = &'a UpnpRule> + 'a {
        self.upnp.allow.iter().filter(move |r| {
            covers(r.protocol, proto)
                && (r.hosts.iter().any(|n| n.contains(client))
                    || mac.is_some_and(|m| r.macs.contains(&m)))
        })
    }

    /// The rule allowing `external` → `internal` for this host, if any.
    pub(super) fn rule_allowing(
        &self,
        client: Ipv4Addr,
        mac: Option<MacAddr>,
        proto: Proto,
        external: u16,
        internal: u16,
    ) -> Option<&UpnpRule> {
        self.rules_for(client, mac, proto).find(|r| {
            r.external_ports.contains(external)
                && r.internal_ports.is_none_or(|i| i.contains(internal))
                && (risky(external).is_none() || r.external_ports.count() <= RISKY_RULE_SPAN)
        })
    }

    /// Longest lease for a mapping allowed by `rule` (None: approved by the owner).
    pub(super) fn max_lease(&self, rule: Option<&UpnpRule>) -> u32 {
        let section = self.upnp.max_lease_secs.max(1);
        rule.and_then(|r| r.max_lease_secs)
            .map_or(section, |r| r.clamp(1, section))
    }
}

fn covers(p: Protocol, proto: Proto) -> bool {
    p.numbers().contains(&proto.number())
}

/// The risky service on `port`, if any.
pub fn risky(port: u16) -> Option<&'static str> {
    RISKY_PORTS
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, what)| *what)
}
