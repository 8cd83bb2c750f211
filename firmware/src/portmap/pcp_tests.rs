//! Golden bytes from the packet diagrams of RFC 6887 §7.1, §7.2, §7.3, §11.1, §13, §14.1.

use std::net::Ipv4Addr;

use super::*;
use crate::portmap::pmp_serve::fake::{mapping_of, Call, FakeMapper};
use crate::portmap::Grant;

const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
const NONCE: Nonce = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

/// A MAP request (§7.1 header + §11.1 data) from HOST: lifetime, protocol, internal
/// port, suggested external port, then `opts` appended as they are.
fn map_req(life: u32, proto: u8, internal: u16, suggested: u16, opts: &[u8]) -> Vec<u8> {
    let mut m = vec![2, 1, 0, 0];
    m.extend_from_slice(&life.to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20]);
    m.extend_from_slice(&NONCE);
    m.extend_from_slice(&[proto, 0, 0, 0]);
    m.extend_from_slice(&internal.to_be_bytes());
    m.extend_from_slice(&suggested.to_be_bytes());
    m.extend_from_slice(&[0; 16]);
    m.extend_from_slice(opts);
    m
}

fn call(m: &FakeMapper, msg: &[u8]) -> Option<Vec<u8>> {
    handle(msg, HOST, None, m)
}

fn result_and_life(resp: &[u8]) -> (u8, u32) {
    (resp[3], u32::from_be_bytes(resp[4..8].try_into().unwrap()))
}

fn only_map_call(m: &FakeMapper) -> MapRequest {
    match m.calls().as_slice() {
        [Call::Map(r)] => r.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn map_tcp_golden_bytes() {
    // Request: version 2, opcode MAP, lifetime 3600, client ::ffff:192.168.1.20, nonce,
    // protocol 6, internal 8080, suggested external 8080, suggested address ::.
    let req: [u8; 60] = [
        2, 1, 0, 0, 0, 0, 0x0e, 0x10, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20, //
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, //
        6, 0, 0, 0, 0x1f, 0x90, 0x1f, 0x90, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(req.to_vec(), map_req(3600, 6, 8080, 8080, &[]));
    let m = FakeMapper::new();
    // Response: version 2, R|MAP, reserved, SUCCESS, lifetime 3600, epoch 1234, 96
    // reserved bits; nonce, protocol, internal 8080, assigned 8080, ::ffff:203.0.113.7.
    let want: [u8; 60] = [
        2, 0x81, 0, 0, 0, 0, 0x0e, 0x10, 0, 0, 0x04, 0xd2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, //
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, //
        6, 0, 0, 0, 0x1f, 0x90, 0x1f, 0x90, //
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7,
    ];
    assert_eq!(call(&m, &req).unwrap(), want);
    let r = only_map_call(&m);
    assert_eq!((r.via, r.client, r.internal_client), (Via::Pcp, HOST, HOST));
    assert_eq!(
        (r.proto, r.internal_port, r.external_port),
        (Proto::Tcp, 8080, 8080)
    );
    assert_eq!(
        (r.lifetime_secs, r.exact, r.nonce),
        (3600, false, Some(NONCE))
    );
    assert_eq!(r.remote_host, None);
}

#[test]
fn response_carries_the_granted_port_and_lifetime() {
    let m = FakeMapper::new();
    let req = map_req(86400, 17, 5000, 0, &[]);
    let asked = MapRequest {
        via: Via::Pcp,
        client: HOST,
        mac: None,
        internal_client: HOST,
        proto: Proto::Udp,
        external_port: 0,
        exact: false,
        internal_port: 5000,
        lifetime_secs: 86400,
        description: String::new(),
        remote_host: None,
        nonce: Some(NONCE),
    };
    m.reply_map(Ok(Grant {
        mapping: mapping_of(&asked, 41000),
        lifetime_secs: 7200,
        refreshed: true,
    }));
    let got = call(&m, &req).unwrap();
    assert_eq!(result_and_life(&got), (0, 7200));
    assert_eq!(got[42..44], 41000u16.to_be_bytes());
    assert_eq!(only_map_call(&m), asked);
}

#[test]
fn announce_request_and_unsolicited_announce() {
    // §14.1: request = header with opcode 0; response = header, SUCCESS, lifetime 0.
    let mut req = vec![2, 0, 0, 0, 0, 0, 0, 0];
    req.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 20]);
    let m = FakeMapper::new();
    let want = [
        2, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x04, 0xd2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(call(&m, &req).unwrap(), want);
    assert_eq!(announcement(1234), want);
    assert!(m.calls().is_empty());
}

#[test]
fn header_errors_in_the_order_of_section_8_3() {
    let m = FakeMapper::new();
    // Version 1 (pre-RFC PCP): UNSUPP_VERSION, version 2 in the answer, long lifetime.
    let mut v1 = map_req(60, 6, 80, 80, &[]);
    v1[0] = 1;
    let got = call(&m, &v1).unwrap();
    assert_eq!((got[0], got[1]), (2, 0x81));
    assert_eq!(result_and_life(&got), (1, 1800));
    assert_eq!(got.len(), 60);
    assert_eq!(got[24..], v1[24..], "fields copied from the request");
    // Too short, not a multiple of 4, too long: MALFORMED_REQUEST (padded to a header).
    let got = call(&m, &[2, 1, 0, 0]).unwrap();
    assert_eq!((got.len(), result_and_life(&got)), (24, (3, 1800)));
    let got = call(&m, &map_req(60, 6, 80, 80, &[0, 0])).unwrap();
    assert_eq!((got.len(), got[3]), (64, 3));
    let got = call(&m, &map_req(60, 6, 80, 80, &[0; 1044])).unwrap();
    assert_eq!((got.len(), got[3]), (1100, 3));
    // Client address other than the source: ADDRESS_MISMATCH.
    let mut other = map_req(60, 6, 80, 80, &[]);
    other[23] = 21;
    assert_eq!(call(&m, &other).unwrap()[3], 12);
    // Opcode PEER (2) and others: UNSUPP_OPCODE.
    let mut peer = map_req(60, 6, 80, 80, &[]);
    peer[1] = 2;
    assert_eq!(call(&m, &peer).unwrap()[..4], [2, 0x82, 0, 4]);
    // MAP without its 36 bytes of data.
    assert_eq!(call(&m, &map_req(60, 6, 80, 80, &[])[..48]).unwrap()[3], 3);
    // Responses and runts are ignored.
    assert_eq!(call(&m, &[2]), None);
    let mut resp = map_req(60, 6, 80, 80, &[]);
    resp[1] = 0x81;
    assert_eq!(call(&m, &resp), None);
    assert!(m.calls().is_empty());
}

#[test]
fn protocols() {
    let m = FakeMapper::new();
    assert_eq!(call(&m, &map_req(60, 1, 80, 80, &[])).unwrap()[3], 9);
    assert_eq!(call(&m, &map_req(60, 0, 0, 0, &[])).unwrap()[3], 9);
    assert_eq!(call(&m, &map_req(60, 0, 80, 0, &[])).unwrap()[3], 3);
    assert_eq!(call(&m, &map_req(60, 6, 0, 0, &[])).unwrap()[3], 2);
    assert!(m.calls().is_empty());
}

#[test]
fn lifetime_zero_deletes_by_nonce_and_all_ports_deletes_all() {
    let m = FakeMapper::new();
    let asked = map_req(0, 6, 8080, 0, &[]);
    let mut gone = mapping_of(&only_req(), 8081);
    gone.nonce = Some(NONCE);
    m.reply_unmap(Ok(vec![gone]));
    let got = call(&m, &asked).unwrap();
    assert_eq!(result_and_life(&got), (0, 0));
    assert_eq!(got[42..44], 8081u16.to_be_bytes());
    m.reply_unmap(Err(Refusal::NotOwner));
    let got = call(&m, &asked).unwrap();
    assert_eq!(result_and_life(&got), (2, 1800));
    // Nothing to delete: SUCCESS.
    assert_eq!(result_and_life(&call(&m, &asked).unwrap()), (0, 0));
    // Protocol 0, internal port 0: every PCP mapping of the host.
    assert_eq!(call(&m, &map_req(0, 0, 0, 0, &[])).unwrap()[3], 0);
    let one = Unmap::Internal {
        via: Via::Pcp,
        client: HOST,
        proto: Proto::Tcp,
        internal_port: 8080,
        nonce: Some(NONCE),
    };
    let all = Unmap::AllOfClient {
        via: Via::Pcp,
        client: HOST,
        proto: None,
    };
    let want = [one.clone(), one.clone(), one].map(Call::Unmap);
    assert_eq!(m.calls()[..3], want);
    assert_eq!(m.calls()[3], Call::Unmap(all));
}

fn only_req() -> MapRequest {
    MapRequest {
        via: Via::Pcp,
        client: HOST,
        mac: None,
        internal_client: HOST,
        proto: Proto::Tcp,
        external_port: 0,
        exact: false,
        internal_port: 8080,
        lifetime_secs: 60,
        description: String::new(),
        remote_host: None,
        nonce: Some(NONCE),
    }
}

#[test]
fn refusals_become_result_codes_with_their_lifetimes() {
    let cases = [
        (Refusal::Off, 2, 1800),
        (Refusal::Pending, 2, 30),
        (Refusal::NotAllowed("no rule".into()), 2, 1800),
        (Refusal::Quota(3), 10, 30),
        (Refusal::NoneFree, 8, 30),
        (
            Refusal::Conflict {
                port: 1,
                proto: "tcp",
            },
            11,
            30,
        ),
        (Refusal::NoExternalAddress, 7, 30),
        (Refusal::Failed("x".into()), 7, 30),
        (Refusal::Invalid("x".into()), 3, 1800),
    ];
    for (refusal, code, life) in cases {
        let m = FakeMapper::new();
        m.reply_map(Err(refusal.clone()));
        let req = map_req(60, 6, 80, 80, &[]);
        let got = call(&m, &req).unwrap();
        assert_eq!(result_and_life(&got), (code, life), "{refusal:?}");
        assert_eq!(
            got[24..],
            req[24..],
            "{refusal:?}: data copied from the request"
        );
    }
}

#[test]
fn prefer_failure_asks_for_exactly_the_port() {
    // §13.2: option code 2, length 0; echoed in the response.
    let m = FakeMapper::new();
    let got = call(&m, &map_req(60, 6, 80, 8080, &[2, 0, 0, 0])).unwrap();
    assert_eq!(got.len(), 64);
    assert_eq!(got[60..], [2, 0, 0, 0]);
    assert!(only_map_call(&m).exact);
    m.reply_map(Err(Refusal::NoneFree));
    let got = call(&m, &map_req(60, 6, 80, 8080, &[2, 0, 0, 0])).unwrap();
    assert_eq!(result_and_life(&got), (11, 30));
    // Suggested port 0, a length, or twice: MALFORMED_OPTION.
    for opts in [
        &[2, 0, 0, 0][..],
        &[2, 0, 0, 4, 0, 0, 0, 0],
        &[2, 0, 0, 0, 2, 0, 0, 0],
    ] {
        let port = if opts.len() == 4 { 0 } else { 80 };
        assert_eq!(call(&m, &map_req(60, 6, 80, port, opts)).unwrap()[3], 6);
    }
    // Another suggested external address: CANNOT_PROVIDE_EXTERNAL.
    let mut req = map_req(60, 6, 80, 80, &[2, 0, 0, 0]);
    req[56..60].copy_from_slice(&[198, 51, 100, 9]);
    req[54..56].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(call(&m, &req).unwrap()[3], 11);
    req[56..60].copy_from_slice(&[203, 0, 113, 7]);
    assert_eq!(call(&m, &req).unwrap()[3], 0);
}

#[test]
fn filter_for_one_host_is_the_remote_host_others_unsupported() {
    // §13.3: [3][0][length 20][reserved][prefix length][remote port][remote address].
    let filter = |prefix: u8, port: u16, ip: [u8; 4]| {
        let mut o = vec![3, 0, 0, 20, 0, prefix];
        o.extend_from_slice(&port.to_be_bytes());
        o.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        o.extend_from_slice(&ip);
        o
    };
    let m = FakeMapper::new();
    let f = filter(128, 0, [198, 51, 100, 9]);
    let got = call(&m, &map_req(60, 6, 80, 80, &f)).unwrap();
    assert_eq!((got[3], &got[60..]), (0, &f[..]));
    assert_eq!(
        only_map_call(&m).remote_host,
        Some(Ipv4Addr::new(198, 51, 100, 9))
    );
    let m = FakeMapper::new();
    assert_eq!(
        call(&m, &map_req(60, 6, 80, 80, &filter(0, 0, [0; 4]))).unwrap()[3],
        0
    );
    assert_eq!(only_map_call(&m).remote_host, None);
    let m = FakeMapper::new();
    for (opt, code) in [
        (filter(120, 0, [198, 51, 100, 0]), 5),
        (filter(128, 443, [198, 51, 100, 9]), 5),
        (filter(64, 0, [198, 51, 100, 9]), 6),
        ([f.clone(), f.clone()].concat(), 5),
        (f[..20].to_vec(), 6),
    ] {
        assert_eq!(
            call(&m, &map_req(60, 6, 80, 80, &opt)).unwrap()[3],
            code,
            "{opt:?}"
        );
    }
    assert!(m.calls().is_empty());
}

#[test]
fn third_party_and_unknown_mandatory_options_are_unsupported() {
    let m = FakeMapper::new();
    let mut tp = vec![1, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    tp.extend_from_slice(&[192, 168, 1, 30]);
    assert_eq!(call(&m, &map_req(60, 6, 80, 80, &tp)).unwrap()[3], 5);
    assert_eq!(
        call(&m, &map_req(60, 6, 80, 80, &[99, 0, 0, 0])).unwrap()[3],
        5
    );
    assert!(m.calls().is_empty());
    // Optional options (128 and up) are ignored, and not echoed.
    let got = call(&m, &map_req(60, 6, 80, 80, &[200, 0, 0, 1, 7, 0, 0, 0])).unwrap();
    assert_eq!((got[3], got.len()), (0, 60));
}

#[test]
fn no_input_panics() {
    let m = FakeMapper::new();
    let base = map_req(60, 6, 80, 80, &[2, 0, 0, 0, 3, 0, 0, 20]);
    let mut x = 0x9e37_79b9_u32;
    for _ in 0..20000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let [len, at, val, mode] = x.to_be_bytes();
        let mut msg = base.clone();
        msg.resize(usize::from(len) % 96, mode);
        if let Some(b) = msg.get_mut(usize::from(at) % 96) {
            *b = val;
        }
        if mode & 1 == 0 {
            let n = msg.len().min(4);
            msg[..n].copy_from_slice(&base[..n]);
        }
        let _ = call(&m, &msg);
    }
}
