//! What the owner (and `portcullis status`) shows of the tunnel: the `vpn` object of the
//! status JSON and the API, and its one line of status text.

use std::collections::HashMap;

use serde::Serialize;

use super::tunnel::TunnelState;
use crate::config::Vpn;

/// A handshake older than this means the peer is not answering (WireGuard's
/// REJECT_AFTER_TIME, seconds: sessions are dead after it).
pub const STALE_AFTER_SECS: u64 = 180;

/// Named counters of the ruleset the view reports (see `crate::plan`'s VPN chains).
pub const KILL_SWITCH_COUNTER: &str = "vpn_kill_switch";
pub const PORT_FAIL_COUNTER: &str = "vpn_port_fail";
pub const DNS_BLOCKED_COUNTER: &str = "vpn_dns_blocked";

/// The provider's port as the owner holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortForwardView {
    /// The provider's port now; none while no port is held (nothing is open then).
    pub port: Option<u16>,
    /// The LAN host and port that receive it (`192.168.1.10:80`, or `…:same` when the
    /// provider's number is kept).
    pub to: String,
    /// "ok", or why no port is held (refused, no answer, tunnel down).
    pub health: String,
    /// Seconds until the provider's lease ends unless renewed.
    pub expires_in_secs: Option<u64>,
}

/// The tunnel at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VpnView {
    pub interface: String,
    pub enabled: bool,
    /// `off`, `no key`, `error`, `connecting` (no handshake yet), `connected`, `stale`
    /// (last handshake older than 180 s).
    pub state: &'static str,
    /// `up`, `down` or `absent` (no such link).
    pub link: &'static str,
    /// Our public key (the kernel derives it from the private key, which never leaves).
    pub public_key: Option<String>,
    pub endpoint: String,
    /// Unix time of the last handshake; none = never.
    pub last_handshake_unix: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// The tunnel addresses the provider gave.
    pub addresses: Vec<String>,
    pub allowed_ips: Vec<String>,
    pub listen_port: u16,
    pub fwmark: u32,
    pub kill_switch: bool,
    /// `all`, or the hosts and MACs that use the tunnel.
    pub devices: String,
    pub port_forward: Option<PortForwardView>,
    /// Packets of tunnel devices the kill switch dropped (they tried to leave in clear).
    pub kill_switch_drops: u64,
    /// Packets to the endpoint's address that were not WireGuard's own (Port Fail guard).
    pub port_fail_drops: u64,
    /// DNS packets of tunnel devices blocked (no tunnel resolver configured).
    pub dns_blocked_drops: u64,
    /// Whether the private key is stored (`vpn.key`).
    pub has_private_key: bool,
    /// Why the tunnel is not as configured, if it is not.
    pub error: Option<String>,
}

/// Builds the view from the config, what the kernel holds and the owner's knowledge.
pub fn view(
    vpn: &Vpn,
    kernel: Option<&TunnelState>,
    port_forward: Option<PortForwardView>,
    counters: &HashMap<String, (u64, u64)>,
    has_private_key: bool,
    error: Option<String>,
    now_unix: u64,
) -> VpnView {
    let peer = kernel.and_then(|k| k.peers.first());
    let handshake = peer.and_then(|p| p.last_handshake_unix_secs);
    let state = if !vpn.enabled {
        "off"
    } else if !has_private_key {
        "no key"
    } else if error.is_some() || kernel.is_none() {
        "error"
    } else {
        match handshake {
            None => "connecting",
            Some(t) if now_unix.saturating_sub(t) > STALE_AFTER_SECS => "stale",
            Some(_) => "connected",
        }
    };
    let count = |name: &str| counters.get(name).map_or(0, |c| c.0);
    let devices = if vpn.devices.all {
        "all".to_string()
    } else {
        let mut d: Vec<String> = vpn.devices.hosts.iter().map(|h| h.to_string()).collect();
        d.extend(vpn.devices.macs.iter().map(|m| m.to_string()));
        d.join(", ")
    };
    VpnView {
        interface: vpn.interface.clone(),
        enabled: vpn.enabled,
        state,
        link: match kernel {
            None => "absent",
            Some(k) if k.link_up => "up",
            Some(_) => "down",
        },
        public_key: kernel.and_then(|k| k.public_key).map(|k| k.to_base64()),
        endpoint: peer
            .and_then(|p| p.endpoint)
            .unwrap_or(vpn.peer.endpoint)
            .to_string(),
        last_handshake_unix: handshake,
        rx_bytes: peer.map_or(0, |p| p.rx_bytes),
        tx_bytes: peer.map_or(0, |p| p.tx_bytes),
        addresses: vpn.addresses.iter().map(|a| a.to_string()).collect(),
        allowed_ips: vpn.peer.allowed_ips.iter().map(|a| a.to_string()).collect(),
        listen_port: kernel.map_or(0, |k| k.listen_port),
        fwmark: kernel.map_or(vpn.fwmark, |k| k.fwmark),
        kill_switch: vpn.kill_switch,
        devices,
        port_forward,
        kill_switch_drops: count(KILL_SWITCH_COUNTER),
        port_fail_drops: count(PORT_FAIL_COUNTER),
        dns_blocked_drops: count(DNS_BLOCKED_COUNTER),
        has_private_key,
        error,
    }
}

/// Where the provider's port goes, as shown: `192.168.1.10:80`.
pub fn target(pf: &crate::config::ProviderForward, port: Option<u16>) -> String {
    match (pf.to_port, port) {
        (Some(p), _) | (None, Some(p)) => format!("{}:{p}", pf.to),
        (None, None) => format!("{}:(the provider's port)", pf.to),
    }
}

/// One line of `portcullis status`.
pub fn render_text(v: &VpnView, now_unix: u64) -> String {
    let mut s = format!("vpn: {} {} ({})", v.interface, v.state, v.endpoint);
    if let Some(t) = v.last_handshake_unix {
        s.push_str(&format!(", handshake {} s ago", now_unix.saturating_sub(t)));
    }
    s.push_str(&format!(", rx {} B, tx {} B", v.rx_bytes, v.tx_bytes));
    if let Some(pf) = &v.port_forward {
        match pf.port {
            Some(p) => s.push_str(&format!(", port {p} -> {} ({})", pf.to, pf.health)),
            None => s.push_str(&format!(", no port held ({})", pf.health)),
        }
    }
    s.push_str(&format!(
        ", kill switch {} ({} dropped), port fail guard {} dropped",
        if v.kill_switch { "on" } else { "off" },
        v.kill_switch_drops,
        v.port_fail_drops
    ));
    if let Some(e) = &v.error {
        s.push_str(&format!("\n  error: {e}"));
    }
    s.push('\n');
    s
}
