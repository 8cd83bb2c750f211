//! Restarting dnsmasq when a committed config changes what `portcullis dhcp-config`
//! renders ([`crate::dhcp::render`]). The init script's supervisor (`S40dnsmasq`) runs
//! dnsmasq in the foreground: on SIGTERM dnsmasq exits with status 0 and the supervisor
//! renders the saved config again and restarts it (leases stay in the lease file).
//!
//! The pid comes from dnsmasq's pid file (`RUN/dnsmasq.pid`); it is signalled only when
//! `/proc/PID/comm` says `dnsmasq`, so a stale file whose pid was reused by another
//! process never gets that process killed. Failures are logged, never fatal: the ruleset
//! is in force either way.

use std::path::{Path, PathBuf};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::Config;
use crate::dhcp::{render, PID_FILE};

/// Why dnsmasq could not be asked to restart.
#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("reading {path}")]
    ReadPid {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} holds no pid")]
    BadPid { path: PathBuf },
    #[error("pid {0} is not dnsmasq (a stale pid file)")]
    NotDnsmasq(i32),
    #[error("sending SIGTERM to dnsmasq (pid {pid})")]
    Signal {
        pid: i32,
        #[source]
        source: nix::Error,
    },
}

/// What dnsmasq was rendered with before a commit (nothing without a run directory).
pub(super) struct Rendered(Option<(PathBuf, String)>);

impl Rendered {
    /// The rendering of `cfg`, the config in force, with runtime files in `run_dir`.
    pub(super) fn of(run_dir: Option<&Path>, cfg: &Config) -> Rendered {
        Rendered(run_dir.map(|d| (d.to_path_buf(), render(cfg, d))))
    }

    /// Restarts dnsmasq when `cfg` (just committed) renders differently.
    pub(super) fn follow(&self, cfg: &Config) {
        let Some((dir, before)) = &self.0 else {
            return;
        };
        if render(cfg, dir) == *before {
            return;
        }
        match restart(dir) {
            Ok(pid) => {
                eprintln!("portcullis: DHCP/DNS settings changed; restarting dnsmasq (pid {pid})")
            }
            Err(e) => eprintln!(
                "portcullis: DHCP/DNS settings changed but dnsmasq was not restarted: {}",
                super::chain(&e)
            ),
        }
    }
}

/// Sends SIGTERM to the dnsmasq whose pid is in `run_dir/dnsmasq.pid`; returns its pid.
pub fn restart(run_dir: &Path) -> Result<i32, RestartError> {
    let path = run_dir.join(PID_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| RestartError::ReadPid {
        path: path.clone(),
        source,
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
        .ok_or(RestartError::BadPid { path })?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim_end() != "dnsmasq" {
        return Err(RestartError::NotDnsmasq(pid));
    }
    kill(Pid::from_raw(pid), Signal::SIGTERM)
        .map_err(|source| RestartError::Signal { pid, source })?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pcx-dnsmasq-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_pid_that_is_not_dnsmasq_is_never_signalled() {
        let d = dir("reused");
        // This test process: alive, but not dnsmasq.
        std::fs::write(d.join(PID_FILE), format!("{}\n", std::process::id())).unwrap();
        let r = restart(&d);
        std::fs::remove_dir_all(&d).unwrap();
        assert!(matches!(r, Err(RestartError::NotDnsmasq(_))), "{r:?}");
    }

    #[test]
    fn missing_or_garbled_pid_files_are_errors() {
        let d = dir("garbled");
        assert!(matches!(restart(&d), Err(RestartError::ReadPid { .. })));
        for text in ["", "x", "1", "-5"] {
            std::fs::write(d.join(PID_FILE), text).unwrap();
            assert!(
                matches!(restart(&d), Err(RestartError::BadPid { .. })),
                "{text:?}"
            );
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
