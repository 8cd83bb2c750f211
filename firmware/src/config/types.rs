//! Small value types of the config: port ranges, IPv4 prefixes, protocols, timestamps.
//! Each parses from the spelling a user writes and prints back the same way.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// An inclusive port range; a single port is a range of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    pub first: u32,
    pub last: u32,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange {
            first: u32::from(port),
            last: u32::from(port),
        }
    }

    /// Number of ports in the range.
    pub fn count(&self) -> u32 {
        self.last.saturating_sub(self.first) + 1
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// True when both ends are real ports (1..=65535) and in order. Kept separate from
    /// parsing so that validation can name the field and say which rule was broken.
    pub fn problem(&self) -> Option<String> {
        if self.first == 0 || self.last == 0 {
            return Some("port 0 is not a usable port".into());
        }
        if self.first > 65535 || self.last > 65535 {
            return Some(format!("{self} is above 65535"));
        }
        if self.first > self.last {
            return Some(format!("range {self} ends before it starts"));
        }
        None
    }

    /// The first port as u16; only meaningful once [`PortRange::problem`] returned None.
    pub fn first_port(&self) -> u16 {
        u16::try_from(self.first).unwrap_or(u16::MAX)
    }

    /// The last port as u16; only meaningful once [`PortRange::problem`] returned None.
    pub fn last_port(&self) -> u16 {
        u16::try_from(self.last).unwrap_or(u16::MAX)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("`{s}` is not a port or a range like 8000-8010"))
        };
        match s.split_once('-') {
            Some((a, b)) => Ok(PortRange {
                first: num(a)?,
                last: num(b)?,
            }),
            None => {
                let p = num(s)?;
                Ok(PortRange { first: p, last: p })
            }
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.first == self.last {
            s.serialize_u32(self.first)
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
                let p = u32::try_from(v).unwrap_or(u32::MAX);
                Ok(PortRange { first: p, last: p })
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

/// An IPv4 prefix such as `192.168.1.0/24`; a bare address is a /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Net {
    fn mask(&self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// First address of the prefix.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// Last address of the prefix.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// True when host bits are set (`10.0.0.1/8`), which usually means a typo.
    pub fn has_host_bits(&self) -> bool {
        u32::from(self.addr) & !self.mask() != 0
    }
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
        let bad = || format!("`{s}` is not an IPv4 address or prefix like 203.0.113.0/24");
        let (a, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        if len > 32 {
            return Err(format!("`{s}`: prefix length {len} is longer than 32"));
        }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

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

impl FromStr for Timestamp {
    type Err = String;
    /// Accepts `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM`, optional fractional seconds.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not an RFC 3339 time like 2026-11-28T18:00:00Z");
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return Err(bad());
        }
        let n = |r: std::ops::Range<usize>| -> Result<u32, String> {
            s.get(r)
                .filter(|t| t.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|t| t.parse().ok())
                .ok_or_else(bad)
        };
        let (y, mo, d, h, mi, se) = (
            n(0..4)?,
            n(5..7)?,
            n(8..10)?,
            n(11..13)?,
            n(14..16)?,
            n(17..19)?,
        );
        if b[13] != b':' || b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
            return Err(bad());
        }
        if h > 23 || mi > 59 || se > 60 {
            return Err(bad());
        }
        let mut rest = &s[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad());
            }
            rest = &frac[digits..];
        }
        let offset: i64 = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
                let oh: i64 = rest[1..3].parse().map_err(|_| bad())?;
                let om: i64 = rest[4..6].parse().map_err(|_| bad())?;
                let sign = if rest.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(bad()),
        };
        let days = days_from_civil(i64::from(y), mo, d);
        let secs = days * 86_400 + i64::from(h * 3600 + mi * 60 + se) - offset;
        u64::try_from(secs)
            .map(Timestamp)
            .map_err(|_| format!("`{s}` is before 1970"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        let t: Timestamp = "2026-11-28T18:00:00Z".parse().unwrap();
        assert_eq!(t.0, 1_795_888_800);
        assert_eq!(t.to_string(), "2026-11-28T18:00:00Z");
        let t2: Timestamp = "2026-11-28T19:00:00+01:00".parse().unwrap();
        assert_eq!(t, t2);
        let t3: Timestamp = "2024-02-29T00:00:00.5Z".parse().unwrap();
        assert_eq!(t3.to_string(), "2024-02-29T00:00:00Z");
        assert!("2026-13-01T00:00:00Z".parse::<Timestamp>().is_err());
        assert!("tomorrow".parse::<Timestamp>().is_err());
    }

    #[test]
    fn port_ranges_parse_and_print() {
        let r: PortRange = "8000-8010".parse().unwrap();
        assert_eq!(r.count(), 11);
        assert_eq!(r.to_string(), "8000-8010");
        assert!("80-".parse::<PortRange>().is_err());
        assert!("http".parse::<PortRange>().is_err());
        assert_eq!(
            "0".parse::<PortRange>().unwrap().problem().unwrap(),
            "port 0 is not a usable port"
        );
        assert!("70000".parse::<PortRange>().unwrap().problem().is_some());
        assert!("90-80".parse::<PortRange>().unwrap().problem().is_some());
    }

    #[test]
    fn prefixes_parse_and_contain() {
        let n: Ipv4Net = "192.168.1.0/24".parse().unwrap();
        assert!(n.contains("192.168.1.77".parse().unwrap()));
        assert!(!n.contains("192.168.2.1".parse().unwrap()));
        assert_eq!(n.broadcast(), "192.168.1.255".parse::<Ipv4Addr>().unwrap());
        assert!("10.0.0.1/8".parse::<Ipv4Net>().unwrap().has_host_bits());
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        assert_eq!("1.2.3.4".parse::<Ipv4Net>().unwrap().len, 32);
    }
}
