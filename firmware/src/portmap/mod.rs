//! Port mappings LAN clients ask for by themselves: UPnP IGD, NAT-PMP (RFC 6886) and PCP
//! (RFC 6887), under the owner's `upnp` policy (see [`crate::config::Upnp`]).
//!
//! - The wire formats are sans-IO codecs ([`natpmp`], [`pcp`], [`ssdp`], [`soap`]): bytes
//!   in, values out, time passed in; golden-byte tests and fuzz targets.
//! - Every protocol turns a request into one [`MapRequest`] or [`Unmap`] and hands it to a
//!   [`Mapper`]. The daemon's owner thread is the real mapper: it decides with the pure
//!   [`table::Table`] and the policy, installs the lease as set and map elements with a
//!   kernel timeout, and saves it. Protocol servers never touch sockets other than their
//!   own, nor files.
//! - A lease is an [`crate::plan::OpenPort`] with provenance `Lease`: hairpin, the live-flow
//!   check (flows end when the lease ends) and expiry without the daemon come with it.

pub mod describe;
pub mod igd_serve;
pub mod memory;
pub mod natpmp;
pub mod neigh;
pub mod pcp;
pub mod pmp_serve;
pub mod policy;
pub mod queue;
pub mod services;
pub mod soap;
pub mod ssdp;
pub mod table;
pub mod xml;

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::{Ipv4Net, MacAddr, Timestamp};

/// The protocol a mapping was asked for by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// UPnP IGD (WANIPConnection SOAP control).
    Upnp,
    /// NAT-PMP, RFC 6886.
    Natpmp,
    /// PCP, RFC 6887.
    Pcp,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Upnp => "upnp",
            Via::Natpmp => "natpmp",
            Via::Pcp => "pcp",
        }
    }
}

/// Transport protocol of a mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// IP protocol number (6 or 17).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }

    /// From an IP protocol number; None for anything but 6 and 17.
    pub fn from_number(n: u8) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// A PCP mapping nonce (RFC 6887 §11.1): 96 bits the client chose; renewals and deletes
/// must repeat it.
pub type Nonce = [u8; 12];

/// One request to create or refresh a mapping, whatever protocol carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRequest {
    pub via: Via,
    /// The source address of the request: the host asking.
    pub client: Ipv4Addr,
    /// The asking host's MAC from the neighbour table, when known.
    pub mac: Option<MacAddr>,
    /// The host the mapping would point at. Anything but `client` is refused (secure mode).
    pub internal_client: Ipv4Addr,
    pub proto: Proto,
    /// The external port asked for; 0 = any.
    pub external_port: u16,
    /// Only `external_port` will do (UPnP AddPortMapping); otherwise another free allowed
    /// port may be given (AddAnyPortMapping, NAT-PMP, PCP).
    pub exact: bool,
    /// Port on `internal_client` (1 to 65535).
    pub internal_port: u16,
    /// Lease asked for, seconds; 0 = the longest allowed (IGDv1 "permanent").
    pub lifetime_secs: u32,
    /// The client's own words (UPnP NewPortMappingDescription); at most 128 characters
    /// are kept.
    pub description: String,
    /// Only this remote host may connect (UPnP NewRemoteHost); None = anyone.
    pub remote_host: Option<Ipv4Addr>,
    /// PCP mapping nonce.
    pub nonce: Option<Nonce>,
}

/// One live mapping. Saved in `leases.json` with its absolute expiry, so it survives a
/// restart and a reboot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    pub via: Via,
    pub client: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    pub proto: Proto,
    pub external_port: u16,
    pub internal_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_host: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
    pub created_at: Timestamp,
    /// When the kernel closes it.
    pub expires_at: Timestamp,
}

impl Mapping {
    /// Whole seconds of lease left at `now` (0 once expired).
    pub fn secs_left(&self, now: Timestamp) -> u64 {
        self.expires_at.0.saturating_sub(now.0)
    }
}

/// A granted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub mapping: Mapping,
    /// Lease given, seconds (what the protocol reports back).
    pub lifetime_secs: u32,
    /// True when an existing mapping was renewed rather than created.
    pub refreshed: bool,
}

/// What to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmap {
    /// UPnP DeletePortMapping: the mapping on this external port, which must be `client`'s.
    External {
        client: Ipv4Addr,
        proto: Proto,
        external_port: u16,
    },
    /// NAT-PMP / PCP with lifetime 0: `client`'s mapping of this internal port made by
    /// `via` (PCP: the nonce must match).
    Internal {
        via: Via,
        client: Ipv4Addr,
        proto: Proto,
        internal_port: u16,
        nonce: Option<Nonce>,
    },
    /// Every mapping of `client` made by `via`, of one protocol or both (NAT-PMP's delete
    /// all, PCP's all-ports delete).
    AllOfClient {
        via: Via,
        client: Ipv4Addr,
        proto: Option<Proto>,
    },
    /// UPnP DeletePortMappingRange: `client`'s mappings with external ports in `first..=last`.
    Range {
        client: Ipv4Addr,
        proto: Proto,
        first: u16,
        last: u16,
    },
}

/// Why a request was refused. Each protocol maps it to its own error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("port mapping is switched off on this router")]
    Off,
    #[error("no rule allows this: {0}")]
    NotAllowed(String),
    #[error("waiting for the owner's approval in the router's UI")]
    Pending,
    #[error("a host may only map ports to itself")]
    OtherHost,
    #[error("port {port}/{proto} is reserved: {what}")]
    Reserved {
        port: u16,
        proto: &'static str,
        what: String,
    },
    #[error("port {port}/{proto} is mapped to another host")]
    Conflict { port: u16, proto: &'static str },
    #[error("this host already holds its {0} allowed mappings")]
    Quota(u32),
    #[error("no allowed external port is free")]
    NoneFree,
    #[error("no such mapping")]
    NotFound,
    #[error("the mapping belongs to another host or request")]
    NotOwner,
    #[error("the request is malformed: {0}")]
    Invalid(String),
    #[error("the router has no external address")]
    NoExternalAddress,
    #[error("the router could not install the mapping: {0}")]
    Failed(String),
}

/// The router's external (WAN) address as told to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ExternalAddress {
    /// None while the WAN has no address.
    pub addr: Option<Ipv4Addr>,
    /// True when the address is private (RFC 1918), shared (100.64.0.0/10, CGNAT) or
    /// otherwise not reachable from the internet: mappings then do not make a host
    /// reachable from outside, and the UI says so.
    pub not_public: bool,
}

impl ExternalAddress {
    /// Classifies a WAN address.
    pub fn of(addr: Option<Ipv4Addr>) -> ExternalAddress {
        ExternalAddress {
            addr,
            not_public: addr.is_some_and(|a| {
                let o = a.octets();
                a.is_private()
                    || a.is_loopback()
                    || a.is_link_local()
                    || a.is_unspecified()
                    || (o[0] == 100 && (o[1] & 0xc0) == 64)
            }),
        }
    }
}

/// Who decides and installs mappings: the daemon's owner thread in the firmware, a
/// [`table::MemoryMapper`] in tests. Every call is one transaction.
pub trait Mapper: Send + Sync {
    /// Creates or refreshes a mapping.
    fn map(&self, req: MapRequest) -> Result<Grant, Refusal>;
    /// Removes mappings; returns the ones removed (Err(NotFound) when none matched a
    /// single-mapping delete).
    fn unmap(&self, req: Unmap) -> Result<Vec<Mapping>, Refusal>;
    /// Every live mapping, sorted by protocol and external port.
    fn mappings(&self) -> Vec<Mapping>;
    /// The external address.
    fn external(&self) -> ExternalAddress;
    /// Seconds since the mapping table started (NAT-PMP's "seconds since start of epoch",
    /// PCP's epoch time): it starts again from 0 when mappings were lost.
    fn epoch_secs(&self) -> u32;
}

/// Where the port-mapping servers listen: the LAN side of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanSide {
    /// The LAN interface (sockets are bound to it; SSDP joins its group there only).
    pub interface: String,
    /// The router's IPv4 addresses on it (each socket is bound to one of them).
    pub addrs: Vec<Ipv4Addr>,
    /// The LAN subnets: requests from anywhere else are dropped unanswered.
    pub subnets: Vec<Ipv4Net>,
    /// TCP port of the UPnP description and SOAP control server.
    pub http_port: u16,
    /// TCP port of the web UI (the UPnP description's presentation URL points at it).
    pub web_port: u16,
}

impl LanSide {
    /// Whether `addr` is a LAN host (inside a LAN subnet and not one of the router's own).
    pub fn is_lan_host(&self, addr: Ipv4Addr) -> bool {
        !self.addrs.contains(&addr) && self.subnets.iter().any(|n| n.contains(addr))
    }
}
