//! PCP (RFC 6887) MAP and ANNOUNCE messages for IPv4: parse and emit over bytes.
//!
//! Sans-IO: [`handle`] takes one datagram and its UDP source address, asks a [`Mapper`]
//! and returns the response to send back to the source address and port, or None to
//! ignore it. [`announcement`] is the unsolicited ANNOUNCE multicast after a restart
//! (§14.1.3). Addresses on the wire are 16 bytes, IPv4 as IPv4-mapped IPv6
//! (`::ffff:a.b.c.d`); integers are big-endian.
//!
//! Supported: opcodes ANNOUNCE (0) and MAP (1), protocols TCP and UDP (and protocol 0 for
//! deleting all of a host's mappings), options PREFER_FAILURE and FILTER for one remote
//! host (/32, any port). THIRD_PARTY is refused with UNSUPP_OPTION (a host may only map
//! ports to itself).

use std::net::Ipv4Addr;

use super::natpmp::{be16, be32};
use super::{MapRequest, Mapper, Nonce, Proto, Refusal, Unmap, Via};
use crate::config::MacAddr;

/// The protocol version this server speaks (§9). NAT-PMP is version 0.
pub const VERSION: u8 = 2;
/// ANNOUNCE opcode (§14.1).
pub const OP_ANNOUNCE: u8 = 0;
/// MAP opcode (§11).
pub const OP_MAP: u8 = 1;
/// Longest request or response, bytes (§7).
pub const MAX_LEN: usize = 1100;
/// The R bit of the opcode byte: set in responses (§7.1, §7.2).
const RESPONSE: u8 = 0x80;
/// Request and response header length, bytes (§7.1, §7.2).
const HEADER_LEN: usize = 24;
/// MAP opcode-specific data length, bytes (§11.1).
const MAP_LEN: usize = 36;
/// Option codes (§7.3, §13): 0–127 must be understood, 128–255 may be ignored.
const OPT_THIRD_PARTY: u8 = 1;
const OPT_PREFER_FAILURE: u8 = 2;
const OPT_FILTER: u8 = 3;
/// Lifetime of short-lived and long-lived errors, seconds (§7.2, §15).
const SHORT_ERROR_SECS: u32 = 30;
const LONG_ERROR_SECS: u32 = 1800;

/// Result codes (RFC 6887 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ResultCode {
    Success = 0,
    UnsuppVersion = 1,
    NotAuthorized = 2,
    MalformedRequest = 3,
    UnsuppOpcode = 4,
    UnsuppOption = 5,
    MalformedOption = 6,
    NetworkFailure = 7,
    NoResources = 8,
    UnsuppProtocol = 9,
    UserExQuota = 10,
    CannotProvideExternal = 11,
    AddressMismatch = 12,
}

impl ResultCode {
    /// How long the client should take an error as valid, seconds (§7.4 names each code
    /// short- or long-lived; §15 suggests 30 s and 30 min).
    pub fn error_lifetime_secs(self) -> u32 {
        match self {
            ResultCode::NetworkFailure
            | ResultCode::NoResources
            | ResultCode::UserExQuota
            | ResultCode::CannotProvideExternal => SHORT_ERROR_SECS,
            _ => LONG_ERROR_SECS,
        }
    }

    /// The PCP answer to a [`Refusal`]; `exact`: the client sent PREFER_FAILURE.
    pub fn of(r: &Refusal, exact: bool) -> ResultCode {
        match r {
            Refusal::Reserved { .. } | Refusal::Conflict { .. } => {
                ResultCode::CannotProvideExternal
            }
            Refusal::NoneFree if exact => ResultCode::CannotProvideExternal,
            Refusal::NoneFree => ResultCode::NoResources,
            Refusal::Quota(_) => ResultCode::UserExQuota,
            Refusal::Invalid(_) => ResultCode::MalformedRequest,
            Refusal::NoExternalAddress | Refusal::Failed(_) | Refusal::NotFound => {
                ResultCode::NetworkFailure
            }
            Refusal::Off
            | Refusal::NotAllowed(_)
            | Refusal::Pending
            | Refusal::OtherHost
            | Refusal::NotOwner => ResultCode::NotAuthorized,
        }
    }
}

/// An IPv4 address as the 16-byte IPv4-mapped IPv6 form PCP carries (§5).
fn mapped(a: Ipv4Addr) -> [u8; 16] {
    a.to_ipv6_mapped().octets()
}

/// The IPv4 address in a 16-byte IPv4-mapped field; None for anything else.
fn unmapped(b: &[u8]) -> Option<Ipv4Addr> {
    match b {
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => {
            Some(Ipv4Addr::new(*a, *b, *c, *d))
        }
        _ => None,
    }
}

/// The response header (§7.2): `[2][R=1 | opcode][reserved 0][result][lifetime u32,
/// s][epoch u32, s][96 bits reserved]`, 24 bytes.
fn header(out: &mut [u8; HEADER_LEN], op: u8, result: ResultCode, life: u32, epoch: u32) {
    *out = [0; HEADER_LEN];
    out[0] = VERSION;
    out[1] = op | RESPONSE;
    out[3] = result as u8;
    out[4..8].copy_from_slice(&life.to_be_bytes());
    out[8..12].copy_from_slice(&epoch.to_be_bytes());
}

/// An error response: the request (at most [`MAX_LEN`] bytes, zero-padded to at least a
/// header and a multiple of 4) with a response header over its first 24 bytes; "fields
/// copied from the request" as §7.2 / §8.3 ask.
fn error(msg: &[u8], op: u8, result: ResultCode, life: u32, epoch: u32) -> Vec<u8> {
    let mut out = msg.get(..MAX_LEN).unwrap_or(msg).to_vec();
    let len = out.len().max(HEADER_LEN).next_multiple_of(4).min(MAX_LEN);
    out.resize(len, 0);
    let mut h = [0; HEADER_LEN];
    header(&mut h, op, result, life, epoch);
    out[..HEADER_LEN].copy_from_slice(&h);
    out
}

/// The unsolicited ANNOUNCE response (§14.1.3) multicast to 224.0.0.1:5350 when the
/// server starts or its mappings were lost: SUCCESS, lifetime 0, the epoch; 24 bytes.
pub fn announcement(epoch: u32) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    header(&mut h, OP_ANNOUNCE, ResultCode::Success, 0, epoch);
    h
}

/// The options of a request this server acts on (§7.3, §13).
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    /// PREFER_FAILURE (§13.2): only the suggested external port will do.
    prefer_failure: bool,
    /// FILTER (§13.3) for one remote host, any port.
    filter: Option<Ipv4Addr>,
}

/// Reads the options after the opcode-specific data: each `[code][reserved][length u16]`
/// then `length` bytes zero-padded to a multiple of 4 (§7.3).
fn options(mut b: &[u8]) -> Result<Options, ResultCode> {
    let mut o = Options::default();
    while let [code, _, l0, l1, rest @ ..] = b {
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let data = rest.get(..len).ok_or(ResultCode::MalformedOption)?;
        b = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        match *code {
            // Mappings for another host are not offered (secure mode).
            OPT_THIRD_PARTY => return Err(ResultCode::UnsuppOption),
            OPT_PREFER_FAILURE if len != 0 || o.prefer_failure => {
                return Err(ResultCode::MalformedOption)
            }
            OPT_PREFER_FAILURE => o.prefer_failure = true,
            // `[reserved][prefix length][remote port u16][remote address 16 bytes]`; the
            // prefix length counts IPv6 bits, so an IPv4 /32 is 128 and 0 = no filter.
            OPT_FILTER => {
                let (prefix, port) = match data {
                    [_, p, a, b, ..] if len == 20 => (*p, u16::from_be_bytes([*a, *b])),
                    _ => return Err(ResultCode::MalformedOption),
                };
                let ip = data.get(4..).and_then(unmapped);
                match (prefix, ip) {
                    (0, _) => {}
                    (96..=128, Some(ip)) if prefix == 128 && port == 0 && o.filter.is_none() => {
                        o.filter = Some(ip)
                    }
                    (96..=128, Some(_)) => return Err(ResultCode::UnsuppOption),
                    _ => return Err(ResultCode::MalformedOption),
                }
            }
            c if c < 128 => return Err(ResultCode::UnsuppOption),
            _ => {}
        }
    }
    Ok(o)
}

/// A MAP response (§11.1): header, then `[nonce 12][protocol][reserved 3][internal port
/// u16][assigned external port u16][assigned external address 16]`, then the options
/// acted on.
fn map_response(
    map: &[u8],
    life: u32,
    epoch: u32,
    port: u16,
    ext: Option<Ipv4Addr>,
    o: &Options,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + MAP_LEN + 28);
    let mut h = [0; HEADER_LEN];
    header(&mut h, OP_MAP, ResultCode::Success, life, epoch);
    out.extend_from_slice(&h);
    out.extend_from_slice(map.get(..18).unwrap_or_default());
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&mapped(ext.unwrap_or(Ipv4Addr::UNSPECIFIED)));
    if o.prefer_failure {
        out.extend_from_slice(&[OPT_PREFER_FAILURE, 0, 0, 0]);
    }
    if let Some(ip) = o.filter {
        out.extend_from_slice(&[OPT_FILTER, 0, 0, 20, 0, 128, 0, 0]);
        out.extend_from_slice(&mapped(ip));
    }
    out
}

/// Answers one datagram from `src` (its UDP source address). None: send nothing (too
/// short, or a response). Checks in the order of §8.3: version, length (24..=1100, a
/// multiple of 4), the client address field against `src` (ADDRESS_MISMATCH), opcode,
/// then the opcode's data and options.
///
/// MAP with a lifetime asks the mapper for `src`'s own port (`exact` with
/// PREFER_FAILURE); lifetime 0 deletes the mapping of that internal port and nonce, or
/// with internal port 0 all of `src`'s PCP mappings of the protocol (protocol 0: both).
/// Deleting what does not exist succeeds (§15).
pub fn handle(
    msg: &[u8],
    src: Ipv4Addr,
    mac: Option<MacAddr>,
    mapper: &dyn Mapper,
) -> Option<Vec<u8>> {
    let (&version, &op) = match msg {
        [v, o, ..] if o & RESPONSE == 0 => (v, o),
        _ => return None,
    };
    let epoch = mapper.epoch_secs();
    let fail =
        |result: ResultCode| Some(error(msg, op, result, result.error_lifetime_secs(), epoch));
    if version != VERSION {
        return fail(ResultCode::UnsuppVersion);
    }
    if msg.len() < HEADER_LEN || msg.len() > MAX_LEN || !msg.len().is_multiple_of(4) {
        return fail(ResultCode::MalformedRequest);
    }
    if msg.get(8..HEADER_LEN).and_then(unmapped) != Some(src) {
        return fail(ResultCode::AddressMismatch);
    }
    let lifetime = be32(msg, 4).unwrap_or_default();
    let (map, opts) = match op {
        OP_ANNOUNCE => {
            if let Err(e) = options(msg.get(HEADER_LEN..).unwrap_or_default()) {
                return fail(e);
            }
            // §14.1: SUCCESS with lifetime 0 and the epoch, so the client learns of a restart.
            return Some(announcement(epoch).to_vec());
        }
        OP_MAP => match msg.get(HEADER_LEN..HEADER_LEN + MAP_LEN) {
            Some(map) => (map, msg.get(HEADER_LEN + MAP_LEN..).unwrap_or_default()),
            None => return fail(ResultCode::MalformedRequest),
        },
        _ => return fail(ResultCode::UnsuppOpcode),
    };
    let opts = match options(opts) {
        Ok(o) => o,
        Err(e) => return fail(e),
    };
    let mut nonce: Nonce = [0; 12];
    nonce.copy_from_slice(map.get(..12).unwrap_or(&[0; 12]));
    let proto_number = map.get(12).copied().unwrap_or_default();
    let internal_port = be16(map, 16).unwrap_or_default();
    let suggested_port = be16(map, 18).unwrap_or_default();
    let suggested_ip = map.get(20..MAP_LEN).unwrap_or_default();
    // §11.1: protocol 0 means all protocols, and then the internal port must be 0.
    if proto_number == 0 && internal_port != 0 {
        return fail(ResultCode::MalformedRequest);
    }
    let proto = match proto_number {
        0 => None,
        n => match Proto::from_number(n) {
            Some(p) => Some(p),
            None => return fail(ResultCode::UnsuppProtocol),
        },
    };
    let ext = mapper.external().addr;
    if lifetime == 0 {
        let unmap = match proto {
            Some(proto) if internal_port != 0 => Unmap::Internal {
                via: Via::Pcp,
                client: src,
                proto,
                internal_port,
                nonce: Some(nonce),
            },
            _ => Unmap::AllOfClient {
                via: Via::Pcp,
                client: src,
                proto,
            },
        };
        return match mapper.unmap(unmap) {
            Ok(gone) => {
                let port = gone.first().map(|m| m.external_port).unwrap_or_default();
                Some(map_response(map, 0, epoch, port, ext, &opts))
            }
            Err(Refusal::NotFound) => Some(map_response(map, 0, epoch, 0, ext, &opts)),
            Err(r) => fail(ResultCode::of(&r, false)),
        };
    }
    // A mapping of all protocols or all ports is not offered.
    let Some(proto) = proto else {
        return fail(ResultCode::UnsuppProtocol);
    };
    if internal_port == 0 {
        return fail(ResultCode::NotAuthorized);
    }
    if opts.prefer_failure {
        // §13.2: PREFER_FAILURE asks for exactly the suggested port and address.
        if suggested_port == 0 {
            return fail(ResultCode::MalformedOption);
        }
        let any_ip = suggested_ip.iter().all(|&b| b == 0)
            || unmapped(suggested_ip) == Some(Ipv4Addr::UNSPECIFIED);
        if !any_ip && (unmapped(suggested_ip) != ext || ext.is_none()) {
            return fail(ResultCode::CannotProvideExternal);
        }
    }
    let req = MapRequest {
        via: Via::Pcp,
        client: src,
        mac,
        internal_client: src,
        proto,
        external_port: suggested_port,
        exact: opts.prefer_failure,
        internal_port,
        lifetime_secs: lifetime,
        description: String::new(),
        remote_host: opts.filter,
        nonce: Some(nonce),
    };
    match mapper.map(req) {
        Ok(g) => Some(map_response(
            map,
            g.lifetime_secs,
            epoch,
            g.mapping.external_port,
            ext,
            &opts,
        )),
        // Waiting for the owner: ask again soon rather than in half an hour.
        Err(Refusal::Pending) => Some(error(
            msg,
            op,
            ResultCode::NotAuthorized,
            SHORT_ERROR_SECS,
            epoch,
        )),
        Err(r) => fail(ResultCode::of(&r, opts.prefer_failure)),
    }
}

#[cfg(test)]
#[path = "pcp_tests.rs"]
mod tests;
