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
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::{Grant, MacAddr, MapRequest, Mapping, Proto, Refusal, Unmap, Via};
use crate::config::{
    Config, Ipv4Net, PortRange, Protocol, Timestamp, Upnp, UpnpMode, UpnpRule, MAX_MAPPINGS,
    RESERVED_PORTS,
};

/// Services attacked constantly when open to anyone: refused to UPnP/NAT-PMP/PCP unless a
/// rule spanning at most [`RISKY_RULE_SPAN`] ports, or the owner's approval, names them.
pub const RISKY_PORTS: &[(u16, &str)] = &[
    (21, "FTP"),
    (22, "SSH"),
    (23, "Telnet"),
    (135, "Windows RPC"),
    (137, "NetBIOS"),
    (138, "NetBIOS"),
    (139, "NetBIOS"),
    (445, "SMB file sharing"),
    (1433, "SQL Server"),
    (3306, "MySQL"),
    (3389, "Remote Desktop"),
    (5900, "VNC"),
    (6379, "Redis"),
];

/// A rule "names" a risky port when its external range contains it and spans at most
/// this many ports: `"3389"` or `"137-139"` do, `"1-65535"` does not.
pub const RISKY_RULE_SPAN: u32 = 10;

/// Requests waiting for the owner, at most (the oldest is dropped).
pub const MAX_PENDING: usize = 64;

/// How long an "approve once" waits for the client's retry, seconds.
pub const APPROVAL_SECS: u64 = 600;

/// How long a denied request is refused without queueing it again, seconds.
pub const DENIAL_SECS: u64 = 3_600;

/// Longest description kept, characters.
pub const MAX_DESCRIPTION: usize = 128;

/// What the config says about mappings, gathered once per decision.
#[derive(Debug, Clone)]
pub struct Policy {
    pub upnp: Upnp,
    pub lan: Vec<Ipv4Net>,
    /// Ports no mapping may take: (IP protocol, range, who has it).
    pub claimed: Vec<(u8, PortRange, String)>,
}

impl Policy {
    /// The policy of a config: its `upnp` section, LAN subnets, and every port its enabled
    /// forwards and triggers and the router itself claim.
    pub fn of(cfg: &Config) -> Policy {
        let mut claimed: Vec<(u8, PortRange, String)> = Vec::new();
        if let Ok(ui) = PortRange::new(cfg.management.http_port, cfg.management.http_port) {
            claimed.push((6, ui, "the router's web UI".into()));
        }
        for &(proto, port, what) in RESERVED_PORTS {
            claimed.push((
                proto,
                PortRange::single(port),
                format!("the router's {what}"),
            ));
        }
        for f in cfg.forwards.iter().filter(|f| f.enabled) {
            for &p in f.protocol.numbers() {
                claimed.push((p, f.external_port, format!("forward `{}`", f.name)));
            }
        }
        for t in cfg.triggers.iter().filter(|t| t.enabled) {
            for &p in t.open_protocol.numbers() {
                claimed.push((p, t.open_port, format!("trigger `{}`", t.name)));
            }
        }
        Policy {
            upnp: cfg.upnp.clone(),
            lan: cfg.lan.subnets.clone(),
            claimed,
        }
    }

    fn claim_of(&self, proto: Proto, port: u16) -> Option<&str> {
        self.claimed
            .iter()
            .find(|(p, r, _)| *p == proto.number() && r.contains(port))
            .map(|(_, _, who)| who.as_str())
    }

    /// Rules that apply to this host and protocol.
    fn rules_for<'a>(
        &'a self,
        client: Ipv4Addr,
        mac: Option<MacAddr>,
        proto: Proto,
    ) -> impl Iterator<Item = &'a UpnpRule> + 'a {
        self.upnp.allow.iter().filter(move |r| {
            covers(r.protocol, proto)
                && (r.hosts.iter().any(|n| n.contains(client))
                    || mac.is_some_and(|m| r.macs.contains(&m)))
        })
    }

    /// The rule allowing `external` → `internal` for this host, if any.
    fn rule_allowing(
        &self,
        client: Ipv4Addr,
        mac: Option<MacAddr>,
        proto: Proto,
        external: u16,
        internal: u16,
    ) -> Option<&UpnpRule> {
        self.rules_for(client, mac, proto).find(|r| {
            r.external_ports.contains(external)
                && r.internal_ports.is_none_or(|i| i.contains(internal))
                && (risky(external).is_none() || r.external_ports.count() <= RISKY_RULE_SPAN)
        })
    }

    /// Longest lease for a mapping allowed by `rule` (None: approved by the owner).
    fn max_lease(&self, rule: Option<&UpnpRule>) -> u32 {
        let section = self.upnp.max_lease_secs.max(1);
        rule.and_then(|r| r.max_lease_secs)
            .map_or(section, |r| r.clamp(1, section))
    }
}

fn covers(p: Protocol, proto: Proto) -> bool {
    p.numbers().contains(&proto.number())
}

/// The risky service on `port`, if any.
pub fn risky(port: u16) -> Option<&'static str> {
    RISKY_PORTS
        .iter()
        .find(|(p, _)| *p == port)
        .map(|(_, what)| *what)
}

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
struct Verdict {
    client: Ipv4Addr,
    proto: Proto,
    external_port: u16,
    internal_port: u16,
    until: Timestamp,
}

impl Verdict {
    fn of(p: &Pending, until: Timestamp) -> Verdict {
        Verdict {
            client: p.client,
            proto: p.proto,
            external_port: p.external_port,
            internal_port: p.internal_port,
            until,
        }
    }

    fn matches(&self, r: &MapRequest) -> bool {
        self.client == r.client
            && self.proto == r.proto
            && self.internal_port == r.internal_port
            && (self.external_port == r.external_port || self.external_port == 0)
    }
}

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
        if req.exact && req.external_port == 0 {
            return Err(Refusal::Invalid("external port 0 (a wildcard)".into()));
        }
        if let Some(existing) = self.existing(req)? {
            return self.refresh(p, req, &existing, now);
        }
        let (port, rule, approved) = self.choose(p, req, now)?;
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
            let port = if req.external_port != 0 {
                req.external_port
            } else {
                req.internal_port
            };
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

    /// After the config changed: closes every mapping the policy no longer allows (all of
    /// them when the mode is off) and returns each with the reason.
    pub fn reconcile(&mut self, p: &Policy) -> Vec<(Mapping, String)> {
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
            } else if !p.lan.iter().any(|n| n.contains(m.client)) {
                Some("the host is no longer in a LAN subnet".to_string())
            } else if p
                .rule_allowing(m.client, m.mac, m.proto, m.external_port, m.internal_port)
                .is_none()
                && !(p.upnp.mode == UpnpMode::Ask && self.approved.contains(&k))
            {
                Some("no rule allows it any more".to_string())
            } else {
                None
            };
            if let Some(r) = reason {
                self.approved.retain(|a| *a != k);
                self.mappings.remove(&k);
                closed.push((m, r));
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
