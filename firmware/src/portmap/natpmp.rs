//! NAT-PMP (RFC 6886) messages: parse and emit over bytes.
//!
//! Sans-IO: [`handle`] takes one datagram and its source address, asks a [`Mapper`] and
//! returns the bytes to send back to the source address and port (§3.1), or None when the
//! datagram is to be ignored. [`announcement`] is the gratuitous public-address response
//! multicast to 224.0.0.1:5350 (§3.2.1). All integers are big-endian.

use std::net::Ipv4Addr;

use super::{Mapper, Proto, Refusal, Unmap, Via};
use crate::config::MacAddr;
use crate::portmap::MapRequest;

/// UDP port the server listens on (RFC 6886 §3.1; shared with PCP).
pub const SERVER_PORT: u16 = 5351;
/// UDP port clients receive announcements on, sent to 224.0.0.1 (§3.2.1).
pub const CLIENT_PORT: u16 = 5350;
/// Opcode of the public address request (§3.2); responses add 128.
pub const OP_PUBLIC_ADDRESS: u8 = 0;
/// Opcode of a UDP mapping request (§3.3).
pub const OP_MAP_UDP: u8 = 1;
/// Opcode of a TCP mapping request (§3.3).
pub const OP_MAP_TCP: u8 = 2;
/// Set in the opcode of every response (§3.1).
const RESPONSE: u8 = 0x80;

/// Result codes (RFC 6886 §3.5), carried as a 16-bit field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u16)]
pub enum ResultCode {
    Success = 0,
    UnsupportedVersion = 1,
    /// Not Authorized/Refused (e.g. mapping switched off or not allowed).
    NotAuthorized = 2,
    /// Network Failure (e.g. the router has no external address).
    NetworkFailure = 3,
    /// Out of resources (no ports left, or the host's quota reached).
    OutOfResources = 4,
    UnsupportedOpcode = 5,
}

impl ResultCode {
    /// The NAT-PMP answer to a [`Refusal`]: there is no "malformed" code, so a request the
    /// mapper finds invalid is refused (2).
    pub fn of(r: &Refusal) -> ResultCode {
        match r {
            Refusal::Quota(_) | Refusal::NoneFree => ResultCode::OutOfResources,
            Refusal::NoExternalAddress | Refusal::Failed(_) | Refusal::NotFound => {
                ResultCode::NetworkFailure
            }
            Refusal::Off
            | Refusal::NotAllowed(_)
            | Refusal::Pending
            | Refusal::OtherHost
            | Refusal::Reserved { .. }
            | Refusal::Conflict { .. }
            | Refusal::NotOwner
            | Refusal::Invalid(_) => ResultCode::NotAuthorized,
        }
    }
}

/// A well-formed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// `[0][0]` (§3.2): 2 bytes.
    PublicAddress,
    /// `[0][1 = UDP | 2 = TCP][reserved u16][internal port u16][suggested external port
    /// u16][requested lifetime u32, s]` (§3.3): 12 bytes. Lifetime 0 deletes (§3.4).
    Map {
        proto: Proto,
        internal_port: u16,
        external_port: u16,
        lifetime_secs: u32,
    },
}

/// Why a datagram is not a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Silently ignored: a response (opcode ≥ 128) or too short.
    Ignore,
    /// Version is not 0: answered with result 1 (§3.5).
    Version { opcode: u8 },
    /// Opcode below 128 but not 0, 1 or 2: the request comes back with result 5 (§3.5).
    Opcode,
}

/// Big-endian u16 at byte `at`; None past the end.
pub(super) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Big-endian u32 at byte `at`; None past the end.
pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Parses one request (RFC 6886 §3.2, §3.3). Bytes past a request's length are ignored.
pub fn parse(msg: &[u8]) -> Result<Request, Reject> {
    let (&vers, &op) = match msg {
        [v, o, ..] => (v, o),
        _ => return Err(Reject::Ignore),
    };
    if op >= RESPONSE {
        return Err(Reject::Ignore);
    }
    if vers != 0 {
        return Err(Reject::Version { opcode: op });
    }
    let proto = match op {
        OP_PUBLIC_ADDRESS => return Ok(Request::PublicAddress),
        OP_MAP_UDP => Proto::Udp,
        OP_MAP_TCP => Proto::Tcp,
        _ => return Err(Reject::Opcode),
    };
    match (be16(msg, 4), be16(msg, 6), be32(msg, 8)) {
        (Some(internal_port), Some(external_port), Some(lifetime_secs)) => Ok(Request::Map {
            proto,
            internal_port,
            external_port,
            lifetime_secs,
        }),
        _ => Err(Reject::Ignore),
    }
}

/// Common response header: `[0][128 + op][result u16][epoch u32, s]` (§3.2, §3.3).
fn header(op: u8, result: ResultCode, epoch: u32, cap: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(cap);
    out.extend_from_slice(&[0, op | RESPONSE]);
    out.extend_from_slice(&(result as u16).to_be_bytes());
    out.extend_from_slice(&epoch.to_be_bytes());
    out
}

/// Public address response (§3.2): header then the external IPv4 address (0.0.0.0 with
/// result 3 when the router has none); 12 bytes.
pub fn public_address(addr: Option<Ipv4Addr>, epoch: u32) -> Vec<u8> {
    let result = match addr {
        Some(_) => ResultCode::Success,
        None => ResultCode::NetworkFailure,
    };
    let mut out = header(OP_PUBLIC_ADDRESS, result, epoch, 12);
    out.extend_from_slice(&addr.unwrap_or(Ipv4Addr::UNSPECIFIED).octets());
    out
}

/// Mapping response (§3.3): header, internal port u16, mapped external port u16, lifetime
/// u32 in seconds; 16 bytes.
pub fn map_response(
    proto: Proto,
    result: ResultCode,
    epoch: u32,
    internal_port: u16,
    external_port: u16,
    lifetime_secs: u32,
) -> Vec<u8> {
    let op = match proto {
        Proto::Udp => OP_MAP_UDP,
        Proto::Tcp => OP_MAP_TCP,
    };
    let mut out = header(op, result, epoch, 16);
    out.extend_from_slice(&internal_port.to_be_bytes());
    out.extend_from_slice(&external_port.to_be_bytes());
    out.extend_from_slice(&lifetime_secs.to_be_bytes());
    out
}

/// The gratuitous announcement multicast to 224.0.0.1:5350 at start and when the
/// external address changes (§3.2.1): a public address response, or None while the router
/// has no external address.
pub fn announcement(addr: Option<Ipv4Addr>, epoch: u32) -> Option<Vec<u8>> {
    addr.map(|a| public_address(Some(a), epoch))
}

/// Answers one datagram from `client` (its source address; the caller sends the reply to
/// the source address and port, §3.1). None: send nothing.
///
/// A mapping request asks the mapper for `client`'s own port (never a third party's);
/// lifetime 0 deletes the mapping of that internal port, and with internal port 0 too
/// every NAT-PMP mapping of `client` of that protocol (§3.4). Deleting what does not exist
/// succeeds.
pub fn handle(
    msg: &[u8],
    client: Ipv4Addr,
    mac: Option<MacAddr>,
    mapper: &dyn Mapper,
) -> Option<Vec<u8>> {
    let req = match parse(msg) {
        Ok(r) => r,
        Err(Reject::Ignore) => return None,
        Err(Reject::Version { opcode }) => {
            // §3.5: version 0, the request's opcode + 128, result 1, epoch: 8 bytes.
            return Some(header(
                opcode,
                ResultCode::UnsupportedVersion,
                mapper.epoch_secs(),
                8,
            ));
        }
        Err(Reject::Opcode) => {
            // §3.5: the entire request comes back with the top bit of the opcode set and
            // result 5 (the caller bounds `msg` to one datagram).
            let mut out = msg.to_vec();
            out.resize(out.len().max(4), 0);
            if let Some(op) = out.get_mut(1) {
                *op |= RESPONSE;
            }
            if let Some(rc) = out.get_mut(2..4) {
                rc.copy_from_slice(&(ResultCode::UnsupportedOpcode as u16).to_be_bytes());
            }
            return Some(out);
        }
    };
    let Request::Map {
        proto,
        internal_port,
        external_port,
        lifetime_secs,
    } = req
    else {
        return Some(public_address(mapper.external().addr, mapper.epoch_secs()));
    };
    let (result, external_port, lifetime_secs) = if lifetime_secs == 0 {
        let unmap = if internal_port == 0 {
            Unmap::AllOfClient {
                via: Via::Natpmp,
                client,
                proto: Some(proto),
            }
        } else {
            Unmap::Internal {
                via: Via::Natpmp,
                client,
                proto,
                internal_port,
                nonce: None,
            }
        };
        match mapper.unmap(unmap) {
            Ok(_) | Err(Refusal::NotFound) => (ResultCode::Success, 0, 0),
            Err(r) => (ResultCode::of(&r), 0, 0),
        }
    } else if internal_port == 0 {
        (ResultCode::NotAuthorized, 0, 0)
    } else {
        let req = MapRequest {
            via: Via::Natpmp,
            client,
            mac,
            internal_client: client,
            proto,
            external_port,
            exact: false,
            internal_port,
            lifetime_secs,
            description: String::new(),
            remote_host: None,
            nonce: None,
        };
        match mapper.map(req) {
            Ok(g) => (
                ResultCode::Success,
                g.mapping.external_port,
                g.lifetime_secs,
            ),
            Err(r) => (ResultCode::of(&r), 0, 0),
        }
    };
    Some(map_response(
        proto,
        result,
        mapper.epoch_secs(),
        internal_port,
        external_port,
        lifetime_secs,
    ))
}

#[cfg(test)]
#[path = "natpmp_tests.rs"]
mod tests;
