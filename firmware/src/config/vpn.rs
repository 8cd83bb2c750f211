//! The `vpn` section: a WireGuard client tunnel to a VPN provider, which LAN devices use
//! it, its kill switch, and the port the provider forwards to us.
//!
//! Absent or `enabled: false`: no tunnel, nothing of it in the ruleset. The secrets (the
//! interface's private key and the peer's preshared key) are never in this file: they
//! live in `vpn.key` beside the saved config, mode 0600 (see `crate::vpn::secrets`), so a
//! config backup or the API never carries them.
//!
//! The tunnel carries IPv4. IPv6 of the devices that use it is blocked, never sent in
//! clear (a device selected by address is identified for IPv6 by its MAC only).

use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};

use super::{Ipv4Net, MacAddr};

/// Default WireGuard interface name.
pub const DEFAULT_INTERFACE: &str = "wg0";
/// Default tunnel MTU (wg-quick's default for an IPv4 endpoint over a 1500-byte WAN).
pub const DEFAULT_MTU: u16 = 1420;
/// fwmark WireGuard puts on its own UDP packets, and the policy-routing table of the
/// tunnel (both 51820, as wg-quick uses).
pub const DEFAULT_FWMARK: u32 = 51_820;
/// Routing table holding the tunnel's routes.
pub const DEFAULT_TABLE: u32 = 51_820;
/// The provider's NAT-PMP gateway inside the tunnel (ProtonVPN's address).
pub const DEFAULT_GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

/// The whole `vpn` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpn {
    /// Whether the tunnel exists at all.
    #[serde(default)]
    pub enabled: bool,
    /// The WireGuard interface's name (1 to 15 bytes, as any interface name).
    #[serde(default = "default_interface")]
    pub interface: String,
    /// `[Interface] Address`: the tunnel addresses the provider gave us (IPv4).
    #[serde(default)]
    pub addresses: Vec<Ipv4Net>,
    /// `[Interface] DNS`: the provider's resolvers. The tunnel devices' DNS (port 53, UDP
    /// and TCP, to any address) is redirected to the first; with none it is blocked.
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    /// `[Interface] MTU`, bytes (576 to 1500 … 9000 bounds checked by validation).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// `[Interface] ListenPort`; none = the kernel picks a port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen_port: Option<u16>,
    /// fwmark of WireGuard's own packets (so they route outside the tunnel).
    #[serde(default = "default_fwmark")]
    pub fwmark: u32,
    /// Routing table of the tunnel's routes.
    #[serde(default = "default_table")]
    pub table: u32,
    /// The provider's server.
    pub peer: VpnPeer,
    /// Which LAN devices use the tunnel.
    #[serde(default)]
    pub devices: VpnDevices,
    /// Devices that use the tunnel can never reach the WAN outside it (firewall-enforced).
    #[serde(default = "yes")]
    pub kill_switch: bool,
    /// The port the provider forwards to us (NAT-PMP over the tunnel), and where it goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_forward: Option<ProviderForward>,
}

/// `[Peer]` of the provider's file (its preshared key lives with the secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpnPeer {
    /// The server's public key, base64 of 32 bytes as in the provider's file.
    pub public_key: String,
    /// The server's address and UDP port (an import refuses a host name: see
    /// `crate::vpn::conf::NO_RESOLVER`).
    pub endpoint: SocketAddrV4,
    /// `AllowedIPs` (IPv4 part): what the tunnel routes. Usually `0.0.0.0/0`.
    pub allowed_ips: Vec<Ipv4Net>,
    /// `PersistentKeepalive`, seconds (1 to 65535); none = off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_keepalive: Option<u16>,
}

/// Which LAN devices use the tunnel: every one (`all`), or those named by address or MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpnDevices {
    /// Every LAN device (the default).
    #[serde(default = "yes")]
    pub all: bool,
    /// Devices by IPv4 address or subnet (when `all` is false).
    #[serde(default)]
    pub hosts: Vec<Ipv4Net>,
    /// Devices by MAC address (when `all` is false); these are recognised for IPv6 too.
    #[serde(default)]
    pub macs: Vec<MacAddr>,
}

impl Default for VpnDevices {
    fn default() -> Self {
        VpnDevices {
            all: true,
            hosts: Vec::new(),
            macs: Vec::new(),
        }
    }
}

/// Provider port forwarding: ask the provider's NAT-PMP gateway for a port (UDP and TCP,
/// lifetime 60 s, renewed about every 45 s) and DNAT whatever port it gives to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderForward {
    /// The provider's NAT-PMP gateway inside the tunnel.
    #[serde(default = "default_gateway")]
    pub gateway: Ipv4Addr,
    /// The LAN host that receives the provider's port.
    pub to: Ipv4Addr,
    /// The LAN host's port; none = the same port number the provider gave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<u16>,
}

impl Vpn {
    /// What safe mode plans when the saved config mentions a `vpn` section that cannot be
    /// read: every LAN device behind the kill switch, and no peer key, so no tunnel can be
    /// brought up from it. Failing closed: the devices reach nothing outside until the
    /// owner fixes the file (a tunnel already in the kernel keeps carrying them).
    pub fn stand_in(interface: String) -> Vpn {
        Vpn {
            enabled: true,
            interface,
            addresses: Vec::new(),
            dns: Vec::new(),
            mtu: DEFAULT_MTU,
            listen_port: None,
            fwmark: DEFAULT_FWMARK,
            table: DEFAULT_TABLE,
            peer: VpnPeer {
                public_key: String::new(),
                endpoint: SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
                allowed_ips: Vec::new(),
                persistent_keepalive: None,
            },
            devices: VpnDevices::default(),
            kill_switch: true,
            port_forward: None,
        }
    }
}

fn default_interface() -> String {
    DEFAULT_INTERFACE.to_string()
}
fn default_mtu() -> u16 {
    DEFAULT_MTU
}
fn default_fwmark() -> u32 {
    DEFAULT_FWMARK
}
fn default_table() -> u32 {
    DEFAULT_TABLE
}
fn default_gateway() -> Ipv4Addr {
    DEFAULT_GATEWAY
}
fn yes() -> bool {
    true
}
