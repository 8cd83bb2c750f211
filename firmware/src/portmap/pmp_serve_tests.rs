use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::fake::{Call, FakeMapper};
use super::*;
use crate::config::Ipv4Net;

#[test]
fn limiter_allows_a_burst_then_the_rate() {
    let mut l = Limiter::default();
    let t0 = Instant::now();
    let a = Ipv4Addr::new(192, 168, 1, 20);
    let b = Ipv4Addr::new(192, 168, 1, 21);
    let allowed = (0..1000).filter(|_| l.allow(a, t0)).count();
    assert_eq!(allowed, 51);
    assert!(l.allow(b, t0), "another host has its own bucket");
    let step = Duration::from_secs(1) / RATE_PER_SEC;
    assert!(!l.allow(a, t0 + step / 2));
    assert!(l.allow(a, t0 + step));
    // A second later the whole burst is back.
    let t1 = t0 + Duration::from_secs(2);
    assert_eq!((0..1000).filter(|_| l.allow(a, t1)).count(), 51);
}

#[test]
fn limiter_table_is_bounded_and_forgets_the_longest_idle() {
    let mut l = Limiter::default();
    let t0 = Instant::now();
    for i in 0..=255u8 {
        for _ in 0..(u32::from(i) % 3) {
            l.allow(Ipv4Addr::new(10, 0, 0, i), t0);
        }
        assert!(l.allow(
            Ipv4Addr::new(10, 0, 1, i),
            t0 + Duration::from_millis(u64::from(i))
        ));
    }
    assert_eq!(l.hosts.len(), LIMITER_HOSTS);
}

#[test]
fn answer_dispatches_on_the_version() {
    let m = FakeMapper::new();
    let h = Ipv4Addr::new(192, 168, 1, 20);
    assert_eq!(answer(&[0, 0], h, &m).map(|r| r.len()), Some(12));
    assert_eq!(
        answer(&[1, 0], h, &m).map(|r| r[..4].to_vec()),
        Some(vec![2, 0x80, 0, 1])
    );
    assert_eq!(answer(&[9], h, &m), None);
}

/// A LAN of 127.0.0.0/30 on `lo`: the router is 127.0.0.1, 127.0.0.2 a LAN host,
/// 127.0.0.9 outside. Needs root (SO_BINDTODEVICE); skipped otherwise.
#[test]
fn serves_lan_hosts_on_loopback_and_announces() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root for SO_BINDTODEVICE");
        return;
    }
    let lan = LanSide {
        interface: "lo".into(),
        addrs: vec![Ipv4Addr::new(127, 0, 0, 1)],
        subnets: vec![Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 30).unwrap()],
        http_port: 0,
        web_port: 80,
    };
    let wait = Some(Duration::from_secs(5));
    let listener = UdpSocket::bind("127.0.0.2:0").unwrap();
    listener.set_read_timeout(wait).unwrap();
    let SocketAddr::V4(announce_to) = listener.local_addr().unwrap() else {
        panic!()
    };
    let mapper = Arc::new(FakeMapper::new());
    let svc = start_on(&lan, mapper.clone(), 0, announce_to).unwrap();
    let server = svc.bound()[0];
    assert_eq!(*server.ip(), Ipv4Addr::new(127, 0, 0, 1));

    // The first announcements: NAT-PMP public address, then PCP ANNOUNCE.
    let mut buf = [0u8; 1200];
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(buf[..n], [0, 128, 0, 0, 0, 0, 0x04, 0xd2, 203, 0, 113, 7]);
    let n = listener.recv(&mut buf).unwrap();
    assert_eq!(buf[..n], pcp::announcement(1234));

    let host = UdpSocket::bind("127.0.0.2:0").unwrap();
    host.set_read_timeout(wait).unwrap();
    let outsider = UdpSocket::bind("127.0.0.9:0").unwrap();
    // Dropped: from outside the LAN, and too long. Sent first, so once the LAN host has
    // its answer, anything for these would have arrived already.
    outsider.send_to(&[0, 0], server).unwrap();
    host.send_to(&[0; 1101], server).unwrap();
    host.send_to(&[0, 0], server).unwrap();
    let n = host.recv(&mut buf).unwrap();
    assert_eq!(n, 12);
    assert_eq!(buf[..4], [0, 128, 0, 0]);
    outsider.set_nonblocking(true).unwrap();
    assert!(outsider.recv(&mut buf).is_err());
    // A NAT-PMP mapping request reaches the mapper as the host's own.
    host.send_to(&[0, 2, 0, 0, 0x1f, 0x90, 0, 0, 0, 0, 0x0e, 0x10], server)
        .unwrap();
    let n = host.recv(&mut buf).unwrap();
    assert_eq!(
        buf[..n],
        [0, 130, 0, 0, 0, 0, 0x04, 0xd2, 0x1f, 0x90, 0x9c, 0x40, 0, 0, 0x0e, 0x10]
    );
    let calls = mapper.calls();
    let [Call::Map(req)] = calls.as_slice() else {
        panic!("{calls:?}")
    };
    assert_eq!(req.client, Ipv4Addr::new(127, 0, 0, 2));
    // PCP with the wrong client address: ADDRESS_MISMATCH.
    let mut pcp_req = vec![2, 1, 0, 0, 0, 0, 0, 60];
    pcp_req.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 3]);
    pcp_req.resize(60, 0);
    host.send_to(&pcp_req, server).unwrap();
    let n = host.recv(&mut buf).unwrap();
    assert_eq!((n, buf[3]), (60, 12));

    let t = Instant::now();
    svc.stop();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
}
