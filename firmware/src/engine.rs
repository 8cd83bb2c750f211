//! The one sequence that changes the router: validate → gather facts → plan → install in
//! one batch → save. The CLI's `apply` and the daemon both go through it, so a config that
//! fails any step is never saved and the previous ruleset stays in force.

use std::path::{Path, PathBuf};

use crate::config::{validate, Config, ConfigError, Report, Timestamp};
use crate::facts::{self, FactsError};
use crate::nft::{Nft, NftError};
use crate::plan::{self, Carried, HostFacts};
use crate::readback;
use crate::store::{self, StoreError};

/// Why applying a config failed. The previous ruleset and saved file are untouched.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("config refused:\n{0}")]
    Invalid(Report),
    #[error("loading the saved config")]
    Load(#[source] ConfigError),
    #[error("reading host facts")]
    Facts(#[source] FactsError),
    #[error("opening the nf_tables netlink socket")]
    Open(#[source] NftError),
    #[error("installing the ruleset (the previous ruleset stays in force)")]
    Install(#[source] NftError),
    #[error("reading the installed ruleset back")]
    Read(#[source] NftError),
    #[error("saving the config")]
    Save(#[source] StoreError),
}

/// Owns the netlink socket and knows where the config is saved.
pub struct Engine {
    nft: Nft,
    saved: PathBuf,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("saved", &self.saved)
            .finish()
    }
}

impl Engine {
    pub fn open(saved: &Path) -> Result<Engine, EngineError> {
        Ok(Engine {
            nft: Nft::open().map_err(EngineError::Open)?,
            saved: saved.to_path_buf(),
        })
    }

    /// Where the config is saved.
    pub fn saved_path(&self) -> &Path {
        &self.saved
    }

    /// Validates, installs and saves `cfg`. Returns the validation warnings.
    pub fn apply_and_save(&mut self, cfg: &Config, now: Timestamp) -> Result<Report, EngineError> {
        let report = self.install(cfg, now)?;
        self.save(cfg)?;
        Ok(report)
    }

    /// Validates and installs `cfg` without saving it (start-up, expiry, WAN changes).
    pub fn install(&mut self, cfg: &Config, now: Timestamp) -> Result<Report, EngineError> {
        let report = validate_for_install(cfg, now)?;
        let facts = facts::gather(&cfg.wan.interface).map_err(EngineError::Facts)?;
        self.install_with(cfg, &facts, now)?;
        Ok(report)
    }

    /// Installs a validated config with the given facts. Hit counts and open triggers of
    /// the table being replaced are carried over.
    pub fn install_with(
        &mut self,
        cfg: &Config,
        facts: &HostFacts,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let mut facts = facts.clone();
        facts.carried = self.carried();
        // Sub-second precision for expiry timeouts (the planner ignores it unless it
        // falls within `now`'s second).
        facts.now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| u64::try_from(d.as_millis()).ok());
        let rs = plan::plan(cfg, &facts, now);
        self.nft.apply(&rs).map_err(EngineError::Install)?;
        Ok(())
    }

    /// What the installed table holds that its replacement must keep. Best effort: if the
    /// table cannot be read, counters restart at zero and open triggers close, which is
    /// the safe direction.
    fn carried(&mut self) -> Carried {
        let Ok(view) = readback::kernel_view(&mut self.nft, plan::TABLE) else {
            return Carried::default();
        };
        Carried {
            counters: view.counters.into_iter().collect(),
            trigger_hosts: view
                .trigger_hosts
                .into_iter()
                .filter_map(|(map, (host, left))| left.map(|l| (map, (host, l))))
                .collect(),
        }
    }

    /// Saves `cfg` atomically.
    pub fn save(&self, cfg: &Config) -> Result<(), EngineError> {
        store::save_atomic(&self.saved, cfg.to_json().as_bytes()).map_err(EngineError::Save)
    }

    /// The netlink handle, for read-back (status).
    pub fn nft(&mut self) -> &mut Nft {
        &mut self.nft
    }
}

/// Validation for installing. Expired forwards are not an error here: a saved config may
/// hold a forward whose time has passed while the router was off; it is simply not planned.
fn validate_for_install(cfg: &Config, now: Timestamp) -> Result<Report, EngineError> {
    let mut probe = cfg.clone();
    probe
        .forwards
        .retain(|f| f.expires_at.is_none_or(|t| t > now));
    let report = validate(&probe, now);
    if report.has_errors() {
        return Err(EngineError::Invalid(report));
    }
    Ok(report)
}

/// Removes forwards whose expiry has passed; returns their names.
pub fn drop_expired(cfg: &mut Config, now: Timestamp) -> Vec<String> {
    let mut gone = Vec::new();
    cfg.forwards.retain(|f| match f.expires_at {
        Some(t) if t <= now => {
            gone.push(f.name.clone());
            false
        }
        _ => true,
    });
    gone
}

/// The next moment a forward expires, if any.
pub fn next_expiry(cfg: &Config, now: Timestamp) -> Option<Timestamp> {
    cfg.forwards
        .iter()
        .filter(|f| f.enabled)
        .filter_map(|f| f.expires_at)
        .filter(|t| *t > now)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_helpers_pick_the_right_forwards() {
        let mut cfg = Config::parse(include_str!("../examples/home.json")).expect("example parses");
        let soon = Timestamp(1_800_000_000); // 2027, before the example's 2030 expiry
        cfg.forwards[0].expires_at = Some(soon);
        assert_eq!(next_expiry(&cfg, Timestamp(1_000)), Some(soon));
        let gone = drop_expired(&mut cfg, Timestamp(soon.0));
        assert_eq!(gone, vec!["web".to_string()]);
        assert_eq!(cfg.forwards.len(), 2);
    }
}
