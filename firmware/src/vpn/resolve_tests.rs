//! The resolver: golden query bytes, hand-built answers (compression, CNAME chains,
//! NXDOMAIN, wrong id, truncation, pointer loops), the two files, the lookup order and
//! fallbacks, and random/truncated answers that must not panic.

use super::*;

const ID: u16 = 0x1234;

/// `example.com IN A`, id 0x1234, as RFC 1035 §4.1 lays it out.
#[rustfmt::skip]
const EXAMPLE_QUERY: &[u8] = &[
    0x12, 0x34, // ID
    0x01, 0x00, // QR=0 query, OPCODE=0, AA=0, TC=0, RD=1 | RA=0, Z=0, RCODE=0
    0x00, 0x01, // QDCOUNT 1
    0x00, 0x00, // ANCOUNT 0
    0x00, 0x00, // NSCOUNT 0
    0x00, 0x00, // ARCOUNT 0
    7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', // QNAME label "example" (offset 12)
    3, b'c', b'o', b'm', //                         label "com"
    0, //                                           root
    0x00, 0x01, // QTYPE A
    0x00, 0x01, // QCLASS IN
];

#[test]
fn query_is_rfc1035_layout() {
    assert_eq!(query(ID, "example.com").unwrap(), EXAMPLE_QUERY);
    // A final dot and upper case make the same question.
    assert_eq!(query(ID, "EXAMPLE.com.").unwrap(), EXAMPLE_QUERY);
}

#[test]
fn query_refuses_bad_names() {
    let long_label = "a".repeat(64);
    let long_name = [
        "a".repeat(63),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(62),
    ]
    .join(".");
    assert_eq!(long_name.len(), 254);
    let max_name = &long_name[..253];
    assert!(query(1, max_name).is_ok());
    assert!(query(1, &"a".repeat(63)).is_ok());
    assert!(query(1, "_srv.my-host.example").is_ok());
    for bad in [
        "",
        ".",
        "a..b",
        ".a",
        "a b",
        "a/b",
        "é.example",
        "a.b..",
        long_label.as_str(),
        long_name.as_str(),
    ] {
        let e = query(1, bad).unwrap_err();
        assert!(matches!(e, ResolveError::BadName { .. }), "{bad:?}: {e:?}");
    }
}

/// An answer to `EXAMPLE_QUERY` with `flags`, and `records` appended (ANCOUNT `an`).
fn reply(flags: u16, an: u16, records: &[u8]) -> Vec<u8> {
    let mut m = EXAMPLE_QUERY.to_vec();
    m[2..4].copy_from_slice(&flags.to_be_bytes());
    m[6..8].copy_from_slice(&an.to_be_bytes());
    m.extend_from_slice(records);
    m
}

/// Flags of an ordinary answer: QR=1, RD=1, RA=1, RCODE 0.
const OK: u16 = 0x8180;

/// A record: owner `name` (wire bytes, may be a pointer), IN, TTL 300, `rdata`.
fn rr(name: &[u8], rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let mut r = name.to_vec();
    r.extend_from_slice(&rtype.to_be_bytes()); // TYPE
    r.extend_from_slice(&[0, 1]); // CLASS IN
    r.extend_from_slice(&300u32.to_be_bytes()); // TTL
    r.extend_from_slice(&u16::try_from(rdata.len()).unwrap().to_be_bytes()); // RDLENGTH
    r.extend_from_slice(rdata);
    r
}

/// Pointer to the question's name (offset 12).
const PTR_QNAME: &[u8] = &[0xc0, 0x0c];

#[test]
fn a_record_with_pointer() {
    let m = reply(OK, 1, &rr(PTR_QNAME, 1, &[93, 184, 216, 34]));
    assert_eq!(
        answer(ID, "example.com", &m).unwrap(),
        Some(Ipv4Addr::new(93, 184, 216, 34))
    );
    // The owner in full, other case.
    let m = reply(OK, 1, &rr(b"\x07EXAMPLE\x03com\x00", 1, &[1, 2, 3, 4]));
    assert_eq!(
        answer(ID, "example.com.", &m).unwrap(),
        Some(Ipv4Addr::new(1, 2, 3, 4))
    );
}

#[test]
fn cname_chain_is_followed() {
    // example.com CNAME www.example.com (rdata "www" + pointer to 12);
    // www.example.com CNAME edge.cdn.net; edge.cdn.net A 203.0.113.9, listed first.
    let first = reply(OK, 0, &[]).len();
    let r1 = rr(PTR_QNAME, 5, b"\x03www\xc0\x0c");
    let www = u16::try_from(first + 12).unwrap(); // r1's rdata: after owner (2) + 10
    let www_ptr = (0xc000 | www).to_be_bytes();
    let r2 = rr(&www_ptr, 5, b"\x04edge\x03cdn\x03net\x00");
    let edge = u16::try_from(first + r1.len() + r2.len() - 14).unwrap();
    let edge_ptr = (0xc000 | edge).to_be_bytes();
    let a = rr(&edge_ptr, 1, &[203, 0, 113, 9]);
    let m = reply(OK, 3, &[r1.clone(), r2.clone(), a].concat());
    assert_eq!(
        answer(ID, "example.com", &m).unwrap(),
        Some(Ipv4Addr::new(203, 0, 113, 9))
    );
    // The chain's end without an A record: NODATA.
    let m = reply(OK, 2, &[r1, r2].concat());
    assert_eq!(answer(ID, "example.com", &m).unwrap(), None);
}

#[test]
fn other_owners_and_types_are_skipped() {
    let aaaa = rr(
        PTR_QNAME,
        28,
        &[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    let other = rr(b"\x05other\x00", 1, &[9, 9, 9, 9]);
    let bad_len = rr(PTR_QNAME, 1, &[1, 2, 3]);
    let a = rr(PTR_QNAME, 1, &[5, 6, 7, 8]);
    let m = reply(OK, 4, &[aaaa, other, bad_len, a].concat());
    assert_eq!(
        answer(ID, "example.com", &m).unwrap(),
        Some(Ipv4Addr::new(5, 6, 7, 8))
    );
    assert_eq!(answer(ID, "example.com", &reply(OK, 0, &[])).unwrap(), None);
}

#[test]
fn rcodes_and_header_checks() {
    let e = answer(ID, "example.com", &reply(0x8183, 0, &[])).unwrap_err();
    assert!(matches!(e, ResolveError::NxDomain { ref host } if host == "example.com"));
    assert!(e.to_string().contains("NXDOMAIN"), "{e}");
    let e = answer(ID, "example.com", &reply(0x8182, 0, &[])).unwrap_err();
    assert!(matches!(e, ResolveError::Failed { rcode: 2, .. }), "{e:?}");
    let a = rr(PTR_QNAME, 1, &[1, 2, 3, 4]);
    let wrong = |m: &[u8], why: &str| {
        let e = answer(ID, "example.com", m).unwrap_err();
        assert!(
            matches!(e, ResolveError::BadAnswer { reason, .. } if reason == why),
            "{why}: {e:?}"
        );
    };
    wrong(&reply(OK, 1, &a)[..11], "shorter than the header");
    let mut m = reply(OK, 1, &a);
    m[1] = 0x35;
    wrong(&m, "wrong id");
    wrong(&reply(0x0100, 1, &a), "not a standard query response"); // QR clear
    wrong(&reply(0x8980, 1, &a), "not a standard query response"); // OPCODE 1
    let mut m = reply(OK, 1, &a);
    m[5] = 2;
    wrong(&m, "not one question");
    let mut m = reply(OK, 1, &a);
    m[13] = b'x';
    wrong(&m, "another question");
    let mut m = reply(OK, 1, &a);
    m[27] = 28; // QTYPE AAAA
    wrong(&m, "another question");
    wrong(&reply(OK, 2, &a), "name past the end");
    let mut m = reply(OK, 1, &a);
    m.pop();
    wrong(&m, "record data past the end");
}

#[test]
fn truncated_answers() {
    // TC with the A record present: used.
    let m = reply(0x8380, 1, &rr(PTR_QNAME, 1, &[1, 2, 3, 4]));
    assert_eq!(
        answer(ID, "example.com", &m).unwrap(),
        Some(Ipv4Addr::new(1, 2, 3, 4))
    );
    // TC and the records cut off: no TCP retry, an error saying so.
    let m = reply(0x8380, 3, &rr(PTR_QNAME, 5, b"\x03www\xc0\x0c"));
    let e = answer(ID, "example.com", &m).unwrap_err();
    assert!(matches!(e, ResolveError::Truncated { .. }), "{e:?}");
    assert!(e.to_string().contains("TCP"), "{e}");
}

#[test]
fn pointer_loops_and_forward_pointers_are_refused() {
    let n = reply(OK, 0, &[]).len();
    let here = u16::try_from(n).unwrap();
    for owner in [
        (0xc000 | here).to_be_bytes().to_vec(), // points at itself
        (0xc000 | (here + 2)).to_be_bytes().to_vec(), // points forward
        vec![0xc0],                             // cut in half
        vec![0x40, 1],                          // extended label type
        vec![0x80, 1],                          // reserved label type
    ] {
        let m = reply(OK, 1, &rr(&owner, 1, &[1, 2, 3, 4]));
        let e = answer(ID, "example.com", &m).unwrap_err();
        assert!(
            matches!(e, ResolveError::BadAnswer { .. }),
            "{owner:?}: {e:?}"
        );
    }
    // A backward pointer into a label that ends in a pointer back to that label: each
    // pass adds the label, so the 255-byte bound ends it.
    // Record owner at n: label "a" then pointer to n.
    let owner = [&[1, b'a'][..], &(0xc000 | here).to_be_bytes()].concat();
    let m = reply(OK, 1, &rr(&owner, 1, &[1, 2, 3, 4]));
    let e = answer(ID, "example.com", &m).unwrap_err();
    assert!(matches!(e, ResolveError::BadAnswer { .. }), "{e:?}");
    // A CNAME to itself and a two-name CNAME loop end after the chain bound: NODATA.
    let me = rr(PTR_QNAME, 5, PTR_QNAME);
    assert_eq!(answer(ID, "example.com", &reply(OK, 1, &me)).unwrap(), None);
    let r1 = rr(PTR_QNAME, 5, b"\x01b\x00");
    let r2 = rr(b"\x01b\x00", 5, PTR_QNAME);
    let m = reply(OK, 2, &[r1, r2].concat());
    assert_eq!(answer(ID, "example.com", &m).unwrap(), None);
}

#[test]
fn hosts_file() {
    let hosts = "# comment 10.0.0.1 vpn.example\n\
                 127.0.0.1\tlocalhost\n\
                 ::1 v6only.example\n\
                 10.0.0.2   router.lan  VPN.Example  # trailing comment\n\
                 10.0.0.3 vpn.example\n\
                 not-an-ip vpn2.example\n";
    assert_eq!(
        hosts_lookup(hosts, "vpn.example"),
        Some(Ipv4Addr::new(10, 0, 0, 2))
    );
    assert_eq!(hosts_lookup(hosts, "v6only.example"), None);
    assert_eq!(hosts_lookup(hosts, "vpn2.example"), None);
    assert_eq!(hosts_lookup(hosts, "comment"), None);
    assert_eq!(hosts_lookup("", "x"), None);
}

#[test]
fn resolv_conf() {
    let conf = "# generated\n\
                search lan\n\
                nameserver 2001:db8::1\n\
                nameserver 192.0.2.1 # primary\n\
                ;nameserver 192.0.2.99\n\
                nameserver\t192.0.2.2\n\
                options ndots:1\n\
                nameserver 192.0.2.3\n\
                nameserver 192.0.2.4\n\
                nameserver garbage\n";
    assert_eq!(
        nameservers(conf),
        [
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(192, 0, 2, 3)
        ]
    );
    assert!(nameservers("nameserver ::1\n").is_empty());
}

/// A fake exchange that logs the nameservers asked; `answers(server, query)` replies.
fn serve<'a>(
    answers: impl Fn(Ipv4Addr, &[u8]) -> Option<Vec<u8>> + 'a,
    log: &'a mut Vec<Ipv4Addr>,
) -> impl FnMut(SocketAddrV4, &[u8]) -> Option<Vec<u8>> + 'a {
    move |to: SocketAddrV4, q: &[u8]| {
        assert_eq!(to.port(), 53);
        log.push(*to.ip());
        answers(*to.ip(), q)
    }
}

/// The answer to query `q` (any id) with `flags` and one A record.
fn answer_to(q: &[u8], flags: u16, ip: [u8; 4]) -> Vec<u8> {
    let mut m = q.to_vec();
    m[2..4].copy_from_slice(&flags.to_be_bytes());
    m[7] = 1;
    m.extend_from_slice(&rr(PTR_QNAME, 1, &ip));
    m
}

const CONF: &str = "nameserver 192.0.2.1\nnameserver 192.0.2.2\n";
const NS1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NS2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

#[test]
fn lookup_order() {
    let mut log = Vec::new();
    let mut never = serve(|_, _| panic!("no DNS here"), &mut log);
    let hosts = "10.9.9.9 vpn.example\n";
    assert_eq!(
        resolve_with("198.51.100.7", hosts, CONF, &mut never).unwrap(),
        Ipv4Addr::new(198, 51, 100, 7)
    );
    assert_eq!(
        resolve_with("LocalHost.", hosts, CONF, &mut never).unwrap(),
        Ipv4Addr::LOCALHOST
    );
    assert_eq!(
        resolve_with("vpn.example.", hosts, CONF, &mut never).unwrap(),
        Ipv4Addr::new(10, 9, 9, 9)
    );
    let e = resolve_with("bad name", hosts, CONF, &mut never).unwrap_err();
    assert!(matches!(e, ResolveError::BadName { .. }), "{e:?}");
    let e = resolve_with("x.example", hosts, "", &mut never).unwrap_err();
    assert!(matches!(e, ResolveError::NoNameserver), "{e:?}");
    drop(never);
    assert!(log.is_empty());
}

#[test]
fn dns_answers_and_fallbacks() {
    let mut log = Vec::new();
    // The first server is silent, the second answers: the first is tried once.
    let mut send = serve(
        |ns, q| (ns == NS2).then(|| answer_to(q, OK, [203, 0, 113, 5])),
        &mut log,
    );
    assert_eq!(
        resolve_with("example.com", "", CONF, &mut send).unwrap(),
        Ipv4Addr::new(203, 0, 113, 5)
    );
    drop(send);
    assert_eq!(log, [NS1, NS2]);

    // All silent: two rounds over both, then a timeout.
    let mut log = Vec::new();
    let mut send = serve(|_, _| None, &mut log);
    let e = resolve_with("example.com", "", CONF, &mut send).unwrap_err();
    assert!(matches!(e, ResolveError::Timeout { .. }), "{e:?}");
    drop(send);
    assert_eq!(log, [NS1, NS2, NS1, NS2]);

    // SERVFAIL from the first moves on; NXDOMAIN from the second ends the lookup.
    let mut log = Vec::new();
    let mut send = serve(
        |ns, q| {
            Some(answer_to(
                q,
                if ns == NS1 { 0x8182 } else { 0x8183 },
                [0; 4],
            ))
        },
        &mut log,
    );
    let e = resolve_with("example.com", "", CONF, &mut send).unwrap_err();
    assert!(matches!(e, ResolveError::NxDomain { .. }), "{e:?}");
    drop(send);
    assert_eq!(log, [NS1, NS2]);

    // SERVFAIL everywhere: the RCODE is reported.
    let mut send = |_: SocketAddrV4, q: &[u8]| Some(answer_to(q, 0x8182, [0; 4]));
    let e = resolve_with("example.com", "", CONF, &mut send).unwrap_err();
    assert!(matches!(e, ResolveError::Failed { rcode: 2, .. }), "{e:?}");

    // Garbage from every server: the last malformed answer is reported.
    let mut send = |_: SocketAddrV4, q: &[u8]| Some(q.iter().map(|_| 0).collect());
    let e = resolve_with("example.com", "", CONF, &mut send).unwrap_err();
    assert!(matches!(e, ResolveError::BadAnswer { .. }), "{e:?}");
    let mut send = |_: SocketAddrV4, q: &[u8]| {
        let mut m = q.to_vec();
        m[2] = 0x81;
        Some(m)
    };
    // NODATA (an empty answer) ends the lookup.
    let e = resolve_with("example.com", "", CONF, &mut send).unwrap_err();
    assert!(matches!(e, ResolveError::NoAnswer { .. }), "{e:?}");
}

#[test]
fn the_query_is_sent_with_a_random_id() {
    let mut ids = Vec::new();
    for _ in 0..4 {
        let mut send = |_: SocketAddrV4, q: &[u8]| {
            ids.push(u16_at(q, 0).unwrap());
            assert_eq!(q[2..], EXAMPLE_QUERY[2..]);
            Some(answer_to(q, OK, [1, 1, 1, 1]))
        };
        resolve_with("example.com", "", CONF, &mut send).unwrap();
    }
    ids.dedup();
    assert!(ids.len() > 1, "{ids:?}"); // four equal 16-bit ids: p = 2^-48
}

/// xorshift64: reproducible noise without a crate.
fn noise(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn random_and_cut_answers_never_panic() {
    let r1 = rr(PTR_QNAME, 5, b"\x03www\xc0\x0c");
    let a = rr(b"\x03www\xc0\x0c", 1, &[1, 2, 3, 4]);
    let good = reply(OK, 2, &[r1, a].concat());
    assert_eq!(
        answer(ID, "example.com", &good).unwrap(),
        Some(Ipv4Addr::new(1, 2, 3, 4))
    );
    // Every prefix.
    for n in 0..good.len() {
        let _ = answer(ID, "example.com", &good[..n]);
    }
    let mut s = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        // Mutations of the good answer: 1..4 bytes changed, maybe cut.
        let mut m = good.clone();
        for _ in 0..=noise(&mut s) % 4 {
            let at = usize::try_from(noise(&mut s) % m.len() as u64).unwrap();
            m[at] = noise(&mut s).to_le_bytes()[0];
        }
        m.truncate(usize::try_from(noise(&mut s) % (good.len() as u64 + 8)).unwrap());
        let _ = answer(ID, "example.com", &m);
        // Pure noise behind a valid header and question.
        let len = usize::try_from(noise(&mut s) % 96).unwrap();
        let tail: Vec<u8> = (0..len).map(|_| noise(&mut s).to_le_bytes()[0]).collect();
        let an = u16::try_from(noise(&mut s) % 8).unwrap();
        let _ = answer(ID, "example.com", &reply(OK, an, &tail));
    }
}
