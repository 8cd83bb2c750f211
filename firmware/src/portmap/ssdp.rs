//! SSDP (UPnP Device Architecture 1.1 §1): M-SEARCH answers and NOTIFY messages over bytes.
//!
//! Sans-IO: [`parse_search`] reads a datagram, [`answers`] makes the unicast answers,
//! [`notify_alive`] and [`notify_byebye`] the multicast announcements, and [`Limiter`]
//! decides, with the time passed in, whether a source is answered at all.
//!
//! Search targets (UDA 1.1 §1.3.2): `ssdp:all` gets one answer per target (the root
//! device, each device's UDN and type, each service type: 9), `upnp:rootdevice`, a UDN,
//! or one of our device or service types. A type is answered when the version asked for
//! is at most ours, with the version the client asked for (UDA 1.1 §1.3.2: "The response
//! MUST specify the same version as was contained in the search request"); a search for
//! InternetGatewayDevice:2 gets no answer, as we only implement version 1.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::describe::{Udns, IGD, WAN_COMMON_IF, WAN_CONN_DEVICE, WAN_DEVICE, WAN_IP_CONN};

/// The SSDP multicast group.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);
/// The SSDP port.
pub const PORT: u16 = 1900;
/// Largest datagram read, bytes.
pub const MAX_DATAGRAM: usize = 2048;
/// Most header lines in a search.
pub const MAX_HEADERS: usize = 32;
/// How long an advertisement is valid, seconds (CACHE-CONTROL max-age; UDA 1.1 asks for
/// at least 1800). Announcements are repeated at half of it.
pub const MAX_AGE_SECS: u32 = 1800;

/// A valid M-SEARCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// The search target (ST), as sent.
    pub st: String,
    /// Seconds the answer may be delayed (MX, capped at 5 as UDA 1.1 §1.3.2 says); None
    /// for a unicast search without MX.
    pub mx: Option<u8>,
}

/// Why a datagram is not a search to answer. Such datagrams are dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsdpError {
    #[error("the datagram is larger than {MAX_DATAGRAM} bytes")]
    TooLarge,
    #[error("not an M-SEARCH request")]
    NotSearch,
    #[error("more than {MAX_HEADERS} header lines")]
    TooManyHeaders,
    #[error("malformed header line")]
    Malformed,
    #[error("MAN is not \"ssdp:discover\"")]
    Man,
    #[error("no ST header")]
    NoTarget,
    #[error("MX is not a number")]
    Mx,
}

/// Reads an M-SEARCH (UDA 1.1 §1.3.2). Errors: oversize, another request, more than
/// [`MAX_HEADERS`] lines, a line without `:`, a MAN other than `"ssdp:discover"`, no ST,
/// or a non-numeric MX.
pub fn parse_search(datagram: &[u8]) -> Result<Search, SsdpError> {
    if datagram.len() > MAX_DATAGRAM {
        return Err(SsdpError::TooLarge);
    }
    let text = std::str::from_utf8(datagram).map_err(|_| SsdpError::Malformed)?;
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.split('\n').map(|l| l.trim_end_matches('\r'));
    if lines
        .next()
        .map(str::split_ascii_whitespace)
        .map(Iterator::collect::<Vec<_>>)
        != Some(vec!["M-SEARCH", "*", "HTTP/1.1"])
    {
        return Err(SsdpError::NotSearch);
    }
    let (mut man, mut st, mut mx) = (None, None, None);
    for (n, line) in lines.enumerate() {
        if n >= MAX_HEADERS {
            return Err(SsdpError::TooManyHeaders);
        }
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(SsdpError::Malformed)?;
        let value = value.trim();
        match name.trim().to_ascii_uppercase().as_str() {
            "MAN" => man = Some(value),
            "ST" => st = Some(value),
            "MX" => mx = Some(value),
            _ => {}
        }
    }
    if man != Some("\"ssdp:discover\"") {
        return Err(SsdpError::Man);
    }
    let st = st.filter(|s| !s.is_empty()).ok_or(SsdpError::NoTarget)?;
    let mx = match mx {
        None => None,
        Some(v) => Some(v.parse::<u32>().map_err(|_| SsdpError::Mx)?.min(5) as u8),
    };
    Ok(Search {
        st: st.to_string(),
        mx,
    })
}

/// What every message says about us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert<'a> {
    /// The devices' UDNs (the USNs are made of them).
    pub udns: &'a Udns,
    /// The root description's URL on the LAN address the message goes out on.
    pub location: String,
    /// `OS/version UPnP/1.1 product/version` (UDA 1.1 §1.1.3).
    pub server: &'a str,
    /// BOOTID.UPNP.ORG: increased each time the service starts (UDA 1.1 §1.2.2).
    pub boot_id: u32,
}

/// One target: (NT or ST, USN).
fn targets(u: &Udns) -> [(String, String); 9] {
    let usn = |udn: &str, t: &str| format!("{udn}::{t}");
    [
        ("upnp:rootdevice".into(), usn(&u.root, "upnp:rootdevice")),
        (u.root.clone(), u.root.clone()),
        (IGD.into(), usn(&u.root, IGD)),
        (u.wan_device.clone(), u.wan_device.clone()),
        (WAN_DEVICE.into(), usn(&u.wan_device, WAN_DEVICE)),
        (WAN_COMMON_IF.into(), usn(&u.wan_device, WAN_COMMON_IF)),
        (u.wan_conn_device.clone(), u.wan_conn_device.clone()),
        (
            WAN_CONN_DEVICE.into(),
            usn(&u.wan_conn_device, WAN_CONN_DEVICE),
        ),
        (WAN_IP_CONN.into(), usn(&u.wan_conn_device, WAN_IP_CONN)),
    ]
}

/// Splits `urn:…:Name:3` into (`urn:…:Name:`, 3).
fn versioned(t: &str) -> Option<(&str, u32)> {
    let colon = t.rfind(':')?;
    let (base, v) = (t.get(..=colon)?, t.get(colon + 1..)?);
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 4 {
        return None;
    }
    Some((base, v.parse().ok()?))
}

/// The (ST, USN) pairs a search target gets, empty when it names nothing of ours.
pub fn matches(st: &str, udns: &Udns) -> Vec<(String, String)> {
    let all = targets(udns);
    if st == "ssdp:all" {
        return all.to_vec();
    }
    for (t, usn) in &all {
        if t == st {
            return vec![(t.clone(), usn.clone())];
        }
        let (Some((base, ours)), Some((asked_base, asked))) = (versioned(t), versioned(st)) else {
            continue;
        };
        if t.starts_with("urn:") && base == asked_base && (1..=ours).contains(&asked) {
            let udn = usn.split("::").next().unwrap_or("");
            return vec![(st.to_string(), format!("{udn}::{st}"))];
        }
    }
    Vec::new()
}

/// The unicast answers to a search (UDA 1.1 §1.3.3), one datagram per matching target.
pub fn answers(search: &Search, ad: &Advert<'_>) -> Vec<Vec<u8>> {
    matches(&search.st, ad.udns)
        .into_iter()
        .map(|(st, usn)| {
            let mut m = String::with_capacity(400);
            let _ = write!(
                m,
                "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age={MAX_AGE_SECS}\r\nEXT:\r\n\
                 LOCATION: {}\r\nSERVER: {}\r\nST: {st}\r\nUSN: {usn}\r\n\
                 BOOTID.UPNP.ORG: {}\r\nCONFIGID.UPNP.ORG: 1\r\n\r\n",
                ad.location, ad.server, ad.boot_id
            );
            m.into_bytes()
        })
        .collect()
}

/// The ssdp:alive announcements (UDA 1.1 §1.2.2), one datagram per target, for the group.
pub fn notify_alive(ad: &Advert<'_>) -> Vec<Vec<u8>> {
    targets(ad.udns)
        .iter()
        .map(|(nt, usn)| {
            format!(
                "NOTIFY * HTTP/1.1\r\nHOST: {GROUP}:{PORT}\r\nCACHE-CONTROL: max-age={MAX_AGE_SECS}\r\n\
                 LOCATION: {}\r\nNT: {nt}\r\nNTS: ssdp:alive\r\nSERVER: {}\r\nUSN: {usn}\r\n\
                 BOOTID.UPNP.ORG: {}\r\nCONFIGID.UPNP.ORG: 1\r\n\r\n",
                ad.location, ad.server, ad.boot_id
            )
            .into_bytes()
        })
        .collect()
}

/// The ssdp:byebye announcements (UDA 1.1 §1.2.3), one datagram per target.
pub fn notify_byebye(ad: &Advert<'_>) -> Vec<Vec<u8>> {
    targets(ad.udns)
        .iter()
        .map(|(nt, usn)| {
            format!(
                "NOTIFY * HTTP/1.1\r\nHOST: {GROUP}:{PORT}\r\nNT: {nt}\r\nNTS: ssdp:byebye\r\n\
                 USN: {usn}\r\nBOOTID.UPNP.ORG: {}\r\nCONFIGID.UPNP.ORG: 1\r\n\r\n",
                ad.boot_id
            )
            .into_bytes()
        })
        .collect()
}

/// Per-source rate limit of answered searches: a token bucket per address
/// ([`Limiter::BURST`] searches, one more per [`Limiter::REFILL_MS`]), in a table of at
/// most [`Limiter::SOURCES`] addresses. Time is passed in (milliseconds, any epoch).
#[derive(Debug, Default)]
pub struct Limiter {
    buckets: HashMap<Ipv4Addr, (u64, u32)>,
}

impl Limiter {
    /// Searches a source may send at once (upnpc sends about 6 in a burst).
    pub const BURST: u32 = 12;
    /// Milliseconds per regained search.
    pub const REFILL_MS: u64 = 500;
    /// Most sources tracked; when full of active sources, new ones wait.
    pub const SOURCES: usize = 256;

    /// Whether a search from `src` at `now_ms` is answered (and counts it).
    pub fn allow(&mut self, src: Ipv4Addr, now_ms: u64) -> bool {
        let refill = |(at, tokens): (u64, u32)| {
            let gained = now_ms.saturating_sub(at) / Self::REFILL_MS;
            let gained = u32::try_from(gained).unwrap_or(u32::MAX);
            tokens.saturating_add(gained).min(Self::BURST)
        };
        if !self.buckets.contains_key(&src) && self.buckets.len() >= Self::SOURCES {
            self.buckets.retain(|_, b| refill(*b) < Self::BURST);
            if self.buckets.len() >= Self::SOURCES {
                return false;
            }
        }
        let b = self.buckets.entry(src).or_insert((now_ms, Self::BURST));
        let tokens = refill(*b);
        if tokens == 0 {
            return false;
        }
        // Keep the remainder of a partial refill period.
        let at = if tokens == Self::BURST {
            now_ms
        } else {
            b.0 + (now_ms.saturating_sub(b.0) / Self::REFILL_MS) * Self::REFILL_MS
        };
        *b = (at, tokens - 1);
        true
    }
}

/// Fuzzing entry point: parses arbitrary bytes as an M-SEARCH and answers it. Panics only
/// if an answer breaks the properties clients rely on (one datagram per target, each
/// header-terminated and small).
pub fn fuzz_ssdp(data: &[u8]) {
    let udns = Udns::from_mac(&[2, 0, 0, 0, 0, 1]);
    let ad = Advert {
        udns: &udns,
        location: "http://192.168.1.1:5000/rootDesc.xml".into(),
        server: "Linux UPnP/1.1 Portcullis/0",
        boot_id: 1,
    };
    if let Ok(s) = parse_search(data) {
        let a = answers(&s, &ad);
        assert!(a.len() <= 9);
        for m in a {
            assert!(m.ends_with(b"\r\n\r\n") && m.len() <= 600 + MAX_DATAGRAM * 2);
        }
    }
}

#[cfg(test)]
#[path = "ssdp_tests.rs"]
mod tests;
