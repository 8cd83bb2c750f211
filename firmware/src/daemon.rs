//! The daemon: one thread owns the netlink socket and the saved config; everyone else
//! (signal handling now, the HTTP UI later) sends it [`Command`]s with a reply channel.
//!
//! Besides commands it keeps state current: at a forward's expiry it removes the forward
//! from the saved config (the kernel already stopped forwarding by element timeout) and
//! when the WAN address changes it re-plans so hairpin NAT follows the new address.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::{Config, Report, Timestamp};
use crate::engine::{drop_expired, next_expiry, Engine, EngineError};
use crate::facts;
use crate::plan::HostFacts;
use crate::status::{self, Status};

/// How often host facts (the WAN address) are re-read when nothing else wakes the daemon.
const FACTS_POLL: Duration = Duration::from_secs(5);

/// Requests to the owner thread.
#[derive(Debug)]
pub enum Command {
    /// Validate, install and save a new config.
    Apply {
        config: Box<Config>,
        reply: Sender<Result<Report, EngineError>>,
    },
    /// Re-read the saved config from disk and install it.
    Reload {
        reply: Sender<Result<Report, EngineError>>,
    },
    /// Current status.
    Status {
        reply: Sender<Result<Status, EngineError>>,
    },
    /// The config currently in force.
    GetConfig { reply: Sender<Config> },
    /// Validate, install and save a config on trial: unless [`Command::Confirm`] arrives
    /// within `secs`, the config in force before the trial is installed and saved again.
    /// A trial started while another runs keeps the first one's previous config.
    ApplyTrial {
        config: Box<Config>,
        secs: u64,
        reply: Sender<Result<Report, EngineError>>,
    },
    /// Keep the config on trial; replies whether a trial was running.
    Confirm { reply: Sender<bool> },
    /// Whether a trial runs and when the last rollback happened.
    Trial { reply: Sender<TrialInfo> },
    /// Stop the owner thread (the ruleset stays installed).
    Shutdown,
}

/// A cheap, cloneable way to talk to the owner thread.
#[derive(Debug, Clone)]
pub struct Handle {
    tx: Sender<Command>,
}

/// The owner thread went away (it only stops on Shutdown).
#[derive(Debug, thiserror::Error)]
#[error("the daemon's owner thread is not running")]
pub struct Gone;

impl Handle {
    fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, Gone> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(make(tx)).map_err(|_| Gone)?;
        rx.recv().map_err(|_| Gone)
    }

    pub fn apply(&self, config: Config) -> Result<Result<Report, EngineError>, Gone> {
        self.call(|reply| Command::Apply {
            config: Box::new(config),
            reply,
        })
    }

    pub fn reload(&self) -> Result<Result<Report, EngineError>, Gone> {
        self.call(|reply| Command::Reload { reply })
    }

    pub fn status(&self) -> Result<Result<Status, EngineError>, Gone> {
        self.call(|reply| Command::Status { reply })
    }

    pub fn config(&self) -> Result<Config, Gone> {
        self.call(|reply| Command::GetConfig { reply })
    }

    pub fn apply_trial(
        &self,
        config: Config,
        secs: u64,
    ) -> Result<Result<Report, EngineError>, Gone> {
        self.call(|reply| Command::ApplyTrial {
            config: Box::new(config),
            secs,
            reply,
        })
    }

    pub fn confirm(&self) -> Result<bool, Gone> {
        self.call(|reply| Command::Confirm { reply })
    }

    pub fn trial(&self) -> Result<TrialInfo, Gone> {
        self.call(|reply| Command::Trial { reply })
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }
}

/// Starts the owner thread with an engine and the config loaded at start.
pub fn spawn(engine: Engine, config: Config) -> (Handle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let join = std::thread::Builder::new()
        .name("portcullis-owner".into())
        .spawn(move || Owner::new(engine, config).run(&rx))
        .expect("spawning the owner thread");
    (Handle { tx }, join)
}

/// State of apply-with-rollback, as the UI sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrialInfo {
    /// Seconds left before an unconfirmed trial is rolled back; None when no trial runs.
    pub remaining_secs: Option<u64>,
    /// When the last unconfirmed trial was rolled back.
    pub rolled_back_at: Option<Timestamp>,
}

/// A config on trial: what to go back to, and when.
#[derive(Debug)]
struct Trial {
    previous: Config,
    deadline: Timestamp,
}

struct Owner {
    engine: Engine,
    config: Config,
    facts: HostFacts,
    trial: Option<Trial>,
    rolled_back_at: Option<Timestamp>,
}

impl Owner {
    fn new(engine: Engine, config: Config) -> Owner {
        Owner {
            engine,
            config,
            facts: HostFacts::default(),
            trial: None,
            rolled_back_at: None,
        }
    }

    fn run(mut self, rx: &Receiver<Command>) {
        self.install_current("start-up");
        loop {
            let now = Timestamp::now();
            self.expire(now);
            self.rollback_if_due(now);
            self.refresh_facts(now);
            let next = next_expiry(&self.config, now)
                .into_iter()
                .chain(self.trial.as_ref().map(|t| t.deadline))
                .min();
            let wait = match next {
                Some(t) => Duration::from_secs(t.0.saturating_sub(now.0).max(1)).min(FACTS_POLL),
                None => FACTS_POLL,
            };
            match rx.recv_timeout(wait) {
                Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(cmd) => self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        let now = Timestamp::now();
        match cmd {
            Command::Apply { config, reply } => {
                let r = self.engine.apply_and_save(&config, now);
                if r.is_ok() {
                    self.config = *config;
                    eprintln!("portcullis: applied and saved a new config");
                }
                let _ = reply.send(r);
            }
            Command::Reload { reply } => {
                let r = match Config::load(self.engine.saved_path()) {
                    Ok(cfg) => self
                        .engine
                        .install(&cfg, now)
                        .inspect(|_| self.config = cfg),
                    Err(e) => Err(EngineError::Load(e)),
                };
                let _ = reply.send(r);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status(now));
            }
            Command::GetConfig { reply } => {
                let _ = reply.send(self.config.clone());
            }
            Command::ApplyTrial {
                config,
                secs,
                reply,
            } => {
                let r = self.engine.apply_and_save(&config, now);
                if r.is_ok() {
                    let previous = std::mem::replace(&mut self.config, *config);
                    let previous = match self.trial.take() {
                        Some(t) => t.previous,
                        None => previous,
                    };
                    self.trial = Some(Trial {
                        previous,
                        deadline: Timestamp(now.0 + secs),
                    });
                    eprintln!("portcullis: applied a config on trial for {secs} s");
                }
                let _ = reply.send(r);
            }
            Command::Confirm { reply } => {
                let had = self.trial.take().is_some();
                if had {
                    eprintln!("portcullis: trial config confirmed");
                }
                let _ = reply.send(had);
            }
            Command::Trial { reply } => {
                let _ = reply.send(TrialInfo {
                    remaining_secs: self
                        .trial
                        .as_ref()
                        .map(|t| t.deadline.0.saturating_sub(now.0)),
                    rolled_back_at: self.rolled_back_at,
                });
            }
            Command::Shutdown => {}
        }
    }

    fn status(&mut self, now: Timestamp) -> Result<Status, EngineError> {
        let view = crate::readback::kernel_view(self.engine.nft(), crate::plan::TABLE)
            .map_err(EngineError::Read)?;
        Ok(status::compute(&self.config, &view, now))
    }

    fn install_current(&mut self, why: &str) {
        let now = Timestamp::now();
        if let Ok(f) = facts::gather(&self.config.wan.interface) {
            self.facts = f;
        }
        match self.engine.install(&self.config, now) {
            Ok(_) => eprintln!("portcullis: ruleset installed ({why})"),
            Err(e) => eprintln!(
                "portcullis: installing the ruleset ({why}) failed: {}",
                chain(&e)
            ),
        }
    }

    /// Removes forwards whose time has come from the saved config. The kernel has already
    /// closed them (element timeout); this keeps the config and UI honest.
    fn expire(&mut self, now: Timestamp) {
        let mut cfg = self.config.clone();
        let gone = drop_expired(&mut cfg, now);
        if gone.is_empty() {
            return;
        }
        match self.engine.save(&cfg) {
            Ok(()) => {
                eprintln!(
                    "portcullis: forward(s) expired and removed: {}",
                    gone.join(", ")
                );
                self.config = cfg;
                self.install_current("expiry");
            }
            Err(e) => eprintln!("portcullis: saving after expiry failed: {}", chain(&e)),
        }
    }

    /// Puts the config in force before an unconfirmed trial back, installed and saved.
    fn rollback_if_due(&mut self, now: Timestamp) {
        if self.trial.as_ref().is_none_or(|t| t.deadline > now) {
            return;
        }
        let Some(trial) = self.trial.take() else {
            return;
        };
        match self.engine.apply_and_save(&trial.previous, now) {
            Ok(_) => {
                eprintln!("portcullis: trial not confirmed; previous config restored");
                self.config = trial.previous;
                self.rolled_back_at = Some(now);
            }
            Err(e) => {
                eprintln!("portcullis: rolling back the trial failed: {}", chain(&e));
                // Try again at the next wake-up rather than keep an unconfirmed config.
                self.trial = Some(trial);
            }
        }
    }

    fn refresh_facts(&mut self, now: Timestamp) {
        let Ok(f) = facts::gather(&self.config.wan.interface) else {
            return;
        };
        if f != self.facts {
            eprintln!(
                "portcullis: WAN addresses now {:?}; re-planning",
                f.wan_addrs
            );
            self.facts = f;
            if let Err(e) = self.engine.install_with(&self.config, &self.facts, now) {
                eprintln!("portcullis: re-planning failed: {}", chain(&e));
            }
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
