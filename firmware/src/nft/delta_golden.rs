//! Golden-byte test of the delta batch: the element and counter changes between the
//! shared-set fixture and its changed copy must be encoded exactly as `nft` 1.0.6 sends
//! the equivalent commands (`testdata/delta.nft`: add counter, delete element, add
//! element, delete counter) to a kernel holding the fixture's table. Captured with
//!
//! ```text
//! sh testdata/capture-delta.sh testdata/shared.nft testdata/delta.nft > testdata/delta.hex
//! ```
//!
//! As in `golden.rs`, `nft` numbers from 0 and asks for no acks. One difference is
//! deliberate and masked: to delete an element, `nft` sends back the element as it read it
//! from the kernel, with its timeout, the time left (which changes by the millisecond) and
//! its userdata; the kernel ignores all three on deletion (`nft_del_setelem` reads only
//! flags, key and key end), and we send only those. [`without_echoed_attrs`] removes the
//! three from `nft`'s deletions; every other byte counts.

use super::batch::{encode_delta_batch, encode_delta_batch_with};
use super::example::{shared_ruleset, shared_ruleset_changed};
use super::golden::{assert_same_messages, unhex};
use super::uapi::NLM_F_ACK;
use super::wire::messages;
use crate::config::Timestamp;
use crate::delta::{diff, Delta, Planned};

/// `nft`'s batch with `NFTA_SET_ELEM_TIMEOUT`, `_EXPIRATION` and `_USERDATA` removed from
/// the elements of `DELSETELEM` messages (lengths recomputed); other messages as they are.
fn without_echoed_attrs(batch: &[u8]) -> Vec<u8> {
    const DELSETELEM: u16 = (10 << 8) | 14; // NFNL_SUBSYS_NFTABLES, NFT_MSG_DELSETELEM
    const ELEMENTS: u16 = 3; // NFTA_SET_ELEM_LIST_ELEMENTS
    const ECHOED: [u16; 3] = [4, 5, 6]; // NFTA_SET_ELEM_TIMEOUT, _EXPIRATION, _USERDATA
    fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
        let mut out = Vec::new();
        while b.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
            let ty = u16::from_ne_bytes([b[2], b[3]]);
            out.push((ty, &b[4..len]));
            b = &b[super::wire::align4(len).min(b.len())..];
        }
        out
    }
    fn put(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
        let len = u16::try_from(4 + data.len()).expect("attribute fits");
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(data);
        out.resize(super::wire::align4(out.len()), 0);
    }
    let mut out = Vec::with_capacity(batch.len());
    let mut rest = batch;
    while rest.len() >= 16 {
        let len = usize::try_from(u32::from_ne_bytes(rest[..4].try_into().expect("4 bytes")))
            .expect("fits");
        let (msg, tail) = rest.split_at(super::wire::align4(len).min(rest.len()));
        rest = tail;
        if u16::from_ne_bytes([msg[4], msg[5]]) != DELSETELEM {
            out.extend_from_slice(msg);
            continue;
        }
        let mut payload = msg[16..20].to_vec(); // nfgenmsg
        for (ty, data) in attrs(&msg[20..len]) {
            if ty & 0x3fff != ELEMENTS {
                put(&mut payload, ty, data);
                continue;
            }
            let mut list = Vec::new();
            for (ety, elem) in attrs(data) {
                let mut e = Vec::new();
                for (aty, a) in attrs(elem).into_iter().filter(|(t, _)| !ECHOED.contains(t)) {
                    put(&mut e, aty, a);
                }
                put(&mut list, ety, &e);
            }
            put(&mut payload, ty, &list);
        }
        let start = out.len();
        out.extend_from_slice(&msg[..16]);
        out.extend_from_slice(&payload);
        let total = u32::try_from(out.len() - start).expect("fits");
        out[start..start + 4].copy_from_slice(&total.to_ne_bytes());
    }
    out
}

fn fixture_delta() -> Delta {
    let (a, b) = (shared_ruleset("shared"), shared_ruleset_changed("shared"));
    let at = Timestamp(1_795_888_800);
    diff(Planned::new(&a, at), Planned::new(&b, at)).expect("same shape")
}

#[test]
fn delta_batch_equals_nft_commands() {
    let nft = unhex(include_str!("testdata/delta.hex"));
    let delta = fixture_delta();
    let ours = encode_delta_batch_with(&delta, 0, 0);
    assert_same_messages(ours.bytes(), &without_echoed_attrs(&nft));
}

#[test]
fn only_echoed_attributes_are_masked() {
    // The mask leaves additions alone and removes something only from deletions.
    let nft = unhex(include_str!("testdata/delta.hex"));
    let masked = without_echoed_attrs(&nft);
    assert!(masked.len() < nft.len());
    let kinds = |b: &[u8]| -> Vec<(u16, usize)> {
        messages(b)
            .map(|m| m.expect("valid"))
            .map(|m| (m.ty, m.payload.len()))
            .collect()
    };
    let (a, b) = (kinds(&nft), kinds(&masked));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0);
        if x.0 == (10 << 8) | 14 {
            assert!(y.1 <= x.1);
        } else {
            assert_eq!(x.1, y.1);
        }
    }
}

#[test]
fn delta_batch_names_each_message() {
    let delta = fixture_delta();
    let b = encode_delta_batch(&delta, 100);
    let names: Vec<String> = b.seqs().map(|s| b.describe(s)).collect();
    assert_eq!(
        names,
        [
            "counter fwd_new",
            "deletion of elements of set ctr_tcp",
            "deletion of elements of set ctr_udp",
            "deletion of elements of set allow_tcp",
            "elements of set ctr_tcp",
            "elements of set ctr_udp",
            "elements of set allow_tcp",
            "elements of set inbound",
            "deletion of counter fwd_game",
        ]
    );
    // Every message between begin and end asks for an ack.
    let msgs: Vec<_> = messages(b.bytes()).map(|m| m.expect("valid")).collect();
    assert_eq!(msgs.len(), names.len() + 2);
    assert!(msgs[1..msgs.len() - 1]
        .iter()
        .all(|m| m.flags & NLM_F_ACK != 0));
}

#[test]
fn an_empty_delta_encodes_no_messages() {
    let rs = shared_ruleset("shared");
    let at = Timestamp(1_795_888_800);
    let d = diff(Planned::new(&rs, at), Planned::new(&rs, at)).expect("same shape");
    assert!(d.is_empty());
    assert!(encode_delta_batch(&d, 1).is_empty());
}
