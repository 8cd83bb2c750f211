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

struct Owner {
    engine: Engine,
    config: Config,
    facts: HostFacts,
}

impl Owner {
    fn new(engine: Engine, config: Config) -> Owner {
        Owner {
            engine,
            config,
            facts: HostFacts::default(),
        }
    }

    fn run(mut self, rx: &Receiver<Command>) {
        self.install_current("start-up");
        loop {
            let now = Timestamp::now();
            self.expire(now);
            self.refresh_facts(now);
            let wait = match next_expiry(&self.config, now) {
                Some(t) => Duration::from_secs(t.0 - now.0).min(FACTS_POLL),
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
