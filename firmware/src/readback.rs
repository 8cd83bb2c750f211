//! Turns a read-back of our table into the [`KernelView`] that status needs.

use crate::names::{self, TCP, UDP};
use crate::nft::{Nft, NftError, TableState};
use crate::ruleset::{ElemData, ElemKey, Value, Verdict};
use crate::status::KernelView;

/// Reads `table` and extracts counters, installed forwards/triggers and trigger hosts.
/// Only the sets [`view_of`] looks at are dumped with their elements.
pub fn kernel_view(nft: &mut Nft, table: &str) -> Result<KernelView, NftError> {
    Ok(match nft.read_table_with(table, wanted)? {
        None => KernelView::default(),
        Some(t) => view_of(&t),
    })
}

/// The planner's per-protocol counter maps (`ctr_tcp`, `ctr_udp`) and their protocol.
fn counter_map_proto(set: &str) -> Option<u8> {
    [TCP, UDP]
        .into_iter()
        .find(|&p| set == names::per_proto(names::CTR, p))
}

/// The per-protocol trigger dispatch maps (`trigger_in_tcp`, ...) and their protocol.
fn trigger_in_proto(set: &str) -> Option<u8> {
    [TCP, UDP]
        .into_iter()
        .find(|&p| set == names::per_proto(names::TRIGGER_IN, p))
}

fn wanted(set: &str) -> bool {
    counter_map_proto(set).is_some()
        || trigger_in_proto(set).is_some()
        || names::is_trigger_map(set)
}

/// The port range of a dispatch-map key.
fn ports(k: &ElemKey) -> Option<(u16, u16)> {
    match k {
        ElemKey::Single(v) => match v.as_slice() {
            [Value::Port(p)] => Some((*p, *p)),
            _ => None,
        },
        ElemKey::Range(Value::Port(a), Value::Port(b)) => Some((*a, *b)),
        _ => None,
    }
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
        if names::trigger_of_in_chain(&c.name).is_some() {
            v.installed.insert(c.name.clone(), None);
        }
    }
    for s in &t.sets {
        if let Some(proto) = counter_map_proto(&s.name) {
            // A forward is installed while its counter-map element lives; the element's
            // expiration is the forward's remaining time.
            for e in &s.elements {
                if let Some(ElemData::Counter(name)) = &e.data {
                    v.installed.insert(name.clone(), e.expiration);
                    if let Some((a, b)) = ports(&e.key) {
                        v.ports.entry(name.clone()).or_default().push((proto, a, b));
                    }
                }
            }
        } else if let Some(proto) = trigger_in_proto(&s.name) {
            for e in &s.elements {
                if let (Some(ElemData::Verdict(Verdict::Jump(chain))), Some((a, b))) =
                    (&e.data, ports(&e.key))
                {
                    v.ports
                        .entry(chain.clone())
                        .or_default()
                        .push((proto, a, b));
                }
            }
        } else if names::is_trigger_map(&s.name) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nft::{ChainState, CounterState, ElementState, SetState};
    use crate::ruleset::{DataType, SetData, SetFlags};
    use std::time::Duration;

    fn set(name: &str, data: Option<SetData>, elements: Vec<ElementState>) -> SetState {
        SetState {
            name: name.into(),
            key: vec![DataType::InetService],
            data,
            flags: SetFlags::default(),
            timeout: None,
            kernel_elements: elements.len(),
            elements,
        }
    }

    fn el(key: ElemKey, data: Option<ElemData>, left: Option<u64>) -> ElementState {
        ElementState {
            key,
            data,
            timeout: None,
            expiration: left.map(Duration::from_secs),
        }
    }

    #[test]
    fn view_names_forwards_and_triggers_with_their_ports_and_holders() {
        let host: std::net::Ipv4Addr = "192.168.1.20".parse().unwrap();
        let t = TableState {
            name: "portcullis".into(),
            chains: vec![ChainState {
                name: "trg_irc_in".into(),
                rules: 2,
            }],
            sets: vec![
                set(
                    "ctr_tcp",
                    Some(SetData::Counter),
                    vec![el(
                        ElemKey::Range(Value::Port(4000), Value::Port(4001)),
                        Some(ElemData::Counter("fwd_old".into())),
                        Some(60),
                    )],
                ),
                set(
                    "trigger_in_udp",
                    Some(SetData::Verdict),
                    vec![el(
                        ElemKey::Single(vec![Value::Port(113)]),
                        Some(ElemData::Verdict(Verdict::Jump("trg_irc_in".into()))),
                        None,
                    )],
                ),
                set(
                    "trg_irc",
                    Some(SetData::Types(vec![DataType::Ipv4Addr])),
                    vec![el(
                        ElemKey::Single(vec![Value::NfProto(2)]),
                        Some(ElemData::Values(vec![Value::Ipv4(host)])),
                        Some(42),
                    )],
                ),
                // The holder set is not a host map, whatever it holds.
                set(
                    "trg_irc.holder",
                    None,
                    vec![el(ElemKey::Single(vec![Value::Ipv4(host)]), None, Some(42))],
                ),
            ],
            counters: vec![CounterState {
                name: "flows_cut".into(),
                packets: 3,
                bytes: 180,
            }],
        };
        let v = view_of(&t);
        assert_eq!(
            v.installed.get("fwd_old"),
            Some(&Some(Duration::from_secs(60)))
        );
        assert_eq!(v.ports.get("fwd_old"), Some(&vec![(6, 4000, 4001)]));
        assert_eq!(v.installed.get("trg_irc_in"), Some(&None));
        assert_eq!(v.ports.get("trg_irc_in"), Some(&vec![(17, 113, 113)]));
        assert_eq!(
            v.trigger_hosts.get("trg_irc"),
            Some(&(host, Some(Duration::from_secs(42))))
        );
        assert_eq!(v.trigger_hosts.len(), 1);
        assert!(wanted("trg_irc") && !wanted("trg_irc.holder") && !wanted("flows_tcp"));
        assert_eq!(v.counters.get("flows_cut"), Some(&(3, 180)));
    }

    #[test]
    fn vpn_counters_and_mac_sets_read_back() {
        let t = TableState {
            name: "portcullis".into(),
            counters: [
                names::VPN_KILL_SWITCH,
                names::VPN_PORT_FAIL,
                names::VPN_DNS_BLOCKED,
            ]
            .iter()
            .zip(1..)
            .map(|(n, i)| CounterState {
                name: (*n).into(),
                packets: i,
                bytes: 60 * i,
            })
            .collect(),
            ..TableState::default()
        };
        let v = view_of(&t);
        assert_eq!(v.counters.get(names::VPN_KILL_SWITCH), Some(&(1, 60)));
        assert_eq!(v.counters.get(names::VPN_DNS_BLOCKED), Some(&(3, 180)));
    }
}
