//! The `upnp` section: who may open ports on their own with UPnP IGD, NAT-PMP or PCP.
//!
//! Off by default and when absent: nothing listens on 1900/udp, 5000/tcp or 5351/udp.
//! In `allow_list` mode a request is granted only when a rule names the asking host (by
//! address or MAC) and the ports; no match is a refusal (miniupnpd accepts when nothing
//! matches). In `ask` mode a request no rule allows waits in an approval queue for the
//! owner. Whatever the rules say, a host may map ports only to itself, and never the
//! router's own ports or ports a forward or trigger claims.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Config, Ipv4Net, PortRange, Protocol, Report};

/// Default and largest lease a mapping gets, seconds (one day). A lease of 0 (IGDv1's
/// "permanent") gets this too.
pub const DEFAULT_MAX_LEASE_SECS: u32 = 86_400;

/// Default number of live mappings one LAN host may hold.
pub const DEFAULT_MAX_PER_HOST: u32 = 64;

/// Hard ceiling on live mappings of all hosts together (kernel elements and memory stay
/// bounded whatever the config says).
pub const MAX_MAPPINGS: u32 = 4_096;

/// How the router answers port-mapping requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpnpMode {
    /// Nothing listens; clients find no gateway.
    #[default]
    Off,
    /// Only what a rule allows.
    AllowList,
    /// What a rule allows; anything else waits for the owner's approval.
    Ask,
}

impl fmt::Display for UpnpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UpnpMode::Off => "off",
            UpnpMode::AllowList => "allow_list",
            UpnpMode::Ask => "ask",
        })
    }
}

/// The whole `upnp` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Upnp {
    #[serde(default)]
    pub mode: UpnpMode,
    /// Rules, any of which may allow a request.
    #[serde(default)]
    pub allow: Vec<UpnpRule>,
    /// Longest lease granted, seconds (1 to 604800).
    #[serde(default = "default_max_lease")]
    pub max_lease_secs: u32,
    /// Live mappings one LAN host may hold (1 to [`MAX_MAPPINGS`]).
    #[serde(default = "default_max_per_host")]
    pub max_per_host: u32,
}

impl Default for Upnp {
    fn default() -> Self {
        Upnp {
            mode: UpnpMode::Off,
            allow: Vec::new(),
            max_lease_secs: DEFAULT_MAX_LEASE_SECS,
            max_per_host: DEFAULT_MAX_PER_HOST,
        }
    }
}

impl Upnp {
    /// True when the section is all defaults (it is then left out of the saved file).
    pub fn is_default(&self) -> bool {
        *self == Upnp::default()
    }
}

fn default_max_lease() -> u32 {
    DEFAULT_MAX_LEASE_SECS
}

fn default_max_per_host() -> u32 {
    DEFAULT_MAX_PER_HOST
}

fn both() -> Protocol {
    Protocol::Both
}

/// One allow rule. A request matches when its host is in `hosts` or has a MAC in `macs`,
/// its protocol is covered, its external port is in `external_ports` and its internal port
/// in `internal_ports` (any, when absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpnpRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<MacAddr>,
    pub external_ports: PortRange,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_ports: Option<PortRange>,
    #[serde(default = "both")]
    pub protocol: Protocol,
    /// Longest lease this rule grants, seconds; the section's `max_lease_secs` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_secs: Option<u32>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

/// An Ethernet MAC address, written `aa:bb:cc:dd:ee:ff` (case-insensitive; printed lower).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{}` is not a MAC address like aa:bb:cc:dd:ee:ff",
                s.chars().take(40).collect::<String>()
            )
        };
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Most allow rules in the section.
pub const MAX_RULES: usize = 256;

/// Longest `max_lease_secs`, seconds (a week).
pub const MAX_LEASE_LIMIT: u32 = 604_800;

/// Checks the `upnp` section: numbers in range, every rule names a host or a MAC, hosts
/// inside the LAN subnets.
pub(super) fn check(r: &mut Report, cfg: &Config) {
    let u = &cfg.upnp;
    if u.max_lease_secs == 0 || u.max_lease_secs > MAX_LEASE_LIMIT {
        r.error(
            "upnp.max_lease_secs",
            format!("must be 1 to {MAX_LEASE_LIMIT} seconds (a week)"),
        );
    }
    if u.max_per_host == 0 || u.max_per_host > MAX_MAPPINGS {
        r.error(
            "upnp.max_per_host",
            format!("must be 1 to {MAX_MAPPINGS} mappings"),
        );
    }
    if u.allow.len() > MAX_RULES {
        r.error("upnp.allow", format!("at most {MAX_RULES} rules"));
    }
    for (i, rule) in u.allow.iter().enumerate() {
        let at = format!("upnp.allow[{i}]");
        if rule.hosts.is_empty() && rule.macs.is_empty() {
            r.error(
                format!("{at}.hosts"),
                "name at least one host (address or prefix) or MAC address",
            );
        }
        for (j, n) in rule.hosts.iter().enumerate() {
            if !super::covered(&cfg.lan.subnets, n) {
                r.error(
                    format!("{at}.hosts[{j}]"),
                    format!("{n} is not inside a LAN subnet; only LAN hosts can ask for mappings"),
                );
            }
        }
        if rule.hosts.len() + rule.macs.len() > 64 {
            r.error(format!("{at}.hosts"), "at most 64 hosts and MACs per rule");
        }
        if let Some(l) = rule.max_lease_secs {
            if l == 0 || l > u.max_lease_secs {
                r.error(
                    format!("{at}.max_lease_secs"),
                    format!("must be 1 to upnp.max_lease_secs ({})", u.max_lease_secs),
                );
            }
        }
        if rule.comment.chars().count() > 200 {
            r.error(format!("{at}.comment"), "at most 200 characters");
        }
    }
    if u.mode != UpnpMode::Off && u.allow.is_empty() && u.mode == UpnpMode::AllowList {
        r.warn(
            "upnp.allow",
            "allow_list mode with no rules refuses every request; add a rule or use ask",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_parse_and_print_lowercase() {
        let m: MacAddr = "AA:bb:0C:dd:ee:0f".parse().expect("parses");
        assert_eq!(m.to_string(), "aa:bb:0c:dd:ee:0f");
        assert_eq!("aa-bb-0c-dd-ee-0f".parse::<MacAddr>(), Ok(m));
        for bad in [
            "",
            "aa:bb",
            "aa:bb:cc:dd:ee:ff:00",
            "aa:bb:cc:dd:ee:gg",
            "aaa:b:cc:dd:ee:ff",
            "+a:bb:cc:dd:ee:ff",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_must_name_lan_hosts_and_sane_numbers() {
        let cfg = Config::parse(
            r#"{"version":1,"lan":{"interface":"l","subnets":["192.168.1.0/24"]},"wan":{"interface":"w"},
            "upnp":{"mode":"allow_list","max_lease_secs":0,"max_per_host":0,"allow":[
              {"external_ports":"1000"},
              {"hosts":["10.0.0.0/8"],"external_ports":"1000","max_lease_secs":5}]}}"#,
        )
        .expect("parses");
        let r = crate::config::validate(&cfg, crate::config::Timestamp(0));
        let fields: Vec<&str> = r.errors().map(|i| i.field.as_str()).collect();
        for f in [
            "upnp.max_lease_secs",
            "upnp.max_per_host",
            "upnp.allow[0].hosts",
            "upnp.allow[1].hosts[0]",
            "upnp.allow[1].max_lease_secs",
        ] {
            assert!(fields.contains(&f), "{f} missing in {fields:?}");
        }
    }

    #[test]
    fn absent_section_is_off() {
        let u: Upnp = serde_json::from_str("{}").expect("parses");
        assert_eq!(u.mode, UpnpMode::Off);
        assert!(u.is_default());
        let r: UpnpRule =
            serde_json::from_str(r#"{"hosts":["192.168.1.10/32"],"external_ports":"50000-50100"}"#)
                .expect("parses");
        assert_eq!(r.protocol, Protocol::Both);
    }
}
