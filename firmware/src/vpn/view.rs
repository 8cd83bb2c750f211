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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{VpnDevices, VpnPeer};
    use crate::vpn::key::Key;
    use crate::vpn::tunnel::PeerState;

    fn vpn() -> Vpn {
        Vpn {
            enabled: true,
            interface: "wg0".into(),
            addresses: vec!["10.2.0.2/32".parse().unwrap()],
            dns: vec![],
            mtu: 1420,
            listen_port: None,
            fwmark: 51820,
            table: 51820,
            peer: VpnPeer {
                public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
                endpoint: "198.51.100.1:51820".parse().unwrap(),
                allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
                persistent_keepalive: Some(25),
            },
            devices: VpnDevices::default(),
            kill_switch: true,
            port_forward: None,
        }
    }

    fn kernel(handshake: Option<u64>) -> TunnelState {
        TunnelState {
            link_up: true,
            mtu: 1420,
            addresses: vec![],
            public_key: None,
            listen_port: 40000,
            fwmark: 51820,
            peers: vec![PeerState {
                public_key: Key([0; 32]),
                endpoint: Some("198.51.100.1:51820".parse().unwrap()),
                last_handshake_unix_secs: handshake,
                rx_bytes: 10,
                tx_bytes: 20,
                allowed_ips: vec![],
                keepalive: 25,
            }],
        }
    }

    #[test]
    fn state_follows_key_error_and_handshake_age() {
        let c = HashMap::new();
        let v = vpn();
        let st = |k: Option<&TunnelState>, key: bool, err: Option<&str>| {
            view(&v, k, None, &c, key, err.map(str::to_string), 1_000).state
        };
        assert_eq!(st(None, false, None), "no key");
        assert_eq!(st(None, true, Some("no WireGuard")), "error");
        assert_eq!(st(None, true, None), "error", "configured but no link");
        assert_eq!(st(Some(&kernel(None)), true, None), "connecting");
        assert_eq!(st(Some(&kernel(Some(900))), true, None), "connected");
        assert_eq!(st(Some(&kernel(Some(800))), true, None), "stale");
        let mut off = vpn();
        off.enabled = false;
        assert_eq!(view(&off, None, None, &c, true, None, 0).state, "off");
    }

    #[test]
    fn counters_and_text() {
        let mut c = HashMap::new();
        c.insert(KILL_SWITCH_COUNTER.to_string(), (7, 700));
        c.insert(PORT_FAIL_COUNTER.to_string(), (3, 300));
        let k = kernel(Some(990));
        let pf = PortForwardView {
            port: Some(40000),
            to: "192.168.1.10:80".into(),
            health: "ok".into(),
            expires_in_secs: Some(50),
        };
        let v = view(&vpn(), Some(&k), Some(pf), &c, true, None, 1_000);
        assert_eq!((v.kill_switch_drops, v.port_fail_drops), (7, 3));
        assert_eq!((v.rx_bytes, v.tx_bytes, v.listen_port), (10, 20, 40000));
        let t = render_text(&v, 1_000);
        assert!(
            t.contains("vpn: wg0 connected (198.51.100.1:51820), handshake 10 s ago"),
            "{t}"
        );
        assert!(t.contains("port 40000 -> 192.168.1.10:80 (ok)"), "{t}");
        assert!(t.contains("kill switch on (7 dropped)"), "{t}");
    }

    #[test]
    fn target_keeps_the_providers_number_unless_told() {
        let mut pf = crate::config::ProviderForward {
            gateway: crate::config::DEFAULT_GATEWAY,
            to: "192.168.1.10".parse().unwrap(),
            to_port: None,
        };
        assert_eq!(target(&pf, Some(40000)), "192.168.1.10:40000");
        assert_eq!(target(&pf, None), "192.168.1.10:(the provider's port)");
        pf.to_port = Some(80);
        assert_eq!(target(&pf, Some(40000)), "192.168.1.10:80");
    }
}
