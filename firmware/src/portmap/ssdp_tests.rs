use super::*;

fn udns() -> Udns {
    Udns {
        root: "uuid:11111111-2222-8333-8444-555555555555".into(),
        wan_device: "uuid:11111111-2222-8333-8444-666666666666".into(),
        wan_conn_device: "uuid:11111111-2222-8333-8444-777777777777".into(),
    }
}

fn advert(u: &Udns) -> Advert<'_> {
    Advert {
        udns: u,
        location: "http://192.168.1.1:5000/rootDesc.xml".into(),
        server: "Linux UPnP/1.1 Portcullis/0.1",
        boot_id: 7,
    }
}

/// What miniupnpc 2.2.4 sends (minissdpc.c, MSearchMsgFmt).
fn msearch(st: &str) -> Vec<u8> {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: {st}\r\n\
         MAN: \"ssdp:discover\"\r\nMX: 2\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn a_miniupnpc_search_for_igd1_gets_exactly_one_golden_answer() {
    let u = udns();
    let s = parse_search(&msearch(IGD)).unwrap();
    assert_eq!(
        s,
        Search {
            st: IGD.into(),
            mx: Some(2)
        }
    );
    let a = answers(&s, &advert(&u));
    assert_eq!(a.len(), 1);
    assert_eq!(
        String::from_utf8(a[0].clone()).unwrap(),
        "HTTP/1.1 200 OK\r\n\
         CACHE-CONTROL: max-age=1800\r\n\
         EXT:\r\n\
         LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\
         SERVER: Linux UPnP/1.1 Portcullis/0.1\r\n\
         ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
         USN: uuid:11111111-2222-8333-8444-555555555555::urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\
         BOOTID.UPNP.ORG: 7\r\n\
         CONFIGID.UPNP.ORG: 1\r\n\r\n"
    );
}

#[test]
fn ssdp_all_answers_every_target_and_versions_above_ours_get_nothing() {
    let u = udns();
    let ad = advert(&u);
    let all = answers(&parse_search(&msearch("ssdp:all")).unwrap(), &ad);
    let sts: Vec<String> = all
        .iter()
        .map(|m| {
            let t = String::from_utf8(m.clone()).unwrap();
            t.lines()
                .find_map(|l| l.strip_prefix("ST: ").map(str::to_string))
                .unwrap()
        })
        .collect();
    assert_eq!(
        sts,
        [
            "upnp:rootdevice",
            &u.root,
            IGD,
            &u.wan_device,
            WAN_DEVICE,
            WAN_COMMON_IF,
            &u.wan_conn_device,
            WAN_CONN_DEVICE,
            WAN_IP_CONN
        ]
    );
    // What upnpc asks for first: IGD:2 and WANIPConnection:2 are not ours.
    for st in [
        "urn:schemas-upnp-org:device:InternetGatewayDevice:2",
        "urn:schemas-upnp-org:service:WANIPConnection:2",
        "urn:schemas-upnp-org:service:WANPPPConnection:1",
        "urn:schemas-upnp-org:device:InternetGatewayDevice:0",
        "urn:schemas-upnp-org:device:InternetGatewayDevice:",
        "uuid:11111111-2222-8333-8444-999999999999",
        "upnp:rootdevice:1",
    ] {
        assert!(matches(st, &u).is_empty(), "{st}");
    }
    assert_eq!(
        matches(&u.wan_device, &u),
        [(u.wan_device.clone(), u.wan_device.clone())]
    );
    assert_eq!(
        matches("upnp:rootdevice", &u),
        [(
            "upnp:rootdevice".to_string(),
            format!("{}::upnp:rootdevice", u.root)
        )]
    );
    assert_eq!(
        matches(WAN_IP_CONN, &u),
        [(
            WAN_IP_CONN.to_string(),
            format!("{}::{WAN_IP_CONN}", u.wan_conn_device)
        )]
    );
}

#[test]
fn malformed_searches_are_refused() {
    assert_eq!(parse_search(&[b' '; 2049]), Err(SsdpError::TooLarge));
    assert_eq!(
        parse_search(b"NOTIFY * HTTP/1.1\r\n\r\n"),
        Err(SsdpError::NotSearch)
    );
    assert_eq!(
        parse_search(b"M-SEARCH * HTTP/1.1\r\nST: ssdp:all\r\nMX: 1\r\n\r\n"),
        Err(SsdpError::Man)
    );
    assert_eq!(
        parse_search(b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\n\r\n"),
        Err(SsdpError::NoTarget)
    );
    assert_eq!(
        parse_search(b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: a\r\nMX: x\r\n\r\n"),
        Err(SsdpError::Mx)
    );
    assert_eq!(
        parse_search(b"M-SEARCH * HTTP/1.1\r\nbroken\r\n\r\n"),
        Err(SsdpError::Malformed)
    );
    let many = format!("M-SEARCH * HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(33));
    assert_eq!(
        parse_search(many.as_bytes()),
        Err(SsdpError::TooManyHeaders)
    );
    // Case-insensitive names, bare LF, a large MX capped at 5, no MX for unicast.
    let s = parse_search(b"M-SEARCH * HTTP/1.1\nman: \"ssdp:discover\"\nst: ssdp:all\nmx: 120\n\n")
        .unwrap();
    assert_eq!(s.mx, Some(5));
    let s = parse_search(b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n")
        .unwrap();
    assert_eq!(s.mx, None);
}

#[test]
fn notify_alive_and_byebye_cover_every_target() {
    let u = udns();
    let ad = advert(&u);
    let alive = notify_alive(&ad);
    let bye = notify_byebye(&ad);
    assert_eq!((alive.len(), bye.len()), (9, 9));
    assert_eq!(
        String::from_utf8(alive[0].clone()).unwrap(),
        "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nCACHE-CONTROL: max-age=1800\r\n\
         LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\nNT: upnp:rootdevice\r\n\
         NTS: ssdp:alive\r\nSERVER: Linux UPnP/1.1 Portcullis/0.1\r\n\
         USN: uuid:11111111-2222-8333-8444-555555555555::upnp:rootdevice\r\n\
         BOOTID.UPNP.ORG: 7\r\nCONFIGID.UPNP.ORG: 1\r\n\r\n"
    );
    assert_eq!(
        String::from_utf8(bye[8].clone()).unwrap(),
        format!(
            "NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: {WAN_IP_CONN}\r\n\
             NTS: ssdp:byebye\r\nUSN: {}::{WAN_IP_CONN}\r\nBOOTID.UPNP.ORG: 7\r\n\
             CONFIGID.UPNP.ORG: 1\r\n\r\n",
            u.wan_conn_device
        )
    );
}

#[test]
fn the_limiter_allows_a_burst_then_refills_and_bounds_its_table() {
    let mut l = Limiter::default();
    let a = Ipv4Addr::new(192, 168, 1, 10);
    for _ in 0..Limiter::BURST {
        assert!(l.allow(a, 1000));
    }
    assert!(!l.allow(a, 1000));
    assert!(!l.allow(a, 1000 + Limiter::REFILL_MS - 1));
    assert!(l.allow(a, 1000 + Limiter::REFILL_MS));
    assert!(!l.allow(a, 1000 + Limiter::REFILL_MS));
    // Another host is not affected.
    assert!(l.allow(Ipv4Addr::new(192, 168, 1, 11), 1000));
    // A full table of active sources keeps new ones out until they calm down.
    let mut l = Limiter::default();
    for i in 0..Limiter::SOURCES {
        let ip = Ipv4Addr::from(0x0a00_0000 + u32::try_from(i).unwrap());
        assert!(l.allow(ip, 0));
    }
    assert!(!l.allow(a, 0));
    assert!(l.allow(a, Limiter::REFILL_MS));
}

#[test]
fn fuzz_entry_survives_odd_input() {
    fuzz_ssdp(&msearch("ssdp:all"));
    fuzz_ssdp(b"M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: urn:x:99999999999\r\nMX: 99999999999999\r\n");
    fuzz_ssdp(b"\xff\xfe");
    fuzz_ssdp(b"");
}
