//! What the kernel holds for one table, decoded from dumps back into ruleset vocabulary.
//!
//! The daemon reads this for status (remaining time of expiring forwards, which LAN host
//! holds a trigger, counter hits) and `Nft::apply` reads it to verify a commit. Decoding is
//! pure (bytes in, values out) so it is unit-tested without a kernel.

use std::time::Duration;

use super::uapi::*;
use super::values::{num_bytes, types_from_id, value_from, value_num, values_from};
use super::wire::{Attr, Attrs};
use crate::ruleset::{DataType, ElemData, ElemKey, SetData, SetFlags, Value, Verdict};

/// One table as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    pub name: String,
    /// In kernel order (creation order).
    pub chains: Vec<ChainState>,
    pub sets: Vec<SetState>,
    pub counters: Vec<CounterState>,
}

/// A chain and how many rules it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainState {
    pub name: String,
    pub rules: usize,
}

/// A set or map with its current elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetState {
    pub name: String,
    pub key: Vec<DataType>,
    pub data: Option<SetData>,
    pub flags: SetFlags,
    /// Default timeout of elements added without one.
    pub timeout: Option<Duration>,
    pub elements: Vec<ElementState>,
    /// Elements as the kernel counts them (an interval set also holds end markers).
    pub kernel_elements: usize,
}

/// One element; intervals are reassembled from the kernel's start/end pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementState {
    pub key: ElemKey,
    pub data: Option<ElemData>,
    /// The timeout the element lives under: its own, or the set default when it has none.
    pub timeout: Option<Duration>,
    /// Time left before the kernel removes the element.
    pub expiration: Option<Duration>,
}

/// A named counter's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterState {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Set metadata from a `NEWSET` dump message.
pub fn decode_set(payload: &[u8]) -> Option<(String, SetState)> {
    let a = Attrs::of_nft(payload);
    let table = a.get(NFTA_SET_TABLE)?.str()?.to_string();
    let name = a.get(NFTA_SET_NAME)?.str()?.to_string();
    let f = a.get(NFTA_SET_FLAGS).and_then(|x| x.u32()).unwrap_or(0);
    let key = types_from_id(a.get(NFTA_SET_KEY_TYPE)?.u32()?)?;
    let data = match a.get(NFTA_SET_DATA_TYPE).and_then(|x| x.u32()) {
        Some(NFT_DATA_VERDICT) => Some(SetData::Verdict),
        Some(id) => Some(SetData::Types(types_from_id(id)?)),
        None if f & NFT_SET_OBJECT != 0 => match a.get(NFTA_SET_OBJ_TYPE)?.u32()? {
            NFT_OBJECT_COUNTER => Some(SetData::Counter),
            _ => return None,
        },
        None => None,
    };
    let flags = SetFlags {
        constant: f & NFT_SET_CONSTANT != 0,
        interval: f & NFT_SET_INTERVAL != 0,
        timeout: f & NFT_SET_TIMEOUT != 0,
        dynamic: f & NFT_SET_EVAL != 0,
    };
    let timeout = a
        .get(NFTA_SET_TIMEOUT)
        .and_then(|x| x.u64())
        .map(Duration::from_millis);
    Some((
        table,
        SetState {
            name,
            key,
            data,
            flags,
            timeout,
            elements: Vec::new(),
            kernel_elements: 0,
        },
    ))
}

/// One element exactly as the kernel reports it.
#[derive(Debug, Clone)]
pub struct RawElem {
    pub key: Vec<u8>,
    /// `NFTA_SET_ELEM_KEY_END`: the high end of a concatenated interval element.
    pub key_end: Option<Vec<u8>>,
    pub end: bool,
    pub data: Option<ElemData>,
    pub timeout: Option<Duration>,
    pub expiration: Option<Duration>,
}

fn decode_verdict(a: Attr<'_>) -> Option<Verdict> {
    let code = a.nested().get(NFTA_VERDICT_CODE)?.u32()?;
    let chain = || {
        a.nested()
            .get(NFTA_VERDICT_CHAIN)
            .and_then(|c| c.str())
            .map(str::to_string)
    };
    Some(match code {
        NF_ACCEPT => Verdict::Accept,
        NF_DROP => Verdict::Drop,
        NFT_RETURN => Verdict::Return,
        NFT_JUMP => Verdict::Jump(chain()?),
        NFT_GOTO => Verdict::Goto(chain()?),
        _ => return None,
    })
}

/// Elements of a `NEWSETELEM` dump message.
pub fn decode_elements(
    payload: &[u8],
    data: Option<&SetData>,
    out: &mut Vec<RawElem>,
) -> Option<()> {
    let list = Attrs::of_nft(payload).get(NFTA_SET_ELEM_LIST_ELEMENTS)?;
    for e in list.nested() {
        let a = e.nested();
        let flags = a
            .get(NFTA_SET_ELEM_FLAGS)
            .and_then(|x| x.u32())
            .unwrap_or(0);
        let key = a
            .get(NFTA_SET_ELEM_KEY)?
            .nested()
            .get(NFTA_DATA_VALUE)?
            .data
            .to_vec();
        let key_end = match a.get(NFTA_SET_ELEM_KEY_END) {
            Some(k) => Some(k.nested().get(NFTA_DATA_VALUE)?.data.to_vec()),
            None => None,
        };
        let d = match (a.get(NFTA_SET_ELEM_DATA), data) {
            (Some(d), Some(SetData::Verdict)) => Some(ElemData::Verdict(decode_verdict(
                d.nested().get(NFTA_DATA_VERDICT)?,
            )?)),
            (Some(d), Some(SetData::Types(t))) => Some(ElemData::Values(values_from(
                t,
                d.nested().get(NFTA_DATA_VALUE)?.data,
            )?)),
            (_, Some(SetData::Counter)) => match a.get(NFTA_SET_ELEM_OBJREF) {
                Some(o) => Some(ElemData::Counter(o.str()?.to_string())),
                None => None,
            },
            _ => None,
        };
        let ms = |ty| a.get(ty).and_then(|x| x.u64()).map(Duration::from_millis);
        out.push(RawElem {
            key,
            key_end,
            end: flags & NFT_SET_ELEM_INTERVAL_END != 0,
            data: d,
            timeout: ms(NFTA_SET_ELEM_TIMEOUT),
            expiration: ms(NFTA_SET_ELEM_EXPIRATION),
        });
    }
    Some(())
}

/// Turns raw elements into ruleset-shaped ones. Interval sets are sorted and each start
/// element is paired with the end marker after it (end = marker - 1); a start without a
/// marker runs to the maximum value. Elements of concatenated interval sets carry their
/// high end themselves and become [`ElemKey::ConcatRange`].
pub fn assemble(set: &mut SetState, mut raw: Vec<RawElem>) -> Option<()> {
    set.kernel_elements = raw.len();
    let default = set.timeout;
    let timeout = |r: &RawElem| {
        r.timeout.or(if r.expiration.is_some() {
            default
        } else {
            None
        })
    };
    if set.flags.interval && set.key.len() > 1 {
        for r in raw {
            let lo = values_from(&set.key, &r.key)?;
            let hi = values_from(&set.key, r.key_end.as_deref().unwrap_or(&r.key))?;
            set.elements.push(ElementState {
                key: ElemKey::ConcatRange(lo.into_iter().zip(hi).collect()),
                timeout: timeout(&r),
                expiration: r.expiration,
                data: r.data,
            });
        }
        return Some(());
    }
    if !set.flags.interval || set.key.len() != 1 {
        for r in raw {
            set.elements.push(ElementState {
                key: ElemKey::Single(values_from(&set.key, &r.key)?),
                timeout: timeout(&r),
                expiration: r.expiration,
                data: r.data,
            });
        }
        return Some(());
    }
    let t = set.key[0];
    // Equal keys: the end marker of the previous interval sorts before the next start.
    raw.sort_by(|a, b| a.key.cmp(&b.key).then(b.end.cmp(&a.end)));
    let mut i = 0;
    while i < raw.len() {
        let r = &raw[i];
        i += 1;
        if r.end {
            continue;
        }
        let start = value_from(t, &r.key)?;
        let (_, w) = value_num(&start);
        let end = match raw.get(i) {
            Some(next) if next.end => {
                i += 1;
                let (n, _) = value_num(&value_from(t, &next.key)?);
                let (b, w) = num_bytes(n.checked_sub(1)?, w);
                value_from(t, &b[..w])?
            }
            _ => max_value(t, w)?,
        };
        let key = if end == start {
            ElemKey::Single(vec![start])
        } else {
            ElemKey::Range(start, end)
        };
        set.elements.push(ElementState {
            key,
            timeout: timeout(r),
            expiration: r.expiration,
            data: r.data.clone(),
        });
    }
    Some(())
}

fn max_value(t: DataType, w: usize) -> Option<Value> {
    value_from(t, &[0xff; 8][..w])
}

/// Chain name and table from a `NEWCHAIN` dump message.
pub fn decode_chain(payload: &[u8]) -> Option<(&str, &str)> {
    let a = Attrs::of_nft(payload);
    Some((
        a.get(NFTA_CHAIN_TABLE)?.str()?,
        a.get(NFTA_CHAIN_NAME)?.str()?,
    ))
}

/// Table and chain of a `NEWRULE` dump message.
pub fn decode_rule(payload: &[u8]) -> Option<(&str, &str)> {
    let a = Attrs::of_nft(payload);
    Some((
        a.get(NFTA_RULE_TABLE)?.str()?,
        a.get(NFTA_RULE_CHAIN)?.str()?,
    ))
}

/// A counter object from a `NEWOBJ` dump message (other object types are skipped).
pub fn decode_counter(payload: &[u8]) -> Option<(&str, CounterState)> {
    let a = Attrs::of_nft(payload);
    if a.get(NFTA_OBJ_TYPE)?.u32()? != NFT_OBJECT_COUNTER {
        return None;
    }
    let d = a.get(NFTA_OBJ_DATA)?.nested();
    Some((
        a.get(NFTA_OBJ_TABLE)?.str()?,
        CounterState {
            name: a.get(NFTA_OBJ_NAME)?.str()?.to_string(),
            packets: d.get(NFTA_COUNTER_PACKETS)?.u64()?,
            bytes: d.get(NFTA_COUNTER_BYTES)?.u64()?,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(key: &[u8], end: bool) -> RawElem {
        RawElem {
            key: key.to_vec(),
            key_end: None,
            end,
            data: None,
            timeout: None,
            expiration: None,
        }
    }

    #[test]
    fn intervals_are_reassembled() {
        let mut s = SetState {
            name: "s".into(),
            key: vec![DataType::InetService],
            data: None,
            flags: SetFlags {
                interval: true,
                ..SetFlags::default()
            },
            timeout: None,
            elements: vec![],
            kernel_elements: 0,
        };
        // As the kernel holds `{ 1-5, 6-10, 20, 65000-65535 }` (dump order is reversed).
        let r = vec![
            raw(&[0xfd, 0xe8], false),
            raw(&[0, 21], true),
            raw(&[0, 20], false),
            raw(&[0, 11], true),
            raw(&[0, 6], false),
            raw(&[0, 6], true),
            raw(&[0, 1], false),
            raw(&[0, 0], true),
        ];
        assemble(&mut s, r).unwrap();
        let keys: Vec<_> = s.elements.iter().map(|e| e.key.clone()).collect();
        let p = Value::Port;
        assert_eq!(
            keys,
            vec![
                ElemKey::Range(p(1), p(5)),
                ElemKey::Range(p(6), p(10)),
                ElemKey::Single(vec![p(20)]),
                ElemKey::Range(p(65000), p(65535)),
            ]
        );
        assert_eq!(s.kernel_elements, 8);
    }

    #[test]
    fn concatenated_ranges_are_read_from_key_and_key_end() {
        let mut s = SetState {
            name: "s".into(),
            key: vec![DataType::InetService, DataType::Ipv4Addr],
            data: None,
            flags: SetFlags {
                interval: true,
                ..SetFlags::default()
            },
            timeout: None,
            elements: vec![],
            kernel_elements: 0,
        };
        // `27015-27020 . 10.0.0.0/8` as the kernel's pipapo set dumps it.
        let r = RawElem {
            key_end: Some(vec![0x69, 0x8c, 0, 0, 10, 255, 255, 255]),
            ..raw(&[0x69, 0x87, 0, 0, 10, 0, 0, 0], false)
        };
        assemble(&mut s, vec![r]).unwrap();
        assert_eq!(
            s.elements[0].key,
            ElemKey::ConcatRange(vec![
                (Value::Port(27015), Value::Port(27020)),
                (
                    Value::Ipv4([10, 0, 0, 0].into()),
                    Value::Ipv4([10, 255, 255, 255].into())
                ),
            ])
        );
    }

    #[test]
    fn ether_addr_sets_decode_into_macs() {
        assert_eq!(types_from_id(9), Some(vec![DataType::EtherAddr]));
        assert_eq!(
            values_from(&[DataType::EtherAddr], &[2, 0, 0, 0, 0, 1]),
            Some(vec![Value::Mac([2, 0, 0, 0, 0, 1])])
        );
    }
}
