//! Hostile input to the port-mapping servers (issue 8): whatever a LAN host or the
//! internet sends — oversized or malformed SOAP, garbage SSDP, PCP and NAT-PMP datagrams,
//! an eventing subscription that would make the router call out, a flood of mapping
//! requests — nothing is granted that the rule does not allow, the router calls nobody,
//! memory stays bounded and the daemon still answers a valid request afterwards.
//!
//! Needs root, `make deps` (miniupnpc, natpmpc, nmap) and the `portcullis` binary.

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use portcullis_e2e::cli::Daemon;
use portcullis_e2e::clients;
use portcullis_e2e::netns;
use portcullis_e2e::pcp_client::{self, natpmp_map, MapRequest, PmpResponse};
use portcullis_e2e::poll;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::upnp::{self, natpmpc, section, Soap, RULE_LAN_HOST};
use portcullis_e2e::{Config, Topology, LAN_HOST, ROUTER_LAN, ROUTER_WAN, WAN_HOST};

/// Generous: the whole router daemon, after everything below, stays under this.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// The per-host quota the config sets, and how many mappings the flood asks for.
const MAX_PER_HOST: u32 = 16;
const FLOOD: u16 = 10_000;

/// The allow-list topology with a small quota, once NAT-PMP answers.
fn setup() -> (Topology, Daemon) {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let section = section("allow_list", &[RULE_LAN_HOST]).replace(
        r#""allow": "#,
        &format!(r#""max_per_host": {MAX_PER_HOST}, "allow": "#),
    );
    let daemon = upnp::serve(&cli, &Config::new().upnp(&section));
    upnp::pmp_ready(&t, &daemon);
    (t, daemon)
}

/// The daemon still does its job: NAT-PMP answers a valid request.
#[track_caller]
fn pmp_still_answers(t: &Topology, daemon: &mut Daemon, after: &str) {
    assert!(
        daemon.running(),
        "the daemon died after {after}\n{}",
        daemon.logs()
    );
    let pmp = natpmpc(&t.lan, ROUTER_LAN, &[]);
    assert!(
        pmp.stdout.contains("Public IP address : 203.0.113.2"),
        "NAT-PMP after {after}: {}\n{}",
        pmp.story(),
        daemon.logs()
    );
}

/// And SOAP answers a valid request too.
#[track_caller]
fn soap_still_answers(t: &Topology, soap: &Soap, daemon: &mut Daemon, after: &str) {
    pmp_still_answers(t, daemon, after);
    let s = soap.clone();
    let ip = netns::run_in(&t.lan, || s.external_ip());
    assert!(
        matches!(ip, Ok((200, ref body)) if body.contains("203.0.113.2")),
        "GetExternalIPAddress after {after}: {ip:?}\n{}",
        daemon.logs()
    );
}

#[test]
fn malformed_and_oversized_soap_and_subscribe_callbacks_are_refused() {
    let (t, mut daemon) = setup();
    let soap = upnp::soap_ready(&t, &daemon);
    // A listener where a SUBSCRIBE asks the router to send events.
    let callback = Server::tcp(&t.lan, sa(LAN_HOST, 50099), "callback");
    let s = soap.clone();
    let answers = netns::run_in(&t.lan, || {
        let huge = vec![b'A'; 1 << 20];
        let nested = format!(
            "<?xml version=\"1.0\"?>{}{}",
            "<a>".repeat(100_000),
            "</a>".repeat(100_000)
        );
        let unknown = s.envelope("FormatTheDisk", &[("NewRemoteHost", String::new())]);
        let add_to_other = s.envelope(
            "AddPortMapping",
            &[
                ("NewRemoteHost", String::new()),
                ("NewExternalPort", "50005".into()),
                ("NewProtocol", "TCP".into()),
                ("NewInternalPort", "50005".into()),
                ("NewInternalClient", "192.168.1.20".into()),
                ("NewEnabled", "1".into()),
                ("NewPortMappingDescription", "<![CDATA[x]]>&amp;".into()),
                ("NewLeaseDuration", "600".into()),
            ],
        );
        let event = s.event.clone().unwrap_or_else(|| "/evt/IPConn".into());
        let subscribe = format!(
            "SUBSCRIBE {event} HTTP/1.1\r\nHost: {}\r\nCALLBACK: <http://{LAN_HOST}:50099/cb>\r\n\
             NT: upnp:event\r\nTIMEOUT: Second-1800\r\nConnection: close\r\n\r\n",
            s.addr
        );
        vec![
            ("1 MiB body", s.call_raw("AddPortMapping", &huge)),
            (
                "100,000 nested elements",
                s.call_raw("AddPortMapping", nested.as_bytes()),
            ),
            (
                "unknown action",
                s.call_raw("FormatTheDisk", unknown.as_bytes()),
            ),
            (
                "mapping to another host",
                s.call_raw("AddPortMapping", add_to_other.as_bytes()),
            ),
            (
                "SUBSCRIBE",
                upnp::http_here(s.addr, &subscribe, b"", clients::TIMEOUT * 4),
            ),
        ]
    });
    for (what, got) in &answers {
        // Refused with an error status, or the connection closed: never a 200.
        if let Ok((status, text)) = got {
            assert_ne!(*status, 200, "{what} was accepted: {text}");
        }
    }
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50005)).is_err(),
        "a mapping to another host opened"
    );
    // Give a would-be event a moment to arrive; none may.
    let called = poll::until_true(Duration::from_secs(3), || callback.served() > 0);
    assert!(!called, "the router connected to the SUBSCRIBE callback");
    soap_still_answers(&t, &soap, &mut daemon, "bad SOAP");
}

/// Sends each datagram from the LAN host to `dst` and returns what came back.
fn send_all(ns: &str, dst: SocketAddrV4, datagrams: &[Vec<u8>]) -> Vec<Option<Vec<u8>>> {
    netns::run_in(ns, || {
        let s =
            pcp_client::socket_here(std::net::Ipv4Addr::UNSPECIFIED, Duration::from_millis(300));
        datagrams
            .iter()
            .map(|d| pcp_client::exchange(&s, dst, d))
            .collect()
    })
}

#[test]
fn garbage_datagrams_and_wan_side_requests_get_nothing() {
    let (t, mut daemon) = setup();
    let mut garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        vec![2],
        vec![0xff; 3],
        vec![0, 1, 0],                   // short NAT-PMP map
        vec![2, 1, 0, 0, 0, 0, 2, 0x58], // short PCP header
        [3, 1, 0, 0].repeat(15),         // PCP version 3
        [2, 0x7f, 0, 0].repeat(15),      // unknown opcode
        vec![0x5a; 1101],                // over PCP's 1100-byte limit
        vec![0xa5; 9000],
        b"M-SEARCH * HTTP/1.1\r\n\r\n".to_vec(), // SSDP on the PMP port
    ];
    let mut long_pcp = MapRequest::new(LAN_HOST, [1; 12], 6, 50006, 600).encode();
    long_pcp.extend_from_slice(&[1u8; 1000]); // options that do not parse
    garbage.push(long_pcp);
    let pmp = sa(ROUTER_LAN, pcp_client::PORT);
    for (d, got) in garbage.iter().zip(send_all(&t.lan, pmp, &garbage)) {
        if let Some(a) = got {
            // An error answer is fine (RFC 6887 §8.3); success is not, nor a large reply.
            assert!(
                a.len() <= 1100,
                "{}-byte answer to {} bytes",
                a.len(),
                d.len()
            );
            if a.len() >= 4 && a[0] == 2 {
                assert_ne!(
                    a[3],
                    pcp_client::result::SUCCESS,
                    "PCP success for {d:02x?}"
                );
            }
        }
    }
    // SSDP: garbage and an oversized datagram, to the group and to the router itself.
    let ssdp_garbage = vec![
        b"\x00\xff garbage".to_vec(),
        b"M-SEARCH * HTTP/1.1\r\nST: ".iter().copied().chain(vec![b'x'; 60_000]).collect(),
        b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNTS: ssdp:alive\r\nLOCATION: http://192.168.1.10:50099/\r\n\r\n".to_vec(),
    ];
    for dst in [sa([239, 255, 255, 250].into(), 1900), sa(ROUTER_LAN, 1900)] {
        send_all(&t.lan, dst, &ssdp_garbage);
    }

    // From the internet: nothing answers on the WAN address.
    let search = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n".to_vec();
    let wan_pcp = MapRequest::new(WAN_HOST, [2; 12], 6, 50007, 600).encode();
    let wan_pmp = natpmp_external();
    for (port, d) in [(1900, search), (5351, wan_pcp), (5351, wan_pmp)] {
        let got = send_all(&t.wan, sa(ROUTER_WAN, port), &[d]);
        assert_eq!(got, vec![None], "the WAN address answered on {port}/udp");
    }
    let soap_from_wan = netns::run_in(&t.wan, || {
        Soap::discover_here(sa(ROUTER_WAN, upnp::SOAP_PORT))
    });
    assert!(
        soap_from_wan.is_err(),
        "SOAP from the WAN: {soap_from_wan:?}"
    );
    pmp_still_answers(&t, &mut daemon, "garbage datagrams");
}

/// NAT-PMP's external-address request (RFC 6886 §3.2).
fn natpmp_external() -> Vec<u8> {
    vec![0, 0]
}

#[test]
fn a_flood_of_natpmp_requests_stops_at_the_quota_and_memory_stays_bounded() {
    let (t, mut daemon) = setup();
    let granted = AtomicU32::new(0);
    let answered = AtomicU32::new(0);
    let done = AtomicBool::new(false);
    let started = Instant::now();
    netns::run_in(&t.lan, || {
        let s = UdpSocket::bind(sa(LAN_HOST, 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let dst = sa(ROUTER_LAN, pcp_client::PORT);
        std::thread::scope(|scope| {
            let rx = s.try_clone().expect("clone socket");
            let (granted, answered, done) = (&granted, &answered, &done);
            scope.spawn(move || {
                let mut buf = [0u8; 64];
                let mut idle_since = None;
                loop {
                    match rx.recv_from(&mut buf) {
                        Ok((n, _)) => {
                            idle_since = None;
                            answered.fetch_add(1, Ordering::SeqCst);
                            if PmpResponse::parse(&buf[..n]).is_ok_and(|r| r.result == 0) {
                                granted.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        Err(_) if done.load(Ordering::SeqCst) => {
                            // One second of silence after the last request: finished.
                            let since = *idle_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > Duration::from_secs(1) {
                                break;
                            }
                        }
                        Err(_) => {}
                    }
                }
            });
            for i in 0..FLOOD {
                // 10,000 different internal ports, cycling through the allowed range.
                let req = natpmp_map(i % 2 == 0, 10_000 + i, 50_000 + i % 101, 3600);
                let _ = s.send_to(&req, dst);
                if i % 200 == 199 {
                    // Let the server's socket buffer drain a little (not a synchronisation).
                    std::thread::yield_now();
                }
            }
            done.store(true, Ordering::SeqCst);
        });
    });
    let (granted, answered) = (granted.into_inner(), answered.into_inner());
    eprintln!(
        "flood: {FLOOD} requests, {answered} answers, {granted} granted in {:?}",
        started.elapsed()
    );
    // Exactly the quota: the first requests within it are granted (the server's rate limit
    // lets far more than 16 through at once), every later one is refused or dropped.
    assert_eq!(
        granted,
        MAX_PER_HOST,
        "mappings granted to one host ({answered} answers)\n{}",
        daemon.logs()
    );
    let rss = upnp::rss_kib(daemon.pid().as_raw()).expect("daemon's /proc status");
    assert!(rss < RSS_LIMIT_KIB, "daemon RSS {rss} KiB after the flood");
    pmp_still_answers(&t, &mut daemon, "the flood");
}
