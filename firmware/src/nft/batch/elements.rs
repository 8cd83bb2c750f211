//! Elements as the kernel stores them: interval sets hold a start and an end marker per
//! range, concatenated interval (pipapo) sets a start and `KEY_END`, and a range up to the
//! maximum value has no end element. Used by the batch encoder for whole sets and deltas.

use super::*;

/// One element as the kernel stores it.
pub(super) struct KElem<'a> {
    pub(super) key: KKey<'a>,
    /// `NFTA_SET_ELEM_KEY_END` of a concatenated interval (pipapo) element.
    pub(super) key_end: Option<Vec<u8>>,
    pub(super) end: bool,
    /// The interval runs to the maximum value, so there is no end element; `nft` marks
    /// the start with a userdata flag to print it as a prefix/range again.
    pub(super) open: bool,
    pub(super) elem: Option<&'a Element>,
}

pub(super) enum KKey<'a> {
    Values(&'a [crate::ruleset::Value]),
    Num(u64, usize),
    Bytes(Vec<u8>),
}

impl<'a> KElem<'a> {
    pub(super) fn plain(e: &'a Element) -> Self {
        let key = match &e.key {
            ElemKey::Single(v) => KKey::Values(v),
            ElemKey::Range(a, _) => KKey::Values(std::slice::from_ref(a)),
            ElemKey::ConcatRange(parts) => {
                let lo: Vec<Value> = parts.iter().map(|p| p.0).collect();
                let mut bytes = Vec::with_capacity(4 * lo.len());
                put_values(&mut bytes, &lo);
                KKey::Bytes(bytes)
            }
        };
        KElem {
            key,
            key_end: None,
            end: false,
            open: false,
            elem: Some(e),
        }
    }

    pub(super) fn encode(&self, b: &mut MsgBuf, index: u16, delete: bool) {
        let n = b.nest(index);
        if self.end {
            b.put_u32(NFTA_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
        }
        let e = self.elem.filter(|_| !delete);
        if let Some(t) = e.and_then(|e| e.timeout) {
            b.put_u64(NFTA_SET_ELEM_TIMEOUT, millis(t));
        }
        let k = b.nest(NFTA_SET_ELEM_KEY);
        let mut bytes = Vec::with_capacity(16);
        match self.key {
            KKey::Values(v) => put_values(&mut bytes, v),
            KKey::Num(n, w) => {
                let (nb, w) = num_bytes(n, w);
                bytes.extend_from_slice(&nb[..w]);
            }
            KKey::Bytes(ref k) => bytes.extend_from_slice(k),
        }
        b.put(NFTA_DATA_VALUE, &bytes);
        b.end_nest(k);
        // `nft` names a single-valued concatenated element by its key alone when deleting
        // (the kernel takes the key as its end when KEY_END is absent).
        if let Some(end) = self.key_end.as_ref().filter(|e| !delete || **e != bytes) {
            let k = b.nest(NFTA_SET_ELEM_KEY_END);
            b.put(NFTA_DATA_VALUE, end);
            b.end_nest(k);
        }
        match e.and_then(|e| e.data.as_ref()) {
            Some(ElemData::Verdict(v)) => {
                let d = b.nest(NFTA_SET_ELEM_DATA);
                put_verdict(b, v);
                b.end_nest(d);
            }
            Some(ElemData::Values(vs)) => {
                let d = b.nest(NFTA_SET_ELEM_DATA);
                bytes.clear();
                put_values(&mut bytes, vs);
                b.put(NFTA_DATA_VALUE, &bytes);
                b.end_nest(d);
            }
            Some(ElemData::Counter(_)) | None => {}
        }
        if self.open && !delete {
            // libnftnl udata: NFTNL_UDATA_SET_ELEM_FLAGS = NFTNL_SET_ELEM_F_INTERVAL_OPEN.
            let mut u = vec![1u8, 4];
            u.extend_from_slice(&1u32.to_ne_bytes());
            b.put(NFTA_SET_ELEM_USERDATA, &u);
        }
        // libnftnl puts the object reference after the userdata.
        if let Some(ElemData::Counter(name)) = e.and_then(|e| e.data.as_ref()) {
            b.put_strz(NFTA_SET_ELEM_OBJREF, name);
        }
        b.end_nest(n);
    }
}

/// A concatenated interval (pipapo) element as `nft` sends it: `KEY` holds every field's
/// low end, `KEY_END` every field's high end (equal to `KEY` for single values), both
/// padded per field like any concatenation. No end markers, no userdata.
pub(super) fn concat_range_element(e: &Element) -> KElem<'_> {
    let (lo, hi): (Vec<Value>, Vec<Value>) = match &e.key {
        ElemKey::ConcatRange(parts) => parts.iter().copied().unzip(),
        ElemKey::Single(v) => (v.clone(), v.clone()),
        ElemKey::Range(a, b) => (vec![*a], vec![*b]),
    };
    let (mut k, mut kend) = (Vec::with_capacity(16), Vec::with_capacity(16));
    put_values(&mut k, &lo);
    put_values(&mut kend, &hi);
    KElem {
        key: KKey::Bytes(k),
        key_end: Some(kend),
        end: false,
        open: false,
        elem: Some(e),
    }
}

/// The number of concatenated fields of a key.
pub(super) fn key_arity(k: &ElemKey) -> usize {
    match k {
        ElemKey::Single(v) => v.len(),
        ElemKey::Range(..) => 1,
        ElemKey::ConcatRange(p) => p.len(),
    }
}

/// Interval set elements as `nft` sends them for this kernel. With a concatenated key
/// (pipapo backend) each element is one `KEY`/`KEY_END` pair, in the given order. With a
/// single key (rbtree backend): sorted start elements, each followed by an
/// `INTERVAL_END` element holding end + 1, plus a leading end marker at 0 when creating
/// the whole set and it does not start at 0.
pub(super) fn interval_elements(elems: &[Element], whole_set: bool) -> Vec<KElem<'_>> {
    let mut ranges: Vec<(u64, u64, usize, &Element)> = Vec::with_capacity(elems.len());
    let mut out = Vec::with_capacity(elems.len() * 2 + 1);
    for e in elems {
        if key_arity(&e.key) > 1 {
            out.push(concat_range_element(e));
            continue;
        }
        let (a, b) = match &e.key {
            ElemKey::Single(v) => match v.first() {
                Some(x) => (x, x),
                None => continue,
            },
            ElemKey::Range(a, b) => (a, b),
            ElemKey::ConcatRange(p) => match p.first() {
                Some((a, b)) => (a, b),
                None => continue,
            },
        };
        let ((a, w), (b, _)) = (value_num(a), value_num(b));
        ranges.push((a, b, w, e));
    }
    ranges.sort_by_key(|r| r.0);
    if let Some(&(first, _, w, _)) = ranges.first() {
        if whole_set && first != 0 {
            out.push(KElem {
                key: KKey::Num(0, w),
                key_end: None,
                end: true,
                open: false,
                elem: None,
            });
        }
    }
    for (a, b, w, e) in ranges {
        let max = if w >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * w)) - 1
        };
        let open = b >= max;
        out.push(KElem {
            key: KKey::Num(a, w),
            key_end: None,
            end: false,
            open,
            elem: Some(e),
        });
        if !open {
            out.push(KElem {
                key: KKey::Num(b + 1, w),
                key_end: None,
                end: true,
                open: false,
                elem: None,
            });
        }
    }
    out
}

/// The elements the kernel ends up holding for a set's initial content.
pub(super) fn kernel_elements(s: &Set, whole_set: bool) -> Vec<KElem<'_>> {
    if s.flags.interval {
        interval_elements(&s.elements, whole_set)
    } else {
        s.elements.iter().map(KElem::plain).collect()
    }
}
