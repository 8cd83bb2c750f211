//! The one sequence that changes the router: validate → gather facts → plan → install in
//! one batch → save. The daemon's owner (and `apply` when no daemon runs) go through it,
//! so a config that fails any step is never saved. What the kernel holds afterwards is
//! said truthfully: a refused batch leaves the previous table, a batch that committed but
//! reads back differently leaves the new one.

use std::path::{Path, PathBuf};

use crate::config::{validate, validate_host, Config, ConfigError, Report, Timestamp};
use crate::delta::Planned;
use crate::facts::{self, FactsError};
use crate::nft::{DeltaOutcome, Nft, NftError};
use crate::plan::{self, Carried, HostFacts};
use crate::portmap::Mapping;
use crate::readback;
use crate::ruleset::Ruleset;
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
    #[error("installing the ruleset (the kernel refused it; the previous ruleset stays in force)")]
    Install(#[source] NftError),
    #[error("installing the ruleset: the new ruleset is in force but reads back differently")]
    Differs(#[source] NftError),
    #[error("installing the ruleset: unknown whether the kernel took it")]
    Unknown(#[source] NftError),
    #[error("reading the installed ruleset back")]
    Read(#[source] NftError),
    #[error("saving the config")]
    Save(#[source] StoreError),
}

/// Owns the netlink socket and knows where the config is saved.
pub struct Engine {
    nft: Nft,
    saved: PathBuf,
    /// The ruleset this engine last installed and when it was planned, so the next change
    /// can be sent as element and counter adds/deletes ([`Nft::apply_delta`]) instead of a
    /// whole new table. None until the first install, and after any failure (the kernel's
    /// state is then not known, so the next change is a full replace).
    installed: Option<(Ruleset, Timestamp)>,
    /// Port mappings of LAN clients, planned with every install except the safe base
    /// ruleset (which opens nothing).
    leases: Vec<Mapping>,
    /// The VPN provider's forwarded port and the end of its lease (see `set_vpn_port`).
    vpn_port: Option<(u16, std::time::Instant)>,
    /// MACs learned for tunnel devices chosen by address (see `set_vpn_learned_macs`).
    vpn_learned_macs: Vec<crate::config::MacAddr>,
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
            installed: None,
            leases: Vec::new(),
            vpn_port: None,
            vpn_learned_macs: Vec::new(),
        })
    }

    /// Sets the port mappings the next installs plan with (the caller installs).
    pub fn set_leases(&mut self, leases: Vec<Mapping>) {
        self.leases = leases;
    }

    /// Sets the port the VPN provider forwards to us and when its lease ends (none: no
    /// port held). The next installs plan it with the time left then, so the kernel closes
    /// it when the provider's lease ends even if no one re-plans.
    pub fn set_vpn_port(&mut self, port: Option<(u16, std::time::Instant)>) {
        self.vpn_port = port;
    }

    /// Sets the MACs the neighbour table shows for the tunnel devices chosen by address;
    /// the next installs plan them so those devices' IPv6 is recognised too.
    pub fn set_vpn_learned_macs(&mut self, macs: Vec<crate::config::MacAddr>) {
        self.vpn_learned_macs = macs;
    }

    /// The MACs last given to `set_vpn_learned_macs`.
    pub fn vpn_learned_macs(&self) -> &[crate::config::MacAddr] {
        &self.vpn_learned_macs
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
        // A forward to the router itself can never be answered by a LAN host.
        let mut router = facts::interface_addrs(&cfg.lan.interface).map_err(EngineError::Facts)?;
        router.extend(&facts.wan_addrs);
        let host = validate_host(cfg, &router);
        if host.has_errors() {
            return Err(EngineError::Invalid(host));
        }
        self.install_with(cfg, &facts, now)?;
        Ok(report)
    }

    /// Installs a validated config with the given facts (their `leases` and `vpn_port` are
    /// not used: the engine plans the ones `set_leases` and `set_vpn_port` gave it). When only elements and counters
    /// differ from what this engine installed last, they are changed in one batch (counters,
    /// rate-limit meters and open triggers untouched); otherwise the table is replaced, with
    /// hit counts and open triggers of the old table carried over.
    pub fn install_with(
        &mut self,
        cfg: &Config,
        facts: &HostFacts,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        // The leases are lent to the planner, not copied (1,000 of them are ~100 KB).
        let mut facts = HostFacts {
            wan_addrs: facts.wan_addrs.clone(),
            carried: Carried::default(),
            leases: std::mem::take(&mut self.leases),
            vpn_port: self.vpn_port.and_then(|(port, until)| {
                let expires_in = until.checked_duration_since(std::time::Instant::now())?;
                (!expires_in.is_zero()).then_some(crate::plan::VpnPort { port, expires_in })
            }),
            vpn_learned_macs: self.vpn_learned_macs.clone(),
            // Sub-second precision for expiry timeouts (the planner ignores it unless it
            // falls within `now`'s second), so the kernel closes a forward on time.
            now_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| u64::try_from(d.as_millis()).ok()),
        };
        let r = self.install_planned(cfg, &mut facts, now);
        self.leases = facts.leases;
        r
    }

    fn install_planned(
        &mut self,
        cfg: &Config,
        facts: &mut HostFacts,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        if let Some((rs, at)) = self.installed.take() {
            let wanted = plan::plan(cfg, facts, now);
            match self
                .nft
                .apply_delta(Planned::new(&rs, at), Planned::new(&wanted, now))
            {
                Ok(DeltaOutcome::Applied(r)) => {
                    // The old ruleset goes before the new one is kept: one copy at a time.
                    drop(rs);
                    self.installed = Some((r.installed(wanted), now));
                    return Ok(());
                }
                Ok(DeltaOutcome::NeedsFullApply(_)) => {}
                // The table is not what we think (someone changed it, or an element
                // expired in between): a full replace puts it right.
                Err(e) => eprintln!(
                    "portcullis: incremental update refused ({}); replacing the table",
                    crate::daemon::chain(&e)
                ),
            }
        }
        facts.carried = self.carried();
        self.replace(plan::plan(cfg, facts, now), now)
    }

    /// Replaces the whole table (one batch); reconciles once if it reads back differently.
    fn replace(&mut self, rs: Ruleset, now: Timestamp) -> Result<(), EngineError> {
        let r = match self.nft.apply(&rs) {
            // A second full replace usually fixes what a race broke.
            Err(NftError::Verify { .. }) => self.nft.apply(&rs),
            other => other,
        };
        match r {
            Ok(_) => {
                self.installed = Some((rs, now));
                Ok(())
            }
            Err(e) => Err(install_error(e)),
        }
    }

    /// Installs the safe base ruleset for `cfg`'s interfaces: no forwards, no triggers,
    /// the WAN reaches nothing, the LAN reaches the router (the UI). Used when the owner's
    /// config is broken or refused. If even that is refused (say, a LAN interface name
    /// the kernel rejects), the LAN side falls back to loopback only.
    pub fn install_safe(&mut self, cfg: &Config, now: Timestamp) -> Result<(), EngineError> {
        let facts = facts::gather(&cfg.wan.interface).unwrap_or_default();
        let mut safe = cfg.clone();
        safe.forwards.clear();
        safe.triggers.clear();
        safe.lan.subnets.truncate(1);
        if self.replace(plan::plan(&safe, &facts, now), now).is_ok() {
            return Ok(());
        }
        safe.lan.interface = "lo".into();
        safe.lan.subnets.clear();
        if safe.wan.interface == "lo" || safe.wan.interface.is_empty() {
            safe.wan.interface = "-".into();
        }
        self.replace(plan::plan(&safe, &facts, now), now)
    }

    /// Whether the kernel still holds the table this engine installed: the table exists
    /// and has the same chains with the same number of rules. False when someone deleted
    /// or rebuilt it behind the daemon's back; the engine then forgets what it installed,
    /// so the next install is a full replace. True when nothing was installed yet or the
    /// table cannot be read (nothing to compare).
    pub fn intact(&mut self) -> bool {
        let Some((rs, _)) = &self.installed else {
            return true;
        };
        let same = match self.nft.read_table_with(plan::TABLE, |_| false) {
            Ok(Some(t)) => {
                let mut have: Vec<(&str, usize)> = t
                    .chains
                    .iter()
                    .map(|c| (c.name.as_str(), c.rules))
                    .collect();
                let mut want: Vec<(&str, usize)> = rs
                    .chains
                    .iter()
                    .map(|c| (c.name.as_str(), c.rules.len()))
                    .collect();
                have.sort_unstable();
                want.sort_unstable();
                have == want
            }
            Ok(None) => false,
            Err(_) => true,
        };
        if !same {
            self.installed = None;
        }
        same
    }

    /// Forgets what was installed, so the next install replaces the whole table (an
    /// explicit reload or `apply` must put the kernel right whatever happened to it).
    pub fn forget(&mut self) {
        self.installed = None;
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

/// Sorts an apply failure by what the kernel holds afterwards.
fn install_error(e: NftError) -> EngineError {
    match e {
        NftError::Verify { .. } => EngineError::Differs(e),
        NftError::Receive { .. } | NftError::MissingAck { .. } => EngineError::Unknown(e),
        other => EngineError::Install(other),
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
