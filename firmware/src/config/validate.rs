//! Validation: every refusal names the field (as a JSON path) and the reason.
//!
//! Validation is pure (time is an argument) so that every refusal is unit-tested, and it
//! collects all problems instead of stopping at the first: a user fixing a config in a
//! browser wants to see every red field at once.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;

use super::{Config, Forward, Ipv4Net, PortRange, Protocol, Timestamp, Trigger};

// The file sits next to this one (config/dhcp_check.rs), not in validate/.
#[path = "dhcp_check.rs"]
mod dhcp_check;

/// Ports the router serves itself on UDP/TCP, besides the web UI; forwarding them would
/// shadow the router's own service for hairpinned LAN clients and confuse the owner.
pub const RESERVED_PORTS: &[(u8, u16, &str)] = &[
    (17, 1900, "SSDP (UPnP discovery)"),
    (17, 5351, "NAT-PMP/PCP"),
    (6, 5000, "UPnP control"),
];

/// Address blocks that can never be a LAN: the kernel would take the rules, but no host
/// there can be reached through a forward.
const NOT_A_LAN: [(Ipv4Net, &str); 4] = [
    (
        Ipv4Net::constant(Ipv4Addr::new(0, 0, 0, 0), 8),
        "\"this network\" (0.0.0.0/8)",
    ),
    (
        Ipv4Net::constant(Ipv4Addr::new(127, 0, 0, 0), 8),
        "loopback (127.0.0.0/8)",
    ),
    (
        Ipv4Net::constant(Ipv4Addr::new(224, 0, 0, 0), 4),
        "multicast (224.0.0.0/4)",
    ),
    (
        Ipv4Net::constant(Ipv4Addr::new(240, 0, 0, 0), 4),
        "reserved (240.0.0.0/4)",
    ),
];

/// Farthest expiry accepted: ten years.
const MAX_EXPIRY_SECS: u64 = 10 * 366 * 86_400;

/// Longest name: names become chain, set and counter names and log prefixes.
const MAX_NAME: usize = 24;

/// Severity of an [`Issue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem, tied to the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Issue {
    pub severity: Severity,
    /// JSON path of the field, e.g. `forwards[2].external_port`.
    pub field: String,
    pub message: String,
}

/// The result of validating a config.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub issues: Vec<Issue>,
}

impl Report {
    pub fn has_errors(&self) -> bool {
        self.issues.iter().any(|i| i.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Issue> {
        self.issues.iter().filter(|i| i.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Issue> {
        self.issues
            .iter()
            .filter(|i| i.severity == Severity::Warning)
    }

    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            severity: Severity::Error,
            field: field.into(),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.issues.push(Issue {
            severity: Severity::Warning,
            field: field.into(),
            message: message.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in &self.issues {
            let sev = match i.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(f, "{sev}: {}: {}", i.field, i.message)?;
        }
        Ok(())
    }
}

/// Who holds an external (inbound) port range, for overlap messages.
struct Claim {
    proto: u8,
    range: PortRange,
    field: String,
    owner: String,
}

/// Validates a parsed config at time `now`.
pub fn validate(cfg: &Config, now: Timestamp) -> Report {
    let mut r = Report::default();
    check_interface(&mut r, "lan.interface", &cfg.lan.interface);
    check_interface(&mut r, "wan.interface", &cfg.wan.interface);
    if cfg.lan.interface == cfg.wan.interface {
        r.error("wan.interface", "must differ from lan.interface");
    }
    if cfg.lan.subnets.is_empty() {
        r.error("lan.subnets", "at least one LAN subnet is needed");
    }
    check_subnet_overlaps(&mut r, &cfg.lan.subnets);
    for (i, n) in cfg.lan.subnets.iter().enumerate() {
        for (block, what) in NOT_A_LAN {
            if n.overlaps(&block) {
                r.error(
                    format!("lan.subnets[{i}]"),
                    format!("{n} is in the {what} block, which cannot be a LAN"),
                );
            }
        }
        if n.has_host_bits() {
            r.error(
                format!("lan.subnets[{i}]"),
                format!(
                    "{n} has host bits set; did you mean {}/{}?",
                    n.network(),
                    n.prefix_len()
                ),
            );
        }
        if n.prefix_len() < 8 || n.prefix_len() > 30 {
            r.error(
                format!("lan.subnets[{i}]"),
                format!(
                    "prefix length /{} is not a usable LAN (use /8 to /30)",
                    n.prefix_len()
                ),
            );
        }
    }
    if cfg.management.http_port == 0 {
        r.error("management.http_port", "port 0 is not a usable port");
    }

    let mut names = HashSet::new();
    let mut inbound: Vec<Claim> = Vec::new();
    let mut outbound: Vec<Claim> = Vec::new();
    for (i, f) in cfg.forwards.iter().enumerate() {
        let at = format!("forwards[{i}]");
        check_name(&mut r, &at, &f.name, &mut names);
        check_forward(&mut r, cfg, &at, f, now);
        if f.enabled {
            let owner = format!("forward `{}`", f.name);
            claim(
                &mut inbound,
                f.protocol,
                f.external_port,
                &at,
                "external_port",
                &owner,
            );
        }
    }
    for (i, t) in cfg.triggers.iter().enumerate() {
        let at = format!("triggers[{i}]");
        check_name(&mut r, &at, &t.name, &mut names);
        check_trigger(&mut r, &at, t);
        if !t.enabled {
            continue;
        }
        let owner = format!("trigger `{}`", t.name);
        claim(
            &mut inbound,
            t.open_protocol,
            t.open_port,
            &at,
            "open_port",
            &owner,
        );
        claim(
            &mut outbound,
            t.trigger_protocol,
            t.trigger_port,
            &at,
            "trigger_port",
            &owner,
        );
    }
    check_reserved(&mut r, cfg, &inbound);
    check_overlaps(&mut r, &inbound, "external port");
    check_overlaps(&mut r, &outbound, "trigger port");
    check_kernel_elements(&mut r, cfg);
    super::upnp::check(&mut r, cfg);
    super::vpn_check::check(&mut r, cfg);
    dhcp_check::check(&mut r, cfg);
    r
}

/// Most kernel set elements the forwards may need in total. A translated range takes one
/// element per port and allowed source prefix in the live-flow check (a concatenated
/// interval set whose inserts grow worse than linearly): 50,000 ports × 40 prefixes would
/// be two million elements and stall the daemon for minutes while `check` said ok.
pub const MAX_KERNEL_ELEMENTS: u64 = 65_536;

/// Refuses configs whose planned elements pass [`MAX_KERNEL_ELEMENTS`], naming the forward
/// that needs the most. An upper bound: the planner merges prefixes that touch.
fn check_kernel_elements(r: &mut Report, cfg: &Config) {
    let mut total: u64 = 0;
    let mut worst: Option<(usize, u64)> = None;
    for (i, f) in cfg.forwards.iter().enumerate().filter(|(_, f)| f.enabled) {
        let translated = f.internal_range() != f.external_port;
        let ports = if translated {
            u64::from(f.external_port.count())
        } else {
            1
        };
        let sources = f.allow_from.len().max(1) + cfg.lan.subnets.len();
        let n =
            ports * u64::try_from(sources).unwrap_or(u64::MAX) * f.protocol.numbers().len() as u64;
        total = total.saturating_add(n);
        if worst.is_none_or(|(_, w)| n > w) {
            worst = Some((i, n));
        }
    }
    if let Some((i, n)) = worst.filter(|_| total > MAX_KERNEL_ELEMENTS) {
        r.error(
            format!("forwards[{i}].internal_port"),
            format!(
                "the forwards need about {total} kernel set elements (this one {n}: one per \
                 translated port and allowed source prefix); at most {MAX_KERNEL_ELEMENTS}: \
                 keep ports as they are (omit internal_port) or merge allow_from prefixes"
            ),
        );
    }
}

/// Errors for forwards that no LAN host can ever answer: their target (`internal_host`, or
/// the reserved address of `device`) is one of the router's own addresses, and for
/// reservations of one of the router's own addresses (`router_addrs`, read from its interfaces, which the config does
/// not hold). The caller adds this to [`validate`]'s report before applying.
pub fn validate_host(cfg: &Config, router_addrs: &[Ipv4Addr]) -> Report {
    let mut r = Report::default();
    for (i, f) in cfg.forwards.iter().enumerate() {
        let host = cfg.forward_host(f);
        if router_addrs.contains(&host) {
            let field = if f.device.is_some() {
                "device"
            } else {
                "internal_host"
            };
            r.error(
                format!("forwards[{i}].{field}"),
                format!("{host} is the router's own address; forward to a host on the LAN"),
            );
        }
    }
    dhcp_check::check_router_addrs(&mut r, cfg, router_addrs);
    r
}

/// LAN subnets must not share addresses: the kernel refuses overlapping intervals in the
/// `lan_nets` set (and one host cannot be on two subnets). The later entry is blamed.
fn check_subnet_overlaps(r: &mut Report, subnets: &[Ipv4Net]) {
    let mut order: Vec<(usize, &Ipv4Net)> = subnets.iter().enumerate().collect();
    order.sort_by_key(|(_, n)| n.span());
    // The subnet reaching farthest so far; anything starting inside it overlaps it.
    let mut widest: Option<(usize, &Ipv4Net)> = None;
    for (bi, b) in order {
        if let Some((ai, a)) = widest {
            if b.span().0 <= a.span().1 {
                let ((ai, a), (bi, b)) = if ai < bi {
                    ((ai, a), (bi, b))
                } else {
                    ((bi, b), (ai, a))
                };
                let how = if a.span() == b.span() {
                    "is the same subnet as"
                } else {
                    "overlaps"
                };
                r.error(
                    format!("lan.subnets[{bi}]"),
                    format!("{b} {how} {a} (lan.subnets[{ai}])"),
                );
            }
        }
        match widest {
            Some((_, a)) if a.span().1 >= b.span().1 => {}
            _ => widest = Some((bi, b)),
        }
    }
}

/// Records that `owner` holds `range` on each protocol.
fn claim(
    claims: &mut Vec<Claim>,
    protocol: Protocol,
    range: PortRange,
    at: &str,
    field: &str,
    owner: &str,
) {
    for &proto in protocol.numbers() {
        claims.push(Claim {
            proto,
            range,
            field: format!("{at}.{field}"),
            owner: owner.to_string(),
        });
    }
}

pub(super) fn check_interface(r: &mut Report, field: &str, name: &str) {
    // IFNAMSIZ is 16 including the NUL.
    if name.is_empty() || name.len() > 15 {
        r.error(field, "an interface name has 1 to 15 characters");
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    {
        r.error(
            field,
            format!("`{}` is not a valid interface name", name.escape_debug()),
        );
    }
}

fn check_name(r: &mut Report, at: &str, name: &str, seen: &mut HashSet<String>) {
    let field = format!("{at}.name");
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if name.is_empty() || name.len() > MAX_NAME || !ok_chars {
        r.error(
            field,
            format!("names have 1 to {MAX_NAME} characters: lowercase letters, digits, - and _"),
        );
    } else if !seen.insert(name.to_string()) {
        r.error(
            field,
            format!("`{name}` is used twice; forward and trigger names must be unique"),
        );
    }
}

fn check_forward(r: &mut Report, cfg: &Config, at: &str, f: &Forward, now: Timestamp) {
    if f.external_port.count() != f.internal_range().count() {
        r.error(
            format!("{at}.internal_port"),
            format!(
                "{} has {} ports but external_port {} has {}; ranges must have the same length",
                f.internal_range(),
                f.internal_range().count(),
                f.external_port,
                f.external_port.count()
            ),
        );
    }
    let host = cfg.forward_host(f);
    match dhcp_check::check_target(r, cfg, at, f)
        .map(|t| (t, cfg.lan.subnets.iter().find(|n| n.contains(host))))
    {
        None => {}
        // A disabled forward installs nothing, so it may wait for its subnet (a settings
        // rollback disables, never deletes, forwards that no longer fit).
        Some((field, None)) if !f.enabled => r.warn(
            format!("{at}.{field}"),
            format!(
                "{host} is not inside a LAN subnet ({}); the forward stays disabled",
                subnets(cfg)
            ),
        ),
        Some((field, None)) => r.error(
            format!("{at}.{field}"),
            format!("{host} is not inside a LAN subnet ({})", subnets(cfg)),
        ),
        Some((field, Some(n))) if n.is_network_or_broadcast(host) => r.error(
            format!("{at}.{field}"),
            format!("{host} is the network or broadcast address of {n}"),
        ),
        Some(_) => {}
    }
    for (j, a) in f.allow_from.iter().enumerate() {
        if a.has_host_bits() {
            r.error(
                format!("{at}.allow_from[{j}]"),
                format!(
                    "{a} has host bits set; did you mean {}/{}?",
                    a.network(),
                    a.prefix_len()
                ),
            );
        }
    }
    if f.enabled && f.allow_from.is_empty() {
        r.warn(
            format!("{at}.allow_from"),
            "empty: anyone on the internet can reach this forward",
        );
    } else if f.enabled && f.open_to_anyone() {
        r.warn(
            format!("{at}.allow_from"),
            "covers every address: anyone on the internet can reach this forward",
        );
    }
    if let Some(rl) = &f.rate_limit {
        if rl.connections == 0 {
            r.error(
                format!("{at}.rate_limit.connections"),
                "must be at least 1 (disable the forward to block everything)",
            );
        }
        if rl.burst == 0 || rl.burst > 100_000 {
            r.error(format!("{at}.rate_limit.burst"), "must be 1 to 100000");
        }
    }
    if let Some(t) = f.expires_at {
        if t <= now {
            r.error(
                format!("{at}.expires_at"),
                format!("{t} is in the past (now is {now})"),
            );
        } else if t.0 - now.0 > MAX_EXPIRY_SECS {
            // The kernel keeps element timeouts in jiffies and refuses huge ones.
            r.error(
                format!("{at}.expires_at"),
                format!("{t} is more than 10 years ahead; leave expires_at out for a forward that does not expire"),
            );
        }
    }
    if f.comment.chars().count() > 200 {
        r.error(format!("{at}.comment"), "at most 200 characters");
    }
}

fn check_trigger(r: &mut Report, at: &str, t: &Trigger) {
    if t.timeout_secs == 0 || t.timeout_secs > 86_400 {
        r.error(
            format!("{at}.timeout_secs"),
            "must be 1 to 86400 seconds (one day)",
        );
    }
    if t.comment.chars().count() > 200 {
        r.error(format!("{at}.comment"), "at most 200 characters");
    }
}

fn check_reserved(r: &mut Report, cfg: &Config, claims: &[Claim]) {
    let mut reserved: Vec<(u8, u16, &str)> = vec![(6, cfg.management.http_port, "web UI")];
    reserved.extend_from_slice(RESERVED_PORTS);
    for c in claims {
        for &(proto, port, what) in &reserved {
            if c.proto == proto && c.range.contains(port) {
                let p = if proto == 6 { "tcp" } else { "udp" };
                r.error(
                    c.field.clone(),
                    format!("{port}/{p} is served by the router itself ({what})"),
                );
            }
        }
    }
}

/// Sorted sweep, O(n log n): 10,000 forwards validate in milliseconds.
fn check_overlaps(r: &mut Report, claims: &[Claim], what: &str) {
    // Position in the file decides who is blamed: the later entry is the newcomer.
    let mut order: Vec<(usize, &Claim)> = claims.iter().enumerate().collect();
    order.sort_by_key(|(_, c)| (c.proto, c.range.first(), c.range.last()));
    let mut widest: Option<(usize, &Claim)> = None;
    for (bi, b) in order {
        if let Some((ai, a)) = widest {
            if a.proto == b.proto && b.range.first() <= a.range.last() && a.owner != b.owner {
                let (a, b) = if ai < bi { (a, b) } else { (b, a) };
                let p = if a.proto == 6 { "tcp" } else { "udp" };
                r.error(
                    b.field.clone(),
                    format!(
                        "{what} {} ({p}) overlaps {} of {}",
                        b.range, a.range, a.owner
                    ),
                );
            }
        }
        match widest {
            Some((_, a)) if a.proto == b.proto && a.range.last() >= b.range.last() => {}
            _ => widest = Some((bi, b)),
        }
    }
}

fn subnets(cfg: &Config) -> String {
    cfg.lan
        .subnets
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod dhcp_tests;
#[cfg(test)]
mod tests;
