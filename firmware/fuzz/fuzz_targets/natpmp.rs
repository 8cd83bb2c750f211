//! NAT-PMP requests (RFC 6886) as a LAN host could send them, answered by the codec with a
//! mapper whose reply the first input byte picks (grant, a refusal, no external address).
//! Nothing may panic; every answer is version 0 with the response bit set and at most one
//! datagram long. Run: `cargo fuzz run natpmp` in `firmware/`.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use portcullis::portmap::{natpmp, pcp};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);

#[path = "common/fake.rs"]
mod fake;
use fake::Fake;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, msg)) = data.split_first() else {
        return;
    };
    if msg.len() > pcp::MAX_LEN {
        return; // the server drops these before the codec
    }
    let m = Fake(mode % 6);
    if let Some(r) = natpmp::handle(msg, CLIENT, None, &m) {
        assert!(
            r.len() <= pcp::MAX_LEN.max(msg.len()) && r.len() >= 4,
            "{r:?}"
        );
        assert_eq!(r.first(), Some(&0));
        assert!(r.get(1).is_some_and(|op| op & 0x80 != 0));
    }
});
