//! The owner's side of port mappings: it decides each request with the pure
//! [`Table`](crate::portmap::table::Table) against the config in force, installs the
//! result as set elements (a delta of one lease), saves `leases.json`, and audits.
//! [`DaemonMapper`] is how the protocol servers reach it.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::mpsc::Sender;
use std::time::Instant;

use super::{chain, CallError, Command, EditError, Handle, Health, Owner};
use crate::config::{Timestamp, UpnpRule};
use crate::daemon::edit::Edit;
use crate::portmap::table::{Decision, Pending, Policy, Revoke, Table};
use crate::portmap::{ExternalAddress, Grant, MapRequest, Mapper, Mapping, Refusal, Unmap};
use crate::store;

/// File (next to the saved config) holding the live mappings with their absolute expiry.
pub const LEASES_FILE: &str = "leases.json";

/// `leases.json` is written at most this often (see [`Owner::save_leases`]).
const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Audit lines of one kind about one host, at most one per this many seconds; the rest
/// are counted and the count is written with the next line.
const AUDIT_EVERY_SECS: u64 = 60;

/// Hosts whose audit lines are rate-limited, at most (the table is cleared when full).
const AUDIT_HOSTS: usize = 1_024;

/// Requests about port mappings, sent to the owner by [`DaemonMapper`] and the web API.
/// Every answer comes back as one [`PortmapReply`] type: each distinct channel type is
/// another copy of the channel code in the router's binary.
#[derive(Debug)]
pub enum PortmapCall {
    Map(MapRequest),
    Unmap(Unmap),
    /// The live mappings and the external address.
    List,
    Revoke(Revoke),
    Decide(u64, Decision),
}

/// The owner's answer to a [`PortmapCall`] (the variant matching the call).
#[derive(Debug)]
pub enum PortmapReply {
    Granted(Result<Grant, Refusal>),
    Removed(Result<Vec<Mapping>, Refusal>),
    Listed(Vec<Mapping>, ExternalAddress),
    Decided(Result<Option<UpnpRule>, EditError>),
}

/// What the UI shows about mappings, taken with the rest of a snapshot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PortmapView {
    pub mappings: Vec<Mapping>,
    pub pending: Vec<Pending>,
    pub external: ExternalAddress,
    /// Whether the UPnP/NAT-PMP/PCP servers listen, as their supervisor last reported.
    pub listening: bool,
    /// Why they do not, when they should.
    pub listen_error: Option<String>,
}

/// Rate limit of audit lines per (host, action).
#[derive(Debug, Default)]
pub(super) struct AuditGate {
    last: HashMap<(Ipv4Addr, &'static str), (u64, u32)>,
}

impl AuditGate {
    /// Whether to write a line now; `Some(n)` with the lines suppressed since the last one.
    fn pass(&mut self, host: Ipv4Addr, action: &'static str, now: Timestamp) -> Option<u32> {
        if self.last.len() >= AUDIT_HOSTS && !self.last.contains_key(&(host, action)) {
            self.last.clear();
        }
        let e = self.last.entry((host, action)).or_insert((0, 0));
        if e.0 != 0 && now.0 < e.0.saturating_add(AUDIT_EVERY_SECS) {
            e.1 = e.1.saturating_add(1);
            return None;
        }
        let suppressed = e.1;
        *e = (now.0, 0);
        Some(suppressed)
    }
}

/// `tcp/50000 → 192.168.1.10:50000`
pub fn describe(m: &Mapping) -> String {
    format!(
        "{}/{} → {}:{}",
        m.proto.as_str(),
        m.external_port,
        m.client,
        m.internal_port
    )
}

fn details(m: &Mapping, lifetime: Option<u32>) -> String {
    let mut d = format!("via {}", m.via.as_str());
    if let Some(mac) = m.mac {
        d.push_str(&format!(", host {mac}"));
    }
    if let Some(l) = lifetime {
        d.push_str(&format!(", lease {l} s"));
    }
    if let Some(r) = m.remote_host {
        d.push_str(&format!(", only from {r}"));
    }
    if !m.description.is_empty() {
        let text: String = m.description.chars().filter(|c| !c.is_control()).collect();
        d.push_str(&format!(", “{text}”"));
    }
    d
}

/// Reads the saved mappings still live at `now`, touching nothing: Ok(empty) when there
/// is no file, Err(why) when it is unreadable.
pub fn read(dir: &Path, now: Timestamp) -> Result<Table, String> {
    match std::fs::read(dir.join(LEASES_FILE)) {
        Ok(bytes) => store::json::<Table>(&bytes)
            .map(|t| Table::restored(t, now))
            .map_err(|e| e.to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Table::default()),
        Err(e) => Err(e.to_string()),
    }
}

/// Loads saved mappings; an unreadable file is kept aside and means none (the kernel's
/// copies expire on their own).
pub fn load(dir: &Path, now: Timestamp) -> Table {
    read(dir, now).unwrap_or_else(|e| {
        let path = dir.join(LEASES_FILE);
        eprintln!(
            "portcullis: {} is unreadable ({e}); kept as {LEASES_FILE}.bad, no mappings restored",
            path.display()
        );
        let _ = std::fs::rename(&path, dir.join(format!("{LEASES_FILE}.bad")));
        Table::default()
    })
}

/// Writes `leases.json` in `dir` to match `table` (a failure is logged: the kernel holds
/// the mappings either way, and they expire on their own).
pub fn save(dir: &Path, table: &Table) {
    let path = dir.join(LEASES_FILE);
    let text = serde_json::to_string(table).unwrap_or_default();
    if let Err(e) = store::save_atomic(&path, text.as_bytes()) {
        eprintln!("portcullis: saving {}: {}", path.display(), chain(&e));
    }
}

impl Owner {
    pub(super) fn portmap(&mut self, call: PortmapCall, now: Timestamp) -> PortmapReply {
        match call {
            PortmapCall::Map(req) => PortmapReply::Granted(self.map(&req, now)),
            PortmapCall::Unmap(u) => PortmapReply::Removed(self.change(
                now,
                "upnp.delete",
                "deleted by the client",
                |t| t.unmap(&u),
            )),
            PortmapCall::List => PortmapReply::Listed(self.table.mappings(), self.external()),
            PortmapCall::Revoke(r) => {
                PortmapReply::Removed(self.change(now, "upnp.close", "revoked by the owner", |t| {
                    Ok(t.revoke(&r))
                }))
            }
            PortmapCall::Decide(id, d) => PortmapReply::Decided(self.decide(id, d, now)),
        }
    }

    /// The policy of `cfg`, with the router's own LAN addresses (read now).
    pub(super) fn policy(&self, cfg: &crate::config::Config) -> Policy {
        let router = crate::facts::interface_addrs(&cfg.lan.interface).unwrap_or_default();
        Policy::of(cfg).with_router(router)
    }

    pub(super) fn external(&self) -> ExternalAddress {
        ExternalAddress::of(self.facts.wan_addrs.first().copied())
    }

    fn map(&mut self, req: &MapRequest, now: Timestamp) -> Result<Grant, Refusal> {
        if let Health::SafeMode { .. } = self.core.health {
            return Err(Refusal::Failed(
                "the router is in safe mode (its saved config could not be installed)".into(),
            ));
        }
        let policy = Policy::of(&self.core.config);
        let mut next = self.table.clone();
        let r = next.map(&policy, req, now);
        let grant = match r {
            Ok(g) => g,
            Err(refusal) => {
                // The queue may have changed; the mappings did not.
                self.table = next;
                if let Some(n) = self.audit_gate.pass(req.client, "refuse", now) {
                    let more = if n > 0 {
                        format!(" ({n} more refusals of this host not logged)")
                    } else {
                        String::new()
                    };
                    self.audit(
                        "upnp.refuse",
                        format!(
                            "{}/{} for {}",
                            req.proto.as_str(),
                            req.external_port,
                            req.client
                        ),
                        false,
                        format!("via {}: {refusal}{more}", req.via.as_str()),
                    );
                }
                return Err(refusal);
            }
        };
        self.install_table(next, now)?;
        let m = &grant.mapping;
        let action = if grant.refreshed {
            "upnp.refresh"
        } else {
            "upnp.map"
        };
        if !grant.refreshed || self.audit_gate.pass(m.client, "refresh", now).is_some() {
            self.audit(
                action,
                describe(m),
                true,
                details(m, Some(grant.lifetime_secs)),
            );
        }
        Ok(grant)
    }

    /// Applies a change to the table, installs and saves it, and audits what it removed.
    fn change(
        &mut self,
        now: Timestamp,
        action: &str,
        why: &str,
        f: impl FnOnce(&mut Table) -> Result<Vec<Mapping>, Refusal>,
    ) -> Result<Vec<Mapping>, Refusal> {
        let mut next = self.table.clone();
        let gone = f(&mut next)?;
        if gone.is_empty() {
            return Ok(gone);
        }
        self.install_table(next, now)?;
        for m in &gone {
            self.audit(
                action,
                describe(m),
                true,
                format!("{why}; {}", details(m, None)),
            );
        }
        Ok(gone)
    }

    /// Installs `next` (a delta of its leases), then makes it the table and saves it; on
    /// refusal the kernel and the table stay as they were.
    fn install_table(&mut self, next: Table, now: Timestamp) -> Result<(), Refusal> {
        self.engine.intact();
        self.engine.set_leases(next.mappings());
        // The config in force was validated and its host facts read when it was
        // installed (facts are re-read every few seconds): only the leases change here.
        let facts = self.facts.clone();
        if let Err(e) = self.engine.install_with(&self.core.config, &facts, now) {
            self.engine.set_leases(self.table.mappings());
            let why = chain(&e);
            eprintln!("portcullis: installing port mappings failed: {why}");
            return Err(Refusal::Failed(why));
        }
        self.table = next;
        self.save_leases();
        Ok(())
    }

    fn decide(
        &mut self,
        id: u64,
        d: Decision,
        now: Timestamp,
    ) -> Result<Option<UpnpRule>, EditError> {
        let mut next = self.table.clone();
        let Some(rule) = next.decide(id, d, now) else {
            return Err(EditError::NoSuchRequest(id));
        };
        let Some(rule) = rule else {
            self.table = next;
            return Ok(None);
        };
        let mut upnp = self.core.config.upnp.clone();
        upnp.allow.push(rule.clone());
        let p = self.core.propose(
            Edit::Upnp {
                if_match: None,
                upnp,
            },
            now,
            self.opts.trial_secs,
        )?;
        // The queue entry is gone only once the rule is in force.
        self.enact(p, now)?;
        self.table.decide(id, d, now);
        Ok(Some(rule))
    }

    /// Removes expired mappings (the kernel closed them already) and audits them.
    pub(super) fn expire_leases(&mut self, now: Timestamp) {
        if self.table.next_expiry().is_none_or(|t| t > now) {
            return;
        }
        let mut next = self.table.clone();
        let gone = next.expire(now);
        if let Err(e) = self.install_table(next, now) {
            eprintln!("portcullis: removing expired mappings: {e}");
            return;
        }
        for m in &gone {
            self.audit(
                "upnp.expire",
                describe(m),
                true,
                format!("lease ended; {}", details(m, None)),
            );
        }
    }

    /// Marks `leases.json` for writing: at once after a quiet spell, else at most every
    /// [`SAVE_EVERY`] (the file is on flash, and a client renewing in a loop must not
    /// rewrite it for every packet). The kernel holds the mappings either way; a crash
    /// loses at most the last few seconds of changes, which clients renew after the
    /// restart's announcement.
    pub(super) fn save_leases(&mut self) {
        self.leases_dirty = true;
        self.flush_leases(false);
    }

    /// How long until a pending `leases.json` write is due; None when nothing is pending.
    pub(super) fn leases_save_in(&self) -> Option<std::time::Duration> {
        if !self.leases_dirty {
            return None;
        }
        Some(self.leases_saved.map_or(std::time::Duration::ZERO, |t| {
            SAVE_EVERY.saturating_sub(t.elapsed())
        }))
    }

    /// Writes `leases.json` if it is dirty and due (or `now_anyway`, at shutdown).
    pub(super) fn flush_leases(&mut self, now_anyway: bool) {
        let due = self.leases_save_in().is_some_and(|left| left.is_zero());
        if !self.leases_dirty || !(due || now_anyway) {
            return;
        }
        if let Some(dir) = &self.opts.state_dir {
            save(dir, &self.table);
        }
        self.leases_dirty = false;
        self.leases_saved = Some(Instant::now());
    }

    pub(super) fn audit(&self, action: &str, target: String, ok: bool, detail: String) {
        (self.opts.notify)(&super::Event {
            action: action.to_string(),
            target,
            ok,
            detail,
        });
    }
}

impl Handle {
    fn portmap(&self, call: PortmapCall) -> Result<PortmapReply, CallError> {
        self.call(|reply: Sender<PortmapReply>| Command::Portmap(call, reply))
    }

    fn removed(&self, call: PortmapCall) -> Result<Result<Vec<Mapping>, Refusal>, CallError> {
        match self.portmap(call)? {
            PortmapReply::Removed(r) => Ok(r),
            _ => Err(CallError::Gone),
        }
    }

    fn listed(&self) -> Result<(Vec<Mapping>, ExternalAddress), CallError> {
        match self.portmap(PortmapCall::List)? {
            PortmapReply::Listed(m, e) => Ok((m, e)),
            _ => Err(CallError::Gone),
        }
    }

    /// Removes mappings on the owner's behalf (the UI's revoke); returns the removed ones,
    /// or `Refusal::Failed` when the kernel refused the change (nothing was removed).
    pub fn revoke(&self, r: Revoke) -> Result<Result<Vec<Mapping>, Refusal>, CallError> {
        self.removed(PortmapCall::Revoke(r))
    }

    /// The owner's answer to a pending request. `Always` adds a rule to the config and
    /// returns it; `EditError::NoSuchRequest` when `id` is no longer pending.
    pub fn decide(
        &self,
        id: u64,
        d: Decision,
    ) -> Result<Result<Option<UpnpRule>, EditError>, CallError> {
        match self.portmap(PortmapCall::Decide(id, d))? {
            PortmapReply::Decided(r) => Ok(r),
            _ => Err(CallError::Gone),
        }
    }
}

/// The protocol servers' way to the owner: each call is one message and one reply.
#[derive(Debug, Clone)]
pub struct DaemonMapper {
    handle: Handle,
    started: Instant,
}

impl DaemonMapper {
    /// A mapper whose epoch starts now (the protocols' epoch restarts with the daemon, and
    /// the servers announce it, so clients renew their mappings).
    pub fn new(handle: Handle) -> DaemonMapper {
        DaemonMapper {
            handle,
            started: Instant::now(),
        }
    }
}

fn gone(e: CallError) -> Refusal {
    Refusal::Failed(e.to_string())
}

impl Mapper for DaemonMapper {
    fn map(&self, req: MapRequest) -> Result<Grant, Refusal> {
        match self.handle.portmap(PortmapCall::Map(req)).map_err(gone)? {
            PortmapReply::Granted(r) => r,
            _ => Err(gone(CallError::Gone)),
        }
    }

    fn unmap(&self, req: Unmap) -> Result<Vec<Mapping>, Refusal> {
        self.handle.removed(PortmapCall::Unmap(req)).map_err(gone)?
    }

    fn mappings(&self) -> Vec<Mapping> {
        self.handle.listed().map(|(m, _)| m).unwrap_or_default()
    }

    fn external(&self) -> ExternalAddress {
        self.handle.listed().map(|(_, e)| e).unwrap_or_default()
    }

    fn epoch_secs(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_gate_lets_one_line_a_minute_through_and_counts_the_rest() {
        let mut g = AuditGate::default();
        let h = Ipv4Addr::new(192, 168, 1, 10);
        let t = Timestamp(1_000);
        assert_eq!(g.pass(h, "refuse", t), Some(0));
        assert_eq!(g.pass(h, "refuse", Timestamp(1_010)), None);
        assert_eq!(g.pass(h, "refuse", Timestamp(1_059)), None);
        assert_eq!(
            g.pass(Ipv4Addr::new(192, 168, 1, 11), "refuse", t),
            Some(0),
            "other hosts are not held back"
        );
        assert_eq!(g.pass(h, "refuse", Timestamp(1_060)), Some(2));
    }

    /// Attack (issue 8 review): in `ask` mode a mapping the owner approved once is kept
    /// although no rule covers it (`Table::approved`). `leases.json` saves that list, but
    /// `load` rebuilds the table from the mappings only, so the start-up reconcile closes
    /// the approved mapping: "leases survive a daemon restart" does not hold for them.
    #[test]
    fn attack_an_approved_once_lease_survives_save_and_load() {
        use crate::config::{Config, UpnpMode};
        use crate::portmap::{Proto, Via};
        let cfg = Config::parse(
            r#"{"version":1,"lan":{"interface":"lan0","subnets":["192.168.1.0/24"]},
            "wan":{"interface":"wan0"},"upnp":{"mode":"ask","allow":[]}}"#,
        )
        .expect("config");
        assert_eq!(cfg.upnp.mode, UpnpMode::Ask);
        let p = Policy::of(&cfg);
        let now = Timestamp::now();
        let host = Ipv4Addr::new(192, 168, 1, 10);
        let req = MapRequest {
            via: Via::Upnp,
            client: host,
            mac: None,
            internal_client: host,
            proto: Proto::Tcp,
            external_port: 6000,
            exact: true,
            internal_port: 6000,
            lifetime_secs: 600,
            description: "game".into(),
            remote_host: None,
            nonce: None,
        };
        let mut t = Table::default();
        assert_eq!(t.map(&p, &req, now), Err(Refusal::Pending));
        let id = t.pending()[0].id;
        assert_eq!(t.decide(id, Decision::Once, now), Some(None));
        t.map(&p, &req, now).expect("approved once");
        assert!(t.reconcile(&p, now).is_empty(), "kept while running");

        let dir =
            std::env::temp_dir().join(format!("pc-attack-leases-{}-{}", std::process::id(), now.0));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join(LEASES_FILE),
            serde_json::to_string_pretty(&t).expect("save"),
        )
        .expect("write");
        let mut back = load(&dir, now);
        let _ = std::fs::remove_dir_all(&dir);
        let closed = back.reconcile(&p, now);
        assert!(
            closed.is_empty(),
            "the approved mapping was closed at start-up: {closed:?}"
        );
        assert_eq!(back.mappings().len(), 1);
    }
}
