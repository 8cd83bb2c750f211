//! The pure decisions about mappings: policy, conflicts, leases, the approval queue.
//!
//! [`Table`] holds the live mappings and the owner's pending decisions; [`Policy`] is what
//! the config says. Every function takes the time as an argument and does no I/O, so the
//! daemon's behaviour (who may map what, for how long, what a config change closes) is
//! unit-tested without root. The daemon installs whatever the table holds after each call
//! and puts the old table back if the kernel refuses.
//!
//! Rules that hold whatever the config says:
//! - a host maps ports only to itself (secure mode);
//! - the router's own ports, ports a forward or trigger claims, and (unless a narrow rule
//!   or the owner's approval names them) the risky services of [`RISKY_PORTS`] are refused;
//! - no matching rule means no (in `ask` mode: wait for the owner);
//! - a lease is clamped to the rule's and the section's maximum; 0 gets the maximum;
//! - at most `max_per_host` mappings per host and [`MAX_MAPPINGS`] in all.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

pub use super::policy::{risky, Policy, RISKY_PORTS, RISKY_RULE_SPAN};
use super::queue::Verdict;
pub use super::queue::{Decision, Pending, Revoke, APPROVAL_SECS, DENIAL_SECS, MAX_PENDING};
use super::{Grant, MapRequest, Mapping, Proto, Refusal, Unmap, Via};
use crate::config::{Ipv4Net, PortRange, Protocol, Timestamp, UpnpMode, UpnpRule, MAX_MAPPINGS};

/// Longest description kept, characters.
pub const MAX_DESCRIPTION: usize = 128;

/// Live mappings and the approval queue. Saved whole (`leases.json`) after every change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    mappings: BTreeMap<String, Mapping>,
    /// Mappings the owner approved once (keys of `mappings`): kept in `ask` mode although
    /// no rule covers them.
    #[serde(default)]
    approved: Vec<String>,
    #[serde(skip)]
    pending: VecDeque<Pending>,
    #[serde(skip)]
    next_id: u64,
    #[serde(skip)]
    once: Vec<Verdict>,
    #[serde(skip)]
    denied: Vec<Verdict>,
}

fn key(proto: Proto, port: u16) -> String {
    format!("{}/{port:05}", proto.as_str())
}

impl Table {
    /// A table holding these mappings (as loaded from `leases.json`); expired ones dropped.
    pub fn with(mappings: Vec<Mapping>, now: Timestamp) -> Table {
        let mut t = Table::default();
        for m in mappings.into_iter().filter(|m| m.expires_at > now) {
            t.mappings.insert(key(m.proto, m.external_port), m);
        }
        t
    }

    /// The table `saved` (as read from `leases.json`) at `now`: expired mappings dropped,
    /// and the owner's approvals kept for the mappings that are left.
    pub fn restored(saved: Table, now: Timestamp) -> Table {
        let mut t = Table::with(saved.mappings.into_values().collect(), now);
        t.approved = saved
            .approved
            .into_iter()
            .filter(|k| t.mappings.contains_key(k))
            .collect();
        t
    }

    /// Every live mapping, by protocol and external port.
    pub fn mappings(&self) -> Vec<Mapping> {
        self.mappings.values().cloned().collect()
    }

    /// Requests waiting for the owner, oldest first.
    pub fn pending(&self) -> Vec<Pending> {
        self.pending.iter().cloned().collect()
    }

    /// The next moment a mapping expires.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.mappings.values().map(|m| m.expires_at).min()
    }

    /// Removes mappings whose lease has ended (the kernel already closed them).
    pub fn expire(&mut self, now: Timestamp) -> Vec<Mapping> {
        self.take(|m| m.expires_at <= now)
    }

    fn take(&mut self, mut gone: impl FnMut(&Mapping) -> bool) -> Vec<Mapping> {
        let keys: Vec<String> = self
            .mappings
            .iter()
            .filter(|(_, m)| gone(m))
            .map(|(k, _)| k.clone())
            .collect();
        self.approved.retain(|k| !keys.contains(k));
        keys.iter()
            .filter_map(|k| self.mappings.remove(k))
            .collect()
    }

    /// Creates or refreshes a mapping, or says why not. `now` is the moment of the request.
    pub fn map(&mut self, p: &Policy, req: &MapRequest, now: Timestamp) -> Result<Grant, Refusal> {
        if p.upnp.mode == UpnpMode::Off {
            return Err(Refusal::Off);
        }
        if req.internal_client != req.client {
            return Err(Refusal::OtherHost);
        }
        if req.internal_port == 0 {
            return Err(Refusal::Invalid("internal port 0".into()));
        }
        if !p.usable_host(req.client) {
            return Err(Refusal::OtherHost);
        }
        if req.exact && req.external_port == 0 {
            return Err(Refusal::Invalid("external port 0 (a wildcard)".into()));
        }
        if let Some(existing) = self.existing(req)? {
            return self.refresh(p, req, &existing, now);
        }
        // Limits first: a refused request must not use up the owner's one-time approval.
        let held = self
            .mappings
            .values()
            .filter(|m| m.client == req.client)
            .count();
        if held >= usize::try_from(p.upnp.max_per_host).unwrap_or(usize::MAX) {
            return Err(Refusal::Quota(p.upnp.max_per_host));
        }
        if self.mappings.len() >= usize::try_from(MAX_MAPPINGS).unwrap_or(usize::MAX) {
            return Err(Refusal::NoneFree);
        }
        let (port, rule, approved) = self.choose(p, req, now)?;
        let lifetime = lease(req.lifetime_secs, p.max_lease(rule.as_ref()));
        let m = Mapping {
            via: req.via,
            client: req.client,
            mac: req.mac,
            proto: req.proto,
            external_port: port,
            internal_port: req.internal_port,
            remote_host: req.remote_host,
            description: req.description.chars().take(MAX_DESCRIPTION).collect(),
            nonce: req.nonce,
            created_at: now,
            expires_at: Timestamp(now.0.saturating_add(u64::from(lifetime))),
        };
        let k = key(req.proto, port);
        if approved {
            self.approved.push(k.clone());
        }
        self.mappings.insert(k, m.clone());
        Ok(Grant {
            mapping: m,
            lifetime_secs: lifetime,
            refreshed: false,
        })
    }

    /// The mapping this request renews, if any. NAT-PMP and PCP renew by internal port
    /// (RFC 6886 §3.3, RFC 6887 §11.2: a PCP renewal must repeat the nonce); UPnP by
    /// external port, and another host holding it is a conflict.
    fn existing(&self, req: &MapRequest) -> Result<Option<Mapping>, Refusal> {
        if req.via == Via::Upnp {
            return match self.mappings.get(&key(req.proto, req.external_port)) {
                Some(m) if m.client != req.client => Err(Refusal::Conflict {
                    port: req.external_port,
                    proto: req.proto.as_str(),
                }),
                Some(m) => Ok(Some(m.clone())),
                None => Ok(None),
            };
        }
        let found = self.mappings.values().find(|m| {
            m.via != Via::Upnp
                && m.client == req.client
                && m.proto == req.proto
                && m.internal_port == req.internal_port
        });
        match found {
            Some(m) if m.via == Via::Pcp && req.via == Via::Pcp && m.nonce != req.nonce => {
                Err(Refusal::NotOwner)
            }
            Some(m) => Ok(Some(m.clone())),
            None => Ok(None),
        }
    }

    /// Renews `old` with the request's lease (and, for UPnP, its new internal port and
    /// description, which the policy must still allow).
    fn refresh(
        &mut self,
        p: &Policy,
        req: &MapRequest,
        old: &Mapping,
        now: Timestamp,
    ) -> Result<Grant, Refusal> {
        let k = key(old.proto, old.external_port);
        let approved = self.approved.contains(&k);
        let rule = p
            .rule_allowing(
                req.client,
                req.mac,
                req.proto,
                old.external_port,
                req.internal_port,
            )
            .cloned();
        if rule.is_none() && !(approved && p.upnp.mode == UpnpMode::Ask) {
            return Err(Refusal::NotAllowed(format!(
                "no rule allows {}/{} for {} any more",
                old.external_port,
                old.proto.as_str(),
                req.client
            )));
        }
        // What the owner approved once is that mapping, not the port for anything else.
        if rule.is_none() && req.internal_port != old.internal_port {
            return Err(Refusal::NotAllowed(format!(
                "the owner approved {}/{} → port {} only",
                old.external_port,
                old.proto.as_str(),
                old.internal_port
            )));
        }
        if req.exact && req.via != Via::Upnp && req.external_port != old.external_port {
            return Err(Refusal::Conflict {
                port: req.external_port,
                proto: req.proto.as_str(),
            });
        }
        let lifetime = lease(req.lifetime_secs, p.max_lease(rule.as_ref()));
        let mut m = old.clone();
        m.expires_at = Timestamp(now.0.saturating_add(u64::from(lifetime)));
        m.internal_port = req.internal_port;
        m.mac = req.mac.or(m.mac);
        if req.via == Via::Upnp {
            m.description = req.description.chars().take(MAX_DESCRIPTION).collect();
            m.remote_host = req.remote_host;
        }
        self.mappings.insert(k, m.clone());
        Ok(Grant {
            mapping: m,
            lifetime_secs: lifetime,
            refreshed: true,
        })
    }

    /// Picks the external port: the one asked for, else (when the protocol allows another)
    /// the internal port, else the first free port of the rules for this host. Returns the
    /// port, the rule allowing it (None when the owner approved it once) and whether it
    /// was an approval.
    fn choose(
        &mut self,
        p: &Policy,
        req: &MapRequest,
        now: Timestamp,
    ) -> Result<(u16, Option<UpnpRule>, bool), Refusal> {
        let free = |t: &Table, port: u16| -> Result<(), Refusal> {
            if let Some(who) = p.claim_of(req.proto, port) {
                return Err(Refusal::Reserved {
                    port,
                    proto: req.proto.as_str(),
                    what: who.to_string(),
                });
            }
            if t.mappings.contains_key(&key(req.proto, port)) {
                return Err(Refusal::Conflict {
                    port,
                    proto: req.proto.as_str(),
                });
            }
            Ok(())
        };
        let mut wanted: Vec<u16> = Vec::new();
        if req.external_port != 0 {
            wanted.push(req.external_port);
        }
        if !req.exact && req.internal_port != req.external_port {
            wanted.push(req.internal_port);
        }
        let mut first_refusal = None;
        for &port in &wanted {
            let checked = free(self, port).and_then(|()| {
                p.rule_allowing(req.client, req.mac, req.proto, port, req.internal_port)
                    .cloned()
                    .ok_or_else(|| not_allowed(req, port))
            });
            match checked {
                Ok(rule) => return Ok((port, Some(rule), false)),
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        if !req.exact {
            // Any free port the host's rules allow, in rule order.
            for r in p.rules_for(req.client, req.mac, req.proto) {
                if r.internal_ports
                    .is_some_and(|i| !i.contains(req.internal_port))
                {
                    continue;
                }
                for port in r.external_ports.first()..=r.external_ports.last() {
                    if free(self, port).is_ok()
                        && (risky(port).is_none() || r.external_ports.count() <= RISKY_RULE_SPAN)
                    {
                        return Ok((port, Some(r.clone()), false));
                    }
                }
                first_refusal = Some(Refusal::NoneFree);
            }
        }
        let refusal = first_refusal.unwrap_or_else(|| not_allowed(req, req.external_port));
        // Only a policy refusal can be approved; reserved ports and conflicts stay refused.
        if !matches!(refusal, Refusal::NotAllowed(_)) || p.upnp.mode != UpnpMode::Ask {
            return Err(refusal);
        }
        self.denied.retain(|v| v.until > now);
        if self.denied.iter().any(|v| v.matches(req)) {
            return Err(Refusal::NotAllowed("the owner denied this request".into()));
        }
        self.once.retain(|v| v.until > now);
        if let Some(i) = self.once.iter().position(|v| v.matches(req)) {
            // The port the owner saw: the one asked for, or the internal port for "any".
            let port = self.once[i].port();
            free(self, port)?;
            self.once.remove(i);
            return Ok((port, None, true));
        }
        self.enqueue(req, now);
        Err(Refusal::Pending)
    }

    /// Puts a request in the approval queue, merging retries of the same request.
    fn enqueue(&mut self, req: &MapRequest, now: Timestamp) {
        if let Some(e) = self.pending.iter_mut().find(|e| {
            e.client == req.client
                && e.proto == req.proto
                && e.external_port == req.external_port
                && e.internal_port == req.internal_port
        }) {
            e.last_asked = now;
            e.asks = e.asks.saturating_add(1);
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.next_id = self.next_id.wrapping_add(1);
        self.pending.push_back(Pending {
            id: self.next_id,
            via: req.via,
            client: req.client,
            mac: req.mac,
            proto: req.proto,
            external_port: req.external_port,
            internal_port: req.internal_port,
            description: req.description.chars().take(MAX_DESCRIPTION).collect(),
            first_asked: now,
            last_asked: now,
            asks: 1,
        });
    }

    /// The owner's answer to pending request `id`. `Always` returns the rule to add to
    /// the config (the caller adds it); None when `id` is not (or no longer) pending.
    pub fn decide(&mut self, id: u64, d: Decision, now: Timestamp) -> Option<Option<UpnpRule>> {
        let i = self.pending.iter().position(|e| e.id == id)?;
        let e = self.pending.remove(i)?;
        Some(match d {
            Decision::Once => {
                self.once.retain(|v| v.until > now);
                self.once.truncate(MAX_PENDING - 1);
                self.once.push(Verdict::of(
                    &e,
                    Timestamp(now.0.saturating_add(APPROVAL_SECS)),
                ));
                None
            }
            Decision::Deny => {
                self.denied.retain(|v| v.until > now);
                self.denied.truncate(4 * MAX_PENDING - 1);
                self.denied.push(Verdict::of(
                    &e,
                    Timestamp(now.0.saturating_add(DENIAL_SECS)),
                ));
                None
            }
            Decision::Always => {
                let ext = if e.external_port != 0 {
                    e.external_port
                } else {
                    e.internal_port
                };
                // Both ports are non-zero: a request with internal port 0 is refused
                // before it can be queued, and `ext` falls back to it.
                let one = |p: u16| PortRange::new(p, p).ok();
                Some(UpnpRule {
                    hosts: Ipv4Net::new(e.client, 32).into_iter().collect(),
                    macs: Vec::new(),
                    external_ports: one(ext)?,
                    internal_ports: one(e.internal_port),
                    protocol: match e.proto {
                        Proto::Tcp => Protocol::Tcp,
                        Proto::Udp => Protocol::Udp,
                    },
                    max_lease_secs: None,
                    comment: format!("approved for {}", shown(&e.description)),
                })
            }
        })
    }

    /// Removes what a client asked to remove.
    pub fn unmap(&mut self, u: &Unmap) -> Result<Vec<Mapping>, Refusal> {
        match *u {
            Unmap::External {
                client,
                proto,
                external_port,
            } => match self.mappings.get(&key(proto, external_port)) {
                None => Err(Refusal::NotFound),
                Some(m) if m.client != client => Err(Refusal::NotOwner),
                Some(_) => Ok(self.take(|m| m.proto == proto && m.external_port == external_port)),
            },
            Unmap::Internal {
                via,
                client,
                proto,
                internal_port,
                nonce,
            } => {
                let hit = |m: &Mapping| {
                    m.via != Via::Upnp
                        && m.client == client
                        && m.proto == proto
                        && m.internal_port == internal_port
                };
                let Some(m) = self.mappings.values().find(|m| hit(m)) else {
                    return Err(Refusal::NotFound);
                };
                if via == Via::Pcp && m.via == Via::Pcp && m.nonce != nonce {
                    return Err(Refusal::NotOwner);
                }
                Ok(self.take(hit))
            }
            Unmap::AllOfClient { via, client, proto } => Ok(self.take(|m| {
                m.via == via && m.client == client && proto.is_none_or(|p| p == m.proto)
            })),
            Unmap::Range {
                client,
                proto,
                first,
                last,
            } => {
                let gone = self.take(|m| {
                    m.client == client
                        && m.proto == proto
                        && (first..=last).contains(&m.external_port)
                });
                if gone.is_empty() {
                    Err(Refusal::NotFound)
                } else {
                    Ok(gone)
                }
            }
        }
    }

    /// What the owner revokes in the UI.
    pub fn revoke(&mut self, r: &Revoke) -> Vec<Mapping> {
        match *r {
            Revoke::One {
                proto,
                external_port,
            } => self.take(|m| m.proto == proto && m.external_port == external_port),
            Revoke::Host { client } => self.take(|m| m.client == client),
            Revoke::All => self.take(|_| true),
        }
    }

    /// After the config changed (or at start, on mappings read back from `leases.json`):
    /// closes every mapping the policy no longer allows (all of them when the mode is
    /// off) and returns each with the reason; shortens leases longer than the policy's
    /// maximum allows from `now`.
    pub fn reconcile(&mut self, p: &Policy, now: Timestamp) -> Vec<(Mapping, String)> {
        let mut closed = Vec::new();
        let keys: Vec<String> = self.mappings.keys().cloned().collect();
        for k in keys {
            let Some(m) = self.mappings.get(&k).cloned() else {
                continue;
            };
            let reason = if p.upnp.mode == UpnpMode::Off {
                Some("port mapping was switched off".to_string())
            } else if let Some(who) = p.claim_of(m.proto, m.external_port) {
                Some(format!("the port is now claimed by {who}"))
            } else if !p.usable_host(m.client) {
                Some("the host is not a LAN host (outside the LAN subnets, or the router, network or broadcast address)".to_string())
            } else if !(p.allows(&m)
                || (p.upnp.mode == UpnpMode::Ask && self.approved.contains(&k)))
            {
                Some("no rule allows it any more".to_string())
            } else {
                None
            };
            if let Some(r) = reason {
                self.approved.retain(|a| *a != k);
                self.mappings.remove(&k);
                closed.push((m, r));
                continue;
            }
            let rule = p
                .rule_allowing(m.client, m.mac, m.proto, m.external_port, m.internal_port)
                .cloned();
            let latest = now.0.saturating_add(u64::from(p.max_lease(rule.as_ref())));
            if m.expires_at.0 > latest {
                if let Some(x) = self.mappings.get_mut(&k) {
                    x.expires_at = Timestamp(latest);
                }
            }
        }
        if p.upnp.mode != UpnpMode::Ask {
            self.pending.clear();
            self.once.clear();
        }
        closed
    }
}

/// The lease granted: the asked one clamped to `max`, the maximum for 0.
fn lease(asked: u32, max: u32) -> u32 {
    if asked == 0 {
        max
    } else {
        asked.min(max)
    }
}

fn not_allowed(req: &MapRequest, port: u16) -> Refusal {
    let what = if port == 0 {
        "any external port".to_string()
    } else if let Some(service) = risky(port) {
        format!(
            "{port}/{} ({service}, named by no narrow rule)",
            req.proto.as_str()
        )
    } else {
        format!("{port}/{}", req.proto.as_str())
    };
    Refusal::NotAllowed(format!("{what} for {}", req.client))
}

/// A client's text as it may appear in a rule comment: printable, at most 60 characters.
fn shown(s: &str) -> String {
    let t: String = s.chars().filter(|c| !c.is_control()).take(60).collect();
    if t.is_empty() {
        "a LAN client's request".into()
    } else {
        format!("`{t}`")
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
