//! PLACEHOLDER (branch `tunnel`): replaced at merge by the key helper's `key.rs`. Only
//! the items the tunnel code uses: `Key`, `from_base64`, `to_base64`.

use std::fmt;

/// A WireGuard key (Curve25519, 32 bytes; `linux/wireguard.h` `WG_KEY_LEN`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl Key {
    /// Parses standard base64 of exactly 32 bytes (44 characters, one `=`).
    pub fn from_base64(s: &str) -> Result<Key, String> {
        let b = s.trim().as_bytes();
        if b.len() != 44 || b.get(43) != Some(&b'=') {
            return Err("not 44 characters of base64".into());
        }
        let mut bits = 0u32;
        let mut n = 0;
        let mut out = Vec::with_capacity(33);
        for &c in b.iter().take(43) {
            let v = ALPHABET.iter().position(|&a| a == c).ok_or("not base64")?;
            bits = (bits << 6) | u32::try_from(v).unwrap_or(0);
            n += 6;
            if n >= 8 {
                n -= 8;
                out.push((bits >> n).to_le_bytes()[0]);
            }
        }
        <[u8; 32]>::try_from(out.as_slice())
            .map(Key)
            .map_err(|_| "not 32 bytes".into())
    }

    /// Standard base64 (44 characters).
    pub fn to_base64(&self) -> String {
        let mut s = String::with_capacity(44);
        for chunk in self.0.chunks(3) {
            let mut v = [0u8; 3];
            v[..chunk.len()].copy_from_slice(chunk);
            let n = (u32::from(v[0]) << 16) | (u32::from(v[1]) << 8) | u32::from(v[2]);
            for i in 0..=chunk.len() {
                s.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        s.push('=');
        s
    }
}
