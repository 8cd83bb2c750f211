//! Golden bytes from the packet diagrams of RFC 6886 §3.2–§3.5.

use std::net::Ipv4Addr;

use super::*;
use crate::portmap::pmp_serve::fake::{mapping_of, Call, FakeMapper};
use crate::portmap::Grant;

const HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);

fn call(m: &FakeMapper, msg: &[u8]) -> Option<Vec<u8>> {
    handle(msg, HOST, None, m)
}

#[test]
fn public_address_request_gets_the_external_address() {
    // §3.2: request [vers 0][op 0]; response [0][128][result 0][epoch][a.b.c.d].
    let m = FakeMapper::new();
    let got = call(&m, &[0, 0]).unwrap();
    let want = [0, 128, 0, 0, 0, 0, 0x04, 0xd2, 203, 0, 113, 7];
    assert_eq!(got, want);
    assert!(m.calls().is_empty());
}

#[test]
fn public_address_without_wan_address_is_network_failure() {
    // §3.5 result 3, address field zero.
    let m = FakeMapper {
        external: None,
        ..FakeMapper::new()
    };
    let got = call(&m, &[0, 0]).unwrap();
    assert_eq!(got, [0, 128, 0, 3, 0, 0, 0x04, 0xd2, 0, 0, 0, 0]);
    assert_eq!(announcement(None, 5), None);
}

#[test]
fn announcement_is_a_public_address_response() {
    // §3.2.1: same format as the §3.2 response.
    let got = announcement(Some(Ipv4Addr::new(198, 51, 100, 1)), 7).unwrap();
    assert_eq!(got, [0, 128, 0, 0, 0, 0, 0, 7, 198, 51, 100, 1]);
}

#[test]
fn map_tcp_request_asks_the_mapper_and_reports_the_grant() {
    // §3.3: [0][2][reserved][internal 8080][suggested 0][lifetime 7200].
    let m = FakeMapper::new();
    let req = [0, 2, 0, 0, 0x1f, 0x90, 0, 0, 0, 0, 0x1c, 0x20];
    let got = call(&m, &req).unwrap();
    // [0][130][0][epoch][internal 8080][mapped 40000 = 0x9c40][lifetime 7200].
    let want = [
        0, 130, 0, 0, 0, 0, 0x04, 0xd2, 0x1f, 0x90, 0x9c, 0x40, 0, 0, 0x1c, 0x20,
    ];
    assert_eq!(got, want);
    let Call::Map(r) = &m.calls()[0] else {
        panic!("not a map")
    };
    assert_eq!(r.via, Via::Natpmp);
    assert_eq!((r.client, r.internal_client), (HOST, HOST));
    assert_eq!(r.proto, Proto::Tcp);
    assert_eq!((r.internal_port, r.external_port), (8080, 0));
    assert!(!r.exact);
    assert_eq!(r.lifetime_secs, 7200);
    assert_eq!(r.description, "");
}

#[test]
fn map_udp_reports_granted_port_and_lifetime_not_the_asked_ones() {
    let m = FakeMapper::new();
    let req = [0, 1, 0, 0, 0x13, 0x88, 0x13, 0x88, 0, 0x01, 0x51, 0x80];
    let asked = MapRequest {
        via: Via::Natpmp,
        client: HOST,
        mac: None,
        internal_client: HOST,
        proto: Proto::Udp,
        external_port: 5000,
        exact: false,
        internal_port: 5000,
        lifetime_secs: 86400,
        description: String::new(),
        remote_host: None,
        nonce: None,
    };
    m.reply_map(Ok(Grant {
        mapping: mapping_of(&asked, 5001),
        lifetime_secs: 3600,
        refreshed: false,
    }));
    let got = call(&m, &req).unwrap();
    let want = [
        0, 129, 0, 0, 0, 0, 0x04, 0xd2, 0x13, 0x88, 0x13, 0x89, 0, 0, 0x0e, 0x10,
    ];
    assert_eq!(got, want);
    assert_eq!(m.calls(), [Call::Map(asked)]);
}

#[test]
fn refusals_become_result_codes() {
    let cases = [
        (Refusal::Off, 2),
        (Refusal::Pending, 2),
        (Refusal::OtherHost, 2),
        (
            Refusal::Conflict {
                port: 1,
                proto: "tcp",
            },
            2,
        ),
        (Refusal::Invalid("x".into()), 2),
        (Refusal::Quota(4), 4),
        (Refusal::NoneFree, 4),
        (Refusal::NoExternalAddress, 3),
        (Refusal::Failed("nft".into()), 3),
    ];
    for (refusal, code) in cases {
        let m = FakeMapper::new();
        m.reply_map(Err(refusal.clone()));
        let got = call(&m, &[0, 2, 0, 0, 0, 22, 0, 22, 0, 0, 0, 60]).unwrap();
        // Error: internal port echoed, external port and lifetime 0.
        let want = [0, 130, 0, code, 0, 0, 0x04, 0xd2, 0, 22, 0, 0, 0, 0, 0, 0];
        assert_eq!(got, want, "{refusal:?}");
    }
}

#[test]
fn lifetime_zero_deletes_one_mapping() {
    // §3.4: lifetime 0 deletes; the response has external port 0 and lifetime 0.
    let m = FakeMapper::new();
    m.reply_unmap(Ok(Vec::new()));
    let got = call(&m, &[0, 1, 0, 0, 0x13, 0x88, 0x13, 0x88, 0, 0, 0, 0]).unwrap();
    assert_eq!(
        got,
        [0, 129, 0, 0, 0, 0, 0x04, 0xd2, 0x13, 0x88, 0, 0, 0, 0, 0, 0]
    );
    let want = Unmap::Internal {
        via: Via::Natpmp,
        client: HOST,
        proto: Proto::Udp,
        internal_port: 5000,
        nonce: None,
    };
    assert_eq!(m.calls(), [Call::Unmap(want)]);
}

#[test]
fn deleting_nothing_succeeds_and_another_hosts_mapping_is_refused() {
    let m = FakeMapper::new();
    let got = call(&m, &[0, 1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(got.get(2..4), Some(&[0, 0][..]));
    m.reply_unmap(Err(Refusal::NotOwner));
    let got = call(&m, &[0, 1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(got.get(2..4), Some(&[0, 2][..]));
}

#[test]
fn all_zero_deletes_all_of_the_hosts_mappings_of_the_protocol() {
    // §3.4: internal port, external port and lifetime 0.
    let m = FakeMapper::new();
    let got = call(&m, &[0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap();
    assert_eq!(
        got,
        [0, 130, 0, 0, 0, 0, 0x04, 0xd2, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let want = Unmap::AllOfClient {
        via: Via::Natpmp,
        client: HOST,
        proto: Some(Proto::Tcp),
    };
    assert_eq!(m.calls(), [Call::Unmap(want)]);
}

#[test]
fn internal_port_zero_with_a_lifetime_is_refused_without_asking() {
    let m = FakeMapper::new();
    let got = call(&m, &[0, 2, 0, 0, 0, 0, 0, 80, 0, 0, 0, 60]).unwrap();
    assert_eq!(got.get(2..4), Some(&[0, 2][..]));
    assert!(m.calls().is_empty());
}

#[test]
fn wrong_version_gets_result_1() {
    // §3.5: [0][128 + op][result 1][epoch]. A PCP MAP request (version 2, op 1):
    let m = FakeMapper::new();
    let mut pcp = vec![2, 1];
    pcp.resize(60, 0);
    assert_eq!(call(&m, &pcp).unwrap(), [0, 129, 0, 1, 0, 0, 0x04, 0xd2]);
    assert!(m.calls().is_empty());
}

#[test]
fn unknown_opcode_comes_back_with_result_5() {
    // §3.5: the entire request, top bit of the opcode set, result 5.
    let m = FakeMapper::new();
    assert_eq!(call(&m, &[0, 3, 0, 0, 1, 2]).unwrap(), [0, 131, 0, 5, 1, 2]);
    assert_eq!(call(&m, &[0, 99]).unwrap(), [0, 227, 0, 5]);
}

#[test]
fn responses_and_runts_are_ignored() {
    let m = FakeMapper::new();
    for msg in [
        &[][..],
        &[0],
        &[0, 128, 0, 0],
        &[0, 129],
        &[0, 1, 0, 0, 0, 80, 0, 80, 0, 0, 0],
    ] {
        assert_eq!(call(&m, msg), None, "{msg:?}");
    }
    assert!(m.calls().is_empty());
}

#[test]
fn no_input_panics() {
    // Every 1- and 2-byte prefix, and mutations of a valid request.
    let m = FakeMapper::new();
    for a in 0..=255u8 {
        for b in 0..=255u8 {
            let _ = call(&m, &[a, b]);
        }
    }
    let mut x = 0x2545_f491_u32;
    for _ in 0..5000 {
        let mut msg = vec![0, 1, 0, 0, 0x13, 0x88, 0x13, 0x88, 0, 0, 0x0e, 0x10];
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let [len, fill, at, val] = x.to_be_bytes();
        msg.resize(usize::from(len % 16), fill);
        if let Some(b) = msg.get_mut(usize::from(at % 12)) {
            *b = val;
        }
        let _ = call(&m, &msg);
    }
}
