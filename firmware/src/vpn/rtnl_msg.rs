//! rtnetlink messages (sans IO): links, IPv4 addresses, routes and policy-routing rules,
//! encoded and decoded by hand from the UAPI headers `linux/rtnetlink.h`,
//! `linux/if_link.h`, `linux/if_addr.h` and `linux/fib_rules.h`. All numbers in these
//! messages are host byte order except addresses, which are network order.

use std::net::Ipv4Addr;

use super::tunnel::RuleSpec;
use crate::config::Ipv4Net;
use crate::nft::uapi::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST};
use crate::nft::wire::{Attrs, MsgBuf};

// linux/netlink.h
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
// linux/socket.h
pub const AF_INET: u8 = 2;
// linux/rtnetlink.h: message types
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;
pub const RTM_GETRULE: u16 = 34;
// linux/rtnetlink.h: struct rtmsg values, enum rtattr_type_t
pub const RTN_UNICAST: u8 = 1;
pub const RTPROT_BOOT: u8 = 3;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RTA_DST: u16 = 1;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_MULTIPATH: u16 = 9;
pub const RTA_TABLE: u16 = 15;
// linux/if_link.h
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_INFO_KIND: u16 = 1;
// linux/if.h
pub const IFF_UP: u32 = 1;
// linux/if_addr.h
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
// linux/fib_rules.h
pub const FIB_RULE_INVERT: u32 = 2;
pub const FR_ACT_TO_TBL: u8 = 1;
pub const FRA_DST: u16 = 1;
pub const FRA_PRIORITY: u16 = 6;
pub const FRA_FWMARK: u16 = 10;
pub const FRA_SUPPRESS_PREFIXLEN: u16 = 14;
pub const FRA_TABLE: u16 = 15;
pub const FRA_FWMASK: u16 = 16;
/// Selectors our rules never use (`FRA_SRC`, `FRA_IIFNAME`, `FRA_GOTO`, `FRA_FLOW`,
/// `FRA_TUN_ID`, `FRA_SUPPRESS_IFGROUP`, `FRA_OIFNAME`, `FRA_L3MDEV`, `FRA_UID_RANGE`,
/// `FRA_IP_PROTO`, `FRA_SPORT_RANGE`, `FRA_DPORT_RANGE`): a rule with one is not ours.
const FRA_FOREIGN: [u16; 12] = [2, 3, 4, 11, 12, 13, 17, 19, 20, 22, 23, 24];

/// `struct ifinfomsg`, 16 bytes: family, pad, type, index, flags, change.
fn ifinfomsg(b: &mut MsgBuf, index: u32, flags: u32, change: u32) {
    b.raw(&[0, 0, 0, 0]); // ifi_family AF_UNSPEC, pad, ifi_type (u16)
    b.raw(&index.to_ne_bytes());
    b.raw(&flags.to_ne_bytes());
    b.raw(&change.to_ne_bytes());
}

/// The `u8` table field of `rtmsg`/`fib_rule_hdr`: ids above 255 only fit the
/// `RTA_TABLE`/`FRA_TABLE` attribute, which we always send (as iproute2 does, the header
/// then says `RT_TABLE_UNSPEC`).
fn table_u8(table: u32) -> u8 {
    u8::try_from(table).unwrap_or(0)
}

fn finish(mut b: MsgBuf, m: crate::nft::wire::Mark) -> Vec<u8> {
    b.end(m);
    b.buf
}

/// `RTM_GETLINK` of one link by name (answered by one `RTM_NEWLINK`, or ENODEV).
pub fn get_link(seq: u32, name: &str) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(48);
    let m = b.begin_hdr(RTM_GETLINK, NLM_F_REQUEST, seq);
    ifinfomsg(&mut b, 0, 0, 0);
    b.put_strz(IFLA_IFNAME, name);
    finish(b, m)
}

/// `RTM_NEWLINK` creating link `name` of `kind` (`IFLA_LINKINFO`/`IFLA_INFO_KIND`),
/// failing with EEXIST if it exists.
pub fn new_link(seq: u32, name: &str, kind: &str) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(64);
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let m = b.begin_hdr(RTM_NEWLINK, flags, seq);
    ifinfomsg(&mut b, 0, 0, 0);
    b.put_strz(IFLA_IFNAME, name);
    let n = b.nest(IFLA_LINKINFO);
    b.put_strz(IFLA_INFO_KIND, kind);
    b.end_nest(n);
    finish(b, m)
}

/// `RTM_NEWLINK` setting the MTU (bytes) of link `index`.
pub fn set_mtu(seq: u32, index: u32, mtu: u32) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(40);
    let m = b.begin_hdr(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    ifinfomsg(&mut b, index, 0, 0);
    b.put_u32_ne(IFLA_MTU, mtu);
    finish(b, m)
}

/// `RTM_NEWLINK` setting `IFF_UP` on link `index` (`ifi_change` = `IFF_UP`).
pub fn set_up(seq: u32, index: u32) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(32);
    let m = b.begin_hdr(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    ifinfomsg(&mut b, index, IFF_UP, IFF_UP);
    finish(b, m)
}

/// `RTM_DELLINK` of link `name`.
pub fn del_link(seq: u32, name: &str) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(48);
    let m = b.begin_hdr(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    ifinfomsg(&mut b, 0, 0, 0);
    b.put_strz(IFLA_IFNAME, name);
    finish(b, m)
}

/// A dump request (`RTM_GETADDR`, `RTM_GETROUTE`, `RTM_GETRULE`) of IPv4 objects: the
/// family header (`ifaddrmsg` 8 bytes, `rtmsg`/`fib_rule_hdr` 12 bytes) all zero but
/// its first byte, the family `AF_INET`.
pub fn dump_ipv4(seq: u32, ty: u16) -> Vec<u8> {
    let hdr = if ty == RTM_GETADDR { 8 } else { 12 };
    let mut b = MsgBuf::with_capacity(32);
    let m = b.begin_hdr(ty, NLM_F_REQUEST | NLM_F_DUMP, seq);
    b.raw(&[AF_INET]);
    b.raw(&[0; 11][..hdr - 1]);
    finish(b, m)
}

/// Deletes an object by sending back what a dump gave (`RTM_DEL*` of the same payload),
/// as `ip address flush`, `ip route flush` and `ip rule flush` do: exactly that object.
pub fn echo_delete(seq: u32, ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(16 + payload.len());
    let m = b.begin_hdr(ty, NLM_F_REQUEST | NLM_F_ACK, seq);
    b.raw(payload);
    finish(b, m)
}

/// `RTM_NEWADDR` of `net` on link `index` (`ifaddrmsg`, `IFA_LOCAL` and `IFA_ADDRESS`
/// both the address, as `ip address add` sends; scope universe). Replaces an equal one.
pub fn new_addr(seq: u32, index: u32, net: Ipv4Net) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(40);
    let m = b.begin_hdr(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        seq,
    );
    b.raw(&[AF_INET, net.prefix_len(), 0, 0]); // family, prefixlen, flags, scope
    b.raw(&index.to_ne_bytes());
    b.put(IFA_LOCAL, &net.addr().octets());
    b.put(IFA_ADDRESS, &net.addr().octets());
    finish(b, m)
}

/// `RTM_NEWROUTE` (create or replace) of `dst dev <oif> table <table>`: unicast, scope
/// link, protocol boot, as `ip route replace DST dev IF table T` sends.
pub fn new_route(seq: u32, table: u32, dst: Ipv4Net, oif: u32) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(52);
    let m = b.begin_hdr(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        seq,
    );
    // family, dst_len, src_len, tos, table, protocol, scope, type; flags (u32)
    b.raw(&[AF_INET, dst.prefix_len(), 0, 0, table_u8(table)]);
    b.raw(&[RTPROT_BOOT, RT_SCOPE_LINK, RTN_UNICAST]);
    b.raw(&0u32.to_ne_bytes());
    b.put_u32_ne(RTA_TABLE, table);
    b.put(RTA_DST, &dst.network().octets());
    b.put_u32_ne(RTA_OIF, oif);
    finish(b, m)
}

/// `RTM_NEWRULE` of `spec` (fails with EEXIST if an identical rule exists).
pub fn new_rule(seq: u32, r: &RuleSpec) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(80);
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    let m = b.begin_hdr(RTM_NEWRULE, flags, seq);
    let dst_len = r.dst.map_or(0, |d| d.prefix_len());
    // family, dst_len, src_len, tos, table, res1, res2, action; flags (u32)
    b.raw(&[
        AF_INET,
        dst_len,
        0,
        0,
        table_u8(r.table),
        0,
        0,
        FR_ACT_TO_TBL,
    ]);
    let flags = if r.invert { FIB_RULE_INVERT } else { 0 };
    b.raw(&flags.to_ne_bytes());
    b.put_u32_ne(FRA_PRIORITY, r.priority);
    b.put_u32_ne(FRA_TABLE, r.table);
    if let Some((mark, mask)) = r.fwmark {
        b.put_u32_ne(FRA_FWMARK, mark);
        b.put_u32_ne(FRA_FWMASK, mask);
    }
    if let Some(d) = r.dst {
        b.put(FRA_DST, &d.network().octets());
    }
    if let Some(s) = r.suppress_prefixlen {
        b.put_u32_ne(FRA_SUPPRESS_PREFIXLEN, s);
    }
    finish(b, m)
}

/// A link as `RTM_NEWLINK` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    /// `ifi_flags` (`IFF_*`, `linux/if.h`).
    pub flags: u32,
    /// Bytes.
    pub mtu: u32,
    /// `IFLA_INFO_KIND`: none for links without a driver kind (e.g. physical ones).
    pub kind: Option<String>,
}

/// Decodes an `RTM_NEWLINK` payload.
pub fn decode_link(p: &[u8]) -> Option<Link> {
    let index = u32::from_ne_bytes(p.get(4..8)?.try_into().ok()?);
    let flags = u32::from_ne_bytes(p.get(8..12)?.try_into().ok()?);
    let attrs = Attrs(p.get(16..)?);
    Some(Link {
        index,
        flags,
        mtu: attrs.get(IFLA_MTU).and_then(|a| a.u32_ne()).unwrap_or(0),
        kind: attrs
            .get(IFLA_LINKINFO)
            .and_then(|a| a.nested().get(IFLA_INFO_KIND))
            .and_then(|a| a.str())
            .map(str::to_string),
    })
}

fn ipv4(data: &[u8]) -> Option<Ipv4Addr> {
    <[u8; 4]>::try_from(data.get(..4)?).ok().map(Ipv4Addr::from)
}

/// Decodes an IPv4 `RTM_NEWADDR` payload: (link index, address/prefix length).
pub fn decode_addr(p: &[u8]) -> Option<(u32, Ipv4Net)> {
    if *p.first()? != AF_INET {
        return None;
    }
    let len = *p.get(1)?;
    let index = u32::from_ne_bytes(p.get(4..8)?.try_into().ok()?);
    let attrs = Attrs(p.get(8..)?);
    let a = attrs.get(IFA_LOCAL).or_else(|| attrs.get(IFA_ADDRESS))?;
    Some((index, Ipv4Net::new(ipv4(a.data)?, len).ok()?))
}

/// An IPv4 route as `RTM_NEWROUTE` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub table: u32,
    pub dst: Ipv4Net,
    pub oif: Option<u32>,
    /// Unicast, no gateway, one next hop: the shape of the routes we add.
    pub plain: bool,
}

/// Decodes an IPv4 `RTM_NEWROUTE` payload.
pub fn decode_route(p: &[u8]) -> Option<Route> {
    let h = p.get(..12)?;
    if h[0] != AF_INET {
        return None;
    }
    let attrs = Attrs(p.get(12..)?);
    let dst = match attrs.get(RTA_DST) {
        Some(a) => ipv4(a.data)?,
        None => Ipv4Addr::UNSPECIFIED,
    };
    Some(Route {
        table: attrs
            .get(RTA_TABLE)
            .and_then(|a| a.u32_ne())
            .unwrap_or(u32::from(h[4])),
        dst: Ipv4Net::new(dst, h[1]).ok()?,
        oif: attrs.get(RTA_OIF).and_then(|a| a.u32_ne()),
        plain: h[7] == RTN_UNICAST
            && attrs.get(RTA_GATEWAY).is_none()
            && attrs.get(RTA_MULTIPATH).is_none(),
    })
}

/// Decodes an IPv4 `RTM_NEWRULE` payload into the fields we set, and whether it has
/// anything else (another action, source, interface, ports …: not one of ours).
pub fn decode_rule(p: &[u8]) -> Option<(RuleSpec, bool)> {
    let h = p.get(..12)?;
    if h[0] != AF_INET {
        return None;
    }
    let flags = u32::from_ne_bytes(h[8..12].try_into().ok()?);
    let attrs = Attrs(p.get(12..)?);
    let u32_of = |ty| attrs.get(ty).and_then(|a| a.u32_ne());
    let mark = u32_of(FRA_FWMARK);
    let mask = u32_of(FRA_FWMASK);
    let fwmark = match (mark, mask) {
        (None, None) | (None, Some(0)) => None,
        (m, k) => Some((m.unwrap_or(0), k.unwrap_or(u32::MAX))),
    };
    let dst = match attrs.get(FRA_DST) {
        Some(a) => Some(Ipv4Net::new(ipv4(a.data)?, h[1]).ok()?),
        None => None,
    };
    let spec = RuleSpec {
        priority: u32_of(FRA_PRIORITY).unwrap_or(0),
        table: u32_of(FRA_TABLE).unwrap_or(u32::from(h[4])),
        fwmark,
        invert: flags & FIB_RULE_INVERT != 0,
        dst,
        // The kernel reports "unset" as -1.
        suppress_prefixlen: u32_of(FRA_SUPPRESS_PREFIXLEN).filter(|&s| s != u32::MAX),
    };
    let foreign = h[2] != 0
        || h[3] != 0
        || h[7] != FR_ACT_TO_TBL
        || attrs.clone().any(|a| FRA_FOREIGN.contains(&a.ty));
    Some((spec, foreign))
}

#[cfg(test)]
#[rustfmt::skip] // the golden bytes are laid out one field per line, commented
#[path = "rtnl_golden.rs"]
mod golden;
