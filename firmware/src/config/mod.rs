//! What the owner wants: the serde model of the config file, its parsing and validation.
//!
//! The file is JSON with a `version` field; see `docs/config.md`. Unknown fields are
//! refused rather than ignored, because a misspelt `allow_from` silently ignored would open
//! a port to the whole internet.

mod dhcp;
mod json_path;
mod types;
mod upnp;
mod validate;
mod vpn;
mod vpn_check;

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

pub use dhcp::{Dhcp, Reservation, DEFAULT_DOMAIN, DEFAULT_LEASE_SECS, MIN_LEASE_SECS};
pub use types::{covered, covers_everything, Ipv4Net, PortRange, Protocol, Timestamp};
pub use upnp::{
    MacAddr, Upnp, UpnpMode, UpnpRule, DEFAULT_MAX_LEASE_SECS, DEFAULT_MAX_PER_HOST, MAX_MAPPINGS,
};
pub use validate::{validate, validate_host, Issue, Report, Severity, RESERVED_PORTS};
pub use vpn::{
    ProviderForward, Vpn, VpnDevices, VpnPeer, DEFAULT_FWMARK, DEFAULT_GATEWAY, DEFAULT_INTERFACE,
    DEFAULT_MTU, DEFAULT_TABLE,
};

/// The config format this build reads and writes.
pub const VERSION: u32 = 1;

/// Default lifetime of an opened trigger, as on Tomato/Asuswrt.
pub const DEFAULT_TRIGGER_TIMEOUT_SECS: u32 = 600;

/// The whole config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    pub lan: Lan,
    pub wan: Wan,
    #[serde(default)]
    pub management: Management,
    #[serde(default)]
    pub forwards: Vec<Forward>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    /// Port mappings LAN clients may make themselves (UPnP IGD, NAT-PMP, PCP); off when
    /// absent.
    #[serde(default, skip_serializing_if = "Upnp::is_default")]
    pub upnp: Upnp,
    /// A WireGuard tunnel to a VPN provider; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpn: Option<Vpn>,
    /// DHCP and local DNS names for the LAN (dnsmasq); no DHCP server when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<Dhcp>,
}

/// The LAN side: one interface (usually a bridge) and the subnets on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lan {
    pub interface: String,
    pub subnets: Vec<Ipv4Net>,
}

/// The WAN side. Its address is a host fact (it usually comes from DHCP), not config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wan {
    pub interface: String,
}

/// How the router itself is managed; its ports cannot be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Management {
    /// TCP port of the web UI on the LAN address (port 0 is refused while parsing).
    #[serde(
        default = "default_http_port",
        deserialize_with = "types::nonzero_port"
    )]
    pub http_port: u16,
}

fn default_http_port() -> u16 {
    80
}

impl Default for Management {
    fn default() -> Self {
        Management {
            http_port: default_http_port(),
        }
    }
}

fn yes() -> bool {
    true
}

fn unspecified() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}

/// A static port forward from the WAN to a LAN host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub protocol: Protocol,
    pub external_port: PortRange,
    /// The LAN host; `0.0.0.0` (written by leaving it out) when `device` names the target.
    #[serde(
        default = "unspecified",
        skip_serializing_if = "Ipv4Addr::is_unspecified"
    )]
    pub internal_host: Ipv4Addr,
    /// The target as a device: the MAC of a `dhcp.reservations` entry. The forward follows
    /// that reservation's address (see [`Config::forward_host`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<MacAddr>,
    /// Defaults to the external port (range).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_port: Option<PortRange>,
    /// Who may connect; empty means anyone on the internet (and `check` warns).
    #[serde(default)]
    pub allow_from: Vec<Ipv4Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Log new connections (rate-limited so logging cannot flood the router).
    #[serde(default)]
    pub log: bool,
    /// The kernel stops forwarding at this moment, even if the daemon is dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

impl Forward {
    /// The internal range actually used.
    pub fn internal_range(&self) -> PortRange {
        self.internal_port.unwrap_or(self.external_port)
    }

    /// Can any address on the internet connect? True for an empty `allow_from` and for
    /// lists that together cover every address (`0.0.0.0/0`, `0.0.0.0/1` + `128.0.0.0/1`):
    /// coverage decides, not spelling.
    pub fn open_to_anyone(&self) -> bool {
        self.allow_from.is_empty() || covers_everything(&self.allow_from)
    }
}

/// Per-source limit on new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// New connections allowed per `per` from one source address.
    pub connections: u32,
    pub per: Per,
    /// Extra connections allowed in a burst before the limit bites.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    5
}

/// Time unit of a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    Second,
    Minute,
    Hour,
}

/// Port triggering: outbound traffic from a LAN host opens inbound ports to that host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub name: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    pub trigger_protocol: Protocol,
    pub trigger_port: PortRange,
    pub open_protocol: Protocol,
    pub open_port: PortRange,
    /// Seconds the inbound ports stay open after the last outbound trigger packet.
    #[serde(default = "default_trigger_timeout")]
    pub timeout_secs: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

fn default_trigger_timeout() -> u32 {
    DEFAULT_TRIGGER_TIMEOUT_SECS
}

fn strip_comment_lines(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why a config file could not even be read as a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The text is not JSON, or a value does not fit its field. `field` is the JSON path
    /// (`forwards[0].allow_from[1]`) so the UI can point at it.
    #[error("{field}: {message} (line {line}, column {column})")]
    Parse {
        field: String,
        message: String,
        line: usize,
        column: usize,
    },
    #[error("version: this build reads config version {VERSION}, the file says {0}")]
    Version(u32),
    #[error("config is invalid:\n{0}")]
    Invalid(Report),
}

/// A serde_json error as a [`ConfigError::Parse`] at `field`.
fn parse_error(field: String, e: serde_json::Error) -> ConfigError {
    // serde_json appends " at line L column C"; we report position separately.
    let mut message = e.to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    ConfigError::Parse {
        field,
        message,
        line: e.line(),
        column: e.column(),
    }
}

impl Config {
    /// The LAN address `f` forwards to: its device's reserved address when it names a
    /// device, else `internal_host`. `0.0.0.0` when the device has no reservation (which
    /// validation refuses, naming `forwards[i].device`).
    pub fn forward_host(&self, f: &Forward) -> Ipv4Addr {
        match &f.device {
            Some(mac) => self
                .dhcp
                .as_ref()
                .and_then(|d| d.reservation(mac))
                .map_or(Ipv4Addr::UNSPECIFIED, |r| r.address),
            None => f.internal_host,
        }
    }

    /// Parses one section (`upnp`, `vpn`, …) given as JSON text, through the config
    /// file's own parser inside an otherwise empty config: errors name the field as for
    /// the file (`vpn.devices.hosts[0]`), and the binary keeps one copy of the section's
    /// deserializer. Only `section` of the result is meaningful.
    pub fn parse_section(section: &str, json: &str) -> Result<Config, ConfigError> {
        Config::parse(&format!(
            r#"{{"version":{VERSION},"lan":{{"interface":"-","subnets":[]}},"wan":{{"interface":"-"}},"{section}":{json}}}"#
        ))
    }

    /// Parses JSON text; checks the version before anything else so that a newer file
    /// gets a clear message instead of a confusing field error. Whole lines starting with
    /// `//` are comments (blanked, so error line numbers stay right); a config the daemon
    /// rewrites is saved without them.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let blanked = strip_comment_lines(text);
        let text = blanked.as_str();
        #[derive(Deserialize)]
        struct VersionOnly {
            version: Option<u32>,
        }
        if let Ok(VersionOnly { version: Some(v) }) = serde_json::from_str::<VersionOnly>(text) {
            if v != VERSION {
                return Err(ConfigError::Version(v));
            }
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        let cfg = Config::deserialize(&mut *de).map_err(|e| {
            let missing = e.to_string().starts_with("missing field");
            let field = match json_path::at(text, e.line(), e.column(), missing) {
                p if p.is_empty() => "(config)".to_string(),
                p => p,
            };
            parse_error(field, e)
        })?;
        // Nothing but whitespace may follow the config object.
        de.end()
            .map_err(|e| parse_error("(config)".to_string(), e))?;
        // The early check above is skipped when the text is not JSON at all; a file
        // that is JSON always reaches this one.
        if cfg.version != VERSION {
            return Err(ConfigError::Version(cfg.version));
        }
        Ok(cfg)
    }

    /// Reads and parses a file (no validation).
    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text)
    }

    /// Parses and validates; warnings are returned, errors refuse the config.
    pub fn parse_valid(text: &str, now: Timestamp) -> Result<(Config, Report), ConfigError> {
        let cfg = Config::parse(text)?;
        let report = validate(&cfg, now);
        if report.has_errors() {
            return Err(ConfigError::Invalid(report));
        }
        Ok((cfg, report))
    }

    /// Pretty JSON, the form saved to disk.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
