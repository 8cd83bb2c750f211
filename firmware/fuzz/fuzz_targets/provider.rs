//! The VPN provider's NAT-PMP client (RFC 6886) fed what a gateway (or anyone on the tunnel)
//! could send, interleaved with time passing and the tunnel going down and up. The input is
//! a list of steps: a byte `b` then, for `b % 4 == 0`, a length byte and that many datagram
//! bytes; `1`: time passes by the next byte × 50 ms; `2`: tunnel down; `3`: tunnel up.
//! Nothing may panic; every request sent is a well-formed NAT-PMP mapping request for
//! internal port 1 and 60 s; a held port never has more than 60 s left; the next wakeup
//! is never in the past by more than the step. Run: `cargo fuzz run provider` in `firmware/`.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use portcullis::portmap::natpmp::{self, Request};
use portcullis::vpn::provider::{Keeper, LIFETIME_SECS};

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut k = Keeper::new(Ipv4Addr::new(10, 2, 0, 1), now);
    let mut rest = data;
    while let Some((&step, tail)) = rest.split_first() {
        rest = tail;
        match step % 4 {
            0 => {
                let Some((&len, tail)) = rest.split_first() else {
                    break;
                };
                let (msg, tail) = tail.split_at(usize::from(len).min(tail.len()));
                rest = tail;
                let _ = k.on_datagram(msg, now);
            }
            1 => {
                let Some((&ticks, tail)) = rest.split_first() else {
                    break;
                };
                rest = tail;
                now += Duration::from_millis(u64::from(ticks) * 50);
                let _ = k.on_timeout(now);
            }
            2 => k.tunnel_down(now),
            _ => k.tunnel_up(now),
        }
        while let Some(req) = k.poll_transmit(now) {
            match natpmp::parse(&req) {
                Ok(Request::Map {
                    internal_port: 1,
                    lifetime_secs: LIFETIME_SECS,
                    ..
                }) => {}
                other => panic!("bad request {req:?}: {other:?}"),
            }
        }
        if let Some((_, left)) = k.held(now) {
            assert!(left <= Duration::from_secs(u64::from(LIFETIME_SECS)));
        }
        let _ = k.health().describe(now);
    }
});
