//! The kernel side of the WireGuard tunnel: the pure [`TunnelPlan`] made from the `vpn`
//! config and the secrets, and [`install`]/[`remove`]/[`read`] over netlink only
//! (rtnetlink in [`super::rtnl`], the WireGuard generic netlink family in [`super::genl`]).
//!
//! Routing follows wg-quick: the tunnel's routes (`AllowedIPs dev wg0`) live in their own
//! table; packets the ruleset marked with [`super::TUNNEL_MARK`] look that table up; the
//! Port Fail guard sends every packet to the endpoint's address through the tunnel except
//! WireGuard's own (which carry the device's fwmark). There is no host route to the
//! endpoint. Only IPv4 is routed.

use std::io;
use std::net::SocketAddrV4;

use super::genl::Wg;
use super::key::Key;
use super::rtnl::Rtnl;
use super::secrets::Secrets;
use super::{RULE_PRIORITY, TUNNEL_MARK};
use crate::config::{Ipv4Net, Vpn};

/// Why planning, installing, removing or reading the tunnel failed. Kernel errors keep
/// the errno as `source`.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("the peer's public key is not base64 of 32 bytes")]
    PeerKey,
    /// Tables 0 (unspec), 253 (default), 254 (main) and 255 (local) are the system's: the
    /// tunnel converges its table to exactly its own routes, which would wipe them.
    #[error("routing table {table} is reserved by the system, not usable as the tunnel's")]
    ReservedTable { table: u32 },
    #[error("opening a {protocol} netlink socket")]
    Open {
        protocol: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the kernel has no WireGuard (generic netlink family `wireguard` not found)")]
    NoWireGuard,
    #[error("looking up the generic netlink family `wireguard`")]
    Family {
        #[source]
        source: io::Error,
    },
    #[error("reading {what} from the kernel")]
    Dump {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("creating link {ifname}")]
    CreateLink {
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("link {ifname} exists but is of kind `{kind}`, not the tunnel's")]
    LinkKind { ifname: String, kind: String },
    #[error("deleting link {ifname}")]
    DeleteLink {
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("setting {what} of link {ifname}")]
    SetLink {
        ifname: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("setting the WireGuard device {ifname}")]
    SetDevice {
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the WireGuard device {ifname}")]
    GetDevice {
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("adding address {address} to {ifname}")]
    AddAddress {
        address: Ipv4Net,
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("deleting address {address} from {ifname}")]
    DeleteAddress {
        address: Ipv4Net,
        ifname: String,
        #[source]
        source: io::Error,
    },
    #[error("adding route {dst} to table {table}")]
    AddRoute {
        dst: Ipv4Net,
        table: u32,
        #[source]
        source: io::Error,
    },
    #[error("deleting route {dst} from table {table}")]
    DeleteRoute {
        dst: Ipv4Net,
        table: u32,
        #[source]
        source: io::Error,
    },
    #[error("adding rule priority {priority}")]
    AddRule {
        priority: u32,
        #[source]
        source: io::Error,
    },
    #[error("deleting rule priority {priority}")]
    DeleteRule {
        priority: u32,
        #[source]
        source: io::Error,
    },
}

/// The provider's server as the WireGuard device is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgPeer {
    pub public_key: Key,
    /// None sends the zero key, which clears it.
    pub preshared_key: Option<Key>,
    pub endpoint: SocketAddrV4,
    /// Prefixes with host bits cleared.
    pub allowed_ips: Vec<Ipv4Net>,
    /// Persistent keepalive, seconds; none = off.
    pub keepalive: Option<u16>,
}

/// The WireGuard device's settings (`linux/wireguard.h`, `WGDEVICE_A_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgDevice {
    pub private_key: Key,
    /// None: the kernel picks a port (and keeps it across installs).
    pub listen_port: Option<u16>,
    /// Mark on WireGuard's own UDP packets.
    pub fwmark: u32,
    pub peer: WgPeer,
}

/// One IPv4 policy-routing rule (`linux/fib_rules.h`), action "lookup `table`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleSpec {
    pub priority: u32,
    /// Routing table id; 254 = main.
    pub table: u32,
    /// (mark, mask).
    pub fwmark: Option<(u32, u32)>,
    /// `not`: the rule matches packets its selectors do not match.
    pub invert: bool,
    pub dst: Option<Ipv4Net>,
    /// Ignore lookup results with a prefix this long or shorter.
    pub suppress_prefixlen: Option<u32>,
}

/// Everything the kernel must hold for the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPlan {
    pub ifname: String,
    /// Bytes.
    pub mtu: u16,
    pub addresses: Vec<Ipv4Net>,
    pub device: WgDevice,
    /// Routing table of the tunnel's routes.
    pub table: u32,
    /// The peer's allowed IPs, each `dst dev ifname` in `table`.
    pub routes: Vec<Ipv4Net>,
    /// The four rules, priorities [`RULE_PRIORITY`] ..= + 3.
    pub rules: Vec<RuleSpec>,
}

/// The tunnel as the kernel holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelState {
    pub link_up: bool,
    /// Bytes.
    pub mtu: u32,
    pub addresses: Vec<Ipv4Net>,
    /// The device's public key; none before a private key is set.
    pub public_key: Option<Key>,
    pub listen_port: u16,
    pub fwmark: u32,
    pub peers: Vec<PeerState>,
}

/// One peer as `WG_CMD_GET_DEVICE` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub public_key: Key,
    /// None when unknown or IPv6.
    pub endpoint: Option<SocketAddrV4>,
    /// Seconds since the Unix epoch; none = never (0 in the kernel).
    pub last_handshake_unix_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub allowed_ips: Vec<Ipv4Net>,
    /// Persistent keepalive, seconds; 0 = off.
    pub keepalive: u16,
}

/// The priorities of our rules.
pub const RULE_PRIORITIES: std::ops::RangeInclusive<u32> = RULE_PRIORITY..=RULE_PRIORITY + 3;

fn network(n: &Ipv4Net) -> Ipv4Net {
    Ipv4Net::new(n.network(), n.prefix_len()).unwrap_or(*n)
}

/// The four rules for a tunnel with WireGuard fwmark `fwmark`, routing table `table`
/// and endpoint address `endpoint` (see [`RULE_PRIORITY`]).
pub fn rules(fwmark: u32, table: u32, endpoint: std::net::Ipv4Addr) -> Vec<RuleSpec> {
    let mark = Some((TUNNEL_MARK, TUNNEL_MARK));
    let main = crate::vpn::rtnl_msg::RT_TABLE_MAIN;
    let rule = |priority, table, fwmark, dst, suppress_prefixlen| RuleSpec {
        priority,
        table,
        fwmark,
        invert: false,
        dst,
        suppress_prefixlen,
    };
    vec![
        // WireGuard's own packets: the main table (out by the WAN).
        rule(RULE_PRIORITY, main, Some((fwmark, u32::MAX)), None, None),
        // Anything else to the endpoint's address: through the tunnel (Port Fail guard).
        rule(
            RULE_PRIORITY + 1,
            table,
            None,
            Some(Ipv4Net::host(endpoint)),
            None,
        ),
        // Tunnel devices: LAN routes of the main table stay, the rest goes into the tunnel.
        rule(RULE_PRIORITY + 2, main, mark, None, Some(0)),
        rule(RULE_PRIORITY + 3, table, mark, None, None),
    ]
}

/// The plan for `vpn` with `secrets`. Errors: [`TunnelError::PeerKey`],
/// [`TunnelError::ReservedTable`].
pub fn plan(vpn: &Vpn, secrets: &Secrets) -> Result<TunnelPlan, TunnelError> {
    check_table(vpn.table)?;
    let public_key = Key::from_base64(&vpn.peer.public_key).ok_or(TunnelError::PeerKey)?;
    let mut allowed: Vec<Ipv4Net> = Vec::with_capacity(vpn.peer.allowed_ips.len());
    for n in vpn.peer.allowed_ips.iter().map(network) {
        if !allowed.contains(&n) {
            allowed.push(n);
        }
    }
    Ok(TunnelPlan {
        ifname: vpn.interface.clone(),
        mtu: vpn.mtu,
        addresses: vpn.addresses.clone(),
        device: WgDevice {
            private_key: secrets.private_key,
            listen_port: vpn.listen_port,
            fwmark: vpn.fwmark,
            peer: WgPeer {
                public_key,
                preshared_key: secrets.preshared_key,
                endpoint: vpn.peer.endpoint,
                allowed_ips: allowed.clone(),
                keepalive: vpn.peer.persistent_keepalive,
            },
        },
        table: vpn.table,
        routes: allowed,
        rules: rules(vpn.fwmark, vpn.table, *vpn.peer.endpoint.ip()),
    })
}

/// Converges the kernel to `p`, in the order the kill switch wants (the firewall already
/// drops leaks; nothing here opens a path outside the tunnel): the WireGuard family is
/// looked up first (a kernel without it fails before anything is created), then the link
/// is created if missing, the WireGuard device configured, the MTU, addresses and up
/// state set, the routes of `p.table` and our rules converged. Running it again with the
/// same plan changes nothing. The peer's session survives when the device already has
/// exactly this peer (no `WGDEVICE_F_REPLACE_PEERS` then).
pub fn install(p: &TunnelPlan) -> Result<(), TunnelError> {
    check_table(p.table)?;
    let mut wg = Wg::open()?;
    let mut rt = Rtnl::open()?;
    rt.ensure_link(&p.ifname, "wireguard")?;
    let dev = wg.device(&p.ifname)?;
    let same_peer =
        matches!(dev.peers.as_slice(), [only] if only.public_key == p.device.peer.public_key);
    wg.set_device(&p.ifname, &p.device, !same_peer)?;
    install_link(&mut rt, p, "wireguard")
}

/// Test hook: everything [`install`] does except the WireGuard device, on a link of
/// `kind` (the kernel tests use `dummy`: the host kernel has no WireGuard).
#[doc(hidden)]
pub fn install_without_device(p: &TunnelPlan, kind: &str) -> Result<(), TunnelError> {
    install_link(&mut Rtnl::open()?, p, kind)
}

/// Refuses the system's tables (see [`TunnelError::ReservedTable`]).
fn check_table(table: u32) -> Result<(), TunnelError> {
    match table {
        0 | 253..=255 => Err(TunnelError::ReservedTable { table }),
        _ => Ok(()),
    }
}

fn install_link(rt: &mut Rtnl, p: &TunnelPlan, kind: &str) -> Result<(), TunnelError> {
    check_table(p.table)?;
    let link = rt.ensure_link(&p.ifname, kind)?;
    rt.set_mtu(&p.ifname, &link, u32::from(p.mtu))?;
    rt.converge_addresses(&p.ifname, link.index, &p.addresses)?;
    rt.set_up(&p.ifname, &link)?;
    rt.converge_routes(p.table, Some(link.index), &p.routes)?;
    rt.converge_rules(RULE_PRIORITIES, &p.rules)
}

/// Removes the tunnel: link `ifname` (its routes go with it), whatever is left in table
/// `table`, and the rules of priorities [`RULE_PRIORITIES`]. What is absent is fine.
/// Errors: [`TunnelError::ReservedTable`] before touching anything; kernel errors.
pub fn remove(ifname: &str, table: u32) -> Result<(), TunnelError> {
    remove_kind(ifname, table, "wireguard")
}

/// [`remove`], deleting link `ifname` only if it is of `kind` (tests use a stand-in
/// kind on hosts without WireGuard). A link of another kind (a config typo naming a
/// real interface) is left alone.
#[doc(hidden)]
pub fn remove_kind(ifname: &str, table: u32, kind: &str) -> Result<(), TunnelError> {
    check_table(table)?;
    let mut rt = Rtnl::open()?;
    if rt
        .link(ifname)?
        .is_some_and(|l| l.kind.as_deref() == Some(kind))
    {
        rt.delete_link(ifname)?;
    }
    rt.converge_routes(table, None, &[])?;
    rt.converge_rules(RULE_PRIORITIES, &[])
}

/// The tunnel as the kernel holds it; none when link `ifname` does not exist. A link that
/// is not WireGuard (or a kernel without it) reports no key, port 0 and no peers.
pub fn read(ifname: &str) -> Result<Option<TunnelState>, TunnelError> {
    let mut rt = Rtnl::open()?;
    let Some(link) = rt.link(ifname)? else {
        return Ok(None);
    };
    let addresses = rt.addresses(link.index)?;
    let dev = if link.kind.as_deref() == Some("wireguard") {
        Wg::open()?.device(ifname)?
    } else {
        super::genl::DeviceState::default()
    };
    Ok(Some(TunnelState {
        link_up: link.flags & super::rtnl_msg::IFF_UP != 0,
        mtu: link.mtu,
        addresses,
        public_key: dev.public_key,
        listen_port: dev.listen_port,
        fwmark: dev.fwmark,
        peers: dev.peers,
    }))
}

/// Whether all of `p.rules` are in the kernel (for status and health).
pub fn rules_installed(p: &TunnelPlan) -> Result<bool, TunnelError> {
    let have = Rtnl::open()?.rules(RULE_PRIORITIES)?;
    Ok(p.rules
        .iter()
        .all(|w| have.iter().any(|(r, foreign)| !foreign && r == w)))
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
