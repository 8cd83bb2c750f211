//! Validation of the `dhcp` section and of forwards that target a device
//! (`forwards[].device`). Hooked from [`super::validate`]; every refusal names the field.
//!
//! Limits follow dnsmasq(8) 2.90 (shortest lease 120 s) and RFC 1035 §2.3.1 / RFC 1123
//! §2.1 for host names (labels of 1 to 63 letters, digits and `-`, not starting or ending
//! with `-`).

use std::net::Ipv4Addr;

use super::Report;
use crate::config::{Config, Forward, Ipv4Net, MIN_LEASE_SECS};

/// Longest lease accepted, seconds (one year).
pub const MAX_LEASE_SECS: u32 = 31_536_000;
/// Most labels in `dhcp.domain` (`lan`, `home.arpa`, ...).
const MAX_DOMAIN_LABELS: usize = 4;

/// Checks the `dhcp` section: the pool, the lease time, the domain and the reservations.
pub(super) fn check(r: &mut Report, cfg: &Config) {
    let Some(d) = &cfg.dhcp else {
        return;
    };
    match lan_subnet(cfg, d.start) {
        Err(why) => r.error("dhcp.start", format!("{}: {why}", d.start)),
        Ok(n) if !n.contains(d.end) => r.error(
            "dhcp.end",
            format!("{} is not in {n}, the subnet of dhcp.start", d.end),
        ),
        Ok(_) if d.start > d.end => r.error(
            "dhcp.end",
            format!("{} comes before dhcp.start {}", d.end, d.start),
        ),
        Ok(_) => {
            if let Err(why) = lan_subnet(cfg, d.end) {
                r.error("dhcp.end", format!("{}: {why}", d.end));
            }
        }
    }
    if !(MIN_LEASE_SECS..=MAX_LEASE_SECS).contains(&d.lease_secs) {
        r.error(
            "dhcp.lease_secs",
            format!("must be {MIN_LEASE_SECS} (dnsmasq's shortest) to {MAX_LEASE_SECS} seconds"),
        );
    }
    let labels: Vec<&str> = d.domain.split('.').collect();
    if labels.len() > MAX_DOMAIN_LABELS || !labels.iter().all(|l| is_label(l)) {
        r.error(
            "dhcp.domain",
            format!(
                "`{}`: 1 to {MAX_DOMAIN_LABELS} labels separated by dots, each 1 to 63 \
                 letters, digits and -, not starting or ending with -",
                d.domain.escape_debug()
            ),
        );
    }
    // Only names that are never public and that the web UI answers as a Host
    // (`web::api::host_allowed`): `router.<domain>` must open the UI, and `local=/com/`
    // would keep every .com name from the internet. Not `local` (mDNS, RFC 6762).
    let private = ["lan", "internal", "home.arpa"]
        .iter()
        .any(|p| d.domain == *p || d.domain.ends_with(&format!(".{p}")));
    if !private {
        r.error(
            "dhcp.domain",
            "must be lan, internal or home.arpa (RFC 8375), or end in one of them",
        );
    }
    for (i, res) in d.reservations.iter().enumerate() {
        let at = format!("dhcp.reservations[{i}]");
        // Reservations are few: comparing with the earlier ones costs less flash than sets.
        let earlier = &d.reservations[..i];
        if !is_label(&res.name) || crate::dhcp::keyword(&res.name) {
            r.error(
                format!("{at}.name"),
                format!(
                    "`{}`: 1 to 63 letters, digits and -, not starting or ending with -; \
                     not ignore, infinite or a lease time like 2h (dnsmasq keywords)",
                    res.name.escape_debug()
                ),
            );
        } else if res.name.eq_ignore_ascii_case("router") {
            r.error(
                format!("{at}.name"),
                "`router` is the router's own name (router.<domain>)",
            );
        } else if earlier
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&res.name))
        {
            r.error(
                format!("{at}.name"),
                format!("`{}` is used twice", res.name),
            );
        }
        if earlier.iter().any(|o| o.mac == res.mac) {
            r.error(
                format!("{at}.mac"),
                format!("{} already has a reservation", res.mac),
            );
        }
        if let Err(why) = lan_subnet(cfg, res.address) {
            r.error(format!("{at}.address"), format!("{}: {why}", res.address));
        } else if earlier.iter().any(|o| o.address == res.address) {
            r.error(
                format!("{at}.address"),
                format!("{} is reserved twice", res.address),
            );
        }
        if res.comment.chars().count() > 200 {
            r.error(format!("{at}.comment"), "at most 200 characters");
        }
    }
}

/// Checks how forward `f` (at `at`, e.g. `forwards[3]`) names its target. Returns the
/// field the target's address is reported under (`internal_host` or `device`), or None
/// when there is no address to check further (the error is already recorded).
pub(super) fn check_target(
    r: &mut Report,
    cfg: &Config,
    at: &str,
    f: &Forward,
) -> Option<&'static str> {
    let Some(mac) = &f.device else {
        if f.internal_host.is_unspecified() {
            r.error(format!("{at}.internal_host"), "required (or device)");
            return None;
        }
        return Some("internal_host");
    };
    if !f.internal_host.is_unspecified() {
        r.error(
            format!("{at}.internal_host"),
            "give internal_host or device, not both",
        );
        return None;
    }
    match &cfg.dhcp {
        Some(d) if d.reservation(mac).is_some() => {
            if !d.enabled {
                r.warn(
                    format!("{at}.device"),
                    "DHCP is off (dhcp.enabled): nothing gives the device its reserved address",
                );
            }
            Some("device")
        }
        _ => {
            r.error(
                format!("{at}.device"),
                format!("{mac}: no reservation with this MAC in dhcp.reservations"),
            );
            None
        }
    }
}

/// Router addresses used as reservation addresses (see [`super::validate_host`]).
pub(super) fn check_router_addrs(r: &mut Report, cfg: &Config, router_addrs: &[Ipv4Addr]) {
    let Some(d) = &cfg.dhcp else {
        return;
    };
    for (i, res) in d.reservations.iter().enumerate() {
        if router_addrs.contains(&res.address) {
            r.error(
                format!("dhcp.reservations[{i}].address"),
                format!("{} is the router's own address", res.address),
            );
        }
    }
}

/// The LAN subnet holding `a` as a host address, or why it is none.
fn lan_subnet(cfg: &Config, a: Ipv4Addr) -> Result<&Ipv4Net, &'static str> {
    let n = cfg
        .lan
        .subnets
        .iter()
        .find(|n| n.contains(a))
        .ok_or("not inside a LAN subnet (lan.subnets)")?;
    if n.is_network_or_broadcast(a) {
        return Err("the network or broadcast address of its LAN subnet");
    }
    Ok(n)
}

/// One DNS label: 1 to 63 ASCII letters, digits and `-`, not starting or ending with `-`.
fn is_label(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}
