//! Turns a read-back of our table into the [`KernelView`] that status needs.

use crate::nft::{Nft, NftError, TableState};
use crate::plan;
use crate::ruleset::{ElemData, Value};
use crate::status::KernelView;

/// Reads `table` and extracts counters, installed forwards/triggers and trigger hosts.
/// Only the sets [`view_of`] looks at are dumped with their elements.
pub fn kernel_view(nft: &mut Nft, table: &str) -> Result<KernelView, NftError> {
    Ok(
        match nft.read_table_with(table, is_counter_map_or_trigger)? {
            None => KernelView::default(),
            Some(t) => view_of(&t),
        },
    )
}

/// The planner's per-protocol counter maps (`ctr_tcp`, `ctr_udp`).
fn is_counter_map(set: &str) -> bool {
    [6, 17]
        .into_iter()
        .any(|p| set == plan::per_proto("ctr", p))
}

fn is_counter_map_or_trigger(set: &str) -> bool {
    is_counter_map(set) || set.starts_with("trg_")
}

/// Pure part of [`kernel_view`], unit-testable without a kernel.
pub fn view_of(t: &TableState) -> KernelView {
    let mut v = KernelView {
        table_present: true,
        ..KernelView::default()
    };
    for c in &t.counters {
        v.counters.insert(c.name.clone(), (c.packets, c.bytes));
    }
    for c in &t.chains {
        if c.name.starts_with("trg_") && c.name.ends_with("_in") {
            v.installed.insert(c.name.clone(), None);
        }
    }
    for s in &t.sets {
        if is_counter_map(&s.name) {
            // A forward is installed while its counter-map element lives; the element's
            // expiration is the forward's remaining time.
            for e in &s.elements {
                if let Some(ElemData::Counter(name)) = &e.data {
                    v.installed.insert(name.clone(), e.expiration);
                }
            }
        } else if s.name.starts_with("trg_") {
            for e in &s.elements {
                if let Some(ElemData::Values(vals)) = &e.data {
                    if let Some(Value::Ipv4(host)) = vals.first() {
                        v.trigger_hosts
                            .insert(s.name.clone(), (*host, e.expiration));
                    }
                }
            }
        }
    }
    v
}
