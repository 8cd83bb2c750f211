//! The value parsers the config and the API share, fed directly (quicker to explore than
//! through whole config files): times, port ranges, prefixes. Nothing may panic, and
//! whatever parses prints back to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::config::{covered, covers_everything, Ipv4Net, PortRange, Timestamp};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = portcullis::devices::parse_leases(text);
    let _ = portcullis::portmap::neigh::parse_arp_on(text, "br-lan");
    if let Ok(t) = text.parse::<Timestamp>() {
        assert!(text.is_ascii());
        assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t), "{text:?}");
    }
    if let Ok(r) = text.parse::<PortRange>() {
        assert!(r.first() >= 1 && r.first() <= r.last());
        assert_eq!(r.to_string().parse::<PortRange>(), Ok(r), "{text:?}");
    }
    // Several prefixes separated by commas: parse, print back, and coverage never panics.
    let nets: Vec<Ipv4Net> = text.split(',').filter_map(|p| p.parse().ok()).collect();
    for n in &nets {
        assert!(n.prefix_len() <= 32);
        assert_eq!(n.to_string().parse::<Ipv4Net>(), Ok(*n), "{text:?}");
        assert!(covered(&nets, n));
    }
    let _ = covers_everything(&nets);
});
