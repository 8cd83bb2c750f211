//! A tiny IPv4 host-name resolver for the provider file's `Endpoint = host:port`
//! (issue 9): an IPv4 literal, `localhost`, `/etc/hosts`, else one DNS A query
//! (RFC 1035) over UDP to the nameservers of `/etc/resolv.conf`.
//!
//! Why not `std::net::ToSocketAddrs`: it links musl's getaddrinfo, resolver and stdio,
//! +38 KB on the static mipsel binary (docs/decisions.md). This one does only what the
//! import needs: no caching, no search domains, no IPv6, no TCP, no EDNS.
//!
//! The codec ([`query`], [`answer`]) is sans-IO; [`resolve_with`] is the testable core
//! (file texts and the datagram exchange are arguments); [`resolve_ipv4`] is the shell.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// How long one query waits for its answer (per nameserver, per round).
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// How many times the list of nameservers is tried in turn.
pub const ROUNDS: usize = 2;
/// How many `nameserver` lines of resolv.conf are used (glibc's and musl's `MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// The DNS port (RFC 1035 §4.2.1).
pub const PORT: u16 = 53;
/// Bytes read of a UDP answer: a server without EDNS sends at most 512 (RFC 1035
/// §4.2.1); more is read so that a longer datagram is seen whole rather than cut.
pub const MAX_ANSWER: usize = 1500;
/// Longest host name in presentation form, without the final dot (RFC 1035 §2.3.4
/// gives 255 bytes on the wire).
pub const MAX_NAME: usize = 253;
/// CNAME links followed within one answer.
const MAX_CNAMES: usize = 8;
/// Bytes read of `/etc/hosts` and `/etc/resolv.conf`.
const MAX_FILE: u64 = 64 * 1024;

/// One DNS exchange: `(server, query)` → the answer datagram whose id matches, or
/// `None` (timeout, unreachable); [`udp_exchange`] is the real one.
pub type Exchange<'a> = dyn FnMut(SocketAddrV4, &[u8]) -> Option<Vec<u8>> + 'a;

/// Why a host name did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name is not a host name (RFC 1123 §2.1 letters, digits, `-`, plus `_`).
    #[error("`{host}` is not a host name: {reason}")]
    BadName { host: String, reason: &'static str },
    /// resolv.conf names no IPv4 nameserver.
    #[error("no IPv4 nameserver in /etc/resolv.conf")]
    NoNameserver,
    /// The name exists but has no A record.
    #[error("{host}: the name has no IPv4 address (no A record)")]
    NoAnswer { host: String },
    /// RCODE 3, NXDOMAIN (RFC 1035 §4.1.1).
    #[error("{host}: no such domain (NXDOMAIN)")]
    NxDomain { host: String },
    /// Another non-zero RCODE (2 SERVFAIL, 5 REFUSED, …) from every nameserver tried.
    #[error("{host}: the nameserver answered RCODE {rcode}")]
    Failed { host: String, rcode: u8 },
    /// The answer does not parse or does not answer our question.
    #[error("{host}: malformed DNS answer: {reason}")]
    BadAnswer { host: String, reason: &'static str },
    /// TC set and no A record in what came: a truncated answer is not retried over TCP.
    #[error("{host}: the DNS answer was truncated (not retried over TCP)")]
    Truncated { host: String },
    /// No nameserver answered within [`ROUNDS`] × [`TIMEOUT`] each.
    #[error("{host}: no nameserver answered")]
    Timeout { host: String },
    /// Reading the query id from `/dev/urandom` failed.
    #[error("read /dev/urandom (the DNS query id)")]
    Io {
        #[source]
        source: std::io::Error,
    },
}

/// Resolves `host` to its first IPv4 address: an IPv4 literal as is; `localhost`
/// (127.0.0.1); names from `/etc/hosts`; else a DNS A query (RFC 1035) with a random
/// id (2 bytes of `/dev/urandom`) to the nameservers of `/etc/resolv.conf` (the first
/// [`MAX_NAMESERVERS`] IPv4 ones, in order; UDP port 53; [`TIMEOUT`] per try,
/// [`ROUNDS`] rounds, so at most 12 s), following CNAMEs within the answer.
///
/// A truncated answer (TC) is not retried over TCP: if it holds no A record, the
/// lookup fails with [`ResolveError::Truncated`]. No caching, no search domains, no
/// IPv6. Blocks the calling thread.
pub fn resolve_ipv4(host: &str) -> Result<Ipv4Addr, ResolveError> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let hosts = read_small("/etc/hosts");
    let resolv = read_small("/etc/resolv.conf");
    resolve_with(host, &hosts, &resolv, &mut udp_exchange)
}

/// [`resolve_ipv4`] with the texts of `/etc/hosts` and `/etc/resolv.conf` given and
/// `send(server, query)` doing one exchange (the answer datagram whose id matches, or
/// `None` after the timeout): the testable core. The query id is read from
/// `/dev/urandom`; `send` must return the answer bytes unchanged.
///
/// Errors: [`ResolveError::BadName`], [`ResolveError::NoNameserver`]; a nameserver's
/// NXDOMAIN or empty answer ends the lookup; SERVFAIL, a malformed answer or silence
/// moves on to the next nameserver and the last such error is returned.
pub fn resolve_with(
    host: &str,
    hosts_file: &str,
    resolv_conf: &str,
    send: &mut Exchange<'_>,
) -> Result<Ipv4Addr, ResolveError> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let wire = encode_name(host)?;
    let name = host.strip_suffix('.').unwrap_or(host);
    if name.eq_ignore_ascii_case("localhost") {
        return Ok(Ipv4Addr::LOCALHOST);
    }
    if let Some(ip) = hosts_lookup(hosts_file, name) {
        return Ok(ip);
    }
    let servers = nameservers(resolv_conf);
    if servers.is_empty() {
        return Err(ResolveError::NoNameserver);
    }
    let id = random_id()?;
    let msg = header(id, &wire);
    let mut last = ResolveError::Timeout { host: host.into() };
    for _ in 0..ROUNDS {
        for &ns in &servers {
            let Some(reply) = send(SocketAddrV4::new(ns, PORT), &msg) else {
                continue;
            };
            match answer(id, host, &reply) {
                Ok(Some(ip)) => return Ok(ip),
                Ok(None) => return Err(ResolveError::NoAnswer { host: host.into() }),
                Err(e @ ResolveError::NxDomain { .. }) => return Err(e),
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

/// The A query for `name` (RFC 1035 §4.1): header with `id`, RD set (§4.1.1), one
/// question `name IN A` (§4.1.2). `name` may end with one `.`; each label is 1..=63
/// bytes of letters, digits, `-`, `_`; at most [`MAX_NAME`] bytes in all.
pub fn query(id: u16, name: &str) -> Result<Vec<u8>, ResolveError> {
    Ok(header(id, &encode_name(name)?))
}

/// The A record for `name` in the answer `msg` to query `id` (RFC 1035 §4.1):
/// `Ok(Some(ip))` the first A record of `name` or of the name its CNAME chain (within the
/// answer section, at most 8 links) leads to; `Ok(None)` none (NODATA).
///
/// Errors: [`ResolveError::BadAnswer`] for a wrong id, a query (QR clear), another
/// opcode, another question or any out-of-range field or compression pointer
/// (§4.1.4; pointers must point backwards and names stay within 255 bytes, so
/// pointer loops are refused);
/// [`ResolveError::NxDomain`] for RCODE 3, [`ResolveError::Failed`] for other RCODEs;
/// [`ResolveError::Truncated`] when TC is set and no A record could be read.
pub fn answer(id: u16, name: &str, msg: &[u8]) -> Result<Option<Ipv4Addr>, ResolveError> {
    let want = encode_name(name)?;
    let bad = |reason| ResolveError::BadAnswer {
        host: name.into(),
        reason,
    };
    let word = |at: usize| u16_at(msg, at).ok_or_else(|| bad("shorter than the header"));
    if msg.len() < 12 {
        return Err(bad("shorter than the header"));
    }
    if word(0)? != id {
        return Err(bad("wrong id"));
    }
    let flags = word(2)?;
    if flags & 0x8000 == 0 || flags & 0x7800 != 0 {
        return Err(bad("not a standard query response"));
    }
    let truncated = flags & 0x0200 != 0;
    match flags & 0x000f {
        0 => {}
        3 => return Err(ResolveError::NxDomain { host: name.into() }),
        rcode => {
            return Err(ResolveError::Failed {
                host: name.into(),
                rcode: u8::try_from(rcode).unwrap_or(u8::MAX),
            })
        }
    }
    let found = records(msg, &want, word(4)?, word(6)?).map_err(bad);
    match found {
        Ok(Some(ip)) => Ok(Some(ip)),
        Ok(None) | Err(_) if truncated => Err(ResolveError::Truncated { host: name.into() }),
        other => other,
    }
}

/// Checks the question and walks the answer section: the A record of `want` after
/// its CNAMEs.
fn records(msg: &[u8], want: &[u8], qd: u16, an: u16) -> Result<Option<Ipv4Addr>, &'static str> {
    if qd != 1 {
        return Err("not one question");
    }
    let (qname, mut at) = read_name(msg, 12)?;
    if qname != want || u16_at(msg, at) != Some(1) || u16_at(msg, at + 2) != Some(1) {
        return Err("another question");
    }
    at += 4;
    // (owner, type, rdata start, rdata length) of each IN record; a record takes at
    // least 11 bytes, so `an` is bounded by the message's length.
    let mut rrs: Vec<(Vec<u8>, u16, usize, usize)> = Vec::new();
    for _ in 0..an {
        let (owner, next) = read_name(msg, at)?;
        let (Some(rtype), Some(class), Some(len)) = (
            u16_at(msg, next),
            u16_at(msg, next + 2),
            u16_at(msg, next + 8),
        ) else {
            return Err("record past the end");
        };
        let start = next + 10;
        let len = usize::from(len);
        if msg.len() < start + len {
            return Err("record data past the end");
        }
        if class == 1 {
            rrs.push((owner, rtype, start, len));
        }
        at = start + len;
    }
    let mut target = want.to_vec();
    for _ in 0..=MAX_CNAMES {
        let mut cname = None;
        for (owner, rtype, start, len) in &rrs {
            if *owner != target {
                continue;
            }
            match (rtype, msg.get(*start..start + len)) {
                (1, Some(&[a, b, c, d])) => return Ok(Some(Ipv4Addr::new(a, b, c, d))),
                (5, Some(_)) if cname.is_none() => cname = Some(read_name(msg, *start)?.0),
                _ => {}
            }
        }
        match cname {
            Some(c) => target = c,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The name at `at` in wire form, lower-cased, pointers expanded (RFC 1035 §4.1.4),
/// and the offset after it. A pointer must point before the pointer itself and the
/// name is at most 255 bytes: every step either moves back or adds a label, so the
/// walk ends (a loop through labels hits the length bound).
fn read_name(msg: &[u8], mut at: usize) -> Result<(Vec<u8>, usize), &'static str> {
    let mut out = Vec::new();
    let mut end = None;
    loop {
        let &len = msg.get(at).ok_or("name past the end")?;
        match len & 0xc0 {
            0xc0 => {
                let &low = msg.get(at + 1).ok_or("name past the end")?;
                let to = usize::from(len & 0x3f) << 8 | usize::from(low);
                if to >= at {
                    return Err("compression pointer forward or looping");
                }
                end.get_or_insert(at + 2);
                at = to;
            }
            0 if len == 0 => {
                out.push(0);
                return Ok((out, end.unwrap_or(at + 1)));
            }
            0 => {
                let label = msg
                    .get(at + 1..at + 1 + usize::from(len))
                    .ok_or("label past the end")?;
                out.push(len);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                if out.len() > 254 {
                    return Err("name longer than 255 bytes");
                }
                at += 1 + usize::from(len);
            }
            _ => return Err("unknown label type"),
        }
    }
}

/// `name` (one final `.` allowed) in lower-case wire form, validated.
fn encode_name(name: &str) -> Result<Vec<u8>, ResolveError> {
    let bad = |reason| ResolveError::BadName {
        host: name.into(),
        reason,
    };
    let plain = name.strip_suffix('.').unwrap_or(name);
    if plain.is_empty() {
        return Err(bad("empty"));
    }
    if plain.len() > MAX_NAME {
        return Err(bad("longer than 253 characters"));
    }
    let mut out = Vec::with_capacity(plain.len() + 2);
    for label in plain.split('.') {
        let len = u8::try_from(label.len())
            .ok()
            .filter(|l| (1..=63).contains(l))
            .ok_or_else(|| bad("a label is empty or longer than 63 characters"))?;
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad("only letters, digits, `-` and `_` are allowed"));
        }
        out.push(len);
        out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    out.push(0);
    Ok(out)
}

/// Header (id, RD, QDCOUNT 1) + question (wire name, QTYPE A, QCLASS IN).
fn header(id: u16, wire: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(16 + wire.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    m.extend_from_slice(wire);
    m.extend_from_slice(&[0, 1, 0, 1]);
    m
}

fn u16_at(msg: &[u8], at: usize) -> Option<u16> {
    match msg.get(at..at + 2)? {
        &[a, b] => Some(u16::from_be_bytes([a, b])),
        _ => None,
    }
}

/// The first IPv4 address `/etc/hosts` (hosts(5): `ADDRESS NAME [ALIAS…]`, `#`
/// comments) gives `name`, compared without case; IPv6 lines are skipped.
pub fn hosts_lookup(hosts_file: &str, name: &str) -> Option<Ipv4Addr> {
    hosts_file.lines().find_map(|line| {
        let mut f = line.split('#').next()?.split_whitespace();
        let ip = f.next()?.parse().ok()?;
        f.any(|n| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(name))
            .then_some(ip)
    })
}

/// The IPv4 `nameserver` addresses of resolv.conf (resolv.conf(5); `#` and `;`
/// comments), the first [`MAX_NAMESERVERS`], in order; IPv6 ones are skipped.
pub fn nameservers(resolv_conf: &str) -> Vec<Ipv4Addr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut f = line.split(['#', ';']).next()?.split_whitespace();
            (f.next()? == "nameserver").then_some(())?;
            f.next()?.parse().ok()
        })
        .take(MAX_NAMESERVERS)
        .collect()
}

/// One exchange with `server` over UDP: a socket bound to 0.0.0.0:0 and connected to
/// `server` (so only its datagrams are read) sends `msg`, then reads until a datagram
/// with `msg`'s id (its first two bytes) comes or [`TIMEOUT`] has passed (`None`; also
/// on any socket error, e.g. ICMP port unreachable). At most [`MAX_ANSWER`] bytes.
pub fn udp_exchange(server: SocketAddrV4, msg: &[u8]) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    sock.connect(server).ok()?;
    sock.send(msg).ok()?;
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; MAX_ANSWER];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        sock.set_read_timeout(Some(left)).ok()?;
        let n = sock.recv(&mut buf).ok()?;
        let got = buf.get(..n)?;
        if got.get(..2).is_some_and(|id| msg.get(..2) == Some(id)) {
            return Some(got.to_vec());
        }
    }
}

fn random_id() -> Result<u16, ResolveError> {
    let mut b = [0u8; 2];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|source| ResolveError::Io { source })?;
    Ok(u16::from_ne_bytes(b))
}

/// A small system file's text; missing or unreadable reads as empty.
fn read_small(path: &str) -> String {
    let mut s = String::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(MAX_FILE).read_to_string(&mut s);
    }
    s
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;
