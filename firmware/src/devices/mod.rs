//! LAN devices: dnsmasq's leases and the kernel's neighbour table, merged with the
//! reservations of the `dhcp` section into one list keyed by MAC (pure: the texts and the
//! time are inputs; the daemon's owner reads the files, see `daemon::devices`).

use std::net::Ipv4Addr;

use serde::Serialize;

use crate::config::{Dhcp, MacAddr, DEFAULT_LEASE_SECS};

/// Most MACs the last-seen memory keeps; the oldest is forgotten first (a phone that
/// randomises its MAC must not grow the router's memory without bound).
const MAX_SEEN: usize = 512;

/// One IPv4 lease of dnsmasq's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// When the lease ends, unix seconds; 0 for an infinite lease.
    pub expires: u64,
    pub mac: MacAddr,
    pub address: Ipv4Addr,
    /// The name the client sent (None for dnsmasq's `*`).
    pub hostname: Option<String>,
}

/// Parses dnsmasq's lease file (dnsmasq(8), "--dhcp-leasefile"; `lease.c`): one line per
/// IPv4 lease, `<expiry unix s> <mac> <ipv4> <hostname or *> <client-id or *>`, e.g.
/// `1764510000 52:54:00:12:34:56 192.168.1.143 laptop 01:52:54:00:12:34:56`. IPv6 leases
/// (after the `duid …` line; an IAID instead of a MAC), non-Ethernet hardware addresses
/// and anything else that does not parse are skipped.
pub fn parse_leases(text: &str) -> Vec<Lease> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let expires = f.next()?.parse().ok()?;
            let mac = f.next()?.parse().ok()?;
            let address = f.next()?.parse().ok()?;
            let hostname = f.next().filter(|h| *h != "*").map(str::to_string);
            Some(Lease {
                expires,
                mac,
                address,
                hostname,
            })
        })
        .collect()
}

/// One LAN device as the API lists it (`GET /api/v1/devices`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub mac: MacAddr,
    /// The lease's address, else the neighbour table's, else the reservation's.
    pub address: Option<Ipv4Addr>,
    /// The name the device sent with its DHCP request.
    pub hostname: Option<String>,
    /// The reservation's name, when the device has one.
    pub name: Option<String>,
    /// The reserved address.
    pub reserved: Option<Ipv4Addr>,
    /// When the lease ends, unix seconds (None: no lease, or an infinite one).
    pub lease_expires: Option<u64>,
    /// The last time the device was seen, unix seconds: in the neighbour table, or
    /// renewing its lease.
    pub last_seen: Option<u64>,
    /// In the kernel's neighbour table now.
    pub online: bool,
}

/// When each MAC was last in the neighbour table (memory only, bounded). A plain list:
/// a few hundred entries at most, and no hash map code in the binary for it.
#[derive(Debug, Default)]
pub struct Seen(Vec<(MacAddr, u64)>);

impl Seen {
    /// Records that `neighbours` are in the table at `now` (unix seconds).
    pub fn saw(&mut self, neighbours: &[(Ipv4Addr, MacAddr)], now: u64) {
        for (_, mac) in neighbours {
            match self.0.iter_mut().find(|(m, _)| m == mac) {
                Some(e) => e.1 = now,
                None => self.0.push((*mac, now)),
            }
        }
        while self.0.len() > MAX_SEEN {
            let oldest = (0..self.0.len()).min_by_key(|i| self.0[*i].1).unwrap_or(0);
            self.0.swap_remove(oldest);
        }
    }

    /// When `mac` was last seen, if ever since the daemon started.
    pub fn get(&self, mac: &MacAddr) -> Option<u64> {
        self.0.iter().find(|(m, _)| m == mac).map(|e| e.1)
    }
}

/// Merges leases, the LAN's complete neighbour entries and the reservations of `dhcp`
/// into one list, one [`Device`] per MAC, sorted by address (devices without one last).
/// A lease's renewal time (its expiry less the lease time) counts as a sighting.
pub fn merge(
    leases: &[Lease],
    neighbours: &[(Ipv4Addr, MacAddr)],
    dhcp: Option<&Dhcp>,
    seen: &Seen,
) -> Vec<Device> {
    let mut out: Vec<Device> = Vec::new();
    fn slot(out: &mut Vec<Device>, mac: MacAddr) -> &mut Device {
        let i = match out.iter().position(|d| d.mac == mac) {
            Some(i) => i,
            None => {
                out.push(Device {
                    mac,
                    address: None,
                    hostname: None,
                    name: None,
                    reserved: None,
                    lease_expires: None,
                    last_seen: None,
                    online: false,
                });
                out.len() - 1
            }
        };
        &mut out[i]
    }
    let lease_secs = u64::from(dhcp.map_or(DEFAULT_LEASE_SECS, |d| d.lease_secs));
    for l in leases {
        let d = slot(&mut out, l.mac);
        d.address = Some(l.address);
        d.hostname.clone_from(&l.hostname);
        if l.expires != 0 {
            d.lease_expires = Some(l.expires);
            d.last_seen = Some(l.expires.saturating_sub(lease_secs));
        }
    }
    for (ip, mac) in neighbours {
        let d = slot(&mut out, *mac);
        d.address.get_or_insert(*ip);
        d.online = true;
    }
    for r in dhcp.map_or(&[][..], |d| &d.reservations) {
        let d = slot(&mut out, r.mac);
        d.address.get_or_insert(r.address);
        d.name = Some(r.name.clone());
        d.reserved = Some(r.address);
    }
    // By address, those without one last; an insertion keeps the binary free of a sort.
    let key = |d: &Device| (d.address.is_none(), d.address, d.mac);
    let mut sorted: Vec<Device> = Vec::with_capacity(out.len());
    for mut d in out {
        d.last_seen = d.last_seen.max(seen.get(&d.mac));
        let at = sorted.partition_point(|x| key(x) <= key(&d));
        sorted.insert(at, d);
    }
    sorted
}

#[cfg(test)]
mod tests;

/// Reservations in `new` that are new or moved (not in `old`) whose address another device
/// holds right now: an unexpired lease (`now`, unix seconds) or a neighbour entry under a
/// different MAC. Such a reservation would point a forward to that device at the other
/// one until it renews (hours), so it is refused: the report names
/// `dhcp.reservations[i].address`.
pub fn held_elsewhere(
    old: Option<&Dhcp>,
    new: Option<&Dhcp>,
    leases: &[Lease],
    neighbours: &[(Ipv4Addr, MacAddr)],
    now: u64,
) -> crate::config::Report {
    let mut r = crate::config::Report::default();
    let Some(new) = new else {
        return r;
    };
    for (i, res) in new.reservations.iter().enumerate() {
        let unchanged = old
            .and_then(|o| o.reservation(&res.mac))
            .is_some_and(|o| o.address == res.address);
        if unchanged {
            continue;
        }
        let lease = leases.iter().find(|l| {
            l.address == res.address && l.mac != res.mac && (l.expires == 0 || l.expires > now)
        });
        let other = lease.map(|l| l.mac).or_else(|| {
            neighbours
                .iter()
                .find(|(a, m)| *a == res.address && *m != res.mac)
                .map(|(_, m)| *m)
        });
        if let Some(other) = other {
            r.error(
                format!("dhcp.reservations[{i}].address"),
                format!(
                    "{} is in use by {other} now; reserve it once that device has left it \
                     (a forward to this device would reach the other one meanwhile)",
                    res.address
                ),
            );
        }
    }
    r
}
