use super::*;
use crate::config::Reservation;

/// A lease file as dnsmasq 2.90 writes it (lease.c `lease_update_file`): two IPv4 leases
/// (one without a host name, one infinite), a non-Ethernet hardware type, then the DUID
/// line and an IPv6 lease.
const LEASES: &str = "\
1764510000 52:54:00:12:34:56 192.168.1.143 laptop 01:52:54:00:12:34:56
1764500000 52:54:00:ab:cd:ef 192.168.1.150 * *
0 52:54:00:00:00:07 192.168.1.7 printer *
1764510000 06-52:54:00:00:00:09 192.168.1.9 tokenring *
duid 00:01:00:01:2c:3d:4e:5f:52:54:00:12:34:56
1764510000 1234567 fd00::143 laptop 00:01:00:01:2c:3d:4e:5f:52:54:00:12:34:56
garbage line
18446744073709551616 52:54:00:12:34:57 192.168.1.1 x *
\u{0}\u{ff}
";

fn mac(last: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0x12, 0x34, last])
}

fn dhcp(reservations: Vec<Reservation>) -> Dhcp {
    Dhcp {
        enabled: true,
        start: Ipv4Addr::new(192, 168, 1, 100),
        end: Ipv4Addr::new(192, 168, 1, 249),
        lease_secs: 3600,
        domain: "lan".into(),
        reservations,
    }
}

#[test]
fn ipv4_leases_parse_and_the_rest_is_skipped() {
    let l = parse_leases(LEASES);
    assert_eq!(l.len(), 3, "{l:?}");
    assert_eq!(
        l[0],
        Lease {
            expires: 1_764_510_000,
            mac: mac(0x56),
            address: Ipv4Addr::new(192, 168, 1, 143),
            hostname: Some("laptop".into()),
        }
    );
    assert_eq!(l[1].hostname, None);
    assert_eq!((l[2].expires, l[2].address.octets()[3]), (0, 7));
    assert!(parse_leases("").is_empty());
    assert!(parse_leases("1 2").is_empty());
}

#[test]
fn one_device_per_mac_from_every_source() {
    let leases = parse_leases(LEASES);
    let neighbours = [
        // Online, with a lease: the lease's address wins over a stale neighbour entry.
        (Ipv4Addr::new(192, 168, 1, 99), mac(0x56)),
        // A device with a static address: no lease.
        (Ipv4Addr::new(192, 168, 1, 20), mac(0x20)),
    ];
    let d = dhcp(vec![
        Reservation {
            name: "nas".into(),
            mac: mac(0x30),
            address: Ipv4Addr::new(192, 168, 1, 10),
            comment: String::new(),
        },
        Reservation {
            name: "lap".into(),
            mac: mac(0x56),
            address: Ipv4Addr::new(192, 168, 1, 11),
            comment: String::new(),
        },
    ]);
    let mut seen = Seen::default();
    seen.saw(&neighbours, 1_764_509_000);
    let list = merge(&leases, &neighbours, Some(&d), &seen);
    let addrs: Vec<u8> = list
        .iter()
        .map(|d| d.address.map_or(0, |a| a.octets()[3]))
        .collect();
    assert_eq!(addrs, [7, 10, 20, 143, 150]);
    let lap = &list[3];
    assert_eq!(lap.mac, mac(0x56));
    assert_eq!(
        (lap.hostname.as_deref(), lap.name.as_deref()),
        (Some("laptop"), Some("lap"))
    );
    assert_eq!(lap.reserved, Some(Ipv4Addr::new(192, 168, 1, 11)));
    assert_eq!(lap.lease_expires, Some(1_764_510_000));
    // Renewed at expiry - lease time (1764506400); seen in the table later.
    assert_eq!(lap.last_seen, Some(1_764_509_000));
    assert!(lap.online);
    let nas = &list[1];
    assert!(!nas.online && nas.last_seen.is_none() && nas.lease_expires.is_none());
    assert_eq!(nas.address, nas.reserved);
    let quiet = &list[4];
    assert!(!quiet.online);
    assert_eq!(quiet.last_seen, Some(1_764_500_000 - 3600), "lease renewal");
    let infinite = &list[0];
    assert_eq!((infinite.lease_expires, infinite.last_seen), (None, None));
    assert_eq!(list[2].hostname, None);
    assert!(list[2].online);
}

#[test]
fn without_a_dhcp_section_the_default_lease_time_dates_renewals() {
    let l = parse_leases("100000 52:54:00:12:34:01 192.168.1.5 a *\n");
    let list = merge(&l, &[], None, &Seen::default());
    assert_eq!(
        list[0].last_seen,
        Some(100_000 - u64::from(DEFAULT_LEASE_SECS))
    );
    // An expiry before the lease time cannot underflow.
    let l = parse_leases("5 52:54:00:12:34:01 192.168.1.5 a *\n");
    assert_eq!(merge(&l, &[], None, &Seen::default())[0].last_seen, Some(0));
}

#[test]
fn the_memory_is_bounded_and_forgets_the_oldest() {
    let mut seen = Seen::default();
    for i in 0..=MAX_SEEN {
        let b = u16::try_from(i).unwrap_or(0).to_be_bytes();
        seen.saw(
            &[(Ipv4Addr::UNSPECIFIED, MacAddr([2, 0, 0, 0, b[0], b[1]]))],
            i as u64 + 10,
        );
    }
    assert_eq!(seen.0.len(), MAX_SEEN);
    assert_eq!(seen.get(&MacAddr([2, 0, 0, 0, 0, 0])), None);
    assert_eq!(seen.get(&MacAddr([2, 0, 0, 0, 0, 1])), Some(11));
}

#[test]
fn the_serialized_shape() {
    let l = parse_leases("0 52:54:00:12:34:01 192.168.1.5 * *\n");
    let v = serde_json::to_value(merge(&l, &[], None, &Seen::default())).unwrap_or_default();
    assert_eq!(
        v,
        serde_json::json!([{"mac": "52:54:00:12:34:01", "address": "192.168.1.5",
            "hostname": null, "name": null, "reserved": null, "lease_expires": null,
            "last_seen": null, "online": false}])
    );
}

/// Found by the issue 10 review: reserving an address another device still held pointed a
/// forward to the reserved device at that other device until it renewed.
#[test]
fn a_reservation_of_an_address_another_device_holds_is_refused() {
    use crate::config::{Dhcp, Reservation};
    let a: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
    let b: MacAddr = "02:00:00:00:00:0b".parse().unwrap();
    let dhcp = |addr: &str| Dhcp {
        enabled: true,
        start: "192.168.1.100".parse().unwrap(),
        end: "192.168.1.200".parse().unwrap(),
        lease_secs: 3600,
        domain: "lan".into(),
        reservations: vec![Reservation {
            name: "nas".into(),
            mac: a,
            address: addr.parse().unwrap(),
            comment: String::new(),
        }],
    };
    let lease = |mac, expires| Lease {
        expires,
        mac,
        address: "192.168.1.150".parse().unwrap(),
        hostname: None,
    };
    let want = dhcp("192.168.1.150");
    let fields =
        |r: crate::config::Report| -> Vec<String> { r.errors().map(|i| i.field.clone()).collect() };
    // B holds .150 until t=2000: refused at t=1000, allowed once the lease ended.
    let held = held_elsewhere(None, Some(&want), &[lease(b, 2000)], &[], 1000);
    assert_eq!(fields(held), ["dhcp.reservations[0].address"]);
    assert!(!held_elsewhere(None, Some(&want), &[lease(b, 2000)], &[], 2001).has_errors());
    // A's own lease of the address is no conflict; a static device seen by ARP is.
    assert!(!held_elsewhere(None, Some(&want), &[lease(a, 2000)], &[], 1000).has_errors());
    let arp = [("192.168.1.150".parse().unwrap(), b)];
    assert!(held_elsewhere(None, Some(&want), &[], &arp, 1000).has_errors());
    // A reservation kept as it was is not re-judged (the forward already points there).
    assert!(!held_elsewhere(Some(&want), Some(&want), &[lease(b, 2000)], &[], 1000).has_errors());
}
