//! Golden-byte tests: our encoding must equal what `nft` 1.0.6 sends for the same text.

use super::batch::encode_apply_batch_with;
use super::example::example_ruleset;
use super::wire::messages;

/// Splits a batch into messages and prints a readable diff position on mismatch.
fn assert_same_messages(ours: &[u8], nft: &[u8]) {
    let a: Vec<_> = messages(ours).map(|m| m.unwrap()).collect();
    let b: Vec<_> = messages(nft).map(|m| m.unwrap()).collect();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert_eq!(
            (x.ty, x.flags, x.seq, x.payload),
            (y.ty, y.flags, y.seq, y.payload),
            "message {i} differs"
        );
    }
    assert_eq!(a.len(), b.len(), "message count");
    assert_eq!(ours, nft);
}

#[test]
#[ignore]
fn print_example_text() {
    println!("{}", crate::render::render(&example_ruleset("pc")));
}

#[test]
#[ignore]
fn dev_compare_example() {
    let nft = std::fs::read("/tmp/nftx/example.bin").unwrap();
    let rs = example_ruleset("pc");
    let ours = encode_apply_batch_with(&rs, 0, 0);
    assert_same_messages(ours.bytes(), &nft);
}
