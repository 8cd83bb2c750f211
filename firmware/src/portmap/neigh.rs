//! MAC addresses of LAN hosts, from the kernel's neighbour table.

use std::net::Ipv4Addr;

use crate::config::MacAddr;

/// The kernel's IPv4 neighbour table as text.
const ARP_TABLE: &str = "/proc/net/arp";

/// The MAC address of `addr` from /proc/net/arp, when the kernel has a complete entry.
/// None when it has none, or the file cannot be read.
pub fn mac_of(addr: Ipv4Addr) -> Option<MacAddr> {
    let text = std::fs::read_to_string(ARP_TABLE).ok()?;
    parse_arp(&text, addr)
}

/// Finds `addr` in the text of /proc/net/arp: a header line, then one line per entry,
/// whitespace-separated `IP-address HW-type Flags HW-address Mask Device`, e.g.
/// `192.168.1.20 0x1 0x2 aa:bb:cc:dd:ee:ff * br-lan`. Incomplete entries (flags 0x0, or
/// the all-zero address) are skipped.
pub fn parse_arp(text: &str, addr: Ipv4Addr) -> Option<MacAddr> {
    text.lines().skip(1).find_map(|line| {
        let mut f = line.split_whitespace();
        let ip: Ipv4Addr = f.next()?.parse().ok()?;
        let _hw_type = f.next()?;
        let flags = f.next()?;
        let mac: MacAddr = f.next()?.parse().ok()?;
        let complete = flags != "0x0" && mac.0 != [0; 6];
        (ip == addr && complete).then_some(mac)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
IP address       HW type     Flags       HW address            Mask     Device
192.168.1.30     0x1         0x0         00:00:00:00:00:00     *        br-lan
192.168.1.20     0x1         0x2         AA:bb:cc:dd:ee:01     *        br-lan
192.168.1.40     0x1         0x0         aa:bb:cc:dd:ee:02     *        br-lan
192.168.1.50     0x1         0x2         00:00:00:00:00:00     *        br-lan
garbage
192.168.1.60 0x1
";

    #[test]
    fn finds_complete_entries_only() {
        let at = |last| parse_arp(TABLE, Ipv4Addr::new(192, 168, 1, last));
        assert_eq!(at(20), Some(MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x01])));
        assert_eq!(at(30), None);
        assert_eq!(at(40), None);
        assert_eq!(at(50), None);
        assert_eq!(at(60), None);
        assert_eq!(at(99), None);
    }

    #[test]
    fn the_header_is_not_an_entry() {
        assert_eq!(parse_arp("", Ipv4Addr::LOCALHOST), None);
        let only = "192.168.1.20 0x1 0x2 aa:bb:cc:dd:ee:01 * lan\n";
        assert_eq!(parse_arp(only, Ipv4Addr::new(192, 168, 1, 20)), None);
    }
}
