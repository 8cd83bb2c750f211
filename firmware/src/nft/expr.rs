//! Kernel expressions and their netlink encoding.
//!
//! Each variant is one `nft_expr_type` as the kernel names it. Attribute order inside every
//! expression follows libnftnl (what `nft` 1.0.6 sends), so our rules are byte-identical
//! to `nft`'s and golden tests can compare whole messages.

use super::uapi::*;
use super::wire::MsgBuf;
use crate::ruleset::{Limit, LogLevel, Verdict};

/// Up to 16 bytes of register data (one 128-bit register), stored inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Data {
    len: u8,
    bytes: [u8; 16],
}

impl Data {
    /// Copies at most 16 bytes (longer inputs are truncated: no register holds more).
    pub fn new(b: &[u8]) -> Self {
        let n = b.len().min(16);
        let mut bytes = [0; 16];
        bytes[..n].copy_from_slice(&b[..n]);
        Data {
            len: u8::try_from(n).unwrap_or(16),
            bytes,
        }
    }

    /// An interface name as `nft` compares it: NUL-padded to IFNAMSIZ (16).
    pub fn ifname(name: &str) -> Self {
        let mut d = Data::new(name.as_bytes());
        d.len = 16;
        d
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// What an `immediate` expression loads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Imm<'a> {
    Value(Data),
    Verdict(&'a Verdict),
}

/// The `reject` variants the firmware may need (`NFT_REJECT_*` type and code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// `reject` / `reject with icmpx type port-unreachable`.
    IcmpxPortUnreachable,
    /// `reject with icmpx type admin-prohibited`.
    IcmpxAdminProhibited,
    /// `reject with icmpx type host-unreachable`.
    IcmpxHostUnreachable,
    /// `reject with tcp reset` (needs a preceding `meta l4proto tcp`).
    TcpReset,
}

impl Reject {
    fn type_code(self) -> (u32, u8) {
        const NFT_REJECT_TCP_RST: u32 = 1;
        const NFT_REJECT_ICMPX_UNREACH: u32 = 2;
        match self {
            Reject::IcmpxPortUnreachable => (NFT_REJECT_ICMPX_UNREACH, 1),
            Reject::IcmpxHostUnreachable => (NFT_REJECT_ICMPX_UNREACH, 2),
            Reject::IcmpxAdminProhibited => (NFT_REJECT_ICMPX_UNREACH, 3),
            Reject::TcpReset => (NFT_REJECT_TCP_RST, 0),
        }
    }
}

/// One kernel expression with its registers resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<'a> {
    Meta {
        key: u32,
        dreg: u32,
    },
    /// `meta set KEY with reg` (e.g. the packet mark).
    MetaSet {
        key: u32,
        sreg: u32,
    },
    /// `ct set KEY with reg` (e.g. the connection mark).
    CtSet {
        key: u32,
        sreg: u32,
    },
    Cmp {
        sreg: u32,
        op: u32,
        data: Data,
    },
    Payload {
        base: u32,
        offset: u32,
        len: u32,
        dreg: u32,
    },
    /// `dreg = (sreg & mask) ^ xor` on a host-endian 32-bit value (ct state/status).
    Bitwise {
        reg: u32,
        mask: u32,
    },
    Ct {
        key: u32,
        dreg: u32,
        /// `NFTA_CT_DIRECTION` for tuple keys (`ct original proto-dst`).
        dir: Option<u8>,
    },
    Lookup {
        set: &'a str,
        set_id: Option<u32>,
        sreg: u32,
        dreg: Option<u32>,
        invert: bool,
    },
    Immediate {
        dreg: u32,
        data: Imm<'a>,
    },
    Dynset {
        op: u32,
        set: &'a str,
        set_id: Option<u32>,
        sreg_key: u32,
        sreg_data: Option<u32>,
        limit: Option<Limit>,
    },
    Limit(Limit),
    Log {
        prefix: &'a str,
        level: LogLevel,
    },
    /// A reference to a named counter.
    CounterRef(&'a str),
    /// A counter named by an object map lookup of the key in `sreg`.
    CounterMap {
        set: &'a str,
        set_id: Option<u32>,
        sreg: u32,
    },
    /// `dnat ip`: address (and port) taken from registers.
    Dnat {
        addr: u32,
        proto: Option<u32>,
        flags: Option<u32>,
    },
    Masq,
    Reject(Reject),
}

impl Expr<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } | Expr::MetaSet { .. } => "meta",
            Expr::CtSet { .. } => "ct",
            Expr::Cmp { .. } => "cmp",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Ct { .. } => "ct",
            Expr::Lookup { .. } => "lookup",
            Expr::Immediate { .. } => "immediate",
            Expr::Dynset { .. } => "dynset",
            Expr::Limit(_) => "limit",
            Expr::Log { .. } => "log",
            Expr::CounterRef(_) | Expr::CounterMap { .. } => "objref",
            Expr::Dnat { .. } => "nat",
            Expr::Masq => "masq",
            Expr::Reject(_) => "reject",
        }
    }

    /// The expression as an `NFTA_LIST_ELEM` attribute, for callers that assemble rules
    /// themselves (e.g. a `reject` the ruleset vocabulary has no statement for yet).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = MsgBuf::with_capacity(64);
        self.encode(&mut b);
        b.buf
    }

    /// Writes `NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA { ... } }`.
    pub fn encode(&self, b: &mut MsgBuf) {
        let elem = b.nest(NFTA_LIST_ELEM);
        self.encode_inner(b);
        b.end_nest(elem);
    }

    /// Writes `NFTA_EXPR_NAME` and `NFTA_EXPR_DATA` into the current nest.
    pub fn encode_inner(&self, b: &mut MsgBuf) {
        b.put_strz(NFTA_EXPR_NAME, self.name());
        let data = b.nest(NFTA_EXPR_DATA);
        match self {
            Expr::Meta { key, dreg } => {
                b.put_u32(NFTA_META_KEY, *key);
                b.put_u32(NFTA_META_DREG, *dreg);
            }
            Expr::MetaSet { key, sreg } => {
                b.put_u32(NFTA_META_KEY, *key);
                b.put_u32(NFTA_META_SREG, *sreg);
            }
            Expr::CtSet { key, sreg } => {
                b.put_u32(NFTA_CT_KEY, *key);
                b.put_u32(NFTA_CT_SREG, *sreg);
            }
            Expr::Cmp { sreg, op, data } => {
                b.put_u32(NFTA_CMP_SREG, *sreg);
                b.put_u32(NFTA_CMP_OP, *op);
                let d = b.nest(NFTA_CMP_DATA);
                b.put(NFTA_DATA_VALUE, data.as_slice());
                b.end_nest(d);
            }
            Expr::Payload {
                base,
                offset,
                len,
                dreg,
            } => {
                b.put_u32(NFTA_PAYLOAD_DREG, *dreg);
                b.put_u32(NFTA_PAYLOAD_BASE, *base);
                b.put_u32(NFTA_PAYLOAD_OFFSET, *offset);
                b.put_u32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Bitwise { reg, mask } => {
                b.put_u32(NFTA_BITWISE_SREG, *reg);
                b.put_u32(NFTA_BITWISE_DREG, *reg);
                b.put_u32(NFTA_BITWISE_LEN, 4);
                let m = b.nest(NFTA_BITWISE_MASK);
                b.put(NFTA_DATA_VALUE, &mask.to_ne_bytes());
                b.end_nest(m);
                let x = b.nest(NFTA_BITWISE_XOR);
                b.put(NFTA_DATA_VALUE, &0u32.to_ne_bytes());
                b.end_nest(x);
            }
            Expr::Ct { key, dreg, dir } => {
                b.put_u32(NFTA_CT_KEY, *key);
                b.put_u32(NFTA_CT_DREG, *dreg);
                if let Some(d) = dir {
                    b.put(NFTA_CT_DIRECTION, &[*d]);
                }
            }
            Expr::Lookup {
                set,
                set_id,
                sreg,
                dreg,
                invert,
            } => {
                b.put_u32(NFTA_LOOKUP_SREG, *sreg);
                if let Some(d) = dreg {
                    b.put_u32(NFTA_LOOKUP_DREG, *d);
                }
                b.put_strz(NFTA_LOOKUP_SET, set);
                if let Some(id) = set_id {
                    b.put_u32(NFTA_LOOKUP_SET_ID, *id);
                }
                if *invert {
                    b.put_u32(NFTA_LOOKUP_FLAGS, NFT_LOOKUP_F_INV);
                }
            }
            Expr::Immediate { dreg, data } => {
                b.put_u32(NFTA_IMMEDIATE_DREG, *dreg);
                let d = b.nest(NFTA_IMMEDIATE_DATA);
                match data {
                    Imm::Value(v) => b.put(NFTA_DATA_VALUE, v.as_slice()),
                    Imm::Verdict(v) => put_verdict(b, v),
                }
                b.end_nest(d);
            }
            Expr::Dynset {
                op,
                set,
                set_id,
                sreg_key,
                sreg_data,
                limit,
            } => {
                b.put_u32(NFTA_DYNSET_SREG_KEY, *sreg_key);
                if let Some(d) = sreg_data {
                    b.put_u32(NFTA_DYNSET_SREG_DATA, *d);
                }
                b.put_u32(NFTA_DYNSET_OP, *op);
                b.put_strz(NFTA_DYNSET_SET_NAME, set);
                if let Some(id) = set_id {
                    b.put_u32(NFTA_DYNSET_SET_ID, *id);
                }
                if let Some(l) = limit {
                    let e = b.nest(NFTA_DYNSET_EXPR);
                    Expr::Limit(*l).encode_inner(b);
                    b.end_nest(e);
                }
            }
            Expr::Limit(l) => {
                b.put_u64(NFTA_LIMIT_RATE, l.rate);
                b.put_u64(NFTA_LIMIT_UNIT, l.unit.seconds());
                b.put_u32(NFTA_LIMIT_BURST, l.burst);
                b.put_u32(NFTA_LIMIT_TYPE, NFT_LIMIT_PKTS);
                b.put_u32(NFTA_LIMIT_FLAGS, if l.over { NFT_LIMIT_F_INV } else { 0 });
            }
            Expr::Log { prefix, level } => {
                b.put_strz(NFTA_LOG_PREFIX, prefix);
                b.put_u32(NFTA_LOG_LEVEL, log_level(*level));
            }
            Expr::CounterRef(name) => {
                b.put_u32(NFTA_OBJREF_IMM_TYPE, NFT_OBJECT_COUNTER);
                // libnftnl sends this name without a terminating NUL.
                b.put(NFTA_OBJREF_IMM_NAME, name.as_bytes());
            }
            Expr::CounterMap { set, set_id, sreg } => {
                b.put_u32(NFTA_OBJREF_SET_SREG, *sreg);
                // Also without a NUL, as libnftnl's mnl_attr_put_str.
                b.put(NFTA_OBJREF_SET_NAME, set.as_bytes());
                if let Some(id) = set_id {
                    b.put_u32(NFTA_OBJREF_SET_ID, *id);
                }
            }
            Expr::Dnat { addr, proto, flags } => {
                b.put_u32(NFTA_NAT_TYPE, NFT_NAT_DNAT);
                b.put_u32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4));
                b.put_u32(NFTA_NAT_REG_ADDR_MIN, *addr);
                if let Some(p) = proto {
                    b.put_u32(NFTA_NAT_REG_PROTO_MIN, *p);
                }
                if let Some(f) = flags {
                    b.put_u32(NFTA_NAT_FLAGS, *f);
                }
            }
            Expr::Masq => {}
            Expr::Reject(r) => {
                let (ty, code) = r.type_code();
                b.put_u32(NFTA_REJECT_TYPE, ty);
                b.put(NFTA_REJECT_ICMP_CODE, &[code]);
            }
        }
        b.end_nest(data);
    }
}

/// syslog level numbers (`LOG_WARNING` = 4 ...).
pub fn log_level(l: LogLevel) -> u32 {
    match l {
        LogLevel::Warn => 4,
        LogLevel::Notice => 5,
        LogLevel::Info => 6,
    }
}

/// Writes `NFTA_DATA_VERDICT { CODE, [CHAIN] }` into the current nest.
pub fn put_verdict(b: &mut MsgBuf, v: &Verdict) {
    let n = b.nest(NFTA_DATA_VERDICT);
    let (code, chain) = match v {
        Verdict::Accept => (NF_ACCEPT, None),
        Verdict::Drop => (NF_DROP, None),
        Verdict::Return => (NFT_RETURN, None),
        Verdict::Jump(c) => (NFT_JUMP, Some(c)),
        Verdict::Goto(c) => (NFT_GOTO, Some(c)),
    };
    b.put_u32(NFTA_VERDICT_CODE, code);
    if let Some(c) = chain {
        b.put_strz(NFTA_VERDICT_CHAIN, c);
    }
    b.end_nest(n);
}
