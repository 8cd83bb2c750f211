//! The owner's side of the WireGuard tunnel: it converges the kernel's tunnel (link,
//! device, addresses, policy routing) to the config and the saved secrets, runs the
//! provider's port-forwarding client while one is configured, re-plans the ruleset when
//! the provider's port changes or its lease is renewed, and audits what happens.
//!
//! The firewall side (kill switch, Port Fail guard) is in the ruleset the engine installs,
//! so it holds whatever this part does or fails to do, and while the daemon is down.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::time::Instant;

use super::{chain, Command, Event, Health, Owner};
use crate::config::{Timestamp, Vpn};
use crate::vpn::provider::Event as PortEvent;
use crate::vpn::provider_io::{self, ProviderHandle, Update};
use crate::vpn::secrets::{self, Secrets};
use crate::vpn::tunnel::{self, TunnelPlan};
use crate::vpn::view::{self, PortForwardView, VpnView, STALE_AFTER_SECS};

/// The owner's tunnel state.
pub(super) struct OwnerVpn {
    secrets: Option<Secrets>,
    /// `vpn.key` beside the saved config; none in tests without a state directory.
    secrets_path: Option<PathBuf>,
    /// The tunnel as last installed (interface, table) and the plan, if installed.
    installed: Option<TunnelPlan>,
    /// Why the tunnel is not as configured.
    error: Option<String>,
    provider: Option<Provider>,
    /// The provider's port and the end of its lease.
    held: Option<(u16, Instant)>,
    health: String,
    /// Whether the last look saw a recent handshake (for connect/disconnect audit lines).
    connected: bool,
    /// Generation of the last provider client started.
    generation: u64,
    /// A tunnel (interface, table) an earlier run may have left in the kernel: the saved
    /// config's, until this run installs its own or removes that one.
    left_over: Option<(String, u32)>,
    tx: Sender<Command>,
}

struct Provider {
    /// Tells its reports from those of a client it replaced.
    generation: u64,
    handle: ProviderHandle,
    ifname: String,
    gateway: Ipv4Addr,
}

impl OwnerVpn {
    pub(super) fn new(
        state_dir: Option<&std::path::Path>,
        config: Option<&Vpn>,
        tx: Sender<Command>,
    ) -> OwnerVpn {
        let secrets_path = state_dir.map(|d| d.join("vpn.key"));
        let mut error = None;
        let secrets = match secrets_path.as_deref().map(secrets::load) {
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                error = Some(chain(&e));
                None
            }
            None => None,
        };
        OwnerVpn {
            secrets,
            secrets_path,
            installed: None,
            error,
            provider: None,
            held: None,
            health: String::new(),
            connected: false,
            generation: 0,
            left_over: config.map(|v| (v.interface.clone(), v.table)),
            tx,
        }
    }
}

impl Owner {
    fn vpn_event(&self, action: &str, target: &str, ok: bool, detail: String) {
        eprintln!("portcullis: {action} {target}: {detail}");
        (self.opts.notify)(&Event {
            action: action.to_string(),
            target: target.to_string(),
            ok,
            detail,
        });
    }

    /// After an edit of the `vpn` section is in force: keeps or forgets the secrets.
    pub(super) fn vpn_edited(&mut self, secrets: Option<Secrets>, removed: bool) {
        let path = self.vpn.secrets_path.clone();
        if let Some(s) = secrets {
            if let Some(p) = &path {
                if let Err(e) = secrets::save(p, &s) {
                    self.vpn.error = Some(format!("saving the private key: {}", chain(&e)));
                }
            }
            self.vpn.secrets = Some(s);
        } else if removed {
            if let Some(p) = &path {
                if let Err(e) = secrets::remove(p) {
                    eprintln!("portcullis: removing {}: {}", p.display(), chain(&e));
                }
            }
            self.vpn.secrets = None;
        }
    }

    /// Converges the kernel's tunnel and the provider client to the config in force.
    pub(super) fn vpn_sync(&mut self, now: Timestamp) {
        let cfg = self.core.config.vpn.clone();
        let want = match (&cfg, &self.vpn.secrets) {
            (Some(v), Some(s)) if v.enabled => match tunnel::plan(v, s) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.vpn.error = Some(chain(&e));
                    None
                }
            },
            (Some(v), None) if v.enabled => {
                self.vpn.error = Some(
                    "no private key stored (vpn.key): import the provider's file again".into(),
                );
                None
            }
            _ => None,
        };
        if want.is_none() {
            self.vpn_stop_provider(now);
            if let Some(old) = self.vpn.installed.take() {
                match tunnel::remove(&old.ifname, old.table) {
                    Ok(()) => {
                        self.vpn_event("vpn.down", &old.ifname, true, "tunnel removed".into())
                    }
                    Err(e) => self.vpn_event("vpn.down", &old.ifname, false, chain(&e)),
                }
                self.vpn.connected = false;
            } else if let Some((ifname, table)) = self.vpn.left_over.take() {
                // Switched off or removed after a restart: what the last run installed goes.
                if matches!(tunnel::read(&ifname), Ok(Some(_))) {
                    match tunnel::remove(&ifname, table) {
                        Ok(()) => {
                            self.vpn_event("vpn.down", &ifname, true, "tunnel removed".into())
                        }
                        Err(e) => self.vpn_event("vpn.down", &ifname, false, chain(&e)),
                    }
                }
            }
            if cfg.as_ref().is_none_or(|v| !v.enabled) {
                self.vpn.error = None;
            }
            return;
        }
        let Some(want) = want else { return };
        if self.vpn.installed.as_ref() != Some(&want) {
            // Another interface or table than before: the old one goes first.
            if let Some(old) = self.vpn.installed.take() {
                if old.ifname != want.ifname || old.table != want.table {
                    let _ = tunnel::remove(&old.ifname, old.table);
                }
            }
            match tunnel::install(&want) {
                Ok(()) => {
                    self.vpn_event(
                        "vpn.configure",
                        &want.ifname,
                        true,
                        "tunnel configured over netlink".into(),
                    );
                    self.vpn.error = None;
                    // An earlier run's tunnel under another name or table goes.
                    if let Some((i, t)) = self.vpn.left_over.take() {
                        if i != want.ifname || t != want.table {
                            let _ = tunnel::remove(&i, t);
                        }
                    }
                    self.vpn.installed = Some(want);
                }
                Err(e) => {
                    let why = chain(&e);
                    if self.vpn.error.as_deref() != Some(why.as_str()) {
                        self.vpn_event("vpn.configure", &want.ifname, false, why.clone());
                    }
                    // Nothing half-made stays behind (a link whose device was refused);
                    // the kill switch holds meanwhile and the next edit or look retries.
                    let _ = tunnel::remove(&want.ifname, want.table);
                    self.vpn.error = Some(why);
                    self.vpn_stop_provider(now);
                    return;
                }
            }
        }
        self.vpn_want_provider(cfg.as_ref(), now);
    }

    /// Starts, restarts or stops the provider client as the config says.
    fn vpn_want_provider(&mut self, cfg: Option<&Vpn>, now: Timestamp) {
        let want = cfg.and_then(|v| {
            let pf = v.port_forward.as_ref()?;
            v.enabled.then(|| (v.interface.clone(), pf.gateway))
        });
        let same = match (&self.vpn.provider, &want) {
            (Some(p), Some((i, g))) => p.ifname == *i && p.gateway == *g,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.vpn_stop_provider(now);
        let Some((ifname, gateway)) = want else {
            return;
        };
        let tx = self.vpn.tx.clone();
        self.vpn.generation += 1;
        let generation = self.vpn.generation;
        let report = Box::new(move |u: Update| {
            let _ = tx.send(Command::VpnProvider(generation, u));
        });
        match provider_io::spawn(ifname.clone(), gateway, report) {
            Ok(handle) => {
                self.vpn.health = "asking the provider for a port".into();
                self.vpn.provider = Some(Provider {
                    generation,
                    handle,
                    ifname,
                    gateway,
                })
            }
            Err(e) => self.vpn.health = format!("provider client not started: {}", chain(&e)),
        }
    }

    fn vpn_stop_provider(&mut self, now: Timestamp) {
        if let Some(p) = self.vpn.provider.take() {
            p.handle.stop();
        }
        self.vpn.health.clear();
        self.vpn_set_port(None, now);
    }

    /// Plans the provider's port (or none) into the ruleset: a delta of elements.
    fn vpn_set_port(&mut self, held: Option<(u16, Instant)>, now: Timestamp) {
        let held = match self.core.health {
            Health::Ok => held,
            // In safe mode nothing is forwarded.
            Health::SafeMode { .. } => None,
        };
        if held == self.vpn.held {
            return;
        }
        self.vpn.held = held;
        self.engine.set_vpn_port(held);
        if let Health::Ok = self.core.health {
            if let Err(e) = self
                .engine
                .install_with(&self.core.config, &self.facts, now)
            {
                self.vpn_event(
                    "vpn.port",
                    "",
                    false,
                    format!("installing the provider's port: {}", chain(&e)),
                );
            }
        }
    }

    /// A report of the provider client.
    pub(super) fn vpn_provider(&mut self, generation: u64, u: Update, now: Timestamp) {
        // Reports queued by a client that was stopped since must not wire its port.
        if self.vpn.provider.as_ref().map(|p| p.generation) != Some(generation) {
            return;
        }
        let to = self
            .core
            .config
            .vpn
            .as_ref()
            .and_then(|v| v.port_forward.as_ref())
            .map(|pf| view::target(pf, u.held.map(|h| h.0)))
            .unwrap_or_default();
        for e in &u.events {
            let (action, ok, detail) = match e {
                PortEvent::Granted { port } => {
                    ("vpn.port", true, format!("provider port {port} -> {to}"))
                }
                PortEvent::Changed { old, new } => (
                    "vpn.port_change",
                    true,
                    format!("provider port {old} -> {new}; {old} closed, {new} -> {to}"),
                ),
                PortEvent::Refused { code } => (
                    "vpn.port_refused",
                    false,
                    format!("the provider's gateway refused (result code {code})"),
                ),
                PortEvent::Silent => (
                    "vpn.port_silent",
                    false,
                    "no answer from the provider's gateway".into(),
                ),
                PortEvent::Lost { port } => (
                    "vpn.port_closed",
                    true,
                    format!("provider port {port} closed: its lease ended unrenewed"),
                ),
                PortEvent::EpochReset => (
                    "vpn.port_reset",
                    false,
                    "the provider's gateway restarted; asking again".into(),
                ),
            };
            self.vpn_event(action, "", ok, detail);
        }
        self.vpn.health = u.health;
        let held = u.held.map(|(p, left)| (p, Instant::now() + left));
        // A renewal moves the lease end: the kernel's timeout must move with it.
        self.vpn_set_port(held, now);
    }

    /// Learns the MACs of the tunnel devices chosen by address from the neighbour table
    /// and re-plans when they changed, so their IPv6 is recognised (and kept from the WAN
    /// by the kill switch) too. Returns whether they changed.
    pub(super) fn vpn_learn_macs(&mut self) -> bool {
        let learned = match &self.core.config.vpn {
            Some(v) if v.enabled && !v.devices.all && !v.devices.hosts.is_empty() => {
                crate::portmap::neigh::macs_in(&v.devices.hosts)
            }
            _ => Vec::new(),
        };
        if learned.as_slice() == self.engine.vpn_learned_macs() {
            return false;
        }
        self.engine.set_vpn_learned_macs(learned);
        true
    }

    /// The periodic look (every few seconds): the link still there, handshakes for the
    /// connect/disconnect audit lines and the provider client.
    pub(super) fn vpn_check(&mut self, now: Timestamp) {
        let Some(p) = &self.vpn.installed else { return };
        let ifname = p.ifname.clone();
        let state = match tunnel::read(&ifname) {
            Ok(s) => s,
            Err(e) => {
                self.vpn.error = Some(chain(&e));
                return;
            }
        };
        let Some(state) = state else {
            self.vpn_event(
                "vpn.reconcile",
                &ifname,
                false,
                "the tunnel's link was removed outside portcullis; reinstalling".into(),
            );
            self.vpn.installed = None;
            self.vpn_sync(now);
            return;
        };
        let last = state.peers.first().and_then(|p| p.last_handshake_unix_secs);
        let connected = last.is_some_and(|t| now.0.saturating_sub(t) <= STALE_AFTER_SECS);
        if connected != self.vpn.connected {
            self.vpn.connected = connected;
            if connected {
                self.vpn_event(
                    "vpn.connect",
                    &ifname,
                    true,
                    "handshake with the provider".into(),
                );
                if let Some(p) = &self.vpn.provider {
                    p.handle.tunnel_up();
                }
            } else {
                self.vpn_event(
                    "vpn.disconnect",
                    &ifname,
                    false,
                    format!("no handshake for {STALE_AFTER_SECS} s; tunnel devices stay cut off"),
                );
                if let Some(p) = &self.vpn.provider {
                    p.handle.tunnel_down();
                }
            }
        }
    }

    /// The tunnel as shown, with the ruleset's counters.
    pub(super) fn vpn_view(
        &self,
        counters: &std::collections::HashMap<String, (u64, u64)>,
        now: Timestamp,
    ) -> Option<VpnView> {
        let v = self.core.config.vpn.as_ref()?;
        let kernel = tunnel::read(&v.interface).ok().flatten();
        let pf = v.port_forward.as_ref().map(|pf| {
            let inst = Instant::now();
            let held = self.vpn.held.filter(|h| h.1 > inst);
            PortForwardView {
                port: held.map(|h| h.0),
                to: view::target(pf, held.map(|h| h.0)),
                health: if self.vpn.health.is_empty() {
                    "waiting for the tunnel".into()
                } else {
                    self.vpn.health.clone()
                },
                expires_in_secs: held.map(|h| h.1.duration_since(inst).as_secs()),
            }
        });
        Some(view::view(
            v,
            kernel.as_ref(),
            pf,
            counters,
            self.vpn.secrets.is_some(),
            self.vpn.error.clone(),
            now.0,
        ))
    }
}
