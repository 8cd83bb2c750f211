//! Small intents the web API and the CLI send to the owner, and what can go wrong with
//! them. Each edit is applied inside the owner as one transaction against the config in
//! force, so two clients can never lose each other's changes through read-modify-write.

use serde::{Deserialize, Serialize};

use crate::config::{Config, Dhcp, Forward, Lan, Management, Report, Trigger, Upnp, Vpn, Wan};
use crate::engine::EngineError;

/// Which list an item lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Forward,
    Trigger,
}

impl Kind {
    /// The word users see: `forward`, `trigger`.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Forward => "forward",
            Kind::Trigger => "trigger",
        }
    }
}

/// The router-wide settings that can cut a browser off (so they change on trial).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub lan: Lan,
    pub wan: Wan,
    pub management: Management,
}

impl Settings {
    /// The settings part of a config.
    pub fn of(cfg: &Config) -> Settings {
        Settings {
            lan: cfg.lan.clone(),
            wan: cfg.wan.clone(),
            management: cfg.management.clone(),
        }
    }

    /// Writes these settings into `cfg`.
    pub fn put(&self, cfg: &mut Config) {
        cfg.lan = self.lan.clone();
        cfg.wan = self.wan.clone();
        cfg.management = self.management.clone();
    }
}

/// One change, as a caller means it. `if_match` is the ETag ([`etag`]) of the object as
/// the caller last read it; `None` means "whatever it is now" (the web API always sends
/// one, so a browser never overwrites a change it has not seen).
#[derive(Debug, Clone)]
pub enum Edit {
    /// Adds a forward; its name must be new.
    AddForward(Forward),
    /// Replaces (and may rename) the forward called `name`.
    ReplaceForward {
        name: String,
        if_match: Option<String>,
        forward: Forward,
    },
    DeleteForward {
        name: String,
        if_match: Option<String>,
    },
    AddTrigger(Trigger),
    ReplaceTrigger {
        name: String,
        if_match: Option<String>,
        trigger: Trigger,
    },
    DeleteTrigger {
        name: String,
        if_match: Option<String>,
    },
    /// Changes LAN/WAN/management settings on trial: unless confirmed in time, only
    /// these settings go back to what they were (later edits of forwards stay).
    Settings {
        if_match: Option<String>,
        settings: Settings,
    },
    /// Replaces the `upnp` section (mode and rules of port mappings). Mappings the new
    /// section no longer allows close in the same batch.
    Upnp {
        if_match: Option<String>,
        upnp: Upnp,
    },
    /// Replaces the `dhcp` section (none: no DHCP server), reservations included. Forwards
    /// that target a device follow its reservation in the same batch.
    Dhcp {
        if_match: Option<String>,
        dhcp: Option<Box<Dhcp>>,
    },
    /// Replaces the `vpn` section (none: no tunnel at all). With `secrets` (an import of
    /// the provider's file) the owner saves them to `vpn.key` once the new section is in
    /// force; without, the saved secrets stay.
    Vpn {
        if_match: Option<String>,
        vpn: Option<Box<Vpn>>,
        secrets: Option<crate::vpn::secrets::Secrets>,
    },
    /// Restores a backup: forwards and triggers at once, changed settings on trial.
    Restore(Box<Config>),
    /// Replaces the whole config and ends any trial (`portcullis apply`: it states the
    /// whole intent).
    Replace(Box<Config>),
    /// The saved file read again (SIGHUP): like `Replace`, but a running trial keeps its
    /// deadline and its settings to go back to (the file already holds the trial's).
    Reload(Box<Config>),
}

impl Edit {
    /// The audit-log action and target, e.g. (`forward.delete`, `web`).
    pub fn describe(&self) -> (String, String) {
        let (a, t) = match self {
            Edit::AddForward(f) => ("forward.add", f.name.clone()),
            Edit::ReplaceForward { name, forward, .. } => {
                ("forward.edit", renamed(name, &forward.name))
            }
            Edit::DeleteForward { name, .. } => ("forward.delete", name.clone()),
            Edit::AddTrigger(t) => ("trigger.add", t.name.clone()),
            Edit::ReplaceTrigger { name, trigger, .. } => {
                ("trigger.edit", renamed(name, &trigger.name))
            }
            Edit::DeleteTrigger { name, .. } => ("trigger.delete", name.clone()),
            Edit::Settings { .. } => ("settings.change", String::new()),
            Edit::Upnp { upnp, .. } => ("upnp.settings", format!("mode {}", upnp.mode)),
            Edit::Dhcp { dhcp, .. } => (
                "dhcp.settings",
                match dhcp {
                    Some(d) if d.enabled => format!(
                        "{}–{}, {} reservations",
                        d.start,
                        d.end,
                        d.reservations.len()
                    ),
                    Some(_) => "off".to_string(),
                    None => "removed".to_string(),
                },
            ),
            Edit::Vpn { vpn, secrets, .. } => (
                if secrets.is_some() {
                    "vpn.import"
                } else {
                    "vpn.settings"
                },
                match vpn {
                    Some(v) if v.enabled => format!("{} on", v.interface),
                    Some(v) => format!("{} off", v.interface),
                    None => "removed".to_string(),
                },
            ),
            Edit::Restore(_) => ("config.restore", String::new()),
            Edit::Replace(_) => ("config.apply", String::new()),
            Edit::Reload(_) => ("config.reload", String::new()),
        };
        (a.to_string(), t)
    }
}

fn renamed(old: &str, new: &str) -> String {
    if old == new {
        new.to_string()
    } else {
        format!("{old} → {new}")
    }
}

/// What a successful edit did.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Validation warnings of the config now in force.
    pub report: Report,
    /// Seconds until an unconfirmed trial rolls back, when the edit started or extended one.
    pub trial_secs: Option<u64>,
    /// ETag of the added or replaced object (or of the settings), for the next edit.
    pub etag: Option<String>,
}

/// Why an edit was refused. Nothing was installed or saved.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no {} named {name}", kind.noun())]
    NotFound { kind: Kind, name: String },
    #[error("no port-mapping request {0} is waiting (already decided, or dropped from the queue)")]
    NoSuchRequest(u64),
    #[error("a forward or trigger named {name} already exists")]
    Exists { name: String },
    /// The object changed since the caller read it: `current` is what it is now (None
    /// when it was deleted), `etag` its new ETag.
    #[error("{what} changed since it was read; reload and try again")]
    Conflict {
        what: String,
        current: Option<serde_json::Value>,
        etag: Option<String>,
    },
    #[error("config refused:\n{0}")]
    Invalid(Report),
    #[error("applying the change")]
    Engine(#[source] EngineError),
}

/// A weak ETag of any serialisable value: FNV-1a 64 of its JSON, quoted as HTTP wants.
/// Equal values give equal tags; it protects against lost updates, not against forgery.
pub fn etag<T: Serialize + ?Sized>(v: &T) -> String {
    let json = serde_json::to_vec(v).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}\"")
}
