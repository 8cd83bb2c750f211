//! The owner's side of the LAN device list: it alone reads dnsmasq's lease file (in the
//! runtime directory) and the kernel's neighbour table, and remembers when each device
//! was last in the table (on every query and every facts poll).

use std::net::Ipv4Addr;

use crate::config::{MacAddr, Timestamp};
use crate::devices::{self, Device, LEASES_FILE};
use crate::portmap::neigh;

/// The device list at one moment (`GET /api/v1/devices`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevicesView {
    /// The router's clock, unix seconds, to age `last_seen` and `lease_expires` by.
    pub now: u64,
    pub devices: Vec<Device>,
}

impl super::Owner {
    /// Reads the LAN's complete neighbour entries and remembers them as seen at `now`.
    pub(super) fn see_devices(&mut self, now: Timestamp) -> Vec<(Ipv4Addr, MacAddr)> {
        let n = neigh::parse_arp_on(&neigh::table_text(), &self.core.config.lan.interface);
        self.seen.saw(&n, now.0);
        n
    }

    /// The merged device list. No runtime directory (tests without dnsmasq), or no lease
    /// file yet: no leases.
    pub(super) fn devices(&mut self, now: Timestamp) -> DevicesView {
        let neighbours = self.see_devices(now);
        let text = self
            .opts
            .run_dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(LEASES_FILE)).ok())
            .unwrap_or_default();
        DevicesView {
            now: now.0,
            devices: devices::merge(
                &devices::parse_leases(&text),
                &neighbours,
                self.core.config.dhcp.as_ref(),
                &self.seen,
            ),
        }
    }
}
