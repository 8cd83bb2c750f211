//! Small value types of the config: port ranges, IPv4 prefixes, protocols, timestamps.
//! Each parses from the spelling a user writes and prints back the same way. Values that
//! can never be right (port 0, a reversed range, a prefix longer than 32, a time RFC 3339
//! does not allow) are refused while parsing, so the rest of the program never sees them.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// An inclusive range of real ports: `1 <= first <= last <= 65535`, guaranteed by every
/// constructor. A single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// The range `first..=last`, or why it is not one: port 0, or it ends before it starts.
    pub fn new(first: u16, last: u16) -> Result<PortRange, String> {
        if first == 0 || last == 0 {
            return Err("port 0 is not a usable port".into());
        }
        if first > last {
            return Err(format!("range {first}-{last} ends before it starts"));
        }
        Ok(PortRange::checked(first, last))
    }

    /// The range for ends already checked (`1 <= first <= last`).
    const fn checked(first: u16, last: u16) -> PortRange {
        PortRange { first, last }
    }

    /// One port, for ports written in code; input is parsed with [`PortRange::new`],
    /// `str::parse` or serde, which refuse port 0 with a message instead.
    ///
    /// # Panics
    /// When `port` is 0 (a bug in the calling code, not an input error).
    pub const fn single(port: u16) -> PortRange {
        assert!(port != 0, "PortRange::single(0): port 0 is not a port");
        PortRange::checked(port, port)
    }

    /// First port of the range (at least 1).
    pub fn first(&self) -> u16 {
        self.first
    }

    /// Last port of the range (at least [`PortRange::first`]).
    pub fn last(&self) -> u16 {
        self.last
    }

    /// Same as [`PortRange::first`]; kept for callers written before the fields were private.
    pub fn first_port(&self) -> u16 {
        self.first()
    }

    /// Same as [`PortRange::last`]; kept for callers written before the fields were private.
    pub fn last_port(&self) -> u16 {
        self.last()
    }

    /// Number of ports in the range (1 to 65535).
    pub fn count(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    pub fn contains(&self, port: u16) -> bool {
        self.first() <= port && port <= self.last()
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first() <= other.last() && other.first() <= self.last()
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first() == self.last() {
            write!(f, "{}", self.first())
        } else {
            write!(f, "{}-{}", self.first(), self.last())
        }
    }
}

/// One end of a port range as written: digits only, 1 to 65535.
fn port_number(text: &str, whole: &str) -> Result<u16, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{}` is not a port or a range like 8000-8010",
            shown(whole)
        ));
    }
    // All digits: parsing fails only when the number does not even fit in u64.
    let n = t.parse::<u64>().unwrap_or(u64::MAX);
    port_value(n)
}

fn port_value(n: u64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(0) => Err("port 0 is not a usable port".into()),
        Ok(p) => Ok(p),
        Err(_) if n == u64::MAX => Err("a port number is at most 65535".into()),
        Err(_) => Err(format!("{n} is above 65535")),
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('-') {
            Some((a, b)) => PortRange::new(port_number(a, s)?, port_number(b, s)?),
            None => port_number(s, s).map(|p| PortRange::checked(p, p)),
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.first() == self.last() {
            s.serialize_u16(self.first())
        } else {
            s.serialize_str(&self.to_string())
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port number or a range string like \"8000-8010\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<PortRange, E> {
                port_value(v)
                    .map(|p| PortRange::checked(p, p))
                    .map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<PortRange, E> {
                if v < 0 {
                    return Err(E::custom(format!("{v} is negative; ports are 1-65535")));
                }
                self.visit_u64(v.unsigned_abs())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A TCP/UDP port that is not 0, for `#[serde(deserialize_with)]` on plain `u16` fields.
pub(crate) fn nonzero_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = u64::deserialize(d)?;
    port_value(v).map_err(de::Error::custom)
}

/// At most 40 characters of a user's value for an error message, control characters escaped.
pub(crate) fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(40).flat_map(char::escape_debug).collect();
    if s.chars().nth(40).is_some() {
        out.push('…');
    }
    out
}

/// An IPv4 prefix such as `192.168.1.0/24`; a bare address is a /32. The length is at most
/// 32, guaranteed by every constructor. Host bits may be set (`10.0.0.1/8`): validation
/// names them as a likely typo, so they are kept as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    addr: Ipv4Addr,
    len: u8,
}

impl Ipv4Net {
    /// `addr/len`, or why not: a length above 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Ipv4Net, String> {
        if len > 32 {
            return Err(format!("prefix length {len} is longer than 32"));
        }
        Ok(Ipv4Net { addr, len })
    }

    /// A prefix written in code, checked when a `const` is compiled.
    pub(crate) const fn constant(addr: Ipv4Addr, len: u8) -> Ipv4Net {
        assert!(len <= 32, "prefix length above 32");
        Ipv4Net { addr, len }
    }

    /// The single address `addr`, a /32.
    pub const fn host(addr: Ipv4Addr) -> Ipv4Net {
        Ipv4Net { addr, len: 32 }
    }

    /// Every IPv4 address, `0.0.0.0/0`.
    pub const ANY: Ipv4Net = Ipv4Net {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    };

    /// The address as written (host bits included).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    fn mask(&self) -> u32 {
        // checked_shl: a /0 shifts by 32, which `<<` does not allow.
        u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0)
    }

    /// First address of the prefix.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// Last address of the prefix.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The prefix as an inclusive span of addresses (as numbers).
    pub fn span(&self) -> (u32, u32) {
        (u32::from(self.network()), u32::from(self.broadcast()))
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// Is `a` this prefix's network or broadcast address, which no host can have? Never
    /// for /31 and /32, whose every address is a host (RFC 3021).
    pub fn is_network_or_broadcast(&self, a: Ipv4Addr) -> bool {
        self.prefix_len() <= 30 && (a == self.network() || a == self.broadcast())
    }

    /// Do the two prefixes share at least one address?
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let (a, b) = (self.span(), other.span());
        a.0 <= b.1 && b.0 <= a.1
    }

    /// True when host bits are set (`10.0.0.1/8`), which usually means a typo.
    pub fn has_host_bits(&self) -> bool {
        u32::from(self.addr) & !self.mask() != 0
    }
}

/// Is `net` entirely inside the union of `nets`? Sorts the prefixes that touch `net` and
/// sweeps once: O(n log n). Host bits are ignored (a prefix means its whole span).
pub fn covered(nets: &[Ipv4Net], net: &Ipv4Net) -> bool {
    let (lo, hi) = net.span();
    let mut spans: Vec<(u32, u32)> = nets
        .iter()
        .map(Ipv4Net::span)
        .filter(|&(a, b)| a <= hi && lo <= b)
        .collect();
    spans.sort_unstable();
    // `next` is the first address of `net` not yet known to be covered.
    let mut next = lo;
    for (a, b) in spans {
        if a > next {
            return false;
        }
        if b >= hi {
            return true;
        }
        next = next.max(b + 1); // b < hi <= u32::MAX, so no overflow
    }
    false
}

/// Do `nets` together cover every IPv4 address (`0.0.0.0/0`, or e.g. `0.0.0.0/1` plus
/// `128.0.0.0/1`)? Such an allow-list admits anyone, exactly like an empty one.
pub fn covers_everything(nets: &[Ipv4Net]) -> bool {
    covered(nets, &Ipv4Net::ANY)
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 32 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not an IPv4 address or prefix like 203.0.113.0/24",
                shown(s)
            )
        };
        let (a, len) = match s.split_once('/') {
            Some((a, l)) if !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()) => {
                match l.parse::<u8>() {
                    Ok(len) if len <= 32 => (a, len),
                    _ => {
                        return Err(format!(
                            "`{}`: prefix length {} is longer than 32",
                            shown(s),
                            shown(l)
                        ))
                    }
                }
            }
            Some(_) => return Err(bad()),
            None => (s, 32),
        };
        let addr = a.parse::<Ipv4Addr>().map_err(|_| bad())?;
        Ok(Ipv4Net { addr, len })
    }
}
macro_rules! serde_via_string {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(de::Error::custom)
            }
        }
    };
}
serde_via_string!(Ipv4Net);
serde_via_string!(Timestamp);

/// Transport protocol of a forward or trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Both,
}

impl Protocol {
    /// IP protocol numbers this covers.
    pub fn numbers(self) -> &'static [u8] {
        match self {
            Protocol::Tcp => &[6],
            Protocol::Udp => &[17],
            Protocol::Both => &[6, 17],
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Both => "tcp+udp",
        })
    }
}

/// A moment in UTC, whole seconds since the Unix epoch, written as RFC 3339
/// (`2026-11-28T18:00:00Z`). Kept as u64: 32-bit musl targets still have a 32-bit time_t.
/// Parsing accepts exactly RFC 3339 §5.6 `date-time` from 1970 to 9999 (see
/// [`Timestamp::from_str`]); printing always gives the `Z` form, which parses back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

/// 9999-12-31T23:59:59Z, the last moment RFC 3339 can write in UTC.
const LAST_RFC3339_SECOND: i64 = 253_402_300_799;

impl Timestamp {
    /// The current time from the system clock.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_secs())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

fn is_leap_year(y: u32) -> bool {
    y.is_multiple_of(4) && (!y.is_multiple_of(100) || y.is_multiple_of(400))
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        2 if is_leap_year(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = i64::try_from(self.0).unwrap_or(i64::MAX);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let s = secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            s % 3600 / 60,
            s % 60
        )
    }
}

/// Reads an RFC 3339 date-time left to right; every method names what it expected.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    /// Exactly `n` ASCII digits as a number, or an error naming `what`.
    fn digits(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let end = self.i.saturating_add(n);
        let t = self
            .b
            .get(self.i..end)
            .filter(|t| t.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("the {what} must be {n} digits"))?;
        self.i = end;
        Ok(t.iter().fold(0, |a, &c| a * 10 + u32::from(c - b'0')))
    }

    /// One of `allowed`, or an error saying `what` was expected.
    fn one_of(&mut self, allowed: &[u8], what: &str) -> Result<u8, String> {
        match self.b.get(self.i) {
            Some(c) if allowed.contains(c) => {
                self.i += 1;
                Ok(*c)
            }
            Some(_) => Err(format!("expected {what} at position {}", self.i + 1)),
            None => Err(format!("it ends where {what} should follow")),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
}

/// Number in `lo..=hi`, or an error naming the field and the range.
fn within(v: u32, lo: u32, hi: u32, what: &str) -> Result<u32, String> {
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{what} {v:02} is not {lo:02}-{hi:02}"))
    }
}

/// RFC 3339 §5.6 `date-time`, as seconds since the epoch (the reason when it is not one).
fn parse_rfc3339(s: &str) -> Result<i64, String> {
    if !s.is_ascii() {
        return Err("it contains a non-ASCII character".into());
    }
    let mut c = Cursor {
        b: s.as_bytes(),
        i: 0,
    };
    // full-date = date-fullyear "-" date-month "-" date-mday
    let year = c.digits(4, "year")?;
    c.one_of(b"-", "`-` after the year")?;
    let month = within(c.digits(2, "month")?, 1, 12, "month")?;
    c.one_of(b"-", "`-` after the month")?;
    let day = c.digits(2, "day")?;
    if day == 0 || day > days_in_month(year, month) {
        return Err(format!(
            "day {day:02} does not exist in {year:04}-{month:02}"
        ));
    }
    // "T" (RFC 3339 allows lower case; the space of its NOTE is not accepted)
    c.one_of(b"Tt", "`T` between date and time")?;
    // partial-time = time-hour ":" time-minute ":" time-second [time-secfrac]
    let hour = within(c.digits(2, "hour")?, 0, 23, "hour")?;
    c.one_of(b":", "`:` after the hour")?;
    let minute = within(c.digits(2, "minute")?, 0, 59, "minute")?;
    c.one_of(b":", "`:` after the minute")?;
    let second = within(c.digits(2, "second")?, 0, 60, "second")?;
    if c.peek() == Some(b'.') {
        c.i += 1;
        let rest = c.b.get(c.i..).unwrap_or_default();
        let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return Err("a `.` must be followed by fraction digits".into());
        }
        c.i += n; // fractions of a second are dropped: times are whole seconds
    }
    // time-offset = "Z" / time-numoffset
    let offset = match c.one_of(b"Zz+-", "`Z` or an offset like +01:00")? {
        b'Z' | b'z' => 0,
        sign => {
            let oh = within(c.digits(2, "offset hour")?, 0, 23, "offset hour")?;
            c.one_of(b":", "`:` in the offset")?;
            let om = within(c.digits(2, "offset minute")?, 0, 59, "offset minute")?;
            let secs = i64::from(oh * 3600 + om * 60);
            if sign == b'-' {
                -secs
            } else {
                secs
            }
        }
    };
    if c.i != c.b.len() {
        return Err(format!(
            "unexpected characters after the offset at position {}",
            c.i + 1
        ));
    }
    let day_secs = i64::from(hour * 3600 + minute * 60 + second.min(59));
    let mut utc = days_from_civil(i64::from(year), month, day) * 86_400 + day_secs - offset;
    if second == 60 {
        // A leap second is 23:59:60 UTC on the last day of a month (RFC 3339 §5.7). Unix
        // time has no leap seconds: it counts as the first second of the next day.
        let last_of_month = civil_from_days(utc.div_euclid(86_400) + 1).2 == 1;
        if utc.rem_euclid(86_400) != 86_399 || !last_of_month {
            return Err(
                "second 60 (a leap second) exists only at 23:59:60 UTC on the last day of a month"
                    .into(),
            );
        }
        utc += 1;
    }
    if utc < 0 {
        return Err("it is before 1970".into());
    }
    if utc > LAST_RFC3339_SECOND {
        return Err("it is after 9999-12-31T23:59:59Z".into());
    }
    Ok(utc)
}

impl FromStr for Timestamp {
    type Err = String;
    /// RFC 3339 §5.6 `date-time`, strictly: `YYYY-MM-DDTHH:MM:SS`, an optional fraction
    /// (dropped), then `Z` or `±HH:MM`; `t` and `z` may be lower case. Days must exist
    /// (leap years included); second 60 only as a real leap second, 23:59:60 UTC at the
    /// end of a month, read as the next second. Times before 1970 are refused (unsigned
    /// epoch seconds), as is anything else: spaces, missing or extra characters, non-ASCII.
    fn from_str(s: &str) -> Result<Self, String> {
        let secs = parse_rfc3339(s).map_err(|why| {
            format!(
                "`{}` is not an RFC 3339 time like 2026-11-28T18:00:00Z: {why}",
                shown(s)
            )
        })?;
        Ok(Timestamp(secs.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests;
