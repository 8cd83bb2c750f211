//! The owner's side of the LAN device list: it alone reads dnsmasq's lease file (in the
//! runtime directory) and the kernel's neighbour table, and remembers when each device
//! was last in the table (on every query and every facts poll).

use std::net::Ipv4Addr;

use crate::config::{MacAddr, Timestamp};
use crate::devices::{self, Device};
use crate::dhcp::LEASE_FILE;
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
        DevicesView {
            now: now.0,
            devices: devices::merge(
                &self.leases(),
                &neighbours,
                self.core.config.dhcp.as_ref(),
                &self.seen,
            ),
        }
    }

    /// dnsmasq's leases now; none without a runtime directory (tests without dnsmasq) or
    /// before dnsmasq wrote its file.
    fn leases(&self) -> Vec<devices::Lease> {
        let text = self
            .opts
            .run_dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join(LEASE_FILE)).ok())
            .unwrap_or_default();
        devices::parse_leases(&text)
    }

    /// Refuses a proposal that reserves (or moves a reservation to) an address another
    /// device holds now (`devices::held_elsewhere`).
    pub(super) fn check_held(
        &mut self,
        p: &super::core::Proposal,
        now: Timestamp,
    ) -> Result<(), super::EditError> {
        if p.config.dhcp == self.core.config.dhcp {
            return Ok(());
        }
        let neighbours = self.see_devices(now);
        let r = devices::held_elsewhere(
            self.core.config.dhcp.as_ref(),
            p.config.dhcp.as_ref(),
            &self.leases(),
            &neighbours,
            now.0,
        );
        if r.has_errors() {
            return Err(super::EditError::Invalid(r));
        }
        Ok(())
    }
}
