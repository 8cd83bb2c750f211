//! Incremental updates: what must change in the kernel to go from the ruleset last
//! installed to the one wanted, when that is only set elements and counter objects.
//!
//! Replacing the whole table resets what the datapath learned: per-source rate-limit meters
//! (`rl_*`), trigger holders (`trg_*`), and counters unless they are read back first. Port
//! leases (UPnP, NAT-PMP, PCP, a VPN's forwarded port) change many times a minute and
//! touch only elements of the shared maps and the counters of forwards, so [`diff`]
//! decides whether the table's *shape* is unchanged and, if so, lists the element and
//! counter adds and deletes ([`Delta`]). `Nft::apply_delta` sends them as one batch.
//!
//! Pure: two rulesets and their planning times in, a value out; nothing here reads the
//! clock or the kernel.
//!
//! # Shape
//!
//! The shape is the table name, the chains with their rules (in order), and the set and
//! map declarations (in order: name, key and data types, flags, size, default timeout).
//! Elements are not shape, except those of constant sets (the kernel cannot change them).
//! Elements of sets the datapath fills (flag `dynamic`, or the target of an `add @set` /
//! `update @set` statement) are kernel state: they are never diffed, never sent, and
//! survive a delta.
//!
//! # Element identity and expiry
//!
//! An element is its key and data; its expiry is part of it, so an element whose expiry
//! moved is deleted and added again. Element timeouts are relative to the moment a ruleset
//! was planned, hence [`Planned`] carries that moment and expiries are compared as
//! absolute instants. An installed element whose expiry has passed by the time the wanted
//! ruleset was planned is not deleted: the kernel has expired it and refuses to delete it
//! (ENOENT). A counter referenced by such an element cannot be deleted either until the
//! kernel garbage-collects the element (EBUSY), so it is kept ([`Delta::kept_counters`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::config::Timestamp;
use crate::ruleset::{
    DataType, ElemData, ElemKey, Element, Ruleset, Set, SetData, SetFlags, Stmt, Value, Verdict,
};

/// A ruleset and the moment it was planned: its element timeouts count from then.
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub ruleset: &'a Ruleset,
    pub at: Timestamp,
}

impl<'a> Planned<'a> {
    pub fn new(ruleset: &'a Ruleset, at: Timestamp) -> Self {
        Planned { ruleset, at }
    }
}

/// The element changes of one set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDelta {
    pub set: String,
    /// The set has `flags interval` (elements are encoded as the kernel holds them).
    pub interval: bool,
    /// The set's position in the ruleset, from 1: `nft` sends it with added elements as
    /// `NFTA_SET_ELEM_LIST_SET_ID` (the kernel finds the set by name; the id would only
    /// name a set created in the same batch), and so do we, to stay byte-identical.
    pub set_id: u32,
    /// Elements to delete, as installed.
    pub delete: Vec<Element>,
    /// Elements to add, as wanted: timeouts count from the wanted ruleset's planning time.
    pub add: Vec<Element>,
}

/// Everything that changes between two rulesets of the same shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    pub table: String,
    /// New counter objects and their starting values (packets, bytes).
    pub add_counters: Vec<(String, (u64, u64))>,
    /// Per set with changes, in the ruleset's set order.
    pub sets: Vec<SetDelta>,
    /// Counters to delete, after the elements that refer to them.
    pub delete_counters: Vec<String>,
    /// Counters no longer wanted that stay for now: an installed element referring to
    /// them has expired and the kernel holds on to it until it garbage-collects the set
    /// (deleting the counter would fail with EBUSY). Record them as still installed, so
    /// that a later delta deletes them.
    pub kept_counters: Vec<String>,
}

impl Delta {
    /// Nothing to send.
    pub fn is_empty(&self) -> bool {
        self.add_counters.is_empty()
            && self.delete_counters.is_empty()
            && self
                .sets
                .iter()
                .all(|s| s.add.is_empty() && s.delete.is_empty())
    }

    /// Elements added, elements deleted (ruleset elements, not kernel interval markers).
    pub fn element_counts(&self) -> (usize, usize) {
        self.sets
            .iter()
            .fold((0, 0), |(a, d), s| (a + s.add.len(), d + s.delete.len()))
    }
}

/// Why two rulesets differ in shape, so that only replacing the table installs the wanted
/// one. Names the first difference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeChange {
    /// Different table names.
    Table { installed: String, wanted: String },
    /// A chain was added, removed, moved, or its base or rules changed.
    Chain(String),
    /// A set or map was added, removed, moved, or declared differently.
    Set(String),
    /// The elements of a constant set changed; the kernel cannot change them in place.
    ConstantSet(String),
}

impl fmt::Display for ShapeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShapeChange::Table { installed, wanted } => {
                write!(f, "table {wanted} replaces table {installed}")
            }
            ShapeChange::Chain(c) => write!(f, "chain {c} changed"),
            ShapeChange::Set(s) => write!(f, "declaration of set {s} changed"),
            ShapeChange::ConstantSet(s) => write!(f, "elements of constant set {s} changed"),
        }
    }
}

/// The delta from `installed` to `wanted`, or why there is none (the shape changed).
pub fn diff(installed: Planned<'_>, wanted: Planned<'_>) -> Result<Delta, ShapeChange> {
    let (old, new) = (installed.ruleset, wanted.ruleset);
    if old.table != new.table {
        return Err(ShapeChange::Table {
            installed: old.table.clone(),
            wanted: new.table.clone(),
        });
    }
    if let Some(name) = first_difference(&old.chains, &new.chains, |c| &c.name) {
        return Err(ShapeChange::Chain(name.to_string()));
    }
    let (old_decl, new_decl): (Vec<Decl<'_>>, Vec<Decl<'_>>) = (
        old.sets.iter().map(Decl::of).collect(),
        new.sets.iter().map(Decl::of).collect(),
    );
    if let Some(name) = first_difference(&old_decl, &new_decl, |d| d.name) {
        return Err(ShapeChange::Set(name.to_string()));
    }
    if let Some((a, _)) = old
        .sets
        .iter()
        .zip(&new.sets)
        .find(|(a, b)| a.flags.constant && a.elements != b.elements)
    {
        return Err(ShapeChange::ConstantSet(a.name.clone()));
    }

    let state = state_sets(new);
    let mut delta = Delta {
        table: new.table.clone(),
        ..Delta::default()
    };
    // Counters referenced by installed elements that expired and are left to the kernel.
    let mut still_referenced: HashSet<&str> = HashSet::new();
    for (i, (a, b)) in old.sets.iter().zip(&new.sets).enumerate() {
        if a.flags.constant || state.contains(a.name.as_str()) {
            continue;
        }
        let set_id = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let sd = set_delta(
            set_id,
            (a, installed.at),
            (b, wanted.at),
            &mut still_referenced,
        );
        if !sd.add.is_empty() || !sd.delete.is_empty() {
            delta.sets.push(sd);
        }
    }

    let old_counters: HashSet<&str> = old.counters.iter().map(String::as_str).collect();
    let new_counters: HashSet<&str> = new.counters.iter().map(String::as_str).collect();
    for c in new
        .counters
        .iter()
        .filter(|c| !old_counters.contains(c.as_str()))
    {
        let start = new.initial_counts.get(c).copied().unwrap_or_default();
        delta.add_counters.push((c.clone(), start));
    }
    for c in old
        .counters
        .iter()
        .filter(|c| !new_counters.contains(c.as_str()))
    {
        if still_referenced.contains(c.as_str()) {
            delta.kept_counters.push(c.clone());
        } else {
            delta.delete_counters.push(c.clone());
        }
    }
    Ok(delta)
}

/// The element changes from `a` (planned at `a_at`) to `b` (planned at `b_at`), skipping
/// installed elements that expired by `b_at`; the counters those refer to are added to
/// `still_referenced`.
fn set_delta<'a>(
    set_id: u32,
    (a, a_at): (&'a Set, Timestamp),
    (b, b_at): (&Set, Timestamp),
    still_referenced: &mut HashSet<&'a str>,
) -> SetDelta {
    let (old_ids, new_ids) = (ids(a, a_at), ids(b, b_at));
    // The planner's element order is stable: a change is usually a short run in the
    // middle. Equal heads and tails are skipped by position before hashing the rest.
    let head = old_ids
        .iter()
        .zip(&new_ids)
        .take_while(|(x, y)| x == y)
        .count();
    let tail = old_ids[head..]
        .iter()
        .rev()
        .zip(new_ids[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (old_mid, new_mid) = (
        &old_ids[head..old_ids.len() - tail],
        &new_ids[head..new_ids.len() - tail],
    );
    let now = Duration::from_secs(b_at.0);
    let mut delete = Vec::new();
    for i in missing_from(old_mid, new_mid).into_iter().map(|i| i + head) {
        let e = &a.elements[i];
        if old_ids[i].expiry.is_some_and(|x| x <= now) {
            if let Some(ElemData::Counter(c)) = &e.data {
                still_referenced.insert(c);
            }
            continue;
        }
        delete.push(e.clone());
    }
    let add = missing_from(new_mid, old_mid)
        .into_iter()
        .map(|i| b.elements[i + head].clone())
        .collect();
    SetDelta {
        set: b.name.clone(),
        interval: b.flags.interval,
        set_id,
        delete,
        add,
    }
}

/// The name of an item that differs between two lists, if any: first one that only one
/// list has, else the first that differs by position.
fn first_difference<'a, T: PartialEq>(
    a: &'a [T],
    b: &'a [T],
    name: impl Fn(&'a T) -> &'a str,
) -> Option<&'a str> {
    let names_a: HashSet<&str> = a.iter().map(&name).collect();
    let names_b: HashSet<&str> = b.iter().map(&name).collect();
    if let Some(n) = b.iter().map(&name).find(|n| !names_a.contains(n)) {
        return Some(n);
    }
    if let Some(n) = a.iter().map(&name).find(|n| !names_b.contains(n)) {
        return Some(n);
    }
    if let Some((x, _)) = a.iter().zip(b).find(|(x, y)| x != y) {
        return Some(name(x));
    }
    match a.len().cmp(&b.len()) {
        std::cmp::Ordering::Greater => Some(name(&a[b.len()])),
        std::cmp::Ordering::Less => Some(name(&b[a.len()])),
        std::cmp::Ordering::Equal => None,
    }
}

/// A set's declaration: everything but its elements.
#[derive(PartialEq)]
struct Decl<'a> {
    name: &'a str,
    key: &'a [DataType],
    data: Option<&'a SetData>,
    flags: SetFlags,
    timeout: Option<Duration>,
    size: Option<u32>,
}

impl<'a> Decl<'a> {
    fn of(s: &'a Set) -> Self {
        // Exhaustive on purpose: a new field of `Set` must be classified here, as shape
        // (compared) or as content.
        let Set {
            name,
            key,
            data,
            flags,
            timeout,
            size,
            elements: _,
        } = s;
        Decl {
            name,
            key,
            data: data.as_ref(),
            flags: *flags,
            timeout: *timeout,
            size: *size,
        }
    }
}

/// Sets whose elements the datapath owns: flagged dynamic, or written by a rule.
fn state_sets(rs: &Ruleset) -> HashSet<&str> {
    let mut out: HashSet<&str> = rs
        .sets
        .iter()
        .filter(|s| s.flags.dynamic)
        .map(|s| s.name.as_str())
        .collect();
    for stmt in rs
        .chains
        .iter()
        .flat_map(|c| &c.rules)
        .flat_map(|r| &r.stmts)
    {
        if let Stmt::DynsetLimit { set, .. } | Stmt::DynsetData { set, .. } = stmt {
            out.insert(set);
        }
    }
    out
}

/// The identities of a set's elements planned at `at`.
fn ids(s: &Set, at: Timestamp) -> Vec<Id<'_>> {
    let at = Duration::from_secs(at.0);
    s.elements.iter().map(|e| Id::of(e, at)).collect()
}

/// Indexes of `a` that `b` does not match, each element of `b` matching at most one of
/// `a` (duplicates count).
fn missing_from(a: &[Id<'_>], b: &[Id<'_>]) -> Vec<usize> {
    let mut have: HashMap<&Id<'_>, usize> = HashMap::with_capacity(b.len());
    for id in b {
        *have.entry(id).or_default() += 1;
    }
    let mut out = Vec::new();
    for (i, id) in a.iter().enumerate() {
        match have.get_mut(id) {
            Some(n) if *n > 0 => *n -= 1,
            _ => out.push(i),
        }
    }
    out
}

/// What makes two elements the same kernel element: key (compared as inclusive spans per
/// field, so `8080` and `8080-8080` are one), data, and absolute expiry. Borrows from the
/// element: diffing allocates nothing per element.
#[derive(Debug)]
struct Id<'a> {
    key: &'a ElemKey,
    data: Option<DataId<'a>>,
    /// Since the Unix epoch; `None` for elements without a timeout.
    expiry: Option<Duration>,
}

/// A key as inclusive `(low, high)` spans, one per concatenated field.
fn spans(k: &ElemKey) -> impl Iterator<Item = (Value, Value)> + '_ {
    let (single, range, concat) = match k {
        ElemKey::Single(v) => (v.as_slice(), None, &[][..]),
        ElemKey::Range(a, b) => (&[][..], Some((*a, *b)), &[][..]),
        ElemKey::ConcatRange(p) => (&[][..], None, p.as_slice()),
    };
    single
        .iter()
        .map(|x| (*x, *x))
        .chain(range)
        .chain(concat.iter().copied())
}

impl PartialEq for Id<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.expiry == other.expiry
            && self.data == other.data
            && spans(self.key).eq(spans(other.key))
    }
}

impl Eq for Id<'_> {}

impl Hash for Id<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        for s in spans(self.key) {
            s.hash(h);
        }
        self.data.hash(h);
        self.expiry.hash(h);
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
enum DataId<'a> {
    /// Verdict code as in `Verdict`'s order, and the chain of a jump or goto.
    Verdict(u8, Option<&'a str>),
    Values(&'a [Value]),
    Counter(&'a str),
}

impl<'a> Id<'a> {
    fn of(e: &'a Element, planned_at: Duration) -> Self {
        let data = e.data.as_ref().map(|d| match d {
            ElemData::Verdict(v) => match v {
                Verdict::Accept => DataId::Verdict(0, None),
                Verdict::Drop => DataId::Verdict(1, None),
                Verdict::Return => DataId::Verdict(2, None),
                Verdict::Jump(c) => DataId::Verdict(3, Some(c)),
                Verdict::Goto(c) => DataId::Verdict(4, Some(c)),
            },
            ElemData::Values(v) => DataId::Values(v),
            ElemData::Counter(c) => DataId::Counter(c),
        });
        Id {
            key: &e.key,
            data,
            // Rounded up to whole seconds: expiries are whole seconds, and the planner may
            // count timeouts from a sub-second `now` that `planned_at` does not carry.
            expiry: e.timeout.map(|t| {
                let end = planned_at.saturating_add(t);
                let up = u64::from(end.subsec_nanos() > 0);
                Duration::from_secs(end.as_secs().saturating_add(up))
            }),
        }
    }
}

#[cfg(test)]
mod tests;
