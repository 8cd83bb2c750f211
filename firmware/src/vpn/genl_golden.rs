//! Golden bytes of the generic netlink messages (`linux/genetlink.h`: `genlmsghdr`,
//! `CTRL_*`; `linux/wireguard.h`: `WG_CMD_*`, `WGDEVICE_A_*`, `WGPEER_A_*`,
//! `WGALLOWEDIP_A_*`), and decoding of hand-built `WG_CMD_GET_DEVICE` replies.

use super::*;
use crate::vpn::tunnel::{WgDevice, WgPeer};

fn n16(v: u16) -> [u8; 2] {
    v.to_ne_bytes()
}
fn n32(v: u32) -> [u8; 4] {
    v.to_ne_bytes()
}
fn n64(v: u64) -> [u8; 8] {
    v.to_ne_bytes()
}
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
/// `struct nlmsghdr`: len, type, flags, seq 7, pid 0.
fn hdr(len: u32, ty: u16, flags: u16) -> Vec<u8> {
    cat(&[&n32(len), &n16(ty), &n16(flags), &n32(7), &n32(0)])
}
/// `struct sockaddr_in`: AF_INET (host order), port and address (network order), zero[8].
fn sin(ip: [u8; 4], port: u16) -> Vec<u8> {
    cat(&[&n16(2), &port.to_be_bytes(), &ip, &[0; 8]])
}

#[test]
fn family_lookup() {
    let want = cat(&[
        &hdr(36, 0x10, 0x1), // GENL_ID_CTRL, NLM_F_REQUEST
        &[3, 1, 0, 0],       // genlmsghdr: CTRL_CMD_GETFAMILY, version 1, reserved
        &n16(14), &n16(2), b"wireguard\0", &[0, 0], // CTRL_ATTR_FAMILY_NAME, padded
    ]);
    assert_eq!(get_family(7, "wireguard"), want);
    let reply = cat(&[
        &[1, 2, 0, 0], // CTRL_CMD_NEWFAMILY, version 2
        &n16(14), &n16(2), b"wireguard\0", &[0, 0], // CTRL_ATTR_FAMILY_NAME
        &n16(6), &n16(1), &n16(0x15), &[0, 0], // CTRL_ATTR_FAMILY_ID (u16), padded
    ]);
    assert_eq!(decode_family_id(&reply), Some(0x15));
    assert_eq!(decode_family_id(&[1, 2]), None);
}

#[test]
fn get_device_dump_request() {
    let want = cat(&[
        &hdr(28, 0x15, 0x301), // the family id, NLM_F_REQUEST|NLM_F_DUMP
        &[0, 1, 0, 0],         // WG_CMD_GET_DEVICE, WG_GENL_VERSION
        &n16(8), &n16(2), b"wg0\0", // WGDEVICE_A_IFNAME
    ]);
    assert_eq!(get_device(7, 0x15, "wg0"), want);
}

fn device(psk: Option<Key>) -> WgDevice {
    WgDevice {
        private_key: Key([0x11; 32]),
        listen_port: Some(51820),
        fwmark: 51820,
        peer: WgPeer {
            public_key: Key([0x22; 32]),
            preshared_key: psk,
            endpoint: "198.51.100.7:51820".parse().unwrap(),
            allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
            keepalive: Some(25),
        },
    }
}

#[test]
fn set_device_with_one_peer() {
    let want = cat(&[
        &hdr(236, 0x15, 0x5), // the family id, NLM_F_REQUEST|NLM_F_ACK
        &[1, 1, 0, 0],        // WG_CMD_SET_DEVICE, WG_GENL_VERSION
        &n16(8), &n16(2), b"wg0\0", // WGDEVICE_A_IFNAME
        &n16(36), &n16(3), &[0x11; 32], // WGDEVICE_A_PRIVATE_KEY
        &n16(6), &n16(6), &n16(51820), &[0, 0], // WGDEVICE_A_LISTEN_PORT (u16), padded
        &n16(8), &n16(7), &n32(51820), // WGDEVICE_A_FWMARK
        &n16(8), &n16(5), &n32(1), // WGDEVICE_A_FLAGS: WGDEVICE_F_REPLACE_PEERS
        &n16(148), &n16(0x8000 | 8), // WGDEVICE_A_PEERS, nested
        &n16(144), &n16(0x8000), // peer 0, nested
        &n16(36), &n16(1), &[0x22; 32], // WGPEER_A_PUBLIC_KEY
        &n16(36), &n16(2), &[0; 32], // WGPEER_A_PRESHARED_KEY: zero clears it
        &n16(8), &n16(3), &n32(2), // WGPEER_A_FLAGS: WGPEER_F_REPLACE_ALLOWEDIPS
        &n16(20), &n16(4), &sin([198, 51, 100, 7], 51820), // WGPEER_A_ENDPOINT
        &n16(6), &n16(5), &n16(25), &[0, 0], // WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL
        &n16(32), &n16(0x8000 | 9), // WGPEER_A_ALLOWEDIPS, nested
        &n16(28), &n16(0x8000), // allowed IP 0, nested
        &n16(6), &n16(1), &n16(2), &[0, 0], // WGALLOWEDIP_A_FAMILY AF_INET
        &n16(8), &n16(2), &[0, 0, 0, 0], // WGALLOWEDIP_A_IPADDR
        &n16(5), &n16(3), &[0, 0, 0, 0], // WGALLOWEDIP_A_CIDR_MASK 0, padded
    ]);
    assert_eq!(set_device(7, 0x15, "wg0", &device(None), true), want);
    // The same peer kept: no WGDEVICE_F_REPLACE_PEERS; a preshared key is sent as is.
    let got = set_device(7, 0x15, "wg0", &device(Some(Key([0x33; 32]))), false);
    assert_eq!(got.len(), 236);
    assert_eq!(got[84..88], n32(0)); // WGDEVICE_A_FLAGS value
    assert_eq!(got[136..168], [0x33; 32]); // WGPEER_A_PRESHARED_KEY value
                                           // Without a listen port the attribute is left out (the kernel keeps its port).
    let mut d = device(None);
    d.listen_port = None;
    assert_eq!(set_device(7, 0x15, "wg0", &d, true).len(), 228);
}

fn nla(ty: u16, data: &[u8]) -> Vec<u8> {
    let mut v = cat(&[&n16(u16::try_from(4 + data.len()).unwrap()), &n16(ty), data]);
    v.resize((v.len() + 3) & !3, 0);
    v
}
fn nest(ty: u16, parts: &[Vec<u8>]) -> Vec<u8> {
    nla(0x8000 | ty, &parts.concat())
}
fn allowed(family: u16, ip: &[u8], cidr: u8) -> Vec<u8> {
    nest(0, &[nla(1, &n16(family)), nla(2, ip), nla(3, &[cidr])])
}

#[test]
fn a_split_device_reply_merges_peers_by_key() {
    let genl = vec![0u8, 1, 0, 0]; // WG_CMD_GET_DEVICE, version 1
    let peer0 = nest(0, &[
        nla(1, &[0x22; 32]), // WGPEER_A_PUBLIC_KEY
        nla(2, &[0; 32]), // WGPEER_A_PRESHARED_KEY
        nla(6, &cat(&[&n64(1_700_000_000), &n64(5)])), // LAST_HANDSHAKE_TIME: __kernel_timespec
        nla(5, &n16(25)), // PERSISTENT_KEEPALIVE_INTERVAL
        nla(7, &n64(1000)), // RX_BYTES
        nla(8, &n64(2000)), // TX_BYTES
        nla(10, &n32(1)), // PROTOCOL_VERSION
        nla(4, &sin([198, 51, 100, 7], 51820)), // ENDPOINT
        nest(9, &[allowed(2, &[0, 0, 0, 0], 0)]), // ALLOWEDIPS 0.0.0.0/0
    ]);
    let first = cat(&[
        &genl,
        &nla(1, &n32(9)), // WGDEVICE_A_IFINDEX
        &nla(2, b"wg0\0"), // WGDEVICE_A_IFNAME
        &nla(3, &[0x11; 32]), // WGDEVICE_A_PRIVATE_KEY
        &nla(4, &[0x44; 32]), // WGDEVICE_A_PUBLIC_KEY
        &nla(6, &n16(51820)), // WGDEVICE_A_LISTEN_PORT
        &nla(7, &n32(51820)), // WGDEVICE_A_FWMARK
        &nest(8, &[peer0]), // WGDEVICE_A_PEERS
    ]);
    // The next message: the same device, the first peer continued (its key and the rest
    // of its allowed IPs, one of them IPv6), then a second peer with an IPv6 endpoint
    // that never shook hands.
    let peer0_more = nest(0, &[
        nla(1, &[0x22; 32]),
        nest(9, &[allowed(2, &[10, 0, 0, 0], 8), allowed(10, &[0; 16], 0)]),
    ]);
    let peer1 = nest(0, &[
        nla(1, &[0x55; 32]),
        nla(4, &cat(&[&n16(10), &[0; 26]])), // ENDPOINT: sockaddr_in6
        nla(6, &[0; 16]), // LAST_HANDSHAKE_TIME 0: never
    ]);
    let second = cat(&[&genl, &nla(1, &n32(9)), &nla(2, b"wg0\0"), &nest(8, &[peer0_more, peer1])]);
    let mut dev = DeviceState::default();
    merge_device(&mut dev, &first);
    merge_device(&mut dev, &second);
    assert_eq!(dev.public_key, Some(Key([0x44; 32])));
    assert_eq!((dev.listen_port, dev.fwmark), (51820, 51820));
    assert_eq!(dev.peers.len(), 2);
    let p = &dev.peers[0];
    assert_eq!(p.public_key, Key([0x22; 32]));
    assert_eq!(p.endpoint, Some("198.51.100.7:51820".parse().unwrap()));
    assert_eq!(p.last_handshake_unix_secs, Some(1_700_000_000));
    assert_eq!((p.rx_bytes, p.tx_bytes, p.keepalive), (1000, 2000, 25));
    let want: Vec<Ipv4Net> = vec!["0.0.0.0/0".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    assert_eq!(p.allowed_ips, want);
    let q = &dev.peers[1];
    assert_eq!((q.endpoint, q.last_handshake_unix_secs), (None, None));
    // Garbage does not panic.
    merge_device(&mut dev, &[1, 2, 3]);
    merge_device(&mut dev, &first[..first.len() - 7]);
}
