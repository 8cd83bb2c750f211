//! Value types: what parses, what is refused and why, and that no input panics.

use super::*;

fn ts(s: &str) -> Result<u64, String> {
    s.parse::<Timestamp>().map(|t| t.0)
}

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
fn rfc3339_accepted_forms() {
    let table: &[(&str, u64)] = &[
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01t00:00:00z", 0),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1970-01-01T00:00:00-00:00", 0),
        ("1970-01-01T00:00:00.999999999999Z", 0),
        ("2000-02-29T12:00:00Z", 951_825_600),
        ("2024-02-29T23:59:59Z", 1_709_251_199),
        ("2026-11-28T18:00:00.0Z", 1_795_888_800),
        ("2026-11-28T13:30:00-04:30", 1_795_888_800),
        ("2026-11-29T17:59:00+23:59", 1_795_888_800),
        ("2026-11-28T00:00:00-18:00", 1_795_888_800),
        // Real leap seconds (end of June and of December): the next second in Unix time.
        ("2016-12-31T23:59:60Z", 1_483_228_800),
        ("2017-01-01T08:59:60+09:00", 1_483_228_800),
        ("2015-06-30T23:59:60.5Z", 1_435_708_800),
        ("1990-12-31T15:59:60-08:00", 662_688_000),
        ("9999-12-31T23:59:59Z", 253_402_300_799),
        ("9999-12-31T23:59:59+01:00", 253_402_297_199),
    ];
    for &(s, want) in table {
        assert_eq!(ts(s), Ok(want), "{s}");
    }
}

#[test]
fn rfc3339_refused_forms_say_why() {
    let table: &[(&str, &str)] = &[
        // The crash of issue 7: a multi-byte character inside the offset.
        ("2030-01-01T00:00:00+0é00", "non-ASCII"),
        ("2030-01-01T00:00:00+00:0é", "non-ASCII"),
        ("é", "non-ASCII"),
        ("", "year must be 4 digits"),
        ("tomorrow", "year must be 4 digits"),
        ("2030", "ends where `-` after the year"),
        ("2030-01-01", "ends where `T`"),
        ("2030-01-01T00:00", "ends where `:` after the minute"),
        ("2030-01-01T00:00:00", "ends where `Z` or an offset"),
        ("2030-01-01 00:00:00Z", "expected `T`"),
        ("2030-01-01_00:00:00Z", "expected `T`"),
        ("30-01-01T00:00:00Z", "year must be 4 digits"),
        ("+2030-01-01T00:00:00Z", "year must be 4 digits"),
        ("20300-01-01T00:00:00Z", "expected `-` after the year"),
        ("2030-1-01T00:00:00Z", "month must be 2 digits"),
        ("2030-01-1T00:00:00Z", "day must be 2 digits"),
        ("2030-00-01T00:00:00Z", "month 00 is not 01-12"),
        ("2030-13-01T00:00:00Z", "month 13 is not 01-12"),
        ("2030-01-00T00:00:00Z", "day 00 does not exist"),
        ("2030-01-32T00:00:00Z", "day 32 does not exist"),
        ("2030-04-31T00:00:00Z", "day 31 does not exist in 2030-04"),
        ("2030-02-29T00:00:00Z", "day 29 does not exist in 2030-02"),
        ("2100-02-29T00:00:00Z", "day 29 does not exist in 2100-02"),
        ("2024-02-30T00:00:00Z", "day 30 does not exist"),
        ("2030-01-01T24:00:00Z", "hour 24 is not 00-23"),
        ("2030-01-01T00:60:00Z", "minute 60 is not 00-59"),
        ("2030-01-01T00:00:61Z", "second 61 is not 00-60"),
        ("2030-01-01T0:00:00Z", "hour must be 2 digits"),
        ("2030-01-01T00:00:0Z", "second must be 2 digits"),
        ("2030-01-01T00-00-00Z", "expected `:` after the hour"),
        (
            "2030-01-01T00:00:00.Z",
            "`.` must be followed by fraction digits",
        ),
        ("2030-01-01T00:00:00,5Z", "expected `Z` or an offset"),
        (
            "2030-01-01T00:00:00ZZ",
            "unexpected characters after the offset",
        ),
        ("2030-01-01T00:00:00Z ", "unexpected characters"),
        (" 2030-01-01T00:00:00Z", "year must be 4 digits"),
        ("2030-01-01T00:00:00+01", "ends where `:` in the offset"),
        ("2030-01-01T00:00:00+0100", "expected `:` in the offset"),
        ("2030-01-01T00:00:00+1:00", "offset hour must be 2 digits"),
        ("2030-01-01T00:00:00+01:0", "offset minute must be 2 digits"),
        ("2030-01-01T00:00:00+24:00", "offset hour 24 is not 00-23"),
        ("2030-01-01T00:00:00+01:60", "offset minute 60 is not 00-59"),
        ("2030-01-01T00:00:00+01:00:00", "unexpected characters"),
        ("2030-01-01T00:00:00UTC", "expected `Z` or an offset"),
        ("2030-01-01T00:00:00\u{0}Z", "expected `Z` or an offset"),
        // Leap seconds only where one can be.
        ("2030-01-01T12:00:60Z", "leap second"),
        ("2016-12-30T23:59:60Z", "leap second"),
        ("2016-12-31T23:59:60+01:00", "leap second"),
        // Before 1970 / after what RFC 3339 can write in UTC.
        ("1969-12-31T23:59:59Z", "before 1970"),
        ("1970-01-01T00:30:00+01:00", "before 1970"),
        ("0000-01-01T00:00:00Z", "before 1970"),
        ("9999-12-31T23:59:59-00:01", "after 9999-12-31T23:59:59Z"),
        ("9999-12-31T23:59:60Z", "after 9999"),
    ];
    for &(s, why) in table {
        let err = ts(s).expect_err(s);
        assert!(
            err.contains(why) && err.contains("is not an RFC 3339 time"),
            "{s:?}: {err}"
        );
    }
}

#[test]
fn error_messages_quote_at_most_forty_characters_escaped() {
    let long = format!("2030-01-01T00:00:00Z{}", "\n".repeat(1000));
    let err = ts(&long).unwrap_err();
    assert!(err.starts_with("`2030-01-01T00:00:00Z\\n\\n"), "{err}");
    assert!(err.len() < 200, "{err}");
    assert!(err.contains('…'), "{err}");
}

/// xorshift64*: a small deterministic generator for the property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
}

/// Strings near valid timestamps (single-byte and multi-byte edits of valid ones) and
/// random byte strings never panic; whatever is accepted prints back to the same moment.
#[test]
fn no_string_panics_and_accepted_ones_round_trip() {
    const SEEDS: &[&str] = &[
        "2030-01-01T00:00:00+01:00",
        "2016-12-31T23:59:60Z",
        "2024-02-29T23:59:59.123-23:59",
        "1970-01-01T00:00:00z",
    ];
    const PIECES: &[&str] = &[
        "é",
        "\u{1F600}",
        "0",
        "9",
        "6",
        "-",
        "+",
        ":",
        "T",
        "Z",
        ".",
        " ",
        "\u{0}",
        "ß",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut accepted = 0;
    for round in 0..200_000 {
        let s: String = if round % 4 == 0 {
            let bytes: Vec<u8> = (0..rng.below(32)).map(|_| rng.byte()).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            let mut s = SEEDS[rng.below(SEEDS.len())].to_string();
            for _ in 0..=rng.below(3) {
                // An edit at a char boundary: replace, insert or delete.
                let bounds: Vec<usize> = s.char_indices().map(|(i, _)| i).collect();
                let at = bounds.get(rng.below(bounds.len() + 1)).copied();
                let at = at.unwrap_or(s.len());
                let piece = PIECES[rng.below(PIECES.len())];
                match rng.below(3) {
                    0 if at < s.len() => {
                        let ch = s[at..].chars().next().unwrap();
                        s.replace_range(at..at + ch.len_utf8(), piece);
                    }
                    1 if at < s.len() => {
                        let ch = s[at..].chars().next().unwrap();
                        s.replace_range(at..at + ch.len_utf8(), "");
                    }
                    _ => s.insert_str(at, piece),
                }
            }
            s
        };
        if let Ok(t) = s.parse::<Timestamp>() {
            accepted += 1;
            let printed = t.to_string();
            assert_eq!(printed.parse::<Timestamp>(), Ok(t), "{s:?} -> {printed}");
            assert!(s.is_ascii(), "{s:?} accepted");
        }
    }
    // The mutations must also reach valid strings, or the round-trip check checks nothing.
    assert!(accepted > 1000, "only {accepted} accepted");
}

#[test]
fn every_day_of_four_centuries_round_trips() {
    let mut day = days_from_civil(1970, 1, 1);
    let end = days_from_civil(2370, 1, 1);
    while day < end {
        let t = Timestamp(u64::try_from(day * 86_400 + 86_399).unwrap());
        assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        day += 1;
    }
}

#[test]
fn port_ranges_parse_and_print() {
    let r: PortRange = "8000-8010".parse().unwrap();
    assert_eq!(r.count(), 11);
    assert_eq!((r.first(), r.last()), (8000, 8010));
    assert_eq!(r.to_string(), "8000-8010");
    assert!(r.contains(8010) && !r.contains(8011));
    assert_eq!(" 80 ".parse::<PortRange>(), Ok(PortRange::single(80)));
    assert_eq!("1-65535".parse::<PortRange>().unwrap().count(), 65_535);
    for (s, why) in [
        ("80-", "not a port or a range"),
        ("-80", "not a port or a range"),
        ("http", "not a port or a range"),
        ("+80", "not a port or a range"),
        ("8é", "not a port or a range"),
        ("0", "port 0"),
        ("0-10", "port 0"),
        ("70000", "70000 is above 65535"),
        ("65530-65536", "65536 is above 65535"),
        ("99999999999999999999999", "at most 65535"),
        ("90-80", "range 90-80 ends before it starts"),
        ("1-2-3", "not a port or a range"),
    ] {
        let err = s.parse::<PortRange>().unwrap_err();
        assert!(err.contains(why), "{s}: {err}");
    }
    assert!(PortRange::new(2, 1).is_err());
    assert!(PortRange::new(0, 1).is_err());
}

#[test]
fn port_ranges_deserialize_only_when_real() {
    let de = |j: &str| serde_json::from_str::<PortRange>(j).map_err(|e| e.to_string());
    assert_eq!(de("443"), Ok(PortRange::single(443)));
    assert_eq!(de("\"10-20\""), Ok(PortRange::new(10, 20).unwrap()));
    for (j, why) in [
        ("0", "port 0"),
        ("65536", "above 65535"),
        ("18446744073709551615", "at most 65535"),
        ("-1", "negative"),
        ("\"20-10\"", "ends before it starts"),
        ("8.5", "a port number or a range"),
        ("null", "a port number or a range"),
    ] {
        let err = de(j).unwrap_err();
        assert!(err.contains(why), "{j}: {err}");
    }
    let r = PortRange::new(10, 20).unwrap();
    assert_eq!(serde_json::to_string(&r).unwrap(), "\"10-20\"");
    assert_eq!(serde_json::to_string(&PortRange::single(7)).unwrap(), "7");
}

#[test]
fn prefixes_parse_and_contain() {
    let n: Ipv4Net = "192.168.1.0/24".parse().unwrap();
    assert!(n.contains("192.168.1.77".parse().unwrap()));
    assert!(!n.contains("192.168.2.1".parse().unwrap()));
    assert_eq!(n.broadcast(), "192.168.1.255".parse::<Ipv4Addr>().unwrap());
    assert!("10.0.0.1/8".parse::<Ipv4Net>().unwrap().has_host_bits());
    assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
    assert!("10.0.0.0/999"
        .parse::<Ipv4Net>()
        .unwrap_err()
        .contains("999"));
    assert!("10.0.0.0/+8".parse::<Ipv4Net>().is_err());
    assert!("10.0.0.0/".parse::<Ipv4Net>().is_err());
    assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
    assert_eq!("1.2.3.4".parse::<Ipv4Net>().unwrap().prefix_len(), 32);
    let all: Ipv4Net = "0.0.0.0/0".parse().unwrap();
    assert_eq!(all.span(), (0, u32::MAX));
    assert!(all.contains(Ipv4Addr::BROADCAST));
    assert!(Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 1), 33).is_err());
    let n = Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 1), 8).unwrap();
    assert_eq!((n.addr(), n.prefix_len()), (Ipv4Addr::new(10, 0, 0, 1), 8));
    assert_eq!(
        Ipv4Net::host(Ipv4Addr::new(10, 0, 0, 1)).to_string(),
        "10.0.0.1"
    );
}

fn nets(list: &[&str]) -> Vec<Ipv4Net> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

#[test]
fn coverage_is_computed_not_spelled() {
    assert!(covers_everything(&nets(&["0.0.0.0/0"])));
    assert!(covers_everything(&nets(&["0.0.0.0/1", "128.0.0.0/1"])));
    assert!(covers_everything(&nets(&[
        "128.0.0.0/2",
        "10.0.0.0/8",
        "0.0.0.0/1",
        "192.0.0.0/2",
    ])));
    // Host bits do not matter: 1.2.3.4/0 is everything.
    assert!(covers_everything(&nets(&["1.2.3.4/0"])));
    assert!(!covers_everything(&[]));
    assert!(!covers_everything(&nets(&["0.0.0.0/1"])));
    assert!(!covers_everything(&nets(&["0.0.0.0/1", "128.0.0.0/2"])));
    // Missing only the very first address: 128/1, 64/2, ..., 0.0.0.1/32.
    let mut all_but_first: Vec<Ipv4Net> = (1..=32u8)
        .map(|len| Ipv4Net::new(Ipv4Addr::from(1u32 << (32 - u32::from(len))), len).unwrap())
        .collect();
    // all_but_last: 0/1, 128/2, 192/3, ..., 255.255.255.254/32.
    let all_but_last: Vec<Ipv4Net> = (1..=32u8)
        .map(|len| {
            let start = u32::MAX.checked_shl(33 - u32::from(len)).unwrap_or(0);
            Ipv4Net::new(Ipv4Addr::from(start), len).unwrap()
        })
        .collect();
    assert!(!covers_everything(&all_but_last), "{all_but_last:?}");
    let mut with_last = all_but_last.clone();
    with_last.push("255.255.255.255".parse().unwrap());
    assert!(covers_everything(&with_last));
    assert!(!covers_everything(&all_but_first));
    all_but_first.push("0.0.0.0".parse().unwrap());
    assert!(covers_everything(&all_but_first));
}

#[test]
fn covered_checks_one_prefix_against_a_union() {
    let list = nets(&[
        "10.0.0.0/9",
        "10.128.0.0/10",
        "10.192.0.0/10",
        "11.0.0.0/32",
    ]);
    let q = |s: &str| covered(&list, &s.parse().unwrap());
    assert!(q("10.0.0.0/8"));
    assert!(q("10.200.1.0/24"));
    assert!(q("11.0.0.0"));
    assert!(!q("11.0.0.0/31"));
    assert!(!q("9.255.255.255"));
    assert!(!q("0.0.0.0/0"));
    assert!(!covered(&[], &"10.0.0.0/8".parse().unwrap()));
    // Duplicates and nesting are fine.
    let dup = nets(&["10.0.0.0/8", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.3"]);
    assert!(covered(&dup, &"10.0.0.0/8".parse().unwrap()));
    assert!(!covered(&dup, &"10.0.0.0/7".parse().unwrap()));
}

/// Against a brute-force oracle on a small universe: prefixes of 8.0.0.0/24 and queries
/// inside it, checked address by address.
#[test]
fn covered_agrees_with_brute_force() {
    let mut rng = Rng(0xc0ff_ee00_1234_5678);
    for _ in 0..2_000 {
        let n = rng.below(6);
        let list: Vec<Ipv4Net> = (0..n)
            .map(|_| {
                let len = 24 + u8::try_from(rng.below(9)).unwrap();
                Ipv4Net::new(Ipv4Addr::new(8, 0, 0, rng.byte()), len).unwrap()
            })
            .collect();
        let len = 24 + u8::try_from(rng.below(9)).unwrap();
        let query = Ipv4Net::new(Ipv4Addr::new(8, 0, 0, rng.byte()), len).unwrap();
        let (lo, hi) = query.span();
        let brute = (lo..=hi).all(|a| list.iter().any(|p| p.contains(Ipv4Addr::from(a))));
        assert_eq!(covered(&list, &query), brute, "{list:?} {query}");
    }
}
