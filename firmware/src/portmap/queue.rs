//! The owner's approval queue (`ask` mode): requests no rule allows wait here, and the
//! owner's answers are remembered for a while.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{MacAddr, MapRequest, Proto, Via};
use crate::config::Timestamp;

/// Requests waiting for the owner, at most (the oldest is dropped).
pub const MAX_PENDING: usize = 64;

/// How long an "approve once" waits for the client's retry, seconds.
pub const APPROVAL_SECS: u64 = 600;

/// How long a denied request is refused without queueing it again, seconds.
pub const DENIAL_SECS: u64 = 3_600;

/// A request no rule allowed, waiting for the owner (`ask` mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    pub id: u64,
    pub via: Via,
    pub client: Ipv4Addr,
    pub mac: Option<MacAddr>,
    pub proto: Proto,
    /// External port asked for (0 = any).
    pub external_port: u16,
    pub internal_port: u16,
    pub description: String,
    pub first_asked: Timestamp,
    pub last_asked: Timestamp,
    /// Times the client asked (retries are merged into one entry).
    pub asks: u32,
}

/// The owner's answer to a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// The client's next retry (within [`APPROVAL_SECS`]) succeeds.
    Once,
    /// A rule for this host and these ports is added to the config.
    Always,
    /// Refused; retries are not queued again for [`DENIAL_SECS`].
    Deny,
}

/// What the owner revokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revoke {
    One { proto: Proto, external_port: u16 },
    Host { client: Ipv4Addr },
    All,
}

/// One approval or denial of the owner, kept for a while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Verdict {
    client: Ipv4Addr,
    proto: Proto,
    external_port: u16,
    internal_port: u16,
    pub(super) until: Timestamp,
}

impl Verdict {
    pub(super) fn of(p: &Pending, until: Timestamp) -> Verdict {
        Verdict {
            client: p.client,
            proto: p.proto,
            external_port: p.external_port,
            internal_port: p.internal_port,
            until,
        }
    }

    /// The external port decided on: the one asked for, or the internal port when the
    /// request said "any" (what an "always" rule would allow too).
    pub(super) fn port(&self) -> u16 {
        if self.external_port != 0 {
            self.external_port
        } else {
            self.internal_port
        }
    }

    /// Whether a request is the one decided on: same host, protocol and internal port, and
    /// the decided external port or "any".
    pub(super) fn matches(&self, r: &MapRequest) -> bool {
        self.client == r.client
            && self.proto == r.proto
            && self.internal_port == r.internal_port
            && (r.external_port == self.port() || r.external_port == 0)
    }
}
