//! Lowering statements to kernel expressions the way `nft` 1.0.6 does.
//!
//! Two `nft` behaviours matter for byte- and listing-equality:
//!
//! * **Registers.** `nft` allocates in 32-bit units: a lone value takes a whole 128-bit
//!   register (`reg 1`, then `reg 2`), a concatenation takes one 32-bit register per part
//!   (`reg 1`, `reg 9`, `reg 10` ...). Numbers are then reported in the 128-bit names when
//!   aligned, otherwise as `NFT_REG32_xx`.
//! * **Dependencies.** In an `inet` table, `ip saddr`/`ip daddr` need `meta nfproto ipv4`
//!   first; `nft` inserts that match right before the first statement that needs it unless
//!   the rule already established it. The kernel listing hides it again, so a rule without
//!   the dependency would list identically but match IPv6 packets wrongly — and byte
//!   comparison with `nft` would fail. We insert it exactly where `nft` does.

use super::expr::{Data, Expr, Imm};
use super::uapi::*;
use super::values::value_bytes;
use crate::ruleset::{CmpOp, CtDir, CtKey, CtState, DynsetOp, Field, MarkKey, Rule, Stmt};

/// Register number for a position counted in 32-bit units from the first data register.
pub fn reg(unit: u32) -> u32 {
    if unit.is_multiple_of(4) {
        NFT_REG_1 + unit / 4
    } else {
        NFT_REG32_00 + unit
    }
}

/// Looks up `NFTA_SET_ID`s of sets created in the same batch.
pub trait SetIds {
    fn set_id(&self, name: &str) -> Option<u32>;
}

impl<F: Fn(&str) -> Option<u32>> SetIds for F {
    fn set_id(&self, name: &str) -> Option<u32> {
        self(name)
    }
}

fn load(field: Field, dreg: u32) -> Expr<'static> {
    let payload = |base, offset, len| Expr::Payload {
        base,
        offset,
        len,
        dreg,
    };
    match field {
        Field::IpSaddr => payload(NFT_PAYLOAD_NETWORK_HEADER, 12, 4),
        Field::IpDaddr => payload(NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
        Field::ThDport => payload(NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2),
        Field::MetaL4Proto => Expr::Meta {
            key: NFT_META_L4PROTO,
            dreg,
        },
        Field::MetaNfProto => Expr::Meta {
            key: NFT_META_NFPROTO,
            dreg,
        },
        Field::CtProtocol => Expr::Ct {
            key: NFT_CT_PROTOCOL,
            dreg,
            dir: None,
        },
        Field::Ct(dir, key) => Expr::Ct {
            key: match key {
                CtKey::IpSaddr => NFT_CT_SRC_IP,
                CtKey::ProtoSrc => NFT_CT_PROTO_SRC,
                CtKey::ProtoDst => NFT_CT_PROTO_DST,
            },
            dreg,
            dir: Some(match dir {
                CtDir::Original => IP_CT_DIR_ORIGINAL,
                CtDir::Reply => IP_CT_DIR_REPLY,
            }),
        },
        Field::Icmpv6Type => payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1),
        Field::Ip6HopLimit => payload(NFT_PAYLOAD_NETWORK_HEADER, 7, 1),
        Field::EtherSaddr => payload(NFT_PAYLOAD_LL_HEADER, 6, 6),
    }
}

/// Loads a key starting at `unit`; returns the units it occupies.
fn load_key(out: &mut Vec<Expr<'_>>, fields: &[Field], unit: u32) -> u32 {
    if let [f] = fields {
        out.push(load(*f, reg(unit)));
        return 4;
    }
    let mut u = unit;
    for f in fields {
        out.push(load(*f, reg(u)));
        u += super::values::u32_sat(f.data_type().len().div_ceil(4));
    }
    u - unit
}

fn needs_ipv4(s: &Stmt) -> bool {
    needs(s, |f| matches!(f, Field::IpSaddr | Field::IpDaddr))
}

/// `ether saddr` needs `meta iiftype ether` first, as `nft` inserts it.
fn needs_ether(s: &Stmt) -> bool {
    needs(s, |f| f == Field::EtherSaddr)
}

fn needs(s: &Stmt, is: fn(Field) -> bool) -> bool {
    let ip = |fs: &[Field]| fs.iter().any(|f| is(*f));
    match s {
        Stmt::Lookup { key, .. }
        | Stmt::Vmap { key, .. }
        | Stmt::DynsetLimit { key, .. }
        | Stmt::CounterMap { key, .. }
        | Stmt::DynsetKey { key, .. } => ip(key),
        Stmt::Match(f, _) => ip(&[*f]),
        Stmt::DynsetData { key, data, .. } => ip(key) || ip(data),
        Stmt::DnatMap { key, .. } => ip(key),
        _ => false,
    }
}

fn cmp_op(op: CmpOp) -> u32 {
    match op {
        CmpOp::Eq => NFT_CMP_EQ,
        CmpOp::Neq => NFT_CMP_NEQ,
    }
}

fn meta_cmp<'a>(out: &mut Vec<Expr<'a>>, key: u32, op: u32, data: Data) {
    out.push(Expr::Meta {
        key,
        dreg: NFT_REG_1,
    });
    out.push(Expr::Cmp {
        sreg: NFT_REG_1,
        op,
        data,
    });
}

fn ct_flags<'a>(out: &mut Vec<Expr<'a>>, key: u32, mask: u32) {
    out.push(Expr::Ct {
        key,
        dreg: NFT_REG_1,
        dir: None,
    });
    out.push(Expr::Bitwise {
        reg: NFT_REG_1,
        mask,
    });
    out.push(Expr::Cmp {
        sreg: NFT_REG_1,
        op: NFT_CMP_NEQ,
        data: Data::new(&[0; 4]),
    });
}

fn dynset_op(op: DynsetOp) -> u32 {
    match op {
        DynsetOp::Add => NFT_DYNSET_OP_ADD,
        DynsetOp::Update => NFT_DYNSET_OP_UPDATE,
    }
}

/// The expressions of one rule, in order.
pub fn lower_rule<'a>(rule: &'a Rule, ids: &dyn SetIds) -> Vec<Expr<'a>> {
    let mut out = Vec::with_capacity(rule.stmts.len() * 3);
    let mut have_ipv4 = false;
    let mut have_ether = false;
    for s in &rule.stmts {
        if !have_ether && needs_ether(s) {
            meta_cmp(
                &mut out,
                NFT_META_IIFTYPE,
                NFT_CMP_EQ,
                Data::new(&ARPHRD_ETHER.to_ne_bytes()),
            );
            have_ether = true;
        }
        if !have_ipv4 && needs_ipv4(s) {
            meta_cmp(
                &mut out,
                NFT_META_NFPROTO,
                NFT_CMP_EQ,
                Data::new(&[NFPROTO_IPV4]),
            );
            have_ipv4 = true;
        }
        lower_stmt(&mut out, s, ids);
        if *s == Stmt::NfProto(NFPROTO_IPV4) {
            have_ipv4 = true;
        }
    }
    out
}

fn lower_stmt<'a>(out: &mut Vec<Expr<'a>>, s: &'a Stmt, ids: &dyn SetIds) {
    match s {
        Stmt::Iifname(op, name) => meta_cmp(out, NFT_META_IIFNAME, cmp_op(*op), Data::ifname(name)),
        Stmt::Oifname(op, name) => meta_cmp(out, NFT_META_OIFNAME, cmp_op(*op), Data::ifname(name)),
        Stmt::NfProto(p) => meta_cmp(out, NFT_META_NFPROTO, NFT_CMP_EQ, Data::new(&[*p])),
        Stmt::L4Proto(p) => meta_cmp(out, NFT_META_L4PROTO, NFT_CMP_EQ, Data::new(&[*p])),
        Stmt::CtState(states) => {
            let mask = states.iter().fold(0, |m, s| {
                m | match s {
                    CtState::Invalid => 1,
                    CtState::Established => 2,
                    CtState::Related => 4,
                    CtState::New => 8,
                }
            });
            ct_flags(out, NFT_CT_STATE, mask);
        }
        Stmt::CtStatusDnat => ct_flags(out, NFT_CT_STATUS, IPS_DST_NAT),
        Stmt::Match(field, value) => {
            out.push(load(*field, NFT_REG_1));
            let (b, n) = value_bytes(value);
            out.push(Expr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: Data::new(&b[..n]),
            });
        }
        Stmt::UdpPorts { sport, dport } => {
            out.push(Expr::Payload {
                base: NFT_PAYLOAD_TRANSPORT_HEADER,
                offset: 0,
                len: 4,
                dreg: NFT_REG_1,
            });
            let (s, d) = (sport.to_be_bytes(), dport.to_be_bytes());
            out.push(Expr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: Data::new(&[s[0], s[1], d[0], d[1]]),
            });
        }
        Stmt::Lookup { key, set, negate } => {
            load_key(out, key, 0);
            out.push(Expr::Lookup {
                set,
                set_id: ids.set_id(set),
                sreg: reg(0),
                dreg: None,
                invert: *negate,
            });
        }
        Stmt::Vmap { key, map } => {
            load_key(out, key, 0);
            out.push(Expr::Lookup {
                set: map,
                set_id: ids.set_id(map),
                sreg: reg(0),
                dreg: Some(NFT_REG_VERDICT),
                invert: false,
            });
        }
        Stmt::Limit(l) => out.push(Expr::Limit(*l)),
        Stmt::Log { prefix, level } => out.push(Expr::Log {
            prefix,
            level: *level,
        }),
        Stmt::CounterRef(name) => out.push(Expr::CounterRef(name)),
        Stmt::CounterMap { key, map } => {
            load_key(out, key, 0);
            out.push(Expr::CounterMap {
                set: map,
                set_id: ids.set_id(map),
                sreg: reg(0),
            });
        }
        Stmt::DynsetLimit {
            op,
            set,
            key,
            limit,
        } => {
            load_key(out, key, 0);
            out.push(Expr::Dynset {
                op: dynset_op(*op),
                set,
                set_id: ids.set_id(set),
                sreg_key: reg(0),
                sreg_data: None,
                limit: Some(*limit),
            });
        }
        Stmt::DynsetKey { op, set, key } => {
            load_key(out, key, 0);
            out.push(Expr::Dynset {
                op: dynset_op(*op),
                set,
                set_id: ids.set_id(set),
                sreg_key: reg(0),
                sreg_data: None,
                limit: None,
            });
        }
        Stmt::DynsetData { op, set, key, data } => {
            let k = load_key(out, key, 0);
            load_key(out, data, k);
            out.push(Expr::Dynset {
                op: dynset_op(*op),
                set,
                set_id: ids.set_id(set),
                sreg_key: reg(0),
                sreg_data: Some(reg(k)),
                limit: None,
            });
        }
        Stmt::Dnat { addr, port } => {
            out.push(Expr::Immediate {
                dreg: reg(0),
                data: Imm::Value(Data::new(&addr.octets())),
            });
            match port {
                Some(p) => {
                    out.push(Expr::Immediate {
                        dreg: reg(4),
                        data: Imm::Value(Data::new(&p.to_be_bytes())),
                    });
                    out.push(Expr::Dnat {
                        addr: reg(0),
                        proto: Some(reg(4)),
                        flags: Some(NF_NAT_RANGE_PROTO_SPECIFIED),
                    });
                }
                None => out.push(Expr::Dnat {
                    addr: reg(0),
                    proto: None,
                    flags: None,
                }),
            }
        }
        Stmt::DnatMap {
            key,
            map,
            with_port,
        } => {
            // The key is loaded into the register the address will be returned in.
            load_key(out, key, 0);
            out.push(Expr::Lookup {
                set: map,
                set_id: ids.set_id(map),
                sreg: reg(0),
                dreg: Some(reg(0)),
                invert: false,
            });
            // With `ipv4_addr . inet_service` data the port follows the address in the
            // next 32-bit register.
            let proto = with_port.then(|| reg(1));
            out.push(Expr::Dnat {
                addr: reg(0),
                proto,
                flags: None,
            });
        }
        Stmt::Mark(key, value) => {
            match key {
                MarkKey::Meta => out.push(Expr::Meta {
                    key: NFT_META_MARK,
                    dreg: NFT_REG_1,
                }),
                MarkKey::Ct => out.push(Expr::Ct {
                    key: NFT_CT_MARK,
                    dreg: NFT_REG_1,
                    dir: None,
                }),
            }
            out.push(Expr::Cmp {
                sreg: NFT_REG_1,
                op: NFT_CMP_EQ,
                data: Data::new(&value.to_ne_bytes()),
            });
        }
        Stmt::SetMark(key, value) => {
            out.push(Expr::Immediate {
                dreg: NFT_REG_1,
                data: Imm::Value(Data::new(&value.to_ne_bytes())),
            });
            out.push(match key {
                MarkKey::Meta => Expr::MetaSet {
                    key: NFT_META_MARK,
                    sreg: NFT_REG_1,
                },
                MarkKey::Ct => Expr::CtSet {
                    key: NFT_CT_MARK,
                    sreg: NFT_REG_1,
                },
            });
        }
        Stmt::Masquerade => out.push(Expr::Masq),
        Stmt::Verdict(v) => out.push(Expr::Immediate {
            dreg: NFT_REG_VERDICT,
            data: Imm::Verdict(v),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_names_follow_nft() {
        assert_eq!(reg(0), 1);
        assert_eq!(reg(1), 9);
        assert_eq!(reg(2), 10);
        assert_eq!(reg(4), 2);
    }

    #[test]
    fn ip_fields_get_an_nfproto_dependency_once() {
        let rule = Rule {
            stmts: vec![
                Stmt::L4Proto(6),
                Stmt::Lookup {
                    key: vec![Field::IpSaddr],
                    set: "a".into(),
                    negate: false,
                },
                Stmt::Lookup {
                    key: vec![Field::IpDaddr],
                    set: "b".into(),
                    negate: false,
                },
            ],
        };
        let e = lower_rule(&rule, &|_: &str| None);
        let metas: Vec<_> = e
            .iter()
            .filter(|x| matches!(x, Expr::Meta { .. }))
            .collect();
        assert_eq!(metas.len(), 2, "{e:?}");
        assert!(matches!(
            e[2],
            Expr::Meta {
                key: NFT_META_NFPROTO,
                ..
            }
        ));
    }
}
