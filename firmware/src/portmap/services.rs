//! Which port-mapping servers run: a supervisor thread starts the UPnP IGD and NAT-PMP/PCP
//! servers when the config's mode is not `off` (and the router is not in safe mode), stops
//! them when it becomes `off`, and restarts them when the LAN side changes. The daemon's
//! owner only sends it the config in force over a [`Link`]; it never waits for servers,
//! which themselves wait for the owner.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::config::{Config, UpnpMode};

/// Whether the servers listen, as the supervisor last found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Listening {
    pub listening: bool,
    /// Why not, when they should.
    pub error: Option<String>,
}

/// The owner's end: tell what to serve, read whether it is served.
#[derive(Debug, Clone, Default)]
pub struct Link {
    tx: Option<Sender<Config>>,
    state: Arc<Mutex<Listening>>,
}

/// The supervisor's end of a [`Link`].
#[derive(Debug)]
pub struct Receiving {
    pub rx: Receiver<Config>,
    pub state: Arc<Mutex<Listening>>,
}

impl Link {
    /// A connected pair.
    pub fn pair() -> (Link, Receiving) {
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(Mutex::new(Listening::default()));
        (
            Link {
                tx: Some(tx),
                state: Arc::clone(&state),
            },
            Receiving { rx, state },
        )
    }

    /// Asks for the servers `cfg` wants (none when `cfg.upnp.mode` is off). Never blocks.
    pub fn want(&self, cfg: &Config) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(cfg.clone());
        }
    }

    /// Asks for no servers at all (safe mode).
    pub fn none(&self, cfg: &Config) {
        let mut off = cfg.clone();
        off.upnp.mode = UpnpMode::Off;
        self.want(&off);
    }

    pub fn state(&self) -> Listening {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}
