//! Golden bytes of every rtnetlink message the tunnel sends, derived by hand from
//! `linux/netlink.h` (`nlmsghdr`), `linux/rtnetlink.h` (`rtmsg`, `RTM_*`, `RTA_*`),
//! `linux/if_link.h` (`ifinfomsg`, `IFLA_*`), `linux/if_addr.h` (`ifaddrmsg`, `IFA_*`) and
//! `linux/fib_rules.h` (`fib_rule_hdr`, `FRA_*`); and decoding of the kernel's answers.

use super::*;
use crate::vpn::tunnel::rules;
use crate::vpn::{RULE_PRIORITY, TUNNEL_MARK};

pub(crate) fn n16(v: u16) -> [u8; 2] {
    v.to_ne_bytes()
}
pub(crate) fn n32(v: u32) -> [u8; 4] {
    v.to_ne_bytes()
}
pub(crate) fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}
fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// `struct nlmsghdr`: len, type, flags, seq 7, pid 0.
fn hdr(len: u32, ty: u16, flags: u16) -> Vec<u8> {
    cat(&[&n32(len), &n16(ty), &n16(flags), &n32(7), &n32(0)])
}

#[test]
fn get_link_by_name() {
    let want = cat(&[
        &hdr(44, 18, 0x1), // RTM_GETLINK, NLM_F_REQUEST
        &[0, 0], &n16(0), &n32(0), &n32(0), &n32(0), // ifinfomsg: family, pad, type, index, flags, change
        &n16(9), &n16(3), b"wgt0\0", &[0, 0, 0], // IFLA_IFNAME "wgt0" + NUL, padded
    ]);
    assert_eq!(get_link(7, "wgt0"), want);
}

#[test]
fn new_link_of_a_kind() {
    let want = cat(&[
        &hdr(60, 16, 0x605), // RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE
        &[0, 0], &n16(0), &n32(0), &n32(0), &n32(0), // ifinfomsg, all zero
        &n16(8), &n16(3), b"wg0\0", // IFLA_IFNAME
        &n16(20), &n16(0x8000 | 18), // IFLA_LINKINFO, NLA_F_NESTED
        &n16(14), &n16(1), b"wireguard\0", &[0, 0], // IFLA_INFO_KIND, padded
    ]);
    assert_eq!(new_link(7, "wg0", "wireguard"), want);
}

#[test]
fn mtu_up_and_delete() {
    let want = cat(&[
        &hdr(40, 16, 0x5), // RTM_NEWLINK, REQUEST|ACK
        &[0, 0], &n16(0), &n32(5), &n32(0), &n32(0), // ifinfomsg: index 5
        &n16(8), &n16(4), &n32(1420), // IFLA_MTU
    ]);
    assert_eq!(set_mtu(7, 5, 1420), want);
    let want = cat(&[
        &hdr(32, 16, 0x5), // RTM_NEWLINK, REQUEST|ACK
        &[0, 0], &n16(0), &n32(5), &n32(1), &n32(1), // index 5, flags IFF_UP, change IFF_UP
    ]);
    assert_eq!(set_up(7, 5), want);
    let want = cat(&[
        &hdr(40, 17, 0x5), // RTM_DELLINK, REQUEST|ACK
        &[0, 0], &n16(0), &n32(0), &n32(0), &n32(0), &n16(8), &n16(3), b"wg0\0", // IFLA_IFNAME
    ]);
    assert_eq!(del_link(7, "wg0"), want);
}

#[test]
fn dumps_and_echoed_deletes() {
    // ifaddrmsg: family AF_INET, prefixlen, flags, scope, index (u32)
    assert_eq!(
        dump_ipv4(7, 22),
        cat(&[&hdr(24, 22, 0x301), &[2, 0, 0, 0], &n32(0)])
    );
    // rtmsg / fib_rule_hdr: family AF_INET, 7 bytes, flags (u32)
    let twelve = [2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(dump_ipv4(7, 26), cat(&[&hdr(28, 26, 0x301), &twelve]));
    assert_eq!(dump_ipv4(7, 34), cat(&[&hdr(28, 34, 0x301), &twelve]));
    // A delete sends back the dumped payload unchanged.
    assert_eq!(
        echo_delete(7, 33, &twelve),
        cat(&[&hdr(28, 33, 0x5), &twelve])
    );
}

#[test]
fn new_address() {
    let want = cat(&[
        &hdr(40, 20, 0x505), // RTM_NEWADDR, REQUEST|ACK|REPLACE|CREATE
        &[2, 32, 0, 0], &n32(5), // ifaddrmsg: AF_INET, /32, flags, scope universe, index 5
        &n16(8), &n16(2), &[10, 2, 0, 2], // IFA_LOCAL
        &n16(8), &n16(1), &[10, 2, 0, 2], // IFA_ADDRESS
    ]);
    assert_eq!(new_addr(7, 5, net("10.2.0.2/32")), want);
}

#[test]
fn new_route_in_a_big_table() {
    let want = cat(&[
        &hdr(52, 24, 0x505), // RTM_NEWROUTE, REQUEST|ACK|REPLACE|CREATE
        // rtmsg: AF_INET, dst_len 8, src_len, tos, table UNSPEC (51820 > 255),
        // RTPROT_BOOT, RT_SCOPE_LINK, RTN_UNICAST, flags
        &[2, 8, 0, 0, 0, 3, 253, 1], &n32(0), &n16(8), &n16(15), &n32(51820), // RTA_TABLE
        &n16(8), &n16(1), &[10, 0, 0, 0], // RTA_DST (host bits cleared)
        &n16(8), &n16(4), &n32(5), // RTA_OIF
    ]);
    assert_eq!(new_route(7, 51820, net("10.1.2.3/8"), 5), want);
}

#[test]
fn the_four_rules() {
    let r = rules(51820, 51820, "198.51.100.7".parse().unwrap());
    assert_eq!(r.len(), 4);
    // fib_rule_hdr: AF_INET, dst_len, src_len, tos, table (≤ 255 fits), res1, res2,
    // FR_ACT_TO_TBL; flags (no FIB_RULE_INVERT: it would negate every selector at once).
    let want = cat(&[
        &hdr(60, 32, 0x605), // RTM_NEWRULE, REQUEST|ACK|EXCL|CREATE
        &[2, 0, 0, 0, 254, 0, 0, 1], &n32(0),
        &n16(8), &n16(6), &n32(10_000), // FRA_PRIORITY
        &n16(8), &n16(15), &n32(254), // FRA_TABLE main
        &n16(8), &n16(10), &n32(51820), // FRA_FWMARK WireGuard's
        &n16(8), &n16(16), &n32(0xffff_ffff), // FRA_FWMASK
    ]);
    assert_eq!(new_rule(7, &r[0]), want);
    let want = cat(&[
        &hdr(52, 32, 0x605),
        &[2, 32, 0, 0, 0, 0, 0, 1], &n32(0), // dst_len 32, table UNSPEC (51820 > 255)
        &n16(8), &n16(6), &n32(10_001), // FRA_PRIORITY
        &n16(8), &n16(15), &n32(51820), // FRA_TABLE
        &n16(8), &n16(1), &[198, 51, 100, 7], // FRA_DST
    ]);
    assert_eq!(new_rule(7, &r[1]), want);
    let want = cat(&[
        &hdr(68, 32, 0x605), &[2, 0, 0, 0, 254, 0, 0, 1], &n32(0), // table main fits the header
        &n16(8), &n16(6), &n32(10_002), // FRA_PRIORITY
        &n16(8), &n16(15), &n32(254), // FRA_TABLE main
        &n16(8), &n16(10), &n32(0x1_0000), // FRA_FWMARK TUNNEL_MARK
        &n16(8), &n16(16), &n32(0x1_0000), // FRA_FWMASK TUNNEL_MARK
        &n16(8), &n16(14), &n32(0), // FRA_SUPPRESS_PREFIXLEN 0
    ]);
    assert_eq!(new_rule(7, &r[2]), want);
    let want = cat(&[
        &hdr(60, 32, 0x605), &[2, 0, 0, 0, 0, 0, 0, 1], &n32(0), &n16(8), &n16(6), &n32(10_003), // FRA_PRIORITY
        &n16(8), &n16(15), &n32(51820), // FRA_TABLE
        &n16(8), &n16(10), &n32(0x1_0000), // FRA_FWMARK
        &n16(8), &n16(16), &n32(0x1_0000), // FRA_FWMASK
    ]);
    assert_eq!(new_rule(7, &r[3]), want);
    // What we send decodes to what we meant.
    for spec in &r {
        let m = new_rule(7, spec);
        assert_eq!(decode_rule(&m[16..]), Some((*spec, false)));
        assert!(!spec.invert);
    }
    assert_eq!(r[0].priority, RULE_PRIORITY);
    assert_eq!(r[3].fwmark, Some((TUNNEL_MARK, TUNNEL_MARK)));
}

#[test]
fn rules_as_the_kernel_reports_them() {
    // fib_nl_fill_rule: table > 255 → header RT_TABLE_COMPAT (252) and FRA_TABLE;
    // FRA_SUPPRESS_PREFIXLEN always, -1 when unset; FRA_PROTOCOL (21) u8.
    let p = cat(&[
        &[2, 0, 0, 0, 252, 0, 0, 1], &n32(0), &n16(8), &n16(15), &n32(51820), // FRA_TABLE
        &n16(8), &n16(14), &n32(u32::MAX), // FRA_SUPPRESS_PREFIXLEN -1
        &n16(5), &n16(21), &[0, 0, 0, 0], // FRA_PROTOCOL
        &n16(8), &n16(6), &n32(10_003), // FRA_PRIORITY
        &n16(8), &n16(10), &n32(0x1_0000), // FRA_FWMARK
        &n16(8), &n16(16), &n32(0x1_0000), // FRA_FWMASK
    ]);
    let (spec, foreign) = decode_rule(&p).unwrap();
    assert!(!foreign);
    assert_eq!(spec, rules(51820, 51820, "1.2.3.4".parse().unwrap())[3]);
    // The same with `iif lo` (FRA_IIFNAME) is not ours.
    let mut q = p.clone();
    q.extend(cat(&[&n16(7), &n16(3), b"lo\0", &[0]]));
    assert!(decode_rule(&q).unwrap().1);
    // IPv6 rules and short payloads are skipped.
    assert_eq!(decode_rule(&[10; 12]), None);
    assert_eq!(decode_rule(&[2, 0]), None);
}

#[test]
fn links_addresses_and_routes_as_the_kernel_reports_them() {
    let link = cat(&[
        &[0, 0], &n16(1), &n32(9), &n32(0x1043), &n32(0), // ARPHRD_ETHER, index 9, UP|…
        &n16(8), &n16(3), b"wg0\0", // IFLA_IFNAME
        &n16(8), &n16(4), &n32(1420), // IFLA_MTU
        &n16(20), &n16(18), // IFLA_LINKINFO (the kernel sets no NLA_F_NESTED)
        &n16(13), &n16(1), b"wireguard", &[0, 0, 0], // IFLA_INFO_KIND without NUL, padded
    ]);
    assert_eq!(
        decode_link(&link),
        Some(Link {
            index: 9,
            flags: 0x1043,
            mtu: 1420,
            kind: Some("wireguard".into())
        })
    );
    assert_eq!(decode_link(&link[..10]), None);
    let addr = cat(&[
        &[2, 24, 0x80, 0], &n32(9), // AF_INET /24, IFA_F_PERMANENT, index 9
        &n16(8), &n16(1), &[10, 9, 0, 255], // IFA_ADDRESS (peer on p2p links)
        &n16(8), &n16(2), &[10, 9, 0, 1], // IFA_LOCAL: ours
    ]);
    assert_eq!(decode_addr(&addr), Some((9, net("10.9.0.1/24"))));
    let route = cat(&[
        &[2, 0, 0, 0, 252, 3, 253, 1], &n32(0), // default route, table compat
        &n16(8), &n16(15), &n32(51820), // RTA_TABLE
        &n16(8), &n16(4), &n32(9), // RTA_OIF
    ]);
    let want = Route {
        table: 51820,
        dst: net("0.0.0.0/0"),
        oif: Some(9),
        plain: true,
    };
    assert_eq!(decode_route(&route), Some(want));
    let mut via = route.clone();
    via.extend(cat(&[&n16(8), &n16(5), &[10, 0, 0, 1]])); // RTA_GATEWAY
    assert!(!decode_route(&via).unwrap().plain);
    let mut bad = route;
    bad[1] = 33; // a prefix length above 32 is not a route we can name
    assert_eq!(decode_route(&bad), None);
}
