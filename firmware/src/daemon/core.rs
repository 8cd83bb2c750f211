//! The owner's decisions, without I/O: given the state, an event (an edit, the clock) and
//! the time, what config should be installed and saved next, and what the audit log
//! should say. The shell in `mod.rs` installs a [`Proposal`] and, only if the kernel took
//! it, [`Core::commit`]s it. Unit-tested without root.

use serde::{Deserialize, Serialize};

use super::edit::{etag, Edit, EditError, Kind, Settings};
use crate::config::{validate, Config, Forward, Report, Severity, Timestamp, Trigger};
use crate::engine::{drop_expired, next_expiry};

/// A settings change on trial: what to put back, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trial {
    /// The settings before the first unconfirmed change.
    pub previous: Settings,
    pub deadline: Timestamp,
}

/// Whether the router runs the owner's config or the safe base ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// The config in force is installed.
    Ok,
    /// The config could not be installed (`reason`); the safe base ruleset is in force:
    /// nothing forwarded, the WAN reaches nothing, the UI answers on the LAN only.
    SafeMode { reason: String },
}

/// What happens to the trial when a proposal is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialChange {
    Keep,
    Set(Trial),
    Clear,
}

/// An audit-log line the owner writes itself (rollback, expiry, start-up problems).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub action: String,
    pub target: String,
    pub ok: bool,
    pub detail: String,
}

/// A candidate next state.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub config: Config,
    pub trial: TrialChange,
    /// What the audit log says once it is in force.
    pub event: Option<Event>,
    /// ETag of the object the edit created or replaced.
    pub etag: Option<String>,
}

/// The owner's state.
#[derive(Debug, Clone)]
pub struct Core {
    /// The config in force (in safe mode: the config the owner tried to install).
    pub config: Config,
    pub trial: Option<Trial>,
    pub health: Health,
    pub rolled_back_at: Option<Timestamp>,
}

impl Core {
    pub fn new(config: Config, trial: Option<Trial>, health: Health) -> Core {
        Core {
            config,
            trial,
            health,
            rolled_back_at: None,
        }
    }

    /// Turns an edit into a validated candidate config. `trial_secs` is the trial length
    /// for settings changes.
    pub fn propose(
        &self,
        edit: Edit,
        now: Timestamp,
        trial_secs: u64,
    ) -> Result<Proposal, EditError> {
        let mut cfg = self.config.clone();
        // Forwards past their expiry are gone from the kernel already; the next tick
        // removes them from the config, and they must not make an unrelated edit fail.
        drop_expired(&mut cfg, now);
        let mut trial = TrialChange::Keep;
        let mut tag = None;
        match edit {
            Edit::AddForward(f) => tag = Some(add(&mut cfg, f)?),
            Edit::ReplaceForward {
                name,
                if_match,
                forward,
            } => tag = Some(replace(&mut cfg, &name, if_match.as_deref(), forward)?),
            Edit::DeleteForward { name, if_match } => {
                delete::<Forward>(&mut cfg, &name, if_match.as_deref())?;
            }
            Edit::AddTrigger(t) => tag = Some(add(&mut cfg, t)?),
            Edit::ReplaceTrigger {
                name,
                if_match,
                trigger,
            } => tag = Some(replace(&mut cfg, &name, if_match.as_deref(), trigger)?),
            Edit::DeleteTrigger { name, if_match } => {
                delete::<Trigger>(&mut cfg, &name, if_match.as_deref())?;
            }
            Edit::Settings { if_match, settings } => {
                let before = Settings::of(&cfg);
                check_match(&before, if_match.as_deref(), "the settings")?;
                settings.put(&mut cfg);
                tag = Some(etag(&settings));
                trial = self.trial_for(before, &settings, now, trial_secs);
            }
            Edit::Upnp { if_match, upnp } => {
                check_match(&cfg.upnp, if_match.as_deref(), "the UPnP settings")?;
                tag = Some(etag(&upnp));
                cfg.upnp = upnp;
            }
            Edit::Dhcp { if_match, dhcp } => {
                check_match(&cfg.dhcp, if_match.as_deref(), "the DHCP settings")?;
                let dhcp = dhcp.map(|d| *d);
                tag = Some(etag(&dhcp));
                cfg.dhcp = dhcp;
            }
            Edit::Vpn { if_match, vpn, .. } => {
                check_match(&cfg.vpn, if_match.as_deref(), "the VPN settings")?;
                let vpn = vpn.map(|v| *v);
                tag = Some(etag(&vpn));
                cfg.vpn = vpn;
            }
            Edit::Restore(new) => {
                let before = Settings::of(&cfg);
                let after = Settings::of(&new);
                cfg = *new;
                trial = self.trial_for(before, &after, now, trial_secs);
            }
            Edit::Replace(new) => {
                cfg = *new;
                trial = TrialChange::Clear;
            }
            Edit::Reload(new) => cfg = *new,
        }
        let report = validate(&cfg, now);
        if report.has_errors() {
            return Err(EditError::Invalid(report));
        }
        Ok(Proposal {
            config: cfg,
            trial,
            event: None,
            etag: tag,
        })
    }

    /// The trial a settings change leads to: a new one remembering `before`, or the
    /// running one (which keeps the settings of before its first change) with a new
    /// deadline. A change that changes nothing starts none.
    fn trial_for(
        &self,
        before: Settings,
        after: &Settings,
        now: Timestamp,
        secs: u64,
    ) -> TrialChange {
        if before == *after && self.trial.is_none() {
            return TrialChange::Keep;
        }
        let previous = match &self.trial {
            Some(t) => t.previous.clone(),
            None => before,
        };
        TrialChange::Set(Trial {
            previous,
            deadline: Timestamp(now.0.saturating_add(secs)),
        })
    }

    /// What the clock demands at `now`, if anything: an unconfirmed trial rolled back
    /// (first), or expired forwards removed from the config.
    pub fn due(&self, now: Timestamp) -> Option<Proposal> {
        if let Some(t) = self.trial.as_ref().filter(|t| t.deadline <= now) {
            return Some(self.rollback(t, now));
        }
        let mut cfg = self.config.clone();
        let gone = drop_expired(&mut cfg, now);
        if gone.is_empty() {
            return None;
        }
        Some(Proposal {
            config: cfg,
            trial: TrialChange::Keep,
            event: Some(Event {
                action: "forward.expire".into(),
                target: gone.join(", "),
                ok: true,
                detail: "expiry time reached".into(),
            }),
            etag: None,
        })
    }

    /// Puts back only the trial's settings. If forwards or triggers edited since no longer
    /// fit the old settings (say, a host outside the old LAN subnet), they are disabled —
    /// never deleted — and the audit line names them.
    fn rollback(&self, t: &Trial, now: Timestamp) -> Proposal {
        let mut cfg = self.config.clone();
        drop_expired(&mut cfg, now);
        t.previous.put(&mut cfg);
        let kept = keep_dhcp_subnets(&mut cfg, &self.config.lan.subnets);
        let report = validate(&cfg, now);
        let disabled = disable_misfits(&mut cfg, &report);
        let mut detail = "trial not confirmed in time; previous settings restored".to_string();
        if !kept.is_empty() {
            detail.push_str(&format!(
                "; kept LAN subnet {} (the DHCP section, edited since, uses it)",
                kept.join(", ")
            ));
        }
        if !disabled.is_empty() {
            detail.push_str(&format!(
                "; disabled (do not fit them): {}",
                disabled.join(", ")
            ));
        }
        Proposal {
            config: cfg,
            trial: TrialChange::Clear,
            event: Some(Event {
                action: "trial.rollback".into(),
                target: String::new(),
                ok: true,
                detail,
            }),
            etag: None,
        }
    }

    /// Makes a proposal the state (call only after it was installed and saved).
    pub fn commit(&mut self, p: &Proposal, now: Timestamp) {
        self.config = p.config.clone();
        match &p.trial {
            TrialChange::Keep => {}
            TrialChange::Set(t) => self.trial = Some(t.clone()),
            TrialChange::Clear => {
                if p.event
                    .as_ref()
                    .is_some_and(|e| e.action == "trial.rollback")
                {
                    self.rolled_back_at = Some(now);
                }
                self.trial = None;
            }
        }
        self.health = Health::Ok;
    }

    /// Confirms a running trial; returns whether one ran.
    pub fn confirm(&mut self) -> bool {
        self.trial.take().is_some()
    }

    /// When the owner must wake up next on its own: a trial deadline or an expiry.
    pub fn next_wake(&self, now: Timestamp) -> Option<Timestamp> {
        next_expiry(&self.config, now)
            .into_iter()
            .chain(self.trial.as_ref().map(|t| t.deadline))
            .min()
    }
}

fn taken(cfg: &Config, name: &str) -> Result<(), EditError> {
    if cfg.forwards.iter().any(|f| f.name == name) || cfg.triggers.iter().any(|t| t.name == name) {
        return Err(EditError::Exists {
            name: name.to_string(),
        });
    }
    Ok(())
}

/// A forward or a trigger: a named item of one of the config's lists.
trait Item: Serialize + Sized {
    const KIND: Kind;
    fn name(&self) -> &str;
    fn list(cfg: &mut Config) -> &mut Vec<Self>;
}

impl Item for Forward {
    const KIND: Kind = Kind::Forward;
    fn name(&self) -> &str {
        &self.name
    }
    fn list(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.forwards
    }
}

impl Item for Trigger {
    const KIND: Kind = Kind::Trigger;
    fn name(&self) -> &str {
        &self.name
    }
    fn list(cfg: &mut Config) -> &mut Vec<Self> {
        &mut cfg.triggers
    }
}

/// Appends a new item; returns its ETag.
fn add<T: Item>(cfg: &mut Config, item: T) -> Result<String, EditError> {
    taken(cfg, item.name())?;
    let tag = etag(&item);
    T::list(cfg).push(item);
    Ok(tag)
}

/// Where the item called `name` is, if its ETag is still `if_match`.
fn locate<T: Item>(
    cfg: &mut Config,
    name: &str,
    if_match: Option<&str>,
) -> Result<usize, EditError> {
    let list = T::list(cfg);
    let i = list
        .iter()
        .position(|x| x.name() == name)
        .ok_or_else(|| EditError::NotFound {
            kind: T::KIND,
            name: name.to_string(),
        })?;
    check_match(&list[i], if_match, &format!("{} {name}", T::KIND.noun()))?;
    Ok(i)
}

/// Replaces (and may rename) the item called `name`; returns the new ETag.
fn replace<T: Item>(
    cfg: &mut Config,
    name: &str,
    if_match: Option<&str>,
    item: T,
) -> Result<String, EditError> {
    let i = locate::<T>(cfg, name, if_match)?;
    if item.name() != name {
        taken(cfg, item.name())?;
    }
    let tag = etag(&item);
    T::list(cfg)[i] = item;
    Ok(tag)
}

fn delete<T: Item>(cfg: &mut Config, name: &str, if_match: Option<&str>) -> Result<(), EditError> {
    let i = locate::<T>(cfg, name, if_match)?;
    T::list(cfg).remove(i);
    Ok(())
}

fn check_match<T: Serialize>(
    current: &T,
    if_match: Option<&str>,
    what: &str,
) -> Result<(), EditError> {
    let Some(want) = if_match else {
        return Ok(());
    };
    let now = etag(current);
    // Strong comparison (RFC 9110 §13.1.1): a weak tag never matches; `*` or any tag of a
    // list that equals the current one does.
    let matches = want.split(',').map(str::trim).any(|t| t == "*" || t == now);
    if matches {
        return Ok(());
    }
    Err(EditError::Conflict {
        what: what.to_string(),
        current: serde_json::to_value(current).ok(),
        etag: Some(now),
    })
}

/// Disables every forward and trigger an error of `report` is about; returns their names.
fn disable_misfits(cfg: &mut Config, report: &Report) -> Vec<String> {
    let mut names = Vec::new();
    for issue in report
        .issues
        .iter()
        .filter(|i| i.severity == Severity::Error)
    {
        if let Some(i) = index_in(&issue.field, "forwards[") {
            if let Some(f) = cfg.forwards.get_mut(i).filter(|f| f.enabled) {
                f.enabled = false;
                names.push(f.name.clone());
            }
        } else if let Some(i) = index_in(&issue.field, "triggers[") {
            if let Some(t) = cfg.triggers.get_mut(i).filter(|t| t.enabled) {
                t.enabled = false;
                names.push(t.name.clone());
            }
        }
    }
    names
}

/// A rollback puts the old LAN subnets back; a DHCP pool or reservation the owner put into
/// one of the trial's subnets meanwhile would then fit no subnet, the rollback would never
/// validate and the untested settings would stay. Such subnets of the trial (`trial`) are
/// kept (more LAN, never less reachable); returns them, printed.
fn keep_dhcp_subnets(cfg: &mut Config, trial: &[crate::config::Ipv4Net]) -> Vec<String> {
    let mut kept = Vec::new();
    let Some(d) = cfg.dhcp.clone() else {
        return kept;
    };
    let used = [d.start, d.end]
        .into_iter()
        .chain(d.reservations.iter().map(|r| r.address));
    for addr in used {
        if cfg.lan.subnets.iter().any(|n| n.contains(addr)) {
            continue;
        }
        if let Some(n) = trial.iter().find(|n| n.contains(addr)) {
            cfg.lan.subnets.push(*n);
            kept.push(n.to_string());
        }
    }
    kept
}

/// `forwards[3].internal_host` with prefix `forwards[` → 3.
fn index_in(field: &str, prefix: &str) -> Option<usize> {
    let rest = field.strip_prefix(prefix)?;
    rest.split(']').next()?.parse().ok()
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
