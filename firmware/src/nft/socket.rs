//! The IO half: one `NETLINK_NETFILTER` socket, batches sent whole, every ack checked.
//! Reading tables back (dumps) is in `socket/dump.rs`.

mod dump;

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use netlink_sys::{Socket, SocketAddr};
use nix::sys::socket::{setsockopt, sockopt};

use super::batch::{
    encode_add_elements, encode_apply_batch, encode_delete_elements, encode_delta_batch, Batch,
    Object,
};
use super::error::NftError;
use super::state::{
    assemble, decode_chain, decode_counter, decode_elements, decode_rule, decode_set, ChainState,
    RawElem, SetState, TableState,
};
use super::uapi::*;
use super::values::u32_sat;
use super::wire::{messages, Attrs, MsgBuf};
use crate::delta::{diff, Delta, Planned, ShapeChange};
use crate::ruleset::{ElemKey, Element, Ruleset};

/// Receive buffer for one datagram. Dump skbs are at most 32 KiB (netlink caps them);
/// the margin lets us detect truncation instead of silently losing attributes.
const RECV_BUF: usize = 256 * 1024;

/// Kernel socket memory accounting charges roughly this much per queued ack skb.
const ACK_TRUESIZE: usize = 1024;

/// An open nf_tables netlink socket.
pub struct Nft {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
    sndbuf: usize,
    rcvbuf: usize,
    /// An earlier request ended early (error mid-stream) and may have left answers queued.
    dirty: bool,
}

/// What an apply did, for logs and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Messages in the batch (excluding begin/end), each acknowledged.
    pub messages: usize,
    /// Size of the batch in bytes.
    pub bytes: usize,
    /// Chains, rules, sets and kernel-side set elements verified after commit.
    pub chains: usize,
    pub rules: usize,
    pub sets: usize,
    pub elements: usize,
    /// Time from sending to the last ack (the kernel's commit).
    pub commit_time: Duration,
    /// Time spent reading the table back to verify it.
    pub verify_time: Duration,
}

/// What [`Nft::apply_delta`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaOutcome {
    /// The element and counter changes were committed (or there were none).
    Applied(DeltaReport),
    /// Nothing was sent: the table's shape differs, only [`Nft::apply`] can install it.
    NeedsFullApply(ShapeChange),
}

/// What a committed delta changed, for logs and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaReport {
    /// Messages in the committed batch (excluding begin/end), each acknowledged.
    pub messages: usize,
    /// Size of the committed batch in bytes.
    pub bytes: usize,
    pub elements_added: usize,
    pub elements_deleted: usize,
    pub counters_added: usize,
    pub counters_deleted: usize,
    /// Counters the wanted ruleset dropped but the kernel still holds, because an expired
    /// element still refers to them (see [`Delta::kept_counters`]). Record them as
    /// installed ([`DeltaReport::installed`]) so that a later delta deletes them.
    pub kept_counters: Vec<String>,
    /// Batches sent: 0 when there was nothing to change, 1 normally, one more for each
    /// counter the kernel refused to delete as still in use.
    pub batches: usize,
    /// Time from the first send to the last ack of the committed batch.
    pub commit_time: Duration,
}

impl DeltaReport {
    /// What the kernel's table now holds, as a ruleset to record as installed: `wanted`
    /// plus the kept counters.
    pub fn installed(&self, wanted: Ruleset) -> Ruleset {
        let mut rs = wanted;
        for c in &self.kept_counters {
            if !rs.counters.contains(c) {
                rs.counters.push(c.clone());
            }
        }
        rs
    }
}

fn proto_error(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// errno of an `NLMSG_ERROR` payload (0 is an ack).
fn nlmsg_errno(payload: &[u8]) -> Option<i32> {
    Some(-i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?))
}

impl Nft {
    /// Opens and binds the socket. Extended acks are requested so errors point at the
    /// message, and capped acks keep error replies small (no copy of the request).
    pub fn open() -> Result<Nft, NftError> {
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(NftError::Open)?;
        sock.bind_auto().map_err(NftError::Open)?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(NftError::Open)?;
        sock.set_ext_ack(true).map_err(NftError::Open)?;
        sock.set_cap_ack(true).map_err(NftError::Open)?;
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(Nft {
            sock,
            seq,
            buf: Vec::with_capacity(RECV_BUF),
            sndbuf: 0,
            rcvbuf: 0,
            dirty: false,
        })
    }

    fn next_seq(&mut self, n: usize) -> u32 {
        let s = self.seq;
        self.seq = self.seq.wrapping_add(u32_sat(n).saturating_add(2));
        s
    }

    /// Grows the socket buffers so a whole batch fits in one `sendmsg` and all its acks
    /// fit in the receive queue. `*BUFFORCE` (CAP_NET_ADMIN) bypasses the sysctl limits,
    /// as `nft` does for large rulesets.
    fn size_buffers(&mut self, bytes: usize, acks: usize) -> io::Result<()> {
        let snd = bytes + 64 * 1024;
        if snd > self.sndbuf {
            setsockopt(&self.sock, sockopt::SndBufForce, &snd).map_err(io::Error::from)?;
            self.sndbuf = snd;
        }
        let rcv = (acks * ACK_TRUESIZE).max(1024 * 1024);
        if rcv > self.rcvbuf {
            setsockopt(&self.sock, sockopt::RcvBufForce, &rcv).map_err(io::Error::from)?;
            self.rcvbuf = rcv;
        }
        Ok(())
    }

    /// Reads one datagram into `self.buf`; `nonblocking` returns Ok(false) when empty.
    fn recv_one(&mut self, nonblocking: bool) -> io::Result<bool> {
        self.buf.clear();
        let flags = nix::libc::MSG_TRUNC
            | if nonblocking {
                nix::libc::MSG_DONTWAIT
            } else {
                0
            };
        match self.sock.recv(&mut self.buf, flags) {
            Ok(n) if n > RECV_BUF => Err(proto_error(
                "netlink datagram larger than the receive buffer",
            )),
            Ok(_) => Ok(true),
            Err(e) if nonblocking && e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Discards answers an interrupted earlier request left queued, so they are not taken
    /// for answers to the next one (costs a syscall, hence only when needed).
    fn drain(&mut self) -> io::Result<()> {
        if self.dirty {
            while self.recv_one(true)? {}
            self.dirty = false;
        }
        Ok(())
    }

    /// Sends a batch and checks the ack of every message.
    ///
    /// nfnetlink processes a batch synchronously inside `sendmsg` and queues all acks
    /// before returning, so once the send is done every answer is already waiting: we
    /// drain without blocking, and a missing ack is reported instead of hanging forever.
    fn transact(&mut self, batch: &Batch<'_>, what: &'static str) -> Result<(), NftError> {
        self.transact_at(batch, what).map_err(|(_, e)| e)
    }

    /// [`Nft::transact`], also giving the sequence number of the message the kernel
    /// rejected, if it rejected one.
    fn transact_at(
        &mut self,
        batch: &Batch<'_>,
        what: &'static str,
    ) -> Result<(), (Option<u32>, NftError)> {
        let fail = |e| (None, e);
        self.size_buffers(batch.bytes().len(), batch.len())
            .map_err(|source| fail(NftError::Send { what, source }))?;
        self.drain()
            .map_err(|source| fail(NftError::Receive { what, source }))?;
        self.dirty = true;
        self.sock
            .send(batch.bytes(), 0)
            .map_err(|source| fail(NftError::Send { what, source }))?;
        let seqs = batch.seqs();
        let mut acked = vec![false; batch.len()];
        let mut pending = batch.len();
        let mut first_error: Option<(u32, i32)> = None;
        while pending > 0 {
            let got = self
                .recv_one(true)
                .map_err(|source| fail(NftError::Receive { what, source }))?;
            if !got {
                break;
            }
            for m in messages(&self.buf) {
                let m = m.map_err(|e| {
                    fail(NftError::Receive {
                        what,
                        source: proto_error(e),
                    })
                })?;
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let errno = nlmsg_errno(m.payload).ok_or_else(|| {
                    fail(NftError::Receive {
                        what,
                        source: proto_error("short ack"),
                    })
                })?;
                if errno != 0 && first_error.is_none_or(|(s, _)| m.seq < s) {
                    first_error = Some((m.seq, errno));
                }
                if seqs.contains(&m.seq) {
                    let i = (m.seq - seqs.start) as usize;
                    if !acked[i] {
                        acked[i] = true;
                        pending -= 1;
                    }
                } else if errno != 0 && (m.seq + 1 == seqs.start || m.seq == seqs.end) {
                    // An error on batch begin/end: nothing in the batch was applied.
                    pending = 0;
                }
            }
        }
        self.dirty = false;
        if let Some((seq, errno)) = first_error {
            return Err((
                Some(seq),
                NftError::Rejected {
                    object: batch.describe(seq),
                    source: io::Error::from_raw_os_error(errno),
                },
            ));
        }
        if pending > 0 {
            let first = seqs
                .start
                .wrapping_add(u32_sat(acked.iter().position(|a| !a).unwrap_or(0)));
            return Err(fail(NftError::MissingAck {
                what,
                missing: pending,
                first: batch.describe(first),
            }));
        }
        Ok(())
    }

    /// Replaces table `rs.table` with `rs` in one transaction, then reads it back and
    /// verifies chains, rule counts, sets, counters and element counts.
    ///
    /// On `Rejected` the kernel aborted the transaction: the previous table (if any) is
    /// still installed, unchanged.
    pub fn apply(&mut self, rs: &Ruleset) -> Result<ApplyReport, NftError> {
        let t0 = Instant::now();
        let seq = self.next_seq(0);
        let batch = encode_apply_batch(rs, seq);
        self.seq = batch.next_seq();
        self.transact(&batch, "the ruleset batch")?;
        let t1 = Instant::now();
        let mut report = self.verify(rs, &batch)?;
        report.messages = batch.len();
        report.bytes = batch.bytes().len();
        report.commit_time = t1 - t0;
        report.verify_time = t1.elapsed();
        Ok(report)
    }

    /// Changes the installed table into `wanted` without replacing it, if only set
    /// elements and counter objects differ: one transaction of counter additions, element
    /// deletions, element additions and counter deletions. Rules, the other elements,
    /// counter values and whatever the datapath put in dynamic sets (rate-limit meters,
    /// trigger holders) are untouched. `installed` must be what the table holds: the
    /// ruleset last applied (with [`DeltaReport::installed`]'s kept counters) and when it
    /// was planned.
    ///
    /// Returns [`DeltaOutcome::NeedsFullApply`] without sending anything when the shape
    /// differs. On [`NftError::Rejected`] the kernel refused the batch and the table is as
    /// it was (the error names the refused object); in particular the kernel refuses
    /// (ENOENT) to delete an element it no longer holds, e.g. one that expired between
    /// planning and sending, or one removed behind our back. After any other error it is
    /// unknown whether the batch committed. Either way, falling back to [`Nft::apply`] is
    /// always correct.
    pub fn apply_delta(
        &mut self,
        installed: Planned<'_>,
        wanted: Planned<'_>,
    ) -> Result<DeltaOutcome, NftError> {
        match diff(installed, wanted) {
            Err(change) => Ok(DeltaOutcome::NeedsFullApply(change)),
            Ok(delta) => self.send_delta(delta).map(DeltaOutcome::Applied),
        }
    }

    /// Sends a delta computed by [`crate::delta::diff`] (see [`Nft::apply_delta`]). A
    /// counter deletion the kernel refuses with EBUSY (an expired element it has not yet
    /// garbage-collected still refers to it) is dropped from the batch, which is sent
    /// again, and the counter is reported as kept.
    pub fn send_delta(&mut self, mut delta: Delta) -> Result<DeltaReport, NftError> {
        let mut report = DeltaReport::default();
        loop {
            if delta.is_empty() {
                report.kept_counters = delta.kept_counters;
                return Ok(report);
            }
            let t0 = Instant::now();
            let seq = self.next_seq(0);
            let batch = encode_delta_batch(&delta, seq);
            self.seq = batch.next_seq();
            report.batches += 1;
            let busy = match self.transact_at(&batch, "the delta batch") {
                Ok(()) => {
                    let (added, deleted) = delta.element_counts();
                    return Ok(DeltaReport {
                        messages: batch.len(),
                        bytes: batch.bytes().len(),
                        elements_added: added,
                        elements_deleted: deleted,
                        counters_added: delta.add_counters.len(),
                        counters_deleted: delta.delete_counters.len(),
                        kept_counters: delta.kept_counters.clone(),
                        commit_time: t0.elapsed(),
                        ..report
                    });
                }
                Err((Some(seq), e)) if e.errno() == Some(nix::libc::EBUSY) => {
                    match batch.object(seq) {
                        Some(Object::DeleteCounter(name)) => name.to_string(),
                        _ => return Err(e),
                    }
                }
                Err((_, e)) => return Err(e),
            };
            delta.delete_counters.retain(|c| *c != busy);
            delta.kept_counters.push(busy);
        }
    }

    fn verify(&mut self, rs: &Ruleset, batch: &Batch<'_>) -> Result<ApplyReport, NftError> {
        let table = rs.table.as_str();
        let mismatch = |detail: String| NftError::Verify {
            table: table.to_string(),
            detail,
            source: io::Error::other("kernel state differs"),
        };
        let chains = self.dump_chains(table)?;
        let want: Vec<(&str, usize)> = rs
            .chains
            .iter()
            .map(|c| (c.name.as_str(), c.rules.len()))
            .collect();
        let got: Vec<(&str, usize)> = chains.iter().map(|c| (c.name.as_str(), c.rules)).collect();
        if want.len() != got.len() {
            return Err(mismatch(format!(
                "{} chains instead of {}",
                got.len(),
                want.len()
            )));
        }
        let mut got_sorted = got.clone();
        got_sorted.sort_unstable();
        let mut want_sorted = want.clone();
        want_sorted.sort_unstable();
        if let Some((w, g)) = want_sorted.iter().zip(&got_sorted).find(|(w, g)| w != g) {
            return Err(mismatch(format!(
                "chain {} with {} rules expected, found chain {} with {} rules",
                w.0, w.1, g.0, g.1
            )));
        }
        let sets = self.dump_sets(table)?;
        let mut set_names: Vec<&str> = sets.iter().map(|s| s.name.as_str()).collect();
        set_names.sort_unstable();
        let mut want_sets: Vec<&str> = rs.sets.iter().map(|s| s.name.as_str()).collect();
        want_sets.sort_unstable();
        if set_names != want_sets {
            return Err(mismatch(format!(
                "sets {set_names:?} instead of {want_sets:?}"
            )));
        }
        let mut elements = 0;
        // Only sets the batch filled are dumped (one dump each): a set created empty in
        // the same transaction holds nothing. Entries are counted, not decoded.
        let counts: HashMap<&str, usize> = batch.element_counts.iter().copied().collect();
        for s in rs
            .sets
            .iter()
            .filter(|s| !s.flags.dynamic && !s.elements.is_empty())
        {
            let want = counts.get(s.name.as_str()).copied().unwrap_or(0);
            let n = self.count_elements(table, &s.name)?;
            if n != want {
                return Err(mismatch(format!(
                    "set {} holds {n} elements instead of {want}",
                    s.name
                )));
            }
            elements += n;
        }
        let counters = self.dump_counters(table)?;
        let mut names: Vec<&str> = counters.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        let mut want_c: Vec<&str> = rs.counters.iter().map(String::as_str).collect();
        want_c.sort_unstable();
        if names != want_c {
            return Err(mismatch(format!(
                "counters {names:?} instead of {want_c:?}"
            )));
        }
        Ok(ApplyReport {
            chains: got.len(),
            rules: got.iter().map(|c| c.1).sum(),
            sets: sets.len(),
            elements,
            ..ApplyReport::default()
        })
    }

    /// Deletes table `inet name` and everything in it; Ok if it does not exist.
    pub fn delete_table(&mut self, name: &str) -> Result<(), NftError> {
        let seq = self.next_seq(2);
        let mut b = super::batch::Builder::new(seq, 256, NLM_F_ACK);
        b.new_table(name);
        b.del_table(name);
        let batch = b.finish();
        self.seq = batch.next_seq();
        self.transact(&batch, "the table deletion")
    }

    /// Adds elements to an existing set in one transaction (intervals are encoded as the
    /// set requires, so the set's flags are read first).
    pub fn add_elements(
        &mut self,
        table: &str,
        set: &str,
        elems: &[Element],
    ) -> Result<(), NftError> {
        if elems.is_empty() {
            return Ok(());
        }
        let info = self.set_info(table, set)?;
        let seq = self.next_seq(0);
        let batch = encode_add_elements(table, set, info.flags.interval, elems, seq);
        self.seq = batch.next_seq();
        self.transact(&batch, "the element addition")
    }

    /// Deletes elements by key from an existing set in one transaction; fails (ENOENT,
    /// nothing deleted) if any key is absent.
    pub fn delete_elements(
        &mut self,
        table: &str,
        set: &str,
        keys: &[ElemKey],
    ) -> Result<(), NftError> {
        if keys.is_empty() {
            return Ok(());
        }
        let info = self.set_info(table, set)?;
        let elems: Vec<Element> = keys
            .iter()
            .map(|k| Element {
                key: k.clone(),
                data: None,
                timeout: None,
            })
            .collect();
        let seq = self.next_seq(0);
        let batch = encode_delete_elements(table, set, info.flags.interval, &elems, seq);
        self.seq = batch.next_seq();
        self.transact(&batch, "the element deletion")
    }
}
