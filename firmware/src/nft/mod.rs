//! nf_tables over netlink, in pure Rust: the only module that talks to the kernel firewall.
//!
//! # Why hand-written
//!
//! * `nftnl` (the libnftnl bindings) links libnftnl and libmnl, C libraries we cannot obtain
//!   for the static cross builds of the firmware, and its safe API has no lookups with a
//!   destination register (maps, verdict maps), no `dynset`, `log` or `limit` — the
//!   statements our forwards and triggers are made of.
//! * `rustables` is GPL-3.0 (the firmware is MIT/Apache), generates its bindings with
//!   bindgen and therefore needs libclang at build time, and also lacks `limit` and
//!   `dynset`.
//! * What we need is small: about twenty message and expression shapes. Encoding them by
//!   hand costs a few hundred lines, no C, no build-time tools, and almost no binary size
//!   (only `netlink-sys` for the socket, `nix` for socket options).
//!
//! # Layers
//!
//! * Sans-IO encoding — [`encode_apply_batch`] turns a [`Ruleset`](crate::ruleset::Ruleset)
//!   into one nfnetlink batch ([`Batch`]): `wire` (framing), `lower` (statements to kernel
//!   expressions with `nft`'s register allocation and implicit dependencies), `expr`
//!   (expression attributes), `batch` (objects, interval elements — rbtree start/end
//!   markers, or `KEY`/`KEY_END` pairs for concatenated interval keys — counter object
//!   maps, set userdata).
//!   [`encode_delta_batch`] turns a [`Delta`](crate::delta::Delta) (element and counter
//!   changes between two rulesets of the same shape) into one batch on the existing table.
//! * IO — [`Nft`] owns a `NETLINK_NETFILTER` socket, sends a batch in one `sendmsg`, checks
//!   one ack per message, then reads the table back to verify it; `state` decodes dumps
//!   into [`TableState`] for status.
//!
//! # Held to `nft`'s output
//!
//! The printed text (`crate::render`) and the batch are derived from the same ruleset. The
//! encoder reproduces `nft` 1.0.6 exactly — attribute order, registers, the `meta nfproto`
//! dependencies `nft` inserts, interval end markers, set userdata that `nft list` relies
//! on — so the golden tests compare whole batches byte for byte with what `nft -f` sends
//! for the rendered text, and the kernel tests compare `nft list table` of both.
//!
//! # Atomicity and verification
//!
//! A ruleset is applied as one transaction (`NEWTABLE, DELTABLE, NEWTABLE, ...`): either
//! the new table is complete or the old one stays in force. An error ack names the object
//! whose message failed ([`NftError::Rejected`]). After commit the table is read back
//! (chains and rule counts, sets, counters, element counts of filled non-dynamic sets;
//! elements are counted in the dump, not decoded).
//!
//! # Incremental updates
//!
//! [`Nft::apply_delta`] changes the installed table without replacing it when only set
//! elements and counter objects differ (see [`crate::delta`]): one transaction of counter
//! additions, element deletions, element additions and counter deletions. Counter values
//! and what the datapath put in dynamic sets (rate-limit meters, trigger holders) stay;
//! a shape change is reported ([`DeltaOutcome::NeedsFullApply`]) and nothing is sent.
//! Deleted interval elements are named exactly as the kernel holds them (start and end
//! marker, or `KEY`/`KEY_END`), as `nft delete element` names them.
//!
//! # Performance
//!
//! Time is dominated by the kernel: nf_tables finds sets by name with a linear walk over
//! the table's sets (for every new set, every element message, every lookup and every
//! element dump), so with thousands of sets both the commit and the element verification
//! grow quadratically — for `nft -f` just the same. Our commit costs about what `nft -f`
//! costs for the same text; verification adds one element dump per filled set. Hence
//! few shared sets (counter maps, concatenated interval sets) rather than one per forward.

mod batch;
mod error;
mod expr;
mod lower;
mod socket;
mod state;
pub(crate) mod uapi;
mod values;
pub(crate) mod wire;

pub use batch::{
    encode_add_elements, encode_apply_batch, encode_delete_elements, encode_delta_batch, Batch,
    Object,
};
pub use error::NftError;
pub use expr::{Expr, Reject};
pub use socket::{ApplyReport, DeltaOutcome, DeltaReport, Nft};
pub use state::{ChainState, CounterState, ElementState, SetState, TableState};
#[cfg(test)]
mod delta_golden;
/// Test fixtures, shared with the kernel tests; not part of the shipped library.
#[cfg(test)]
#[path = "../../tests/fixtures/example.rs"]
pub(crate) mod example;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod vpn_golden;
