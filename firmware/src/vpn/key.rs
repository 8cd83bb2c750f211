//! A WireGuard key (Curve25519 private, public or preshared key: 32 bytes) and its text
//! form, standard base64 (RFC 4648 §4) with `=` padding: always 44 characters, as `wg(8)`
//! prints and reads keys.
//!
//! The codec handles exactly 32 bytes and nothing else: a general base64 crate would cost
//! flash for no use.

use std::fmt;

/// Length of a key, bytes (Curve25519, RFC 7748 §5).
pub const KEY_LEN: usize = 32;

/// Length of a key's base64 form, characters (43 of data and one `=`).
pub const KEY_BASE64_LEN: usize = 44;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A WireGuard key. Its `Debug` never shows the bytes (`Key(…)`), so a private key cannot
/// end up in a log by accident.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub [u8; KEY_LEN]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

/// The 6-bit value of one base64 character (standard alphabet), or none.
fn sextet(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

impl Key {
    /// Reads a key from its base64 form: exactly 44 characters of the standard alphabet
    /// ending in one `=`, whitespace around it ignored. The unused low bits of the last
    /// data character must be zero (canonical form, as `wg(8)` requires), so every key has
    /// exactly one spelling. Anything else is none.
    pub fn from_base64(s: &str) -> Option<Key> {
        let b = s.trim().as_bytes();
        if b.len() != KEY_BASE64_LEN || b.get(KEY_BASE64_LEN - 1) != Some(&b'=') {
            return None;
        }
        let mut out = [0u8; KEY_LEN];
        // 43 data characters = 258 bits: 256 of key, 2 that must be zero.
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        let mut n = 0usize;
        for &c in b.get(..KEY_BASE64_LEN - 1)? {
            acc = (acc << 6) | sextet(c)?;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                let [byte, ..] = (acc >> bits).to_le_bytes();
                *out.get_mut(n)? = byte;
                n += 1;
                acc &= (1 << bits) - 1;
            }
        }
        if n != KEY_LEN || acc != 0 {
            return None;
        }
        Some(Key(out))
    }

    /// The key's base64 form, 44 characters.
    pub fn to_base64(&self) -> String {
        let mut s = String::with_capacity(KEY_BASE64_LEN);
        let mut acc: u32 = 0;
        let mut bits = 0u32;
        for &byte in &self.0 {
            acc = (acc << 8) | u32::from(byte);
            bits += 8;
            while bits >= 6 {
                bits -= 6;
                s.push(char::from(ALPHABET[((acc >> bits) & 63) as usize]));
            }
            acc &= (1 << bits) - 1;
        }
        // 256 bits = 42 characters + 4 bits, padded with two zero bits.
        s.push(char::from(ALPHABET[((acc << (6 - bits)) & 63) as usize]));
        s.push('=');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7748 §6.1: Alice's private key, and its base64 form as `base64(1)` prints it.
    const ALICE: [u8; 32] = [
        0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66,
        0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9,
        0x2c, 0x2a,
    ];
    const ALICE_B64: &str = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
    /// RFC 7748 §6.1: Bob's public key.
    const BOB_PUB: [u8; 32] = [
        0xde, 0x9e, 0xdb, 0x7d, 0x7b, 0x7d, 0xc1, 0xb4, 0xd3, 0x5b, 0x61, 0xc2, 0xec, 0xe4, 0x35,
        0x37, 0x3f, 0x83, 0x43, 0xc8, 0x5b, 0x78, 0x67, 0x4d, 0xad, 0xfc, 0x7e, 0x14, 0x6f, 0x88,
        0x2b, 0x4f,
    ];
    const BOB_PUB_B64: &str = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";

    #[test]
    fn known_vectors_both_ways() {
        let zero = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(Key::from_base64(zero), Some(Key([0; 32])));
        assert_eq!(Key([0; 32]).to_base64(), zero);
        let ones = "//////////////////////////////////////////8=";
        assert_eq!(Key::from_base64(ones), Some(Key([0xff; 32])));
        assert_eq!(Key([0xff; 32]).to_base64(), ones);
        assert_eq!(Key::from_base64(ALICE_B64), Some(Key(ALICE)));
        assert_eq!(Key(ALICE).to_base64(), ALICE_B64);
        assert_eq!(Key::from_base64(BOB_PUB_B64), Some(Key(BOB_PUB)));
        assert_eq!(Key(BOB_PUB).to_base64(), BOB_PUB_B64);
    }

    #[test]
    fn every_byte_value_round_trips() {
        for start in 0..=255u8 {
            let mut k = [0u8; 32];
            for (b, i) in k.iter_mut().zip(0u8..) {
                *b = start.wrapping_add(i.wrapping_mul(37));
            }
            let s = Key(k).to_base64();
            assert_eq!(s.len(), 44);
            assert_eq!(Key::from_base64(&s), Some(Key(k)), "{s}");
        }
    }

    #[test]
    fn whitespace_around_is_ignored() {
        assert_eq!(
            Key::from_base64(&format!(" \t{ALICE_B64}\r\n")),
            Some(Key(ALICE))
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "=",
            // 43 characters, no padding
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo",
            // 45 characters
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo==",
            // a character outside the alphabet (URL-safe `-`)
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LC-=",
            // padding in the middle
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25L=o=",
            // non-zero unused bits (`p` instead of `o`)
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCp=",
            // whitespace inside
            "dwdtCnMYpX08FsFyUbJmRd9 L4frwJkqsXf7pR25LCo=",
            // non-ASCII of the same byte length
            "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25Lé=",
            // a 48-byte key (64 characters)
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert_eq!(Key::from_base64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_bytes() {
        let shown = format!("{:?}", Key(ALICE));
        assert_eq!(shown, "Key(…)");
        assert!(!shown.contains("119")); // 0x77
    }
}
