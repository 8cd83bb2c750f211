//! The `dhcp` section: addresses and names for the LAN, served by dnsmasq.
//!
//! Portcullis never runs dnsmasq itself (the firmware spawns no process): the init system
//! runs it under a small supervisor (`/etc/init.d/S40dnsmasq`) with the file
//! `portcullis dhcp-config` renders from this section, and the daemon asks the supervisor for
//! a restart (SIGTERM to dnsmasq) when what it would render changes. Absent: no DHCP
//! server; dnsmasq still forwards and caches DNS for the LAN.
//!
//! The router's own LAN address is the gateway and DNS server it hands out (dnsmasq's
//! default: the address of the interface the request came in on).

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::MacAddr;

/// Default lease time, seconds (12 hours, as OpenWrt's default).
pub const DEFAULT_LEASE_SECS: u32 = 43_200;
/// Shortest lease dnsmasq accepts, seconds.
pub const MIN_LEASE_SECS: u32 = 120;
/// Default local domain: devices are `NAME.lan`.
pub const DEFAULT_DOMAIN: &str = "lan";

/// The whole `dhcp` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dhcp {
    /// Whether addresses are handed out at all (DNS is served either way).
    #[serde(default = "super::yes")]
    pub enabled: bool,
    /// First address of the dynamic pool (inside a `lan.subnets` entry).
    pub start: Ipv4Addr,
    /// Last address of the dynamic pool, inclusive, in the same subnet as `start`.
    pub end: Ipv4Addr,
    /// Lease time, seconds (at least [`MIN_LEASE_SECS`]).
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u32,
    /// Local DNS domain of the LAN's devices (`nas.lan`).
    #[serde(default = "default_domain")]
    pub domain: String,
    /// Fixed addresses for devices, by MAC.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Reservation>,
}

/// A fixed address for one device: dnsmasq always offers `address` to `mac`, and calls the
/// device `name` (`name.<domain>` in DNS). Forwards may target the device by its MAC
/// (`forwards[].device`) and then follow `address` when it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    /// Host name: 1 to 63 letters, digits and `-`, not starting or ending with `-`.
    pub name: String,
    pub mac: MacAddr,
    /// Inside a `lan.subnets` entry; may lie inside or outside the dynamic pool.
    pub address: Ipv4Addr,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
}

fn default_lease_secs() -> u32 {
    DEFAULT_LEASE_SECS
}

fn default_domain() -> String {
    DEFAULT_DOMAIN.to_string()
}

impl Dhcp {
    /// The reservation of `mac`, if any.
    pub fn reservation(&self, mac: &MacAddr) -> Option<&Reservation> {
        self.reservations.iter().find(|r| r.mac == *mac)
    }
}
