//! Sans-IO batch encoding: a [`Ruleset`] (or an element change) becomes one nfnetlink
//! batch, i.e. one kernel transaction that either commits entirely or not at all.
//!
//! The replace batch is `NEWTABLE, DELTABLE, NEWTABLE, ...`: the first `NEWTABLE` makes
//! the delete succeed even on first boot (no ENOENT special case and no race with a
//! concurrent check), and because it is one transaction, the old table keeps filtering
//! packets until the new one is complete — a rejected batch leaves it untouched.
//!
//! Every message carries `NLM_F_ACK` so the kernel answers each one; the batch remembers
//! which object each sequence number created, so an error can name it.

mod elements;
use elements::{interval_elements, kernel_elements, KElem};

use std::collections::HashMap;

use super::expr::put_verdict;
use super::lower::lower_rule;
use super::uapi::*;
use super::values::{
    millis, num_bytes, put_values, types_id, types_len, u32_sat, udata_byteorder, value_num,
};
use super::wire::{Mark, MsgBuf};
use crate::delta::Delta;
use crate::render::render_rule;
use crate::ruleset::{
    BaseChain, Chain, ChainType, ElemData, ElemKey, Element, Hook, Policy, Ruleset, Set, SetData,
    Value,
};

/// Largest element list we put in one message. The list is one nested attribute whose
/// length field is 16 bits, so long sets are split over several `NEWSETELEM` messages.
const MAX_ELEM_NEST: usize = 60_000;

/// What a message in a batch creates or changes, for error messages.
#[derive(Debug, Clone)]
pub enum Object<'a> {
    Table(&'a str),
    DeleteTable(&'a str),
    Counter(&'a str),
    DeleteCounter(&'a str),
    Chain(&'a str),
    Set(&'a Set),
    Elements {
        set: &'a str,
        delete: bool,
    },
    /// `index` counts from 1, as a person reading the chain would.
    Rule {
        chain: &'a Chain,
        index: usize,
    },
}

impl Object<'_> {
    /// A one-line description naming the object, e.g. `rule 3 of chain fwd_web: ...`.
    pub fn describe(&self) -> String {
        match self {
            Object::Table(t) => format!("table inet {t}"),
            Object::DeleteTable(t) => format!("deletion of table inet {t}"),
            Object::Counter(c) => format!("counter {c}"),
            Object::DeleteCounter(c) => format!("deletion of counter {c}"),
            Object::Chain(c) => format!("chain {c}"),
            Object::Set(s) => format!(
                "{} {}",
                if s.data.is_some() { "map" } else { "set" },
                s.name
            ),
            Object::Elements { set, delete: false } => format!("elements of set {set}"),
            Object::Elements { set, delete: true } => format!("deletion of elements of set {set}"),
            Object::Rule { chain, index } => {
                let text = chain
                    .rules
                    .get(index - 1)
                    .map(render_rule)
                    .unwrap_or_default();
                format!("rule {index} of chain {}: {text}", chain.name)
            }
        }
    }
}

/// One encoded batch, ready to send in a single `sendmsg`.
#[derive(Debug, Clone)]
pub struct Batch<'a> {
    bytes: Vec<u8>,
    /// Sequence number of the first message after `BATCH_BEGIN`.
    first_seq: u32,
    objects: Vec<Object<'a>>,
    /// Elements the kernel will hold per set after the batch (interval sets count their
    /// end markers), for verifying the result.
    pub(crate) element_counts: Vec<(&'a str, usize)>,
}

impl<'a> Batch<'a> {
    /// The bytes to send.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Sequence numbers of the acknowledged messages (everything between begin and end).
    pub fn seqs(&self) -> std::ops::Range<u32> {
        self.first_seq..self.first_seq.wrapping_add(u32_sat(self.objects.len()))
    }

    /// The sequence number following this batch (for the next request).
    pub fn next_seq(&self) -> u32 {
        self.seqs().end + 1
    }

    /// The object a sequence number refers to.
    pub fn object(&self, seq: u32) -> Option<&Object<'a>> {
        let i = seq.checked_sub(self.first_seq)?;
        self.objects.get(i as usize)
    }

    /// Human description of the object a sequence number refers to.
    pub fn describe(&self, seq: u32) -> String {
        match self.object(seq) {
            Some(o) => o.describe(),
            None if seq + 1 == self.first_seq => "batch begin".into(),
            None if seq == self.seqs().end => "batch end".into(),
            None => format!("message with sequence number {seq}"),
        }
    }

    /// Number of messages carrying an ack request.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// Builds a batch message by message, numbering and recording each.
pub(crate) struct Builder<'a> {
    b: MsgBuf,
    seq: u32,
    first_seq: u32,
    /// Added to every message's flags; `NLM_F_ACK` normally, 0 in golden tests that
    /// compare against `nft`, which does not ask for acks.
    ack: u16,
    objects: Vec<Object<'a>>,
    element_counts: Vec<(&'a str, usize)>,
}

impl<'a> Builder<'a> {
    pub fn new(seq: u32, cap: usize, ack: u16) -> Self {
        let mut b = MsgBuf::with_capacity(cap);
        let m = b.begin(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        b.end(m);
        Builder {
            b,
            seq: seq.wrapping_add(1),
            first_seq: seq.wrapping_add(1),
            ack,
            objects: Vec::new(),
            element_counts: Vec::new(),
        }
    }

    fn begin(&mut self, msg: u16, flags: u16, obj: Object<'a>) -> Mark {
        let m = self
            .b
            .begin_nft(msg, flags | self.ack, self.seq, NFPROTO_INET);
        self.seq = self.seq.wrapping_add(1);
        self.objects.push(obj);
        m
    }

    pub fn finish(mut self) -> Batch<'a> {
        let m = self.b.begin(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            self.seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        self.b.end(m);
        Batch {
            bytes: self.b.buf,
            first_seq: self.first_seq,
            objects: self.objects,
            element_counts: self.element_counts,
        }
    }

    pub fn new_table(&mut self, table: &'a str) {
        let m = self.begin(NFT_MSG_NEWTABLE, NLM_F_REQUEST, Object::Table(table));
        self.b.put_strz(NFTA_TABLE_NAME, table);
        self.b.put_u32(NFTA_TABLE_FLAGS, 0);
        self.b.end(m);
    }

    pub fn del_table(&mut self, table: &'a str) {
        let m = self.begin(NFT_MSG_DELTABLE, NLM_F_REQUEST, Object::DeleteTable(table));
        self.b.put_strz(NFTA_TABLE_NAME, table);
        self.b.end(m);
    }

    pub fn counter(&mut self, table: &'a str, name: &'a str, (packets, bytes): (u64, u64)) {
        let m = self.begin(
            NFT_MSG_NEWOBJ,
            NLM_F_REQUEST | NLM_F_CREATE,
            Object::Counter(name),
        );
        self.b.put_strz(NFTA_OBJ_TABLE, table);
        self.b.put_strz(NFTA_OBJ_NAME, name);
        self.b.put_u32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
        let d = self.b.nest(NFTA_OBJ_DATA);
        self.b.put_u64(NFTA_COUNTER_BYTES, bytes);
        self.b.put_u64(NFTA_COUNTER_PACKETS, packets);
        self.b.end_nest(d);
        self.b.end(m);
    }

    pub fn del_counter(&mut self, table: &'a str, name: &'a str) {
        let m = self.begin(NFT_MSG_DELOBJ, NLM_F_REQUEST, Object::DeleteCounter(name));
        self.b.put_strz(NFTA_OBJ_TABLE, table);
        self.b.put_strz(NFTA_OBJ_NAME, name);
        self.b.put_u32(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER);
        // Empty, as `nft` sends it.
        let d = self.b.nest(NFTA_OBJ_DATA);
        self.b.end_nest(d);
        self.b.end(m);
    }

    pub fn chain(&mut self, table: &'a str, c: &'a Chain) {
        let m = self.begin(
            NFT_MSG_NEWCHAIN,
            NLM_F_REQUEST | NLM_F_CREATE,
            Object::Chain(&c.name),
        );
        self.b.put_strz(NFTA_CHAIN_TABLE, table);
        self.b.put_strz(NFTA_CHAIN_NAME, &c.name);
        if let Some(base) = &c.base {
            put_base_chain(&mut self.b, base);
        }
        self.b.end(m);
    }

    pub fn set(&mut self, table: &'a str, s: &'a Set, id: u32) {
        let m = self.begin(NFT_MSG_NEWSET, NLM_F_REQUEST | NLM_F_CREATE, Object::Set(s));
        let b = &mut self.b;
        b.put_strz(NFTA_SET_TABLE, table);
        b.put_strz(NFTA_SET_NAME, &s.name);
        b.put_u32(NFTA_SET_FLAGS, set_flags(s));
        b.put_u32(NFTA_SET_KEY_TYPE, types_id(&s.key));
        b.put_u32(NFTA_SET_KEY_LEN, types_len(&s.key));
        match &s.data {
            Some(SetData::Verdict) => {
                b.put_u32(NFTA_SET_DATA_TYPE, NFT_DATA_VERDICT);
                b.put_u32(NFTA_SET_DATA_LEN, 0);
            }
            Some(SetData::Types(t)) => {
                b.put_u32(NFTA_SET_DATA_TYPE, types_id(t));
                b.put_u32(NFTA_SET_DATA_LEN, types_len(t));
            }
            Some(SetData::Counter) => b.put_u32(NFTA_SET_OBJ_TYPE, NFT_OBJECT_COUNTER),
            None => {}
        }
        b.put_u32(NFTA_SET_ID, id);
        // `nft` sizes constant sets to exactly their (kernel) elements.
        let size = s.size.or_else(|| {
            s.flags
                .constant
                .then(|| u32_sat(kernel_elements(s, true).len()))
        });
        let concat = is_concat_interval(s);
        if size.is_some() || concat {
            let d = b.nest(NFTA_SET_DESC);
            if let Some(size) = size {
                b.put_u32(NFTA_SET_DESC_SIZE, size);
            }
            if concat {
                // The field lengths the kernel's pipapo backend splits the key into.
                let c = b.nest(NFTA_SET_DESC_CONCAT);
                for t in &s.key {
                    let f = b.nest(NFTA_LIST_ELEM);
                    b.put_u32(NFTA_SET_FIELD_LEN, u32_sat(t.len()));
                    b.end_nest(f);
                }
                b.end_nest(c);
            }
            b.end_nest(d);
        }
        if let Some(t) = s.timeout {
            b.put_u64(NFTA_SET_TIMEOUT, millis(t));
        }
        b.put(NFTA_SET_USERDATA, &set_udata(s));
        b.end(m);
    }

    /// `NEWSETELEM` (or `DELSETELEM`) messages for `elems`, split to fit.
    /// `whole_set`: the elements are the set's complete initial content, for which `nft`
    /// also sends the end marker of the gap below the first interval.
    #[allow(clippy::too_many_arguments)]
    pub fn elements(
        &mut self,
        table: &'a str,
        set: &'a str,
        set_id: Option<u32>,
        interval: bool,
        elems: &'a [Element],
        whole_set: bool,
        delete: bool,
    ) {
        let list = if interval {
            interval_elements(elems, whole_set)
        } else {
            elems.iter().map(KElem::plain).collect()
        };
        if !delete {
            self.element_counts.push((set, list.len()));
        }
        let (msg, flags) = if delete {
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST)
        } else {
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE)
        };
        let mut rest = &list[..];
        while !rest.is_empty() {
            let m = self.begin(msg, flags, Object::Elements { set, delete });
            self.b.put_strz(NFTA_SET_ELEM_LIST_TABLE, table);
            self.b.put_strz(NFTA_SET_ELEM_LIST_SET, set);
            if let Some(id) = set_id {
                self.b.put_u32(NFTA_SET_ELEM_LIST_SET_ID, id);
            }
            let n = self.b.nest(NFTA_SET_ELEM_LIST_ELEMENTS);
            let mut i = 0;
            while i < rest.len() && (i == 0 || self.b.since(n) < MAX_ELEM_NEST) {
                rest[i].encode(
                    &mut self.b,
                    u16::try_from(i + 1).unwrap_or(u16::MAX),
                    delete,
                );
                i += 1;
            }
            self.b.end_nest(n);
            self.b.end(m);
            rest = &rest[i..];
        }
    }

    pub fn rule(
        &mut self,
        table: &'a str,
        chain: &'a Chain,
        index: usize,
        ids: &HashMap<&str, u32>,
    ) {
        let rule = &chain.rules[index];
        let exprs = lower_rule(rule, &|n: &str| ids.get(n).copied());
        let m = self.begin(
            NFT_MSG_NEWRULE,
            NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND,
            Object::Rule {
                chain,
                index: index + 1,
            },
        );
        self.b.put_strz(NFTA_RULE_TABLE, table);
        self.b.put_strz(NFTA_RULE_CHAIN, &chain.name);
        let n = self.b.nest(NFTA_RULE_EXPRESSIONS);
        for e in &exprs {
            e.encode(&mut self.b);
        }
        self.b.end_nest(n);
        self.b.end(m);
    }
}

fn put_base_chain(b: &mut MsgBuf, base: &BaseChain) {
    b.put_strz(
        NFTA_CHAIN_TYPE,
        match base.kind {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
        },
    );
    b.put_u32(
        NFTA_CHAIN_POLICY,
        match base.policy {
            Policy::Accept => NF_ACCEPT,
            Policy::Drop => NF_DROP,
        },
    );
    let h = b.nest(NFTA_CHAIN_HOOK);
    b.put_u32(
        NFTA_HOOK_HOOKNUM,
        match base.hook {
            Hook::Prerouting => 0,
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        },
    );
    // Two's complement, as the kernel reads it back as s32.
    b.put(NFTA_HOOK_PRIORITY, &base.priority.to_be_bytes());
    b.end_nest(h);
}

/// Kernel set flags; a default timeout implies `NFT_SET_TIMEOUT`, as in `nft`.
pub fn set_flags(s: &Set) -> u32 {
    let f = &s.flags;
    let mut x = 0;
    if f.constant {
        x |= NFT_SET_CONSTANT;
    }
    if f.interval {
        x |= NFT_SET_INTERVAL;
    }
    match s.data {
        Some(SetData::Counter) => x |= NFT_SET_OBJECT,
        Some(_) => x |= NFT_SET_MAP,
        None => {}
    }
    if is_concat_interval(s) {
        x |= NFT_SET_CONCAT;
    }
    if f.timeout || s.timeout.is_some() {
        x |= NFT_SET_TIMEOUT;
    }
    if f.dynamic {
        x |= NFT_SET_EVAL;
    }
    x
}

/// An interval set with a concatenated key: the kernel's pipapo backend, whose elements
/// are `KEY`/`KEY_END` pairs rather than start and end-marker elements.
fn is_concat_interval(s: &Set) -> bool {
    s.flags.interval && s.key.len() > 1
}

/// `NFTA_SET_USERDATA` as `nft` writes it (libnftnl udata TLVs, host-endian): the key and
/// data byte order and typeof markers for concatenations. `nft list` reads it back to
/// print values, so omitting it changes the listing.
fn set_udata(s: &Set) -> Vec<u8> {
    const KEYBYTEORDER: u8 = 0;
    const DATABYTEORDER: u8 = 1;
    const KEY_TYPEOF: u8 = 3;
    const DATA_TYPEOF: u8 = 4;
    const DATA_INTERVAL: u8 = 6;
    let mut u = Vec::with_capacity(40);
    let put_u32 = |u: &mut Vec<u8>, t: u8, v: u32| {
        u.extend_from_slice(&[t, 4]);
        u.extend_from_slice(&v.to_ne_bytes());
    };
    // What nft 1.0.6 records for a concatenation declared with `type a . b`: a nested
    // TLV list, TYPEOF_EXPR (0) = 13 as a host-endian u32 (like every udata u32: nft
    // crashed listing our sets on a big-endian kernel when the bytes were fixed
    // little-endian; found by the s390x boot test), TYPEOF_DATA (1) empty.
    let put_concat_typeof = |u: &mut Vec<u8>, t: u8| {
        u.extend_from_slice(&[t, 8]);
        put_u32(u, 0, 13);
        u.extend_from_slice(&[1, 0]);
    };
    put_u32(&mut u, KEYBYTEORDER, udata_byteorder(&s.key));
    // Object maps record no data byte order.
    match &s.data {
        Some(SetData::Verdict) => put_u32(&mut u, DATABYTEORDER, 0),
        Some(SetData::Types(t)) => put_u32(&mut u, DATABYTEORDER, udata_byteorder(t)),
        Some(SetData::Counter) | None => {}
    }
    if s.key.len() > 1 {
        put_concat_typeof(&mut u, KEY_TYPEOF);
    }
    if let Some(SetData::Types(t)) = &s.data {
        if t.len() > 1 {
            put_concat_typeof(&mut u, DATA_TYPEOF);
        }
    }
    if s.data.is_some() {
        put_u32(&mut u, DATA_INTERVAL, 0);
    }
    u
}

/// Encodes the batch that replaces table `rs.table` with `rs`, atomically.
///
/// Order: table (create, delete, create), chains, counters, sets each with its elements,
/// then rules — every object exists before anything refers to it, and the order is the
/// one `nft -f` uses for a table block, so whole batches can be compared with `nft`'s.
pub fn encode_apply_batch(rs: &Ruleset, seq: u32) -> Batch<'_> {
    encode_apply_batch_with(rs, seq, NLM_F_ACK)
}

pub(crate) fn encode_apply_batch_with(rs: &Ruleset, seq: u32, ack: u16) -> Batch<'_> {
    let t = rs.table.as_str();
    let estimate = 256 * (rs.rule_count() + rs.chains.len() + rs.sets.len() + 8)
        + rs.sets.iter().map(|s| 64 * s.elements.len()).sum::<usize>();
    let mut b = Builder::new(seq, estimate, ack);
    b.new_table(t);
    b.del_table(t);
    b.new_table(t);
    for c in &rs.chains {
        b.chain(t, c);
    }
    for c in &rs.counters {
        b.counter(t, c, rs.initial_counts.get(c).copied().unwrap_or_default());
    }
    let mut ids = HashMap::with_capacity(rs.sets.len());
    for (i, s) in rs.sets.iter().enumerate() {
        let id = u32_sat(i + 1);
        ids.insert(s.name.as_str(), id);
        b.set(t, s, id);
        if !s.elements.is_empty() {
            b.elements(
                t,
                &s.name,
                Some(id),
                s.flags.interval,
                &s.elements,
                true,
                false,
            );
        }
    }
    for c in &rs.chains {
        for i in 0..c.rules.len() {
            b.rule(t, c, i, &ids);
        }
    }
    b.finish()
}

/// Encodes adding `elems` to an existing set (`interval`: the set has `flags interval`).
pub fn encode_add_elements<'a>(
    table: &'a str,
    set: &'a str,
    interval: bool,
    elems: &'a [Element],
    seq: u32,
) -> Batch<'a> {
    let mut b = Builder::new(seq, 128 + 64 * elems.len(), NLM_F_ACK);
    b.elements(table, set, None, interval, elems, false, false);
    b.finish()
}

/// Encodes deleting elements by key from an existing set.
pub fn encode_delete_elements<'a>(
    table: &'a str,
    set: &'a str,
    interval: bool,
    elems: &'a [Element],
    seq: u32,
) -> Batch<'a> {
    let mut b = Builder::new(seq, 128 + 64 * elems.len(), NLM_F_ACK);
    b.elements(table, set, None, interval, elems, false, true);
    b.finish()
}

/// Encodes a [`Delta`] as one transaction on the existing table: new counters, element
/// deletions, element additions, deleted counters — in that order, so that a counter
/// exists before an element refers to it and loses its last reference before it goes.
/// Interval elements are encoded as the kernel holds them (start and end marker, or
/// `KEY`/`KEY_END`), which is what a deletion must name. Nothing else is touched: rules,
/// other elements, counter values and the contents of dynamic sets stay as they are.
///
/// An empty delta gives a batch with no messages; there is no point sending it.
pub fn encode_delta_batch(delta: &Delta, seq: u32) -> Batch<'_> {
    encode_delta_batch_with(delta, seq, NLM_F_ACK)
}

pub(crate) fn encode_delta_batch_with(delta: &Delta, seq: u32, ack: u16) -> Batch<'_> {
    let t = delta.table.as_str();
    let (added, deleted) = delta.element_counts();
    let estimate = 256 * (delta.add_counters.len() + delta.delete_counters.len() + 2)
        + 128 * (delta.sets.len() + added + deleted);
    let mut b = Builder::new(seq, estimate, ack);
    for (name, counts) in &delta.add_counters {
        b.counter(t, name, *counts);
    }
    for s in delta.sets.iter().filter(|s| !s.delete.is_empty()) {
        b.elements(t, &s.set, None, s.interval, &s.delete, false, true);
    }
    for s in delta.sets.iter().filter(|s| !s.add.is_empty()) {
        b.elements(t, &s.set, Some(s.set_id), s.interval, &s.add, false, false);
    }
    for name in &delta.delete_counters {
        b.del_counter(t, name);
    }
    b.finish()
}
