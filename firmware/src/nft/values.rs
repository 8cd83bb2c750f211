//! Byte layout of keys and data: how a [`Value`] or a concatenation of them sits in
//! registers and set elements.
//!
//! A single value is sent at its natural length (a port is 2 bytes); in a concatenation
//! every part is padded to a 32-bit register, which is also how set key/data lengths and
//! concatenated type ids are computed.

use crate::ruleset::{DataType, Value};

/// The network-order bytes of one value, unpadded (the first `n` of 8).
pub fn value_bytes(v: &Value) -> ([u8; 8], usize) {
    match *v {
        Value::Ipv4(a) => {
            let [a, b, c, d] = a.octets();
            ([a, b, c, d, 0, 0, 0, 0], 4)
        }
        Value::Port(p) => {
            let [a, b] = p.to_be_bytes();
            ([a, b, 0, 0, 0, 0, 0, 0], 2)
        }
        Value::Proto(p) | Value::NfProto(p) | Value::Byte(p) => ([p, 0, 0, 0, 0, 0, 0, 0], 1),
        Value::Mac([a, b, c, d, e, f]) => ([a, b, c, d, e, f, 0, 0], 6),
    }
}

/// Appends a key or datum: one value unpadded, a concatenation padded per part.
pub fn put_values(out: &mut Vec<u8>, vs: &[Value]) {
    if let [v] = vs {
        let (b, n) = value_bytes(v);
        out.extend_from_slice(&b[..n]);
    } else {
        for v in vs {
            let (b, n) = value_bytes(v);
            out.extend_from_slice(&b[..reg_len(n)]);
        }
    }
}

/// Numeric value and width in bytes, for interval arithmetic.
pub fn value_num(v: &Value) -> (u64, usize) {
    match *v {
        Value::Ipv4(a) => (u64::from(u32::from(a)), 4),
        Value::Port(p) => (u64::from(p), 2),
        Value::Proto(p) | Value::NfProto(p) | Value::Byte(p) => (u64::from(p), 1),
        Value::Mac([a, b, c, d, e, f]) => (u64::from_be_bytes([0, 0, a, b, c, d, e, f]), 6),
    }
}

/// A count as u32, saturating (kernel counters and sequence arithmetic are 32-bit).
pub fn u32_sat(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Milliseconds of a duration as the kernel's u64, saturating.
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Big-endian bytes of `n` at `width` bytes.
pub fn num_bytes(n: u64, width: usize) -> ([u8; 8], usize) {
    let b = n.to_be_bytes();
    let mut out = [0; 8];
    out[..width].copy_from_slice(&b[8 - width..]);
    (out, width)
}

/// Rebuilds a value of type `t` from element bytes.
pub fn value_from(t: DataType, b: &[u8]) -> Option<Value> {
    Some(match t {
        DataType::Ipv4Addr => Value::Ipv4(<[u8; 4]>::try_from(b.get(..4)?).ok()?.into()),
        DataType::InetService => Value::Port(u16::from_be_bytes(b.get(..2)?.try_into().ok()?)),
        DataType::InetProto => Value::Proto(*b.first()?),
        DataType::NfProto => Value::NfProto(*b.first()?),
        DataType::Icmpv6Type | DataType::Integer8 => Value::Byte(*b.first()?),
        DataType::EtherAddr => Value::Mac(<[u8; 6]>::try_from(b.get(..6)?).ok()?),
    })
}

/// Splits key or data bytes into values of the given types (the inverse of [`put_values`]).
pub fn values_from(types: &[DataType], b: &[u8]) -> Option<Vec<Value>> {
    if let [t] = types {
        return Some(vec![value_from(*t, b)?]);
    }
    let mut out = Vec::with_capacity(types.len());
    let mut off = 0;
    for t in types {
        out.push(value_from(*t, b.get(off..)?)?);
        off += reg_len(t.len());
    }
    Some(out)
}

/// A length rounded up to whole 32-bit registers.
pub fn reg_len(len: usize) -> usize {
    len.div_ceil(4) * 4
}

/// `NFTA_SET_KEY_LEN`/`DATA_LEN` of a (possibly concatenated) type.
pub fn types_len(types: &[DataType]) -> u32 {
    let n = match types {
        [t] => t.len(),
        _ => types.iter().map(|t| reg_len(t.len())).sum(),
    };
    u32_sat(n)
}

/// `NFTA_SET_KEY_TYPE`/`DATA_TYPE`: concatenations shift each part in by 6 bits.
pub fn types_id(types: &[DataType]) -> u32 {
    types.iter().fold(0, |acc, t| (acc << 6) | t.nft_type_id())
}

/// The inverse of [`types_id`] for the types we know.
pub fn types_from_id(mut id: u32) -> Option<Vec<DataType>> {
    let mut out = Vec::new();
    while id != 0 {
        out.push(match id & 0x3f {
            7 => DataType::Ipv4Addr,
            13 => DataType::InetService,
            12 => DataType::InetProto,
            2 => DataType::NfProto,
            29 => DataType::Icmpv6Type,
            4 => DataType::Integer8,
            9 => DataType::EtherAddr,
            _ => return None,
        });
        id >>= 6;
    }
    out.reverse();
    (!out.is_empty()).then_some(out)
}

/// Byte order `nft` records in set userdata (`BYTEORDER_BIG_ENDIAN` = 2) so that
/// `nft list` prints values correctly; concatenations and 1-byte types get 0.
pub fn udata_byteorder(types: &[DataType]) -> u32 {
    match types {
        [DataType::Ipv4Addr | DataType::InetService | DataType::EtherAddr] => 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_type_ids_round_trip() {
        let t = [
            DataType::Ipv4Addr,
            DataType::InetProto,
            DataType::InetService,
        ];
        assert_eq!(types_id(&t), 0x730d);
        assert_eq!(types_len(&t), 12);
        assert_eq!(types_from_id(0x730d).unwrap(), t);
        let mut b = Vec::new();
        let vs = [
            Value::Ipv4([1, 2, 3, 4].into()),
            Value::Proto(6),
            Value::Port(80),
        ];
        put_values(&mut b, &vs);
        assert_eq!(b, [1, 2, 3, 4, 6, 0, 0, 0, 0, 80, 0, 0]);
        assert_eq!(values_from(&t, &b).unwrap(), vs);
    }
}
