//! The Endpoint resolver's DNS codec (`vpn::resolve`) on arbitrary bytes: the first two
//! bytes are the query id, the rest a datagram from a nameserver. Nothing may panic; an
//! address only comes from a response with that id and RCODE 0. The same bytes as text:
//! a host name for `query` (what it accepts is a well-formed question, which is not an
//! answer to itself) and as /etc/hosts and resolv.conf (at most 3 nameservers).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::vpn::resolve::{answer, hosts_lookup, nameservers, query};

fuzz_target!(|data: &[u8]| {
    if let [a, b, msg @ ..] = data {
        let id = u16::from_be_bytes([*a, *b]);
        if let Ok(Some(_)) = answer(id, "vpn.example.com", msg) {
            assert_eq!(msg.get(..2), Some(&data[..2]));
            assert!(msg.get(2).is_some_and(|f| f & 0x80 != 0));
            assert!(msg.get(3).is_some_and(|f| f & 0x0f == 0));
        }
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(q) = query(7, text) {
        let name = text.strip_suffix('.').unwrap_or(text);
        assert_eq!(q.len(), 12 + name.len() + 2 + 4);
        assert!(answer(7, text, &q).is_err());
    }
    assert!(nameservers(text).len() <= 3);
    let _ = hosts_lookup(text, "vpn.example.com");
});
