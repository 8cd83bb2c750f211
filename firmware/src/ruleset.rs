//! The desired nftables state as a plain value.
//!
//! The planner produces a [`Ruleset`]; `render` prints it in `nft` syntax for humans and
//! diffing; `nft` lowers it to netlink messages. Keeping this vocabulary small and
//! statement-shaped (rather than raw kernel expressions) means the printed text and the
//! encoded batch are derived from the same value and can be checked against each other:
//! `nft -f <printed>` and our own batch must leave identical tables in the kernel.
//!
//! Family is always `inet`: one table covers IPv4 and IPv6 so WAN IPv6 is filtered too.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// A whole `inet` table: everything Portcullis owns in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset {
    /// Table name, e.g. `portcullis`.
    pub table: String,
    /// Named counter objects (`counter NAME { }`), read back for hit statistics.
    pub counters: Vec<String>,
    /// Starting values (packets, bytes) of counters, so that replacing the table does not
    /// reset the hit statistics the owner sees. Counters not listed start at zero.
    pub initial_counts: BTreeMap<String, (u64, u64)>,
    pub sets: Vec<Set>,
    /// Chains in declaration order. Regular chains must be declared before a rule or map
    /// element jumps to them; the encoder sends all chains before any rule or element.
    pub chains: Vec<Chain>,
}

/// Data types of set keys and map values, named as `nft` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `ipv4_addr`, 4 bytes, network order.
    Ipv4Addr,
    /// `inet_service`, a port: 2 bytes, network order.
    InetService,
    /// `inet_proto`, an IP protocol number: 1 byte.
    InetProto,
    /// `nf_proto`, a netfilter family (`meta nfproto`): 1 byte.
    NfProto,
    /// `icmpv6_type`: 1 byte.
    Icmpv6Type,
    /// A 1-byte `integer` (e.g. `ip6 hoplimit`).
    Integer8,
    /// `ether_addr`, a MAC address: 6 bytes.
    EtherAddr,
}

/// What a map yields; `None` in [`Set::data`] means a plain set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetData {
    /// A verdict map (`vmap`).
    Verdict,
    /// A data map; more than one type is a concatenation (`ipv4_addr . inet_service`).
    Types(Vec<DataType>),
    /// An object map whose values name counter objects (`type KEY : counter`): the
    /// `counter name KEY map @m` statement counts into the counter the key maps to.
    Counter,
}

/// Set flags as `nft` spells them in `flags ...`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetFlags {
    pub constant: bool,
    pub interval: bool,
    pub timeout: bool,
    pub dynamic: bool,
}

/// A named set or map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    /// Key type; more than one is a concatenation.
    pub key: Vec<DataType>,
    pub data: Option<SetData>,
    pub flags: SetFlags,
    /// Default timeout for elements added by the datapath (`timeout 10m`).
    pub timeout: Option<Duration>,
    /// Maximum number of elements (`size N`); required for dynamic sets.
    pub size: Option<u32>,
    pub elements: Vec<Element>,
}

/// One value of a key or map datum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Ipv4(Ipv4Addr),
    Port(u16),
    /// IP protocol number (6 = tcp, 17 = udp).
    Proto(u8),
    /// Netfilter family number (2 = ipv4, 10 = ipv6).
    NfProto(u8),
    /// Any other one-byte value (an ICMPv6 type, a hop limit), printed as a number.
    Byte(u8),
    /// A MAC address (`ether_addr`).
    Mac([u8; 6]),
}

/// An element key: a single (possibly concatenated) value, or an inclusive range of a
/// non-concatenated key in an interval set. Prefixes (`10.0.0.0/8`) are ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElemKey {
    Single(Vec<Value>),
    Range(Value, Value),
    /// A key of an interval set with a concatenated key type (`flags interval` and
    /// `type a . b`): one inclusive `(lo, hi)` per concatenated field, `lo == hi` for a
    /// single value, e.g. `27015-27020 . 198.51.100.0/24`.
    ConcatRange(Vec<(Value, Value)>),
}

/// What a map element maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElemData {
    Verdict(Verdict),
    Values(Vec<Value>),
    /// The name of a counter object, in a [`SetData::Counter`] map (`: "fwd_web"`).
    Counter(String),
}

/// A set or map element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub key: ElemKey,
    pub data: Option<ElemData>,
    /// Per-element timeout: the kernel removes the element when it elapses, whether or not
    /// the daemon is alive. This is how forwards expire.
    pub timeout: Option<Duration>,
}

/// A verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

/// Hook of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

/// Type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainType {
    Filter,
    Nat,
}

/// Default verdict of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Accept,
    Drop,
}

/// Makes a chain a base chain attached to a netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    /// Numeric priority: filter = 0, dstnat = -100, srcnat = 100.
    pub priority: i32,
    pub policy: Policy,
}

/// A chain and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub name: String,
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// A rule: statements evaluated left to right, as in `nft` syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub stmts: Vec<Stmt>,
}

/// Packet fields the planner uses as keys or values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `ip saddr` (network header offset 12, 4 bytes). Only valid after `meta nfproto ipv4`.
    IpSaddr,
    /// `ip daddr` (network header offset 16, 4 bytes). Only valid after `meta nfproto ipv4`.
    IpDaddr,
    /// `th dport` (transport header offset 2, 2 bytes).
    ThDport,
    /// `meta l4proto`.
    MetaL4Proto,
    /// `meta nfproto`.
    MetaNfProto,
    /// `ct protocol`: the connection's layer-4 protocol (an ICMP error related to a TCP
    /// connection has `meta l4proto icmp` but `ct protocol tcp`).
    CtProtocol,
    /// A field of a connection's original or reply tuple, e.g. `ct original proto-dst`.
    Ct(CtDir, CtKey),
    /// `icmpv6 type` (transport header offset 0, 1 byte).
    Icmpv6Type,
    /// `ip6 hoplimit` (network header offset 7, 1 byte).
    Ip6HopLimit,
    /// `ether saddr` (link-layer header offset 6, 6 bytes). `nft` makes it depend on
    /// `meta iiftype ether`, and so does the lowering.
    EtherSaddr,
}

/// Which 32-bit mark a [`Stmt::Mark`] or [`Stmt::SetMark`] reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MarkKey {
    /// `meta mark`: the packet's mark (`skb->mark`), seen by policy routing (`ip rule
    /// fwmark`).
    Meta,
    /// `ct mark`: the connection's mark, kept by conntrack for every packet of it.
    Ct,
}

/// Direction of a conntrack tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtDir {
    /// As the first packet was sent (before NAT).
    Original,
    /// As replies travel (after NAT: the reply source is the DNAT target).
    Reply,
}

/// A field of a conntrack tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CtKey {
    /// `ip saddr` (IPv4 connections only).
    IpSaddr,
    /// `proto-src`: the source port.
    ProtoSrc,
    /// `proto-dst`: the destination port.
    ProtoDst,
}

/// Equality operator of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

/// Connection-tracking states for `ct state` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtState {
    Invalid,
    Established,
    Related,
    New,
}

/// Time unit of a rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    Second,
    Minute,
    Hour,
    Day,
}

/// A packet rate limit (`limit rate [over] N/unit burst B packets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub rate: u64,
    pub unit: RateUnit,
    pub burst: u32,
    /// `over`: match when the rate is exceeded (inverted limit).
    pub over: bool,
}

/// syslog level of a `log` statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Warn,
    Notice,
    Info,
}

/// Dynamic-set operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynsetOp {
    /// `add @set { ... }`: insert if absent, never refresh.
    Add,
    /// `update @set { ... }`: insert if absent, refresh the timeout if present.
    Update,
}

/// One statement of a rule. Matches stop evaluation of the rule when they fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stmt {
    /// `iifname [!=] "name"`
    Iifname(CmpOp, String),
    /// `oifname [!=] "name"`
    Oifname(CmpOp, String),
    /// `meta nfproto ipv4|ipv6` (value is the family number, 2 or 10).
    NfProto(u8),
    /// `meta l4proto tcp|udp|...` (value is the protocol number).
    L4Proto(u8),
    /// `ct state s1,s2` — matches when any of the states is set.
    CtState(Vec<CtState>),
    /// `ct status dnat` — the connection was destination-NATed.
    CtStatusDnat,
    /// `FIELD VALUE` — equality with a constant.
    Match(Field, Value),
    /// `udp sport S udp dport D` (one 4-byte load, as `nft` merges the two).
    UdpPorts { sport: u16, dport: u16 },
    /// `KEY [!=] @set` — set membership (KEY is one field or a concatenation).
    Lookup {
        key: Vec<Field>,
        set: String,
        negate: bool,
    },
    /// `KEY vmap @map` — jump/goto/accept/drop as the verdict map says.
    Vmap { key: Vec<Field>, map: String },
    /// `limit rate ...`
    Limit(Limit),
    /// `log prefix "..." level ...`
    Log { prefix: String, level: LogLevel },
    /// `counter name "NAME"` — a reference to a named counter object.
    CounterRef(String),
    /// `counter name KEY map @map` — count into the counter object that the
    /// [`SetData::Counter`] map yields for KEY (no match, no count).
    CounterMap { key: Vec<Field>, map: String },
    /// `add|update @set { KEY limit rate ... }` — a per-key meter.
    DynsetLimit {
        op: DynsetOp,
        set: String,
        key: Vec<Field>,
        limit: Limit,
    },
    /// `add|update @set { KEY }` — record KEY; fails (the rule stops) when the set is
    /// full and KEY is not in it.
    DynsetKey {
        op: DynsetOp,
        set: String,
        key: Vec<Field>,
    },
    /// `add|update @map { KEY : DATA }` — record DATA under KEY.
    DynsetData {
        op: DynsetOp,
        set: String,
        key: Vec<Field>,
        data: Vec<Field>,
    },
    /// `dnat ip to ADDR[:PORT]`
    Dnat { addr: Ipv4Addr, port: Option<u16> },
    /// `dnat ip to KEY map @map` — the map yields `ipv4_addr` or `ipv4_addr . inet_service`.
    DnatMap {
        key: Vec<Field>,
        map: String,
        with_port: bool,
    },
    /// `meta mark VALUE` / `ct mark VALUE` — equality with a constant (host byte order,
    /// as the kernel holds marks).
    Mark(MarkKey, u32),
    /// `meta mark set VALUE` / `ct mark set VALUE`.
    SetMark(MarkKey, u32),
    /// `masquerade`
    Masquerade,
    /// A terminal verdict (`accept`, `drop`, `jump CHAIN`, ...).
    Verdict(Verdict),
}

impl Ruleset {
    /// Looks up a set by name.
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Looks up a chain by name.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// Number of rules in all chains (for benchmarks and status).
    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

impl DataType {
    /// Length of one value of this type in bytes, before register padding.
    #[allow(clippy::len_without_is_empty)] // a type is never "empty"
    pub fn len(self) -> usize {
        match self {
            DataType::Ipv4Addr => 4,
            DataType::InetService => 2,
            DataType::InetProto | DataType::NfProto | DataType::Icmpv6Type | DataType::Integer8 => {
                1
            }
            DataType::EtherAddr => 6,
        }
    }

    /// The kernel-visible type id `nft` stores in NFTA_SET_KEY_TYPE / DATA_TYPE
    /// (from nftables' `enum datatypes`). Concatenations shift these by 6 bits each.
    pub fn nft_type_id(self) -> u32 {
        match self {
            DataType::Ipv4Addr => 7,
            DataType::InetService => 13,
            DataType::InetProto => 12,
            DataType::NfProto => 2,
            DataType::Integer8 => 4,
            DataType::Icmpv6Type => 29,
            DataType::EtherAddr => 9,
        }
    }

    /// The name `nft` prints.
    pub fn nft_name(self) -> &'static str {
        match self {
            DataType::Ipv4Addr => "ipv4_addr",
            DataType::InetService => "inet_service",
            DataType::InetProto => "inet_proto",
            DataType::NfProto => "nf_proto",
            DataType::Icmpv6Type => "icmpv6_type",
            DataType::Integer8 => "integer",
            DataType::EtherAddr => "ether_addr",
        }
    }
}

impl Field {
    /// The data type a field loads.
    pub fn data_type(self) -> DataType {
        match self {
            Field::IpSaddr | Field::IpDaddr | Field::Ct(_, CtKey::IpSaddr) => DataType::Ipv4Addr,
            Field::ThDport | Field::Ct(_, CtKey::ProtoSrc | CtKey::ProtoDst) => {
                DataType::InetService
            }
            Field::MetaL4Proto | Field::CtProtocol => DataType::InetProto,
            Field::MetaNfProto => DataType::NfProto,
            Field::Icmpv6Type => DataType::Icmpv6Type,
            Field::Ip6HopLimit => DataType::Integer8,
            Field::EtherSaddr => DataType::EtherAddr,
        }
    }
}

impl RateUnit {
    /// Length of the unit in seconds (the kernel's NFTA_LIMIT_UNIT).
    pub fn seconds(self) -> u64 {
        match self {
            RateUnit::Second => 1,
            RateUnit::Minute => 60,
            RateUnit::Hour => 3600,
            RateUnit::Day => 86400,
        }
    }
}
