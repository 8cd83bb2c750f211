use super::*;
use crate::portmap::natpmp::{map_response, parse, Request};

const GW: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A success answer as our natpmpc-verified server builds it; internal port 0 as ProtonVPN.
fn grant(proto: Proto, epoch: u32, port: u16, lifetime: u32) -> Vec<u8> {
    map_response(proto, ResultCode::Success, epoch, 0, port, lifetime)
}

/// A refusal built by hand (§3.3, §3.5): version 0, opcode + 128, result, epoch, then the
/// 8 bytes of undefined fields.
fn refusal(op: u8, code: u16, epoch: u32) -> Vec<u8> {
    let mut r = vec![0, op | 0x80];
    r.extend_from_slice(&code.to_be_bytes());
    r.extend_from_slice(&epoch.to_be_bytes());
    r.extend_from_slice(&[0; 8]);
    r
}

/// Every request due at `now`.
fn drain(k: &mut Keeper, now: Instant) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| k.poll_transmit(now)).collect()
}

/// Answers both protocols with `port` and `lifetime` at `now`.
fn answer_both(k: &mut Keeper, now: Instant, epoch: u32, port: u16, lifetime: u32) -> Vec<Event> {
    let mut ev = k.on_datagram(&grant(Proto::Udp, epoch, port, lifetime), now);
    ev.extend(k.on_datagram(&grant(Proto::Tcp, epoch, port, lifetime), now));
    ev
}

/// A keeper holding `port` granted for `lifetime` seconds at t0.
fn holding(port: u16, lifetime: u32) -> (Keeper, Instant) {
    let t0 = Instant::now();
    let mut k = Keeper::new(GW, t0);
    assert_eq!(drain(&mut k, t0).len(), 2);
    assert_eq!(
        answer_both(&mut k, t0, 100, port, lifetime),
        [Event::Granted { port }]
    );
    (k, t0)
}

#[test]
fn golden_request_bytes() {
    assert_eq!(
        request(Proto::Udp, 0),
        [
            0, // version 0 (§3.3)
            1, // opcode 1: map UDP
            0, 0, // reserved
            0, 1, // internal port 1 (ProtonVPN convention)
            0, 0, // suggested external port: none
            0, 0, 0, 60, // requested lifetime 60 s
        ]
    );
    assert_eq!(
        request(Proto::Tcp, 40000),
        [
            0, // version 0
            2, // opcode 2: map TCP
            0, 0, // reserved
            0, 1, // internal port 1
            0x9c, 0x40, // suggested external port 40000
            0, 0, 0, 60, // requested lifetime 60 s
        ]
    );
}

#[test]
fn our_server_parser_reads_our_requests() {
    for (proto, port) in [(Proto::Udp, 0), (Proto::Tcp, 0), (Proto::Udp, 51234)] {
        assert_eq!(
            parse(&request(proto, port)),
            Ok(Request::Map {
                proto,
                internal_port: 1,
                external_port: port,
                lifetime_secs: 60,
            })
        );
    }
}

#[test]
fn first_attempt_asks_udp_and_tcp_suggesting_nothing() {
    let t0 = Instant::now();
    let mut k = Keeper::new(GW, t0);
    assert_eq!(k.next_wakeup(), Some(t0));
    assert_eq!(k.health(), &Health::Starting);
    assert_eq!(
        drain(&mut k, t0),
        [request(Proto::Udp, 0), request(Proto::Tcp, 0)]
    );
    assert_eq!(k.held(t0), None);
}

#[test]
fn grant_holds_the_port_and_renews_at_three_quarters() {
    let (mut k, t0) = holding(40000, 60);
    assert_eq!(k.held(t0), Some((40000, secs(60.0))));
    assert_eq!(k.health().describe(t0), "ok");
    assert_eq!(k.next_wakeup(), Some(t0 + secs(45.0)));
    assert!(drain(&mut k, t0 + secs(44.9)).is_empty());
    let t = t0 + secs(45.0);
    assert!(k.on_timeout(t).is_empty());
    assert_eq!(
        drain(&mut k, t),
        [request(Proto::Udp, 40000), request(Proto::Tcp, 40000)]
    );
    assert!(answer_both(&mut k, t + secs(0.1), 145, 40000, 60).is_empty());
    assert_eq!(k.held(t + secs(0.1)), Some((40000, secs(60.0))));
}

#[test]
fn short_lifetime_renews_at_six_of_eight_seconds() {
    let (k, t0) = holding(40000, 8);
    assert_eq!(k.next_wakeup(), Some(t0 + secs(6.0)));
    assert_eq!(k.held(t0), Some((40000, secs(8.0))));
}

#[test]
fn lease_ends_at_the_earlier_grant() {
    let t0 = Instant::now();
    let mut k = Keeper::new(GW, t0);
    drain(&mut k, t0);
    assert!(k
        .on_datagram(&grant(Proto::Udp, 100, 40000, 60), t0)
        .is_empty());
    let t1 = t0 + secs(1.0);
    let ev = k.on_datagram(&grant(Proto::Tcp, 101, 40000, 20), t1);
    assert_eq!(ev, [Event::Granted { port: 40000 }]);
    assert_eq!(k.held(t1), Some((40000, secs(20.0))));
    assert_eq!(k.next_wakeup(), Some(t1 + secs(15.0)));
}

#[test]
fn renewal_with_another_port_is_a_change() {
    let (mut k, t0) = holding(40000, 60);
    let t = t0 + secs(45.0);
    k.on_timeout(t);
    drain(&mut k, t);
    let ev = answer_both(&mut k, t, 145, 40001, 60);
    assert_eq!(
        ev,
        [Event::Changed {
            old: 40000,
            new: 40001
        }]
    );
    assert_eq!(k.held(t), Some((40001, secs(60.0))));
}

#[test]
fn refusal_backs_off_and_never_extends_the_lease() {
    let (mut k, t0) = holding(40000, 60);
    let mut t = t0 + secs(45.0);
    k.on_timeout(t);
    drain(&mut k, t);
    let ev = k.on_datagram(&refusal(1, 2, 145), t);
    assert_eq!(ev, [Event::Refused { code: 2 }]);
    assert_eq!(
        k.health().describe(t),
        "refused by the gateway: 2 (not authorized)"
    );
    assert_eq!(k.held(t), Some((40000, secs(15.0))));
    // Retries after 5, 10, 20, 40, 60, 60 s; a repeated refusal is no new event.
    for (i, wait) in [5.0, 10.0, 20.0, 40.0, 60.0, 60.0].into_iter().enumerate() {
        assert_eq!(k.next_wakeup(), Some(t + secs(wait)), "retry {i}");
        t += secs(wait);
        let ev = k.on_timeout(t);
        let reqs = drain(&mut k, t);
        assert_eq!(reqs.len(), 2, "retry {i}");
        let lost = ev.contains(&Event::Lost { port: 40000 });
        assert_eq!(lost, i == 1, "{ev:?}");
        let suggest = if i == 0 { 40000 } else { 0 };
        assert_eq!(reqs.first(), Some(&request(Proto::Udp, suggest)));
        let epoch = 100 + u32::try_from((t - t0).as_secs()).unwrap();
        assert!(k.on_datagram(&refusal(2, 2, epoch), t).is_empty());
        assert_eq!(
            k.held(t),
            if i == 0 {
                Some((40000, secs(10.0)))
            } else {
                None
            }
        );
    }
    let ev = k.on_datagram(&refusal(1, 4, 300), t);
    assert!(ev.is_empty(), "no request pending: {ev:?}");
}

#[test]
fn silence_gives_up_within_eight_seconds_and_backs_off() {
    let (mut k, t0) = holding(40000, 10);
    let start = t0 + secs(7.5);
    assert_eq!(k.next_wakeup(), Some(start));
    k.on_timeout(start);
    let mut sent = Vec::new();
    let mut t = start;
    while t < start + secs(8.0) {
        assert!(k.on_timeout(t).is_empty() || t >= t0 + secs(10.0));
        for r in drain(&mut k, t) {
            assert_eq!(
                r.get(6..8),
                Some(&[0x9c, 0x40][..]),
                "suggests the held port"
            );
            sent.push(((t - start).as_millis(), r));
        }
        t = k.next_wakeup().expect("a wakeup while trying");
    }
    let times: Vec<u128> = sent.iter().step_by(2).map(|(ms, _)| *ms).collect();
    assert_eq!(times, [0, 250, 750, 1750, 3750]);
    assert_eq!(sent.len(), 10);
    // The lease (10 s) ended while the gateway was silent.
    assert_eq!(k.held(t0 + secs(10.0)), None);
    assert_eq!(t, start + secs(8.0));
    let ev = k.on_timeout(t);
    assert_eq!(ev, [Event::Silent]);
    assert_eq!(k.health(), &Health::Silent { since: start });
    assert_eq!(
        k.health().describe(start + secs(12.0)),
        "no answer from the gateway for 12 s"
    );
    assert_eq!(k.next_wakeup(), Some(t + secs(5.0)));
    // Still silent: no second event, `since` kept.
    let t2 = t + secs(5.0);
    k.on_timeout(t2);
    assert_eq!(drain(&mut k, t2).len(), 2);
    assert!(k.on_timeout(t2 + secs(8.0)).is_empty());
    assert_eq!(k.health(), &Health::Silent { since: start });
    assert_eq!(k.next_wakeup(), Some(t2 + secs(18.0)));
}

#[test]
fn lease_end_loses_the_port() {
    let (mut k, t0) = holding(40000, 4);
    let t = t0 + secs(3.0);
    k.on_timeout(t);
    drain(&mut k, t);
    assert_eq!(k.next_wakeup(), Some(t + secs(0.25)));
    let end = t0 + secs(4.0);
    assert_eq!(k.held(end), None);
    assert_eq!(k.on_timeout(end), [Event::Lost { port: 40000 }]);
    assert!(k.on_timeout(end).is_empty());
    // A late answer grants it again.
    let ev = answer_both(&mut k, end + secs(0.5), 104, 40000, 4);
    assert_eq!(ev, [Event::Granted { port: 40000 }]);
}

#[test]
fn epoch_going_back_is_a_reset_and_requests_at_once() {
    let (mut k, t0) = holding(40000, 60);
    let t = t0 + secs(45.0);
    k.on_timeout(t);
    drain(&mut k, t);
    // Expected at least 100 + 45 * 7/8 = 139.4; 138 is within the 2 s tolerance.
    assert!(k
        .on_datagram(&grant(Proto::Udp, 138, 40000, 60), t)
        .is_empty());
    let t1 = t + secs(1.0);
    let ev = k.on_datagram(&grant(Proto::Tcp, 3, 40000, 60), t1);
    assert_eq!(ev, [Event::EpochReset]);
    assert_eq!(k.next_wakeup(), Some(t1));
    assert_eq!(
        drain(&mut k, t1),
        [request(Proto::Udp, 40000), request(Proto::Tcp, 40000)]
    );
    assert_eq!(k.held(t1).map(|h| h.0), Some(40000));
    assert!(answer_both(&mut k, t1, 4, 40000, 60).is_empty());
    assert_eq!(k.health(), &Health::Ok);
}

#[test]
fn differing_ports_ask_tcp_for_the_udp_port_once() {
    let t0 = Instant::now();
    let mut k = Keeper::new(GW, t0);
    drain(&mut k, t0);
    k.on_datagram(&grant(Proto::Udp, 1, 40000, 60), t0);
    assert!(k
        .on_datagram(&grant(Proto::Tcp, 1, 40001, 60), t0)
        .is_empty());
    assert_eq!(drain(&mut k, t0), [request(Proto::Tcp, 40000)]);
    // Granted on the second try.
    let ev = k.on_datagram(&grant(Proto::Tcp, 1, 40000, 60), t0);
    assert_eq!(ev, [Event::Granted { port: 40000 }]);

    let mut k = Keeper::new(GW, t0);
    drain(&mut k, t0);
    k.on_datagram(&grant(Proto::Udp, 1, 40000, 60), t0);
    k.on_datagram(&grant(Proto::Tcp, 1, 40001, 60), t0);
    assert_eq!(drain(&mut k, t0), [request(Proto::Tcp, 40000)]);
    assert!(k
        .on_datagram(&grant(Proto::Tcp, 1, 40001, 60), t0)
        .is_empty());
    assert_eq!(
        k.health(),
        &Health::PortsDiffer {
            udp: 40000,
            tcp: 40001
        }
    );
    assert_eq!(k.held(t0), None);
    assert_eq!(k.next_wakeup(), Some(t0 + secs(5.0)));
}

#[test]
fn differing_ports_at_renewal_drop_the_held_port() {
    let (mut k, t0) = holding(40000, 60);
    let t = t0 + secs(45.0);
    k.on_timeout(t);
    drain(&mut k, t);
    k.on_datagram(&grant(Proto::Udp, 145, 40002, 60), t);
    k.on_datagram(&grant(Proto::Tcp, 145, 40003, 60), t);
    drain(&mut k, t);
    let ev = k.on_datagram(&grant(Proto::Tcp, 145, 40003, 60), t);
    assert_eq!(ev, [Event::Lost { port: 40000 }]);
    assert_eq!(k.held(t), None);
}

#[test]
fn tunnel_down_stops_sending_and_up_requests_at_once() {
    let (mut k, t0) = holding(40000, 60);
    let t = t0 + secs(10.0);
    k.tunnel_down(t);
    assert_eq!(k.health().describe(t), "tunnel down");
    assert_eq!(k.next_wakeup(), Some(t0 + secs(60.0)));
    assert!(drain(&mut k, t0 + secs(45.0)).is_empty());
    assert!(k.on_timeout(t0 + secs(45.0)).is_empty());
    assert!(k
        .on_datagram(&grant(Proto::Udp, 145, 40000, 60), t0 + secs(46.0))
        .is_empty());
    assert_eq!(k.on_timeout(t0 + secs(60.0)), [Event::Lost { port: 40000 }]);
    assert_eq!(k.next_wakeup(), None);
    let t = t0 + secs(70.0);
    k.tunnel_up(t);
    assert_eq!(k.health(), &Health::Starting);
    assert_eq!(k.next_wakeup(), Some(t));
    assert_eq!(drain(&mut k, t).len(), 2);
    // Up again while an attempt runs or a retry waits: at once, backoff forgotten.
    k.on_datagram(&refusal(1, 3, 170), t);
    assert_eq!(k.next_wakeup(), Some(t + secs(5.0)));
    k.tunnel_up(t + secs(1.0));
    assert_eq!(
        drain(&mut k, t + secs(1.0)),
        [request(Proto::Udp, 0), request(Proto::Tcp, 0)]
    );
}

#[test]
fn malformed_and_unsolicited_datagrams_are_ignored() {
    let t0 = Instant::now();
    let mut k = Keeper::new(GW, t0);
    // Nothing outstanding yet.
    assert!(k.on_datagram(&grant(Proto::Udp, 1, 1, 60), t0).is_empty());
    drain(&mut k, t0);
    let good = grant(Proto::Udp, 1, 40000, 60);
    let mut bad: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
    let mut v1 = good.clone();
    v1[0] = 1; // version 1
    bad.push(v1);
    bad.push(request(Proto::Udp, 40000)); // a request, not a response
    let mut public = good.clone();
    public[1] = 128; // a public address response
    bad.push(public);
    bad.push(refusal(1, 2, 1)[..7].to_vec());
    for b in &bad {
        assert!(k.on_datagram(b, t0).is_empty(), "{b:?}");
    }
    assert_eq!(k.health(), &Health::Starting);
    // The real answers still count; a duplicate is ignored.
    assert!(k.on_datagram(&good, t0).is_empty());
    assert!(k.on_datagram(&refusal(1, 2, 1), t0).is_empty());
    let ev = k.on_datagram(&grant(Proto::Tcp, 1, 40000, 60), t0);
    assert_eq!(ev, [Event::Granted { port: 40000 }]);
}

#[test]
fn random_bytes_never_panic() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let t0 = Instant::now();
    let mut k = Keeper::new(GW, t0);
    let mut t = t0;
    for i in 0..20_000u32 {
        t += Duration::from_millis(next() % 700);
        k.on_timeout(t);
        drain(&mut k, t);
        let r = next();
        let len = (r % 20) as usize;
        let mut b: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[0]).collect();
        // Often a plausible header, so the deeper paths run too.
        if r & 0x300 != 0 {
            if let Some(v) = b.get_mut(0) {
                *v = 0;
            }
            if let Some(op) = b.get_mut(1) {
                *op = 0x81 + (i % 2) as u8;
            }
            if r & 0x400 != 0 {
                if let Some(c) = b.get_mut(2..4) {
                    c.copy_from_slice(&[0, 0]);
                }
            }
        }
        k.on_datagram(&b, t);
        if i % 997 == 0 {
            k.tunnel_down(t);
        } else if i % 991 == 0 {
            k.tunnel_up(t);
        }
        if let Some(w) = k.next_wakeup() {
            assert!(w + GIVE_UP >= t, "a wakeup far in the past");
        }
        let _ = k.health().describe(t);
    }
}
