//! Generic netlink: the family lookup (`linux/genetlink.h`) and the WireGuard family's
//! two commands (`linux/wireguard.h`): `WG_CMD_SET_DEVICE` and the `WG_CMD_GET_DEVICE`
//! dump, on a synchronous `NETLINK_GENERIC` socket. All numbers are host byte order.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};

use super::key::Key;
use super::nl::{Nl, NETLINK_GENERIC};
use super::tunnel::{PeerState, TunnelError, WgDevice};
use crate::config::Ipv4Net;
use crate::nft::uapi::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::nft::wire::{Attrs, MsgBuf};

// linux/genetlink.h
pub const GENL_ID_CTRL: u16 = 0x10;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;
// linux/wireguard.h
pub const WG_GENL_NAME: &str = "wireguard";
pub const WG_GENL_VERSION: u8 = 1;
pub const WG_CMD_GET_DEVICE: u8 = 0;
pub const WG_CMD_SET_DEVICE: u8 = 1;
pub const WGDEVICE_F_REPLACE_PEERS: u32 = 1;
pub const WGDEVICE_A_IFNAME: u16 = 2;
pub const WGDEVICE_A_PRIVATE_KEY: u16 = 3;
pub const WGDEVICE_A_PUBLIC_KEY: u16 = 4;
pub const WGDEVICE_A_FLAGS: u16 = 5;
pub const WGDEVICE_A_LISTEN_PORT: u16 = 6;
pub const WGDEVICE_A_FWMARK: u16 = 7;
pub const WGDEVICE_A_PEERS: u16 = 8;
pub const WGPEER_F_REPLACE_ALLOWEDIPS: u32 = 2;
pub const WGPEER_A_PUBLIC_KEY: u16 = 1;
pub const WGPEER_A_PRESHARED_KEY: u16 = 2;
pub const WGPEER_A_FLAGS: u16 = 3;
pub const WGPEER_A_ENDPOINT: u16 = 4;
pub const WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL: u16 = 5;
pub const WGPEER_A_LAST_HANDSHAKE_TIME: u16 = 6;
pub const WGPEER_A_RX_BYTES: u16 = 7;
pub const WGPEER_A_TX_BYTES: u16 = 8;
pub const WGPEER_A_ALLOWEDIPS: u16 = 9;
pub const WGALLOWEDIP_A_FAMILY: u16 = 1;
pub const WGALLOWEDIP_A_IPADDR: u16 = 2;
pub const WGALLOWEDIP_A_CIDR_MASK: u16 = 3;
/// `linux/socket.h`.
const AF_INET: u16 = 2;

/// `nlmsghdr` + `genlmsghdr` (cmd, version, reserved u16).
fn begin(
    b: &mut MsgBuf,
    family: u16,
    flags: u16,
    seq: u32,
    cmd: u8,
    version: u8,
) -> crate::nft::wire::Mark {
    let m = b.begin_hdr(family, flags, seq);
    b.raw(&[cmd, version, 0, 0]);
    m
}

/// `CTRL_CMD_GETFAMILY` of family `name` (answered by one `CTRL_CMD_NEWFAMILY`, or ENOENT).
pub fn get_family(seq: u32, name: &str) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(36);
    let m = begin(
        &mut b,
        GENL_ID_CTRL,
        NLM_F_REQUEST,
        seq,
        CTRL_CMD_GETFAMILY,
        1,
    );
    b.put_strz(CTRL_ATTR_FAMILY_NAME, name);
    b.end(m);
    b.buf
}

/// The family id in a `CTRL_CMD_NEWFAMILY` payload (after `genlmsghdr`).
pub fn decode_family_id(p: &[u8]) -> Option<u16> {
    Attrs(p.get(4..)?).get(CTRL_ATTR_FAMILY_ID)?.u16_ne()
}

/// `struct sockaddr_in` (16 bytes: family host order, port and address network order,
/// 8 zero bytes), as `WGPEER_A_ENDPOINT` takes it.
fn sockaddr_in(a: SocketAddrV4) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..2].copy_from_slice(&AF_INET.to_ne_bytes());
    s[2..4].copy_from_slice(&a.port().to_be_bytes());
    s[4..8].copy_from_slice(&a.ip().octets());
    s
}

/// `WG_CMD_SET_DEVICE` for device `ifname`: private key, listen port (only when given:
/// none keeps the kernel's), fwmark, and the one peer with its preshared key (the zero
/// key clears it), endpoint, persistent keepalive (0 = off) and allowed IPs (replacing
/// the old ones). `replace_peers` sets `WGDEVICE_F_REPLACE_PEERS`, removing every other
/// peer (and, the kernel removing all first, this one's session too).
pub fn set_device(
    seq: u32,
    family: u16,
    ifname: &str,
    d: &WgDevice,
    replace_peers: bool,
) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(256);
    let flags = NLM_F_REQUEST | NLM_F_ACK;
    let m = begin(
        &mut b,
        family,
        flags,
        seq,
        WG_CMD_SET_DEVICE,
        WG_GENL_VERSION,
    );
    b.put_strz(WGDEVICE_A_IFNAME, ifname);
    b.put(WGDEVICE_A_PRIVATE_KEY, &d.private_key.0);
    if let Some(port) = d.listen_port {
        b.put_u16_ne(WGDEVICE_A_LISTEN_PORT, port);
    }
    b.put_u32_ne(WGDEVICE_A_FWMARK, d.fwmark);
    b.put_u32_ne(
        WGDEVICE_A_FLAGS,
        if replace_peers {
            WGDEVICE_F_REPLACE_PEERS
        } else {
            0
        },
    );
    let peers = b.nest(WGDEVICE_A_PEERS);
    let peer = b.nest(0);
    let p = &d.peer;
    b.put(WGPEER_A_PUBLIC_KEY, &p.public_key.0);
    b.put(
        WGPEER_A_PRESHARED_KEY,
        &p.preshared_key.map_or([0; 32], |k| k.0),
    );
    b.put_u32_ne(WGPEER_A_FLAGS, WGPEER_F_REPLACE_ALLOWEDIPS);
    b.put(WGPEER_A_ENDPOINT, &sockaddr_in(p.endpoint));
    b.put_u16_ne(
        WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
        p.keepalive.unwrap_or(0),
    );
    let ips = b.nest(WGPEER_A_ALLOWEDIPS);
    for net in &p.allowed_ips {
        let ip = b.nest(0);
        b.put_u16_ne(WGALLOWEDIP_A_FAMILY, AF_INET);
        b.put(WGALLOWEDIP_A_IPADDR, &net.addr().octets());
        b.put_u8(WGALLOWEDIP_A_CIDR_MASK, net.prefix_len());
        b.end_nest(ip);
    }
    b.end_nest(ips);
    b.end_nest(peer);
    b.end_nest(peers);
    b.end(m);
    b.buf
}

/// `WG_CMD_GET_DEVICE` dump of device `ifname`.
pub fn get_device(seq: u32, family: u16, ifname: &str) -> Vec<u8> {
    let mut b = MsgBuf::with_capacity(36);
    let flags = NLM_F_REQUEST | NLM_F_DUMP;
    let m = begin(
        &mut b,
        family,
        flags,
        seq,
        WG_CMD_GET_DEVICE,
        WG_GENL_VERSION,
    );
    b.put_strz(WGDEVICE_A_IFNAME, ifname);
    b.end(m);
    b.buf
}

/// What `WG_CMD_GET_DEVICE` says about a device (merged over the dump's messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceState {
    pub public_key: Option<Key>,
    pub listen_port: u16,
    pub fwmark: u32,
    pub peers: Vec<PeerState>,
}

fn key(data: &[u8]) -> Option<Key> {
    data.try_into().ok().map(Key)
}

/// `WGPEER_A_ENDPOINT`: a `sockaddr_in`; a `sockaddr_in6` (or anything else) is none.
fn decode_endpoint(d: &[u8]) -> Option<SocketAddrV4> {
    if d.len() < 8 || u16::from_ne_bytes([d[0], d[1]]) != AF_INET {
        return None;
    }
    let ip = Ipv4Addr::new(d[4], d[5], d[6], d[7]);
    Some(SocketAddrV4::new(ip, u16::from_be_bytes([d[2], d[3]])))
}

fn decode_allowed_ip(a: Attrs<'_>) -> Option<Ipv4Net> {
    if a.get(WGALLOWEDIP_A_FAMILY)?.u16_ne()? != AF_INET {
        return None;
    }
    let ip: [u8; 4] = a
        .get(WGALLOWEDIP_A_IPADDR)?
        .data
        .get(..4)?
        .try_into()
        .ok()?;
    Ipv4Net::new(Ipv4Addr::from(ip), a.get(WGALLOWEDIP_A_CIDR_MASK)?.u8()?).ok()
}

/// Folds one `WGPEER_A_*` nest into `peers`: a peer whose allowed IPs did not fit one
/// message comes again in the next with its public key and the rest of its allowed IPs.
fn merge_peer(peers: &mut Vec<PeerState>, a: Attrs<'_>) {
    let Some(pk) = a.get(WGPEER_A_PUBLIC_KEY).and_then(|k| key(k.data)) else {
        return;
    };
    let i = match peers.iter().position(|p| p.public_key == pk) {
        Some(i) => i,
        None => {
            peers.push(PeerState {
                public_key: pk,
                endpoint: None,
                last_handshake_unix_secs: None,
                rx_bytes: 0,
                tx_bytes: 0,
                allowed_ips: Vec::new(),
                keepalive: 0,
            });
            peers.len() - 1
        }
    };
    let Some(p) = peers.get_mut(i) else { return };
    for attr in a {
        match attr.ty {
            WGPEER_A_ENDPOINT => p.endpoint = decode_endpoint(attr.data),
            WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL => p.keepalive = attr.u16_ne().unwrap_or(0),
            // struct __kernel_timespec { s64 tv_sec; s64 tv_nsec; }: 0 = never.
            WGPEER_A_LAST_HANDSHAKE_TIME => {
                p.last_handshake_unix_secs = attr.u64_ne().filter(|&s| s != 0 && s < 1 << 63);
            }
            WGPEER_A_RX_BYTES => p.rx_bytes = attr.u64_ne().unwrap_or(0),
            WGPEER_A_TX_BYTES => p.tx_bytes = attr.u64_ne().unwrap_or(0),
            WGPEER_A_ALLOWEDIPS => {
                p.allowed_ips.extend(
                    attr.nested()
                        .filter_map(|ip| decode_allowed_ip(ip.nested())),
                );
            }
            _ => {}
        }
    }
}

/// Folds one `WG_CMD_GET_DEVICE` reply payload (after `nlmsghdr`) into `dev`.
pub fn merge_device(dev: &mut DeviceState, p: &[u8]) {
    let Some(attrs) = p.get(4..).map(Attrs) else {
        return;
    };
    for a in attrs {
        match a.ty {
            WGDEVICE_A_PUBLIC_KEY => dev.public_key = key(a.data),
            WGDEVICE_A_LISTEN_PORT => dev.listen_port = a.u16_ne().unwrap_or(0),
            WGDEVICE_A_FWMARK => dev.fwmark = a.u32_ne().unwrap_or(0),
            WGDEVICE_A_PEERS => {
                for peer in a.nested() {
                    merge_peer(&mut dev.peers, peer.nested());
                }
            }
            _ => {}
        }
    }
}

/// An open `NETLINK_GENERIC` socket with the WireGuard family's id (looked up once).
pub struct Wg {
    nl: Nl,
    family: u16,
}

impl Wg {
    /// Opens the socket and looks the `wireguard` family up; a kernel without it gives
    /// [`TunnelError::NoWireGuard`].
    pub fn open() -> Result<Wg, TunnelError> {
        let mut nl = Nl::open(NETLINK_GENERIC).map_err(|source| TunnelError::Open {
            protocol: "NETLINK_GENERIC",
            source,
        })?;
        let seq = nl.next_seq();
        let family = match nl.request_one(&get_family(seq, WG_GENL_NAME), seq) {
            Ok(p) => decode_family_id(&p).ok_or_else(|| TunnelError::Family {
                source: io::Error::new(io::ErrorKind::InvalidData, "no CTRL_ATTR_FAMILY_ID"),
            })?,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => {
                return Err(TunnelError::NoWireGuard)
            }
            Err(source) => return Err(TunnelError::Family { source }),
        };
        Ok(Wg { nl, family })
    }

    /// Sends `WG_CMD_SET_DEVICE` (see [`set_device`]).
    pub fn set_device(
        &mut self,
        ifname: &str,
        d: &WgDevice,
        replace_peers: bool,
    ) -> Result<(), TunnelError> {
        let seq = self.nl.next_seq();
        let req = set_device(seq, self.family, ifname, d, replace_peers);
        self.nl
            .request(&req, seq, |_| Ok(()))
            .map_err(|source| TunnelError::SetDevice {
                ifname: ifname.to_string(),
                source,
            })
    }

    /// Reads device `ifname` (`WG_CMD_GET_DEVICE`), merging a split answer.
    pub fn device(&mut self, ifname: &str) -> Result<DeviceState, TunnelError> {
        let seq = self.nl.next_seq();
        let req = get_device(seq, self.family, ifname);
        let mut dev = DeviceState::default();
        self.nl
            .request(&req, seq, |p| {
                merge_device(&mut dev, p);
                Ok(())
            })
            .map_err(|source| TunnelError::GetDevice {
                ifname: ifname.to_string(),
                source,
            })?;
        Ok(dev)
    }
}

#[cfg(test)]
#[rustfmt::skip] // the golden bytes are laid out one field per line, commented
#[path = "genl_golden.rs"]
mod golden;
