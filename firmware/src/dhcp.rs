//! The dnsmasq configuration file for the LAN's DHCP and DNS server, rendered from the
//! config: `portcullis dhcp-config` prints it, the init script's supervisor
//! (`/etc/init.d/S40dnsmasq`) writes it to `RUN/dnsmasq.conf` and runs
//! `dnsmasq --keep-in-foreground --conf-file=RUN/dnsmasq.conf`, and the daemon restarts
//! dnsmasq when what this renders changes (`daemon::dnsmasq`).
//!
//! Options as documented in dnsmasq(8), version 2.90 (Debian's dnsmasq-base, Buildroot's
//! dnsmasq package):
//! - `interface=LAN` and `interface=lo` with `bind-dynamic`: dnsmasq answers DNS and DHCP
//!   only on the LAN interface and loopback, never on the WAN, and binds to the addresses
//!   as they come and go (the LAN may get its address after dnsmasq starts).
//! - `resolv-file=RUN/resolv.conf.wan`: the WAN's DNS servers, written by the WAN's DHCP
//!   client script (`/etc/portcullis/udhcpc.script`); dnsmasq polls it for changes.
//! - `domain-needed`, `bogus-priv`: plain names and reverse lookups of private addresses
//!   are never sent upstream.
//! - `domain`, `local=/DOMAIN/`, `expand-hosts`: devices are `NAME.DOMAIN`, answered only
//!   from leases, reservations and /etc/hosts; `interface-name=router.DOMAIN,LAN` names
//!   the router itself by its LAN address.
//! - `dhcp-range=START,END,SECS` (lease time in seconds), `dhcp-authoritative` (the only
//!   DHCP server on the LAN: answers clients whose lease it does not know at once),
//!   `dhcp-host=MAC,ADDRESS,NAME` per reservation (a NAME that dnsmasq would read as a
//!   keyword, see [`keyword`], is left out; an address reserved twice only once).
//! - `dhcp-name-match=set:wpad-ignore,wpad`, `dhcp-ignore-names=tag:wpad-ignore`: no LAN
//!   client can claim the name `wpad` (CERT VU#598349; dnsmasq's example config).
//! - The gateway and DNS server handed out are dnsmasq's defaults: the router's address
//!   on the interface the request came in on.
//!
//! Lease and pid files: dnsmasq opens the lease file and writes the pid file as root
//! before it drops privileges (to `nobody`), and writes leases through the open file, so
//! no `user=` is needed for them (checked by the e2e test `tests/tests/dhcp.rs`).

use std::fmt::Write as _;
use std::path::Path;

use crate::config::{Config, DEFAULT_DOMAIN};

/// The file name of the WAN's DNS servers inside the run directory (resolv.conf format).
pub const RESOLV_WAN: &str = "resolv.conf.wan";
/// dnsmasq's lease file inside the run directory.
pub const LEASE_FILE: &str = "dnsmasq.leases";
/// dnsmasq's pid file inside the run directory.
pub const PID_FILE: &str = "dnsmasq.pid";

/// The dnsmasq config file (text, one option per line) for `cfg`; `run_dir` holds the
/// lease, pid and upstream-resolver files. Pure. A string that could break the file (a
/// character outside letters, digits and `-._@:/`, e.g. a newline) is never written:
/// the option is left out (an unusable domain falls back to `lan`), so a value that
/// slipped past validation cannot inject options.
pub fn render(cfg: &Config, run_dir: &Path) -> String {
    let run = run_dir.to_str().filter(|s| safe(s)).unwrap_or("/tmp");
    let dhcp = cfg.dhcp.as_ref();
    let domain = dhcp
        .map(|d| d.domain.as_str())
        .filter(|d| !d.is_empty() && safe(d))
        .unwrap_or(DEFAULT_DOMAIN);
    let mut s = String::from("# rendered by portcullis dhcp-config; edits are overwritten\n");
    // Never the WAN: the saved file is rendered unvalidated (a hand-edited slip).
    let lan = Some(cfg.lan.interface.as_str())
        .filter(|i| !i.is_empty() && safe(i) && *i != cfg.wan.interface);
    if let Some(lan) = lan {
        let _ = writeln!(s, "interface={lan}");
    }
    s.push_str("interface=lo\nbind-dynamic\n");
    let _ = writeln!(s, "resolv-file={run}/{RESOLV_WAN}");
    s.push_str("domain-needed\nbogus-priv\ncache-size=1000\n");
    let _ = writeln!(s, "domain={domain}\nlocal=/{domain}/\nexpand-hosts");
    if let Some(lan) = lan {
        let _ = writeln!(s, "interface-name=router.{domain},{lan}");
    }
    let _ = writeln!(
        s,
        "pid-file={run}/{PID_FILE}\ndhcp-leasefile={run}/{LEASE_FILE}"
    );
    if let Some(d) = dhcp.filter(|d| d.enabled) {
        let _ = writeln!(
            s,
            "dhcp-range={},{},{}\ndhcp-authoritative\n\
             dhcp-name-match=set:wpad-ignore,wpad\ndhcp-ignore-names=tag:wpad-ignore",
            d.start, d.end, d.lease_secs
        );
        for (i, r) in d.reservations.iter().enumerate() {
            // dnsmasq refuses to start on an address reserved twice (a salvaged section
            // is not validated): the first reservation of an address wins.
            if d.reservations[..i].iter().any(|o| o.address == r.address) {
                continue;
            }
            let _ = write!(s, "dhcp-host={},{}", r.mac, r.address);
            if !r.name.is_empty() && safe(&r.name) && !keyword(&r.name) {
                let _ = write!(s, ",{}", r.name);
            }
            s.push('\n');
        }
    }
    s
}

/// Whether dnsmasq(8) reads `s` in a `dhcp-host` line as a keyword rather than a name:
/// `ignore` (never answer the device), `infinite` or a lease time (digits with an optional
/// unit letter: `3600`, `45m`, `2h`). Case-insensitive, and a lone unit letter counts:
/// stricter than dnsmasq 2.90's parser, never looser.
pub fn keyword(s: &str) -> bool {
    let n = s.strip_suffix(['s', 'm', 'h', 'd', 'w', 'S', 'M', 'H', 'D', 'W']);
    s.eq_ignore_ascii_case("ignore")
        || s.eq_ignore_ascii_case("infinite")
        || n.unwrap_or(s).bytes().all(|b| b.is_ascii_digit())
}

/// Only characters that mean nothing special on a dnsmasq config line.
fn safe(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._@:/".contains(&b))
}

#[cfg(test)]
mod tests;
