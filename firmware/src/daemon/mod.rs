//! The daemon: one thread owns the netlink socket, the config in force and the saved
//! files; everyone else (the web API, the CLI over the control socket, signals) sends it
//! small [`Command`]s with a reply channel and never writes anything themselves.
//!
//! Decisions (which config next, trial, rollback, expiry) are made by the pure [`core`];
//! this shell installs what it proposes, saves it, and commits it only when the kernel
//! took it. Whatever fails, the router never runs without its drop policy: a config that
//! cannot be installed leaves the safe base ruleset in force ([`Health::SafeMode`]).

pub mod control;
pub mod core;
mod devices;
pub mod dnsmasq;
pub mod edit;
mod handle;
pub mod leases;
mod vpn;

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use self::core::Health;
use self::core::{Core, Event, Proposal, Trial, TrialChange};
pub use self::devices::DevicesView;
pub use self::edit::{etag, Applied, Edit, EditError, Kind, Settings};
pub use self::handle::{CallError, Command, Handle, Snapshot, TrialInfo};
pub use self::leases::{DaemonMapper, PortmapCall, PortmapReply, PortmapView, LEASES_FILE};
use crate::config::{Config, Timestamp};
use crate::engine::{Engine, EngineError};
use crate::facts;
use crate::plan::HostFacts;
use crate::portmap::services::Link;
use crate::portmap::table::Table;
use crate::store;

/// How often host facts (the WAN address) are re-read when nothing else wakes the daemon.
const FACTS_POLL: Duration = Duration::from_secs(5);

/// File (next to the saved config) holding a running trial, so a restart honours it.
pub const TRIAL_FILE: &str = "trial.json";

/// What the daemon starts from.
#[derive(Debug)]
pub enum Start {
    /// The saved config parsed.
    Config(Box<Config>),
    /// The saved config is unusable (`reason`); `fallback` carries what could be salvaged
    /// of it (at least interface names) so the safe base ruleset and the UI have a LAN.
    Broken {
        fallback: Box<Config>,
        reason: String,
    },
}

/// Called for each audit-worthy thing the owner does on its own (rollback, expiry,
/// safe mode).
pub type Notify = Box<dyn Fn(&Event) + Send>;

/// How the owner runs.
pub struct OwnerOptions {
    /// Length of a settings trial, seconds.
    pub trial_secs: u64,
    /// Where the trial file lives (next to the saved config); None keeps trials in memory.
    pub state_dir: Option<PathBuf>,
    pub notify: Notify,
    /// The port-mapping servers' supervisor (none: no servers, as in tests).
    pub services: Link,
    /// The runtime directory shared with dnsmasq (`--run-dir`, default
    /// `/var/run/portcullis`): its lease file `dnsmasq.leases` and pid file `dnsmasq.pid`.
    /// None: no DHCP server to read or restart (tests without one).
    pub run_dir: Option<PathBuf>,
}

impl std::fmt::Debug for OwnerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnerOptions")
            .field("trial_secs", &self.trial_secs)
            .field("state_dir", &self.state_dir)
            .field("run_dir", &self.run_dir)
            .finish_non_exhaustive()
    }
}

/// Starts the owner thread.
pub fn spawn(
    engine: Engine,
    start: Start,
    opts: OwnerOptions,
) -> std::io::Result<(Handle, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel();
    let join = std::thread::Builder::new()
        .name("portcullis-owner".into())
        .spawn({
            let tx = tx.clone();
            move || Owner::new(engine, start, opts, tx).run(&rx)
        })?;
    Ok((Handle { tx }, join))
}

struct Owner {
    engine: Engine,
    core: Core,
    facts: HostFacts,
    opts: OwnerOptions,
    /// Set when the saved config must be installed at start (not in safe mode).
    start_reason: Option<String>,
    /// Live port mappings and the approval queue.
    table: Table,
    audit_gate: leases::AuditGate,
    /// When `leases.json` was last written, and whether the table changed since.
    leases_saved: Option<Instant>,
    leases_dirty: bool,
    /// The WireGuard tunnel and the provider's port.
    vpn: vpn::OwnerVpn,
    /// When each LAN device was last in the neighbour table.
    seen: crate::devices::Seen,
}

impl Owner {
    fn new(
        engine: Engine,
        start: Start,
        opts: OwnerOptions,
        tx: std::sync::mpsc::Sender<Command>,
    ) -> Owner {
        let trial = opts
            .state_dir
            .as_ref()
            .and_then(|d| load_trial(&d.join(TRIAL_FILE)));
        let (config, start_reason) = match start {
            Start::Config(c) => (*c, None),
            Start::Broken { fallback, reason } => (*fallback, Some(reason)),
        };
        let table = opts
            .state_dir
            .as_ref()
            .map(|d| leases::load(d, Timestamp::now()))
            .unwrap_or_default();
        let vpn = vpn::OwnerVpn::new(opts.state_dir.as_deref(), config.vpn.as_ref(), tx);
        Owner {
            vpn,
            engine,
            core: Core::new(config, trial, Health::Ok),
            facts: HostFacts::default(),
            opts,
            start_reason,
            table,
            audit_gate: leases::AuditGate::default(),
            leases_saved: None,
            leases_dirty: false,
            seen: Default::default(),
        }
    }

    fn run(mut self, rx: &Receiver<Command>) {
        self.start_up();
        let mut last_poll: Option<Instant> = None;
        loop {
            let now = Timestamp::now();
            if let Some(p) = self.core.due(now) {
                if let Err(e) = self.enact(p, now) {
                    eprintln!("portcullis: {}", chain(&e));
                }
            }
            self.expire_leases(now);
            // Host facts and the table's integrity are checked every FACTS_POLL, not after
            // every command: a client renewing mappings must not cost a netlink dump each.
            if last_poll.is_none_or(|t: Instant| t.elapsed() >= FACTS_POLL) {
                let macs = self.vpn_learn_macs();
                self.refresh_facts(now, macs);
                self.reconcile(now);
                // A tunnel the kernel refused is retried; one in place is looked at.
                self.vpn_sync(now);
                self.vpn_check(now);
                self.see_devices(now);
                last_poll = Some(Instant::now());
            }
            self.flush_leases(false);
            let next = self
                .core
                .next_wake(now)
                .into_iter()
                .chain(self.table.next_expiry())
                .min();
            let mut wait = match next {
                Some(t) => Duration::from_secs(t.0.saturating_sub(now.0).max(1)).min(FACTS_POLL),
                None => FACTS_POLL,
            };
            if let Some(left) = self.leases_save_in() {
                wait = wait.min(left.max(Duration::from_millis(10)));
            }
            match rx.recv_timeout(wait) {
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                    self.flush_leases(true);
                    return;
                }
                Ok(cmd) => self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Installs the start config, or the safe base ruleset if it is broken or refused.
    fn start_up(&mut self) {
        let now = Timestamp::now();
        if let Ok(f) = facts::gather(&self.core.config.wan.interface) {
            self.facts = f;
        }
        self.vpn_learn_macs();
        if let Some(reason) = self.start_reason.take() {
            self.safe_mode(reason, now);
            return;
        }
        // Saved mappings the config no longer allows (it may have changed while the
        // daemon was down) are not restored.
        for (m, why) in self.table.reconcile(&self.policy(&self.core.config), now) {
            self.audit("upnp.close", leases::describe(&m), true, why);
        }
        self.engine.set_leases(self.table.mappings());
        match self.engine.install(&self.core.config, now) {
            Ok(_) => {
                eprintln!("portcullis: ruleset installed (start-up)");
                self.core.health = Health::Ok;
                // What start-up restored is written now, and the first change a client
                // makes afterwards is written at once too (no throttle window yet).
                self.leases_dirty = true;
                self.flush_leases(true);
                self.leases_saved = None;
                self.opts.services.want(&self.core.config);
            }
            Err(e) => self.safe_mode(
                format!("the saved config was not installed: {}", chain(&e)),
                now,
            ),
        }
        self.vpn_sync(now);
    }

    /// Installs the safe base ruleset and says so everywhere.
    fn safe_mode(&mut self, reason: String, now: Timestamp) {
        eprintln!("portcullis: SAFE MODE: {reason}");
        let how = match self.engine.install_safe(&self.core.config, now) {
            Ok(()) => "safe base ruleset installed".to_string(),
            Err(e) => format!("installing the safe base ruleset failed too: {}", chain(&e)),
        };
        eprintln!("portcullis: {how}");
        self.opts.services.none(&self.core.config);
        (self.opts.notify)(&Event {
            action: "daemon.safe_mode".into(),
            target: String::new(),
            ok: false,
            detail: format!("{reason}; {how}"),
        });
        self.core.health = Health::SafeMode { reason };
    }

    fn handle(&mut self, cmd: Command) {
        let now = Timestamp::now();
        match cmd {
            Command::Edit { mut edit, reply } => {
                let (secrets, removed) = match &mut edit {
                    Edit::Vpn { vpn, secrets, .. } => (secrets.take(), vpn.is_none()),
                    _ => (None, false),
                };
                // Edits that do not come from the web (which audits its own) are audited
                // here: `portcullis apply` over the control socket.
                let audited = matches!(edit, Edit::Replace(_)).then(|| edit.describe());
                // If the table was changed behind our back, this edit replaces it whole.
                self.engine.intact();
                let r = self
                    .core
                    .propose(edit, now, self.opts.trial_secs)
                    .and_then(|p| self.check_held(&p, now).map(|()| p))
                    .and_then(|p| self.enact(p, now));
                if let Some((action, target)) = audited {
                    self.audit_outcome(&action, &target, &r);
                }
                if r.is_ok() {
                    self.vpn_edited(secrets, removed);
                }
                self.vpn_sync(now);
                let _ = reply.send(r);
            }
            Command::Reload { reply } => {
                // An explicit reload puts the kernel right whatever happened to it.
                self.engine.forget();
                let path = self.engine.saved_path().to_path_buf();
                let r = match Config::load(&path) {
                    Ok(cfg) => self
                        .core
                        .propose(Edit::Reload(Box::new(cfg)), now, self.opts.trial_secs)
                        .and_then(|p| self.enact(p, now)),
                    Err(e) => Err(EditError::Engine(EngineError::Load(e))),
                };
                self.audit_outcome("config.reload", &path.display().to_string(), &r);
                self.vpn_sync(now);
                let _ = reply.send(r);
            }
            Command::Snapshot { reply } => {
                let _ = reply.send(self.snapshot(now));
            }
            Command::Devices { reply } => {
                let _ = reply.send(self.devices(now));
            }
            Command::Confirm { reply } => {
                let had = self.core.confirm();
                if had {
                    self.save_trial();
                    eprintln!("portcullis: trial settings confirmed");
                }
                let _ = reply.send(had);
            }
            Command::Portmap(call, reply) => {
                let _ = reply.send(self.portmap(call, now));
            }
            Command::VpnProvider(generation, update) => self.vpn_provider(generation, update, now),
            Command::Shutdown => {}
        }
    }

    /// Writes an owner-side audit line for an edit's outcome.
    fn audit_outcome(&self, action: &str, target: &str, r: &Result<Applied, EditError>) {
        (self.opts.notify)(&Event {
            action: action.to_string(),
            target: target.to_string(),
            ok: r.is_ok(),
            detail: match r {
                Ok(_) => "from the console".to_string(),
                Err(e) => format!("refused, the config in force stays: {}", chain(e)),
            },
        });
    }

    /// Puts the table back if it was deleted or rebuilt behind the daemon's back.
    fn reconcile(&mut self, now: Timestamp) {
        if self.engine.intact() {
            return;
        }
        let r = match self.core.health {
            Health::Ok => self.engine.install(&self.core.config, now).map(|_| ()),
            Health::SafeMode { .. } => self.engine.install_safe(&self.core.config, now),
        };
        let detail = match &r {
            Ok(()) => {
                "the table was changed or removed outside portcullis; reinstalled".to_string()
            }
            Err(e) => format!(
                "the table was changed or removed outside portcullis; reinstalling failed: {}",
                chain(e)
            ),
        };
        eprintln!("portcullis: {detail}");
        (self.opts.notify)(&Event {
            action: "daemon.reconcile".into(),
            target: String::new(),
            ok: r.is_ok(),
            detail,
        });
    }

    /// Installs and saves a proposal, then makes it the state. A trial is saved before
    /// the settings it guards take effect, so a crash in between still rolls them back.
    fn enact(&mut self, p: Proposal, now: Timestamp) -> Result<Applied, EditError> {
        if let TrialChange::Set(t) = &p.trial {
            self.write_trial(Some(t));
        }
        let dns = dnsmasq::Rendered::of(self.opts.run_dir.as_deref(), &self.core.config);
        // Mappings the new config no longer allows close with it, in the same batch.
        let mut table = self.table.clone();
        let closed = table.reconcile(&self.policy(&p.config), now);
        self.engine.set_leases(table.mappings());
        let report = match self.engine.install(&p.config, now) {
            Ok(r) => r,
            // The new table committed but reads back differently (the engine already
            // re-applied once): it is what is in force, so it becomes the state and the
            // saved config, and the caller hears that it differs.
            Err(e @ EngineError::Differs(_)) => {
                let saved = self.engine.save(&p.config);
                self.core.commit(&p, now);
                dns.follow(&self.core.config);
                self.save_trial();
                self.table = table;
                self.save_leases();
                self.opts.services.want(&self.core.config);
                eprintln!("portcullis: {}", chain(&e));
                if let Err(s) = saved {
                    eprintln!("portcullis: {}", chain(&s));
                }
                return Err(EditError::Engine(e));
            }
            Err(e) => {
                self.engine.set_leases(self.table.mappings());
                // Put the trial file back to what is in force.
                self.save_trial();
                if let Some(ev) = &p.event {
                    (self.opts.notify)(&Event {
                        ok: false,
                        detail: format!("{}: {}", ev.detail, chain(&e)),
                        ..ev.clone()
                    });
                }
                return Err(match e {
                    EngineError::Invalid(r) => EditError::Invalid(r),
                    other => EditError::Engine(other),
                });
            }
        };
        let saved = self.engine.save(&p.config);
        // The kernel holds the new table now: the state must say so even if saving failed.
        self.core.commit(&p, now);
        dns.follow(&self.core.config);
        self.save_trial();
        self.table = table;
        self.save_leases();
        for (m, why) in closed {
            self.audit("upnp.close", leases::describe(&m), true, why);
        }
        self.opts.services.want(&self.core.config);
        if let Some(ev) = &p.event {
            eprintln!("portcullis: {} {}: {}", ev.action, ev.target, ev.detail);
            (self.opts.notify)(ev);
        }
        saved.map_err(EditError::Engine)?;
        Ok(Applied {
            report,
            trial_secs: self
                .core
                .trial
                .as_ref()
                .map(|t| t.deadline.0.saturating_sub(now.0)),
            etag: p.etag,
        })
    }

    /// Writes the trial file to match the state in force.
    fn save_trial(&self) {
        self.write_trial(self.core.trial.as_ref());
    }

    fn write_trial(&self, t: Option<&Trial>) {
        let Some(dir) = &self.opts.state_dir else {
            return;
        };
        let path = dir.join(TRIAL_FILE);
        let r = match t {
            Some(t) => store::save_atomic(
                &path,
                serde_json::to_string(t).unwrap_or_default().as_bytes(),
            )
            .map_err(|e| chain(&e)),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            },
        };
        if let Err(e) = r {
            eprintln!("portcullis: saving the trial state {}: {e}", path.display());
        }
    }

    /// Re-reads host facts; re-plans when they (or, `macs_changed`, the learned MACs of
    /// tunnel devices) changed.
    fn refresh_facts(&mut self, now: Timestamp, macs_changed: bool) {
        let Ok(f) = facts::gather(&self.core.config.wan.interface) else {
            return;
        };
        if f == self.facts && !macs_changed {
            return;
        }
        if f != self.facts {
            eprintln!(
                "portcullis: WAN addresses now {:?}; re-planning",
                f.wan_addrs
            );
        }
        self.facts = f;
        let r = match self.core.health {
            Health::Ok => self.engine.install(&self.core.config, now).map(|_| ()),
            Health::SafeMode { .. } => self.engine.install_safe(&self.core.config, now),
        };
        if let Err(e) = r {
            eprintln!("portcullis: re-planning failed: {}", chain(&e));
        }
    }
}

/// Reads a saved trial. An unreadable one cannot say what to roll back to: it is logged
/// and ignored (the settings in the saved config stay).
fn load_trial(path: &std::path::Path) -> Option<Trial> {
    let bytes = std::fs::read(path).ok()?;
    match store::json::<Trial>(&bytes) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!(
                "portcullis: {} is unreadable ({e}); it is ignored",
                path.display()
            );
            None
        }
    }
}

/// An error with its whole cause chain, for logs.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
