//! The pure plan: what a `vpn` section and its secrets become.

use super::*;

fn vpn(public_key: &str) -> Vpn {
    let json = format!(
        r#"{{"enabled": true, "addresses": ["10.2.0.2/32"], "listen_port": 51000,
            "peer": {{"public_key": "{public_key}", "endpoint": "198.51.100.7:51820",
                     "allowed_ips": ["0.0.0.0/0", "10.1.2.3/8", "10.0.0.0/8"],
                     "persistent_keepalive": 25}}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

fn secrets() -> Secrets {
    Secrets {
        private_key: Key([1; 32]),
        preshared_key: Some(Key([3; 32])),
    }
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

#[test]
fn plan_of_a_sample_vpn() {
    let p = plan(&vpn(&Key([2; 32]).to_base64()), &secrets()).unwrap();
    assert_eq!((p.ifname.as_str(), p.mtu, p.table), ("wg0", 1420, 51820));
    assert_eq!(p.addresses, vec![net("10.2.0.2/32")]);
    // Host bits cleared, duplicates dropped.
    let allowed = vec![net("0.0.0.0/0"), net("10.0.0.0/8")];
    assert_eq!(p.routes, allowed);
    let peer = WgPeer {
        public_key: Key([2; 32]),
        preshared_key: Some(Key([3; 32])),
        endpoint: "198.51.100.7:51820".parse().unwrap(),
        allowed_ips: allowed,
        keepalive: Some(25),
    };
    let device = WgDevice {
        private_key: Key([1; 32]),
        listen_port: Some(51000),
        fwmark: 51820,
        peer,
    };
    assert_eq!(p.device, device);
    let mark = Some((TUNNEL_MARK, TUNNEL_MARK));
    // (priority, table, fwmark, dst, suppress_prefixlength)
    let want: Vec<RuleSpec> = [
        // WireGuard's own packets: the main table.
        (10_000, 254, Some((51820, u32::MAX)), None, None),
        // Everything else to the endpoint: the tunnel (Port Fail guard).
        (10_001, 51820, None, Some(net("198.51.100.7/32")), None),
        // Marked packets: main table except its default route, then the tunnel's table.
        (10_002, 254, mark, None, Some(0)),
        (10_003, 51820, mark, None, None),
    ]
    .into_iter()
    .map(
        |(priority, table, fwmark, dst, suppress_prefixlen)| RuleSpec {
            priority,
            table,
            fwmark,
            invert: false,
            dst,
            suppress_prefixlen,
        },
    )
    .collect();
    assert_eq!(p.rules, want);
}

#[test]
fn a_bad_peer_key_is_an_error() {
    let e = plan(&vpn("not-a-key"), &secrets()).unwrap_err();
    assert!(matches!(e, TunnelError::PeerKey), "{e:?}");
    assert_eq!(
        TunnelError::NoWireGuard.to_string(),
        "the kernel has no WireGuard (generic netlink family `wireguard` not found)"
    );
}

#[test]
fn the_system_tables_are_refused() {
    for table in [0, 253, 254, 255] {
        let mut v = vpn(&Key([2; 32]).to_base64());
        v.table = table;
        let e = plan(&v, &secrets()).unwrap_err();
        assert!(matches!(e, TunnelError::ReservedTable { .. }), "{e:?}");
        assert!(matches!(
            remove("wg0", table),
            Err(TunnelError::ReservedTable { .. })
        ));
    }
}
