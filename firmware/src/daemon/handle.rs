//! How everyone else talks to the owner thread: [`Command`]s with a reply channel, sent
//! through a cloneable [`Handle`] that gives up after a timeout, and the [`Snapshot`] the
//! views read.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

use super::leases::{PortmapCall, PortmapReply, PortmapView};
use super::{Applied, Edit, EditError, Health};
use crate::config::{Config, Timestamp};
use crate::status::Status;

/// How long a caller waits for the owner before giving up (a full apply of 10,000
/// forwards takes about 0.4 s; this only trips if the owner is stuck).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Requests to the owner thread.
pub enum Command {
    /// One change, applied as a transaction.
    Edit {
        edit: Edit,
        reply: Sender<Result<Applied, EditError>>,
    },
    /// Config, status, trial and health read at one moment.
    Snapshot { reply: Sender<Snapshot> },
    /// The LAN's devices (leases, neighbour table, reservations).
    Devices {
        reply: Sender<super::devices::DevicesView>,
    },
    /// Re-read the saved config from disk and install it.
    Reload {
        reply: Sender<Result<Applied, EditError>>,
    },
    /// Keep the settings on trial; replies whether a trial was running.
    Confirm { reply: Sender<bool> },
    /// Port mappings: a protocol server's request, or the owner's revoke and decisions.
    Portmap(PortmapCall, Sender<PortmapReply>),
    /// A report of the VPN provider's port-forwarding client.
    /// The number is the client's generation: reports of a client that was since
    /// replaced (another gateway or interface) are ignored.
    VpnProvider(u64, crate::vpn::provider_io::Update),
    /// Stop the owner thread (the ruleset stays installed).
    Shutdown,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Edit { .. } => "Edit",
            Command::Snapshot { .. } => "Snapshot",
            Command::Devices { .. } => "Devices",
            Command::Reload { .. } => "Reload",
            Command::Confirm { .. } => "Confirm",
            Command::Portmap(..) => "Portmap",
            Command::VpnProvider(..) => "VpnProvider",
            Command::Shutdown => "Shutdown",
        })
    }
}

/// Everything a view needs, taken at one moment by the owner, so names and states can
/// never be paired across two reads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Snapshot {
    pub config: Config,
    /// What the kernel holds, against the config; Err when the table could not be read.
    pub status: Result<Status, String>,
    pub trial: TrialInfo,
    pub health: Health,
    /// Live port mappings, the approval queue, the external address.
    pub portmap: PortmapView,
    /// The WireGuard tunnel, when the config has one.
    pub vpn: Option<crate::vpn::view::VpnView>,
    pub taken_at: Timestamp,
}

/// Why a call to the owner failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the daemon's owner thread is not running")]
    Gone,
    #[error(
        "the daemon did not answer within {} s; it is busy, and a change sent may still be applied",
        CALL_TIMEOUT.as_secs()
    )]
    Timeout,
}

/// A cheap, cloneable way to talk to the owner thread.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(super) tx: Sender<Command>,
}

impl Handle {
    pub(super) fn call<T>(&self, make: impl FnOnce(Sender<T>) -> Command) -> Result<T, CallError> {
        let (tx, rx) = mpsc::channel();
        self.tx.send(make(tx)).map_err(|_| CallError::Gone)?;
        rx.recv_timeout(CALL_TIMEOUT).map_err(|e| match e {
            RecvTimeoutError::Timeout => CallError::Timeout,
            RecvTimeoutError::Disconnected => CallError::Gone,
        })
    }

    /// Applies one edit inside the owner.
    pub fn edit(&self, edit: Edit) -> Result<Result<Applied, EditError>, CallError> {
        self.call(|reply| Command::Edit { edit, reply })
    }

    pub fn snapshot(&self) -> Result<Snapshot, CallError> {
        self.call(|reply| Command::Snapshot { reply })
    }

    /// The LAN's devices, read by the owner.
    pub fn devices(&self) -> Result<super::devices::DevicesView, CallError> {
        self.call(|reply| Command::Devices { reply })
    }

    /// The config in force.
    pub fn config(&self) -> Result<Config, CallError> {
        Ok(self.snapshot()?.config)
    }

    pub fn status(&self) -> Result<Result<Status, String>, CallError> {
        Ok(self.snapshot()?.status)
    }

    pub fn trial(&self) -> Result<TrialInfo, CallError> {
        Ok(self.snapshot()?.trial)
    }

    pub fn reload(&self) -> Result<Result<Applied, EditError>, CallError> {
        self.call(|reply| Command::Reload { reply })
    }

    pub fn confirm(&self) -> Result<bool, CallError> {
        self.call(|reply| Command::Confirm { reply })
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
    }
}

/// State of the settings trial, as the UI sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrialInfo {
    /// Seconds left before unconfirmed settings are rolled back; None when no trial runs.
    pub remaining_secs: Option<u64>,
    /// When the last unconfirmed trial was rolled back.
    pub rolled_back_at: Option<Timestamp>,
}

impl super::Owner {
    /// Everything a view needs, read at one moment.
    pub(super) fn snapshot(&mut self, now: Timestamp) -> Snapshot {
        let view = crate::readback::kernel_view(self.engine.nft(), crate::plan::TABLE);
        let vpn = self.vpn_view(
            view.as_ref()
                .map(|v| &v.counters)
                .unwrap_or(&Default::default()),
            now,
        );
        let status = view
            .map(|view| crate::status::compute(&self.core.config, &view, now))
            .map_err(|e| super::chain(&e));
        Snapshot {
            config: self.core.config.clone(),
            status,
            trial: TrialInfo {
                remaining_secs: self
                    .core
                    .trial
                    .as_ref()
                    .map(|t| t.deadline.0.saturating_sub(now.0)),
                rolled_back_at: self.core.rolled_back_at,
            },
            health: self.core.health.clone(),
            portmap: {
                let listening = self.opts.services.state();
                PortmapView {
                    // In safe mode no mapping is installed, whatever the table holds.
                    mappings: match self.core.health {
                        Health::Ok => self.table.mappings(),
                        Health::SafeMode { .. } => Vec::new(),
                    },
                    pending: self.table.pending(),
                    external: self.external(),
                    listening: listening.listening,
                    listen_error: listening.error,
                }
            },
            vpn,
            taken_at: now,
        }
    }
}
