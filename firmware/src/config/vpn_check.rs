//! Validation of the `vpn` section: every refusal names the field (`vpn.peer.endpoint`).

use std::net::Ipv4Addr;

use super::validate::check_interface;
use super::{Config, Ipv4Net, Report};
use crate::vpn::key::Key;

/// Smallest and largest tunnel MTU, bytes (576: the IPv4 minimum, RFC 791; 9000: jumbo).
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 576..=9000;

/// Checks `cfg.vpn` when present. The interface name always; the rest only when enabled
/// (a disabled section installs nothing).
pub(super) fn check(r: &mut Report, cfg: &Config) {
    let Some(v) = &cfg.vpn else {
        return;
    };
    check_interface(r, "vpn.interface", &v.interface);
    if v.interface == cfg.lan.interface || v.interface == cfg.wan.interface {
        r.error(
            "vpn.interface",
            format!(
                "`{}` is the LAN or WAN interface; the tunnel needs its own",
                v.interface.escape_debug()
            ),
        );
    }
    if !v.enabled {
        return;
    }
    let lan = &cfg.lan.subnets;
    let in_lan = |a: Ipv4Addr| lan.iter().find(|n| n.contains(a));
    if v.addresses.is_empty() {
        r.error("vpn.addresses", "the provider's tunnel address is needed");
    }
    for (i, a) in v.addresses.iter().enumerate() {
        if let Some(n) = lan.iter().find(|n| n.overlaps(a)) {
            r.error(
                format!("vpn.addresses[{i}]"),
                format!("{a} overlaps the LAN subnet {n}"),
            );
        }
    }
    if !MTU_RANGE.contains(&v.mtu) {
        r.error("vpn.mtu", "must be 576 to 9000 bytes");
    }
    if v.fwmark == 0 {
        r.error(
            "vpn.fwmark",
            "must not be 0 (WireGuard's own packets need a mark)",
        );
    } else if v.fwmark == crate::vpn::TUNNEL_MARK {
        r.error(
            "vpn.fwmark",
            "is the mark of the devices that use the tunnel (0x10000); pick another",
        );
    }
    if matches!(v.table, 0 | 253..=255) {
        r.error(
            "vpn.table",
            "0 and 253 to 255 are the kernel's reserved tables (unspec, default, main, local)",
        );
    }
    let p = &v.peer;
    if Key::from_base64(&p.public_key).is_none() {
        r.error(
            "vpn.peer.public_key",
            "not a WireGuard key (44 characters of base64)",
        );
    }
    let ep = *p.endpoint.ip();
    if p.endpoint.port() == 0 {
        r.error("vpn.peer.endpoint", "port 0 is not a usable port");
    }
    if ep.is_unspecified() || ep.is_broadcast() || ep.is_multicast() || ep.is_loopback() {
        r.error(
            "vpn.peer.endpoint",
            format!(
                "{ep} is not a server's address (unspecified, broadcast, multicast or loopback)"
            ),
        );
    } else if let Some(n) = in_lan(ep) {
        r.error(
            "vpn.peer.endpoint",
            format!("{ep} is inside the LAN subnet {n}"),
        );
    } else if let Some(n) = v.addresses.iter().find(|n| n.contains(ep)) {
        r.error(
            "vpn.peer.endpoint",
            format!(
                "{ep} is inside the tunnel address {n}: it could only be reached through itself"
            ),
        );
    }
    if p.allowed_ips.is_empty() {
        r.error(
            "vpn.peer.allowed_ips",
            "at least one prefix (usually 0.0.0.0/0)",
        );
    }
    if p.persistent_keepalive == Some(0) {
        r.error(
            "vpn.peer.persistent_keepalive",
            "must be 1 to 65535 seconds; leave it out for off",
        );
    }
    for (i, d) in v.dns.iter().enumerate() {
        if d.is_unspecified() {
            r.error(format!("vpn.dns[{i}]"), "0.0.0.0 is not a resolver");
        }
    }
    let dev = &v.devices;
    if !dev.all && dev.hosts.is_empty() && dev.macs.is_empty() {
        r.error(
            "vpn.devices",
            "no device uses the tunnel: set all, or name hosts or MACs",
        );
    }
    for (i, h) in dev.hosts.iter().enumerate() {
        if !super::covered(lan, h) {
            r.error(
                format!("vpn.devices.hosts[{i}]"),
                format!("{h} is not inside a LAN subnet"),
            );
        }
    }
    if let Some(f) = &v.port_forward {
        check_forward_to(r, lan, f.to);
        if f.to_port == Some(0) {
            r.error("vpn.port_forward.to_port", "port 0 is not a usable port");
        }
        if f.gateway.is_unspecified() {
            r.error(
                "vpn.port_forward.gateway",
                "0.0.0.0 is not a gateway (ProtonVPN's is 10.2.0.1)",
            );
        }
    }
}

/// The provider's port goes to a LAN host: inside a subnet, not its network or broadcast
/// address.
fn check_forward_to(r: &mut Report, lan: &[Ipv4Net], to: Ipv4Addr) {
    match lan.iter().find(|n| n.contains(to)) {
        None => r.error(
            "vpn.port_forward.to",
            format!("{to} is not inside a LAN subnet"),
        ),
        Some(n) if n.is_network_or_broadcast(to) => r.error(
            "vpn.port_forward.to",
            format!("{to} is the network or broadcast address of {n}"),
        ),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{validate, ProviderForward, Timestamp, Vpn, DEFAULT_GATEWAY};

    fn base() -> Config {
        Config::parse(
            r#"{"version":1,"lan":{"interface":"br0","subnets":["192.168.1.0/24"]},
            "wan":{"interface":"eth0"},
            "vpn":{"enabled":true,"addresses":["10.2.0.2/32"],"dns":["10.2.0.1"],
              "peer":{"public_key":"3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=",
                      "endpoint":"203.0.113.5:51820","allowed_ips":["0.0.0.0/0"],
                      "persistent_keepalive":25},
              "port_forward":{"to":"192.168.1.20","to_port":6881}}}"#,
        )
        .unwrap()
    }

    fn errors(cfg: &Config) -> Vec<String> {
        validate(cfg, Timestamp(0))
            .errors()
            .map(|i| format!("{}: {}", i.field, i.message))
            .collect()
    }

    /// `change` applied to the base config yields an error on `field` containing `needle`.
    #[track_caller]
    fn refused(change: impl FnOnce(&mut Vpn), field: &str, needle: &str) {
        let mut cfg = base();
        if let Some(v) = cfg.vpn.as_mut() {
            change(v);
        }
        let errs = errors(&cfg);
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{field}: ")) && e.contains(needle)),
            "no `{field}: …{needle}…` in {errs:?}"
        );
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn the_base_is_valid_and_absent_is_fine() {
        assert_eq!(errors(&base()), Vec::<String>::new());
        let mut cfg = base();
        cfg.vpn = None;
        assert_eq!(errors(&cfg), Vec::<String>::new());
    }

    #[test]
    fn interface() {
        refused(|v| v.interface = String::new(), "vpn.interface", "1 to 15");
        refused(
            |v| v.interface = "wg 0".into(),
            "vpn.interface",
            "not a valid",
        );
        refused(
            |v| v.interface = "br0".into(),
            "vpn.interface",
            "LAN or WAN",
        );
        refused(
            |v| v.interface = "eth0".into(),
            "vpn.interface",
            "LAN or WAN",
        );
        // Checked even when disabled; nothing else is.
        refused(
            |v| {
                v.enabled = false;
                v.interface = "eth0".into();
            },
            "vpn.interface",
            "LAN or WAN",
        );
        let mut cfg = base();
        if let Some(v) = cfg.vpn.as_mut() {
            v.enabled = false;
            v.addresses.clear();
            v.mtu = 1;
            v.peer.public_key = "x".into();
        }
        assert_eq!(errors(&cfg), Vec::<String>::new());
    }

    #[test]
    fn addresses() {
        refused(|v| v.addresses.clear(), "vpn.addresses", "needed");
        refused(
            |v| v.addresses.push(net("192.168.0.0/16")),
            "vpn.addresses[1]",
            "overlaps the LAN subnet 192.168.1.0/24",
        );
    }

    #[test]
    fn numbers() {
        refused(|v| v.mtu = 575, "vpn.mtu", "576 to 9000");
        refused(|v| v.mtu = 9001, "vpn.mtu", "576 to 9000");
        refused(|v| v.fwmark = 0, "vpn.fwmark", "not be 0");
        refused(
            |v| v.fwmark = crate::vpn::TUNNEL_MARK,
            "vpn.fwmark",
            "pick another",
        );
        for t in [0, 253, 254, 255] {
            refused(|v| v.table = t, "vpn.table", "reserved");
        }
        let mut cfg = base();
        if let Some(v) = cfg.vpn.as_mut() {
            (v.mtu, v.table) = (576, 252);
        }
        assert_eq!(errors(&cfg), Vec::<String>::new());
    }

    #[test]
    fn peer() {
        refused(
            |v| v.peer.public_key = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK0=".into(),
            "vpn.peer.public_key",
            "not a WireGuard key",
        );
        refused(
            |v| v.peer.endpoint.set_port(0),
            "vpn.peer.endpoint",
            "port 0",
        );
        for bad in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(239, 1, 2, 3),
            Ipv4Addr::LOCALHOST,
        ] {
            refused(
                |v| v.peer.endpoint.set_ip(bad),
                "vpn.peer.endpoint",
                "not a server's address",
            );
        }
        refused(
            |v| v.peer.endpoint.set_ip(Ipv4Addr::new(192, 168, 1, 9)),
            "vpn.peer.endpoint",
            "inside the LAN subnet",
        );
        refused(
            |v| {
                v.addresses = vec![net("10.2.0.2/16")];
                v.peer.endpoint.set_ip(Ipv4Addr::new(10, 2, 9, 9));
            },
            "vpn.peer.endpoint",
            "inside the tunnel address",
        );
        refused(
            |v| v.peer.allowed_ips.clear(),
            "vpn.peer.allowed_ips",
            "at least one",
        );
        refused(
            |v| v.peer.persistent_keepalive = Some(0),
            "vpn.peer.persistent_keepalive",
            "1 to 65535",
        );
    }

    #[test]
    fn dns() {
        refused(
            |v| v.dns.push(Ipv4Addr::UNSPECIFIED),
            "vpn.dns[1]",
            "not a resolver",
        );
    }

    #[test]
    fn devices() {
        refused(|v| v.devices.all = false, "vpn.devices", "no device");
        refused(
            |v| {
                v.devices.all = false;
                v.devices.hosts = vec![net("192.168.1.20"), net("192.168.0.0/23")];
            },
            "vpn.devices.hosts[1]",
            "not inside a LAN subnet",
        );
        let mut cfg = base();
        if let Some(v) = cfg.vpn.as_mut() {
            v.devices.all = false;
            v.devices.macs = vec!["aa:bb:cc:dd:ee:ff".parse().unwrap()];
        }
        assert_eq!(errors(&cfg), Vec::<String>::new());
    }

    #[test]
    fn port_forward() {
        let set = |to: [u8; 4], to_port: Option<u16>, gateway: Ipv4Addr| {
            move |v: &mut Vpn| {
                v.port_forward = Some(ProviderForward {
                    gateway,
                    to: Ipv4Addr::from(to),
                    to_port,
                })
            }
        };
        refused(
            set([10, 0, 0, 5], None, DEFAULT_GATEWAY),
            "vpn.port_forward.to",
            "not inside a LAN subnet",
        );
        refused(
            set([192, 168, 1, 0], None, DEFAULT_GATEWAY),
            "vpn.port_forward.to",
            "network or broadcast",
        );
        refused(
            set([192, 168, 1, 255], None, DEFAULT_GATEWAY),
            "vpn.port_forward.to",
            "network or broadcast",
        );
        refused(
            set([192, 168, 1, 5], Some(0), DEFAULT_GATEWAY),
            "vpn.port_forward.to_port",
            "port 0",
        );
        refused(
            set([192, 168, 1, 5], None, Ipv4Addr::UNSPECIFIED),
            "vpn.port_forward.gateway",
            "not a gateway",
        );
    }
}
