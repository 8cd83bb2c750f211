//! `portcullis dhcp-config`: prints the dnsmasq config file for the saved config, for the
//! init script's supervisor (`/etc/init.d/S40dnsmasq`). Read-only: the running daemon is
//! not asked, the saved file is what dnsmasq must follow.
//!
//! A saved config that cannot be used falls back to what the daemon salvages of it (its
//! safe mode, [`crate::serve::start_state`]), which keeps the `dhcp` section when it
//! reads: the owner's computer still gets an address and can reach the UI to repair it.

use std::path::Path;
use std::process::ExitCode;

use portcullis::daemon;
use portcullis::dhcp::render;

/// Prints the rendering of the saved config `saved` (or of the safe-mode fallback, saying
/// so on stderr) with runtime files in `run_dir`. Exit 1 when not even the LAN interface
/// can be salvaged: dnsmasq would have nothing to serve.
pub fn dhcp_config(saved: &Path, run_dir: &Path) -> ExitCode {
    let cfg = match crate::serve::start_state(saved) {
        daemon::Start::Config(c) => c,
        daemon::Start::Broken { fallback, reason } => {
            // "lo" is start_state's stand-in when no LAN interface could be read.
            if fallback.lan.interface == "lo" {
                eprintln!("error: {reason}; no LAN interface to serve");
                return ExitCode::FAILURE;
            }
            eprintln!(
                "warning: {reason}; serving the LAN {} from what could be salvaged ({})",
                fallback.lan.interface,
                if fallback.dhcp.is_some() {
                    "the dhcp section reads"
                } else {
                    "no dhcp section: DNS only"
                }
            );
            fallback
        }
    };
    crate::stdout(&render(&cfg, run_dir));
    ExitCode::SUCCESS
}
