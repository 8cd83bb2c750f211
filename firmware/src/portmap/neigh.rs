//! MAC addresses of LAN hosts, from the kernel's neighbour table.

use std::net::Ipv4Addr;

use crate::config::MacAddr;

/// The kernel's IPv4 neighbour table as text.
const ARP_TABLE: &str = "/proc/net/arp";

/// The MAC address of `addr` from /proc/net/arp, when the kernel has a complete entry.
/// None when it has none, or the file cannot be read.
pub fn mac_of(addr: Ipv4Addr) -> Option<MacAddr> {
    parse_arp(&table_text(), addr)
}

/// Finds `addr` in the text of /proc/net/arp: a header line, then one line per entry,
/// whitespace-separated `IP-address HW-type Flags HW-address Mask Device`, e.g.
/// `192.168.1.20 0x1 0x2 aa:bb:cc:dd:ee:ff * br-lan`. Incomplete entries (flags 0x0, or
/// the all-zero address) are skipped.
pub fn parse_arp(text: &str, addr: Ipv4Addr) -> Option<MacAddr> {
    entries(text).find_map(|(ip, mac)| (ip == addr).then_some(mac))
}

/// The MACs of complete entries of /proc/net/arp whose address lies in one of `nets`,
/// sorted, without duplicates (empty when the file cannot be read).
pub fn macs_in(nets: &[crate::config::Ipv4Net]) -> Vec<MacAddr> {
    parse_arp_in(&table_text(), nets)
}

/// [`macs_in`] over the text of /proc/net/arp.
pub fn parse_arp_in(text: &str, nets: &[crate::config::Ipv4Net]) -> Vec<MacAddr> {
    let mut macs: Vec<MacAddr> = entries(text)
        .filter(|(ip, _)| nets.iter().any(|n| n.contains(*ip)))
        .map(|(_, mac)| mac)
        .collect();
    macs.sort_unstable_by_key(|m| m.0);
    macs.dedup();
    macs
}

/// The text of /proc/net/arp (empty when it cannot be read).
pub fn table_text() -> String {
    std::fs::read_to_string(ARP_TABLE).unwrap_or_default()
}

/// The complete entries (flag `ATF_COM`, 0x2, of `<linux/if_arp.h>`) of the table's
/// text (see [`parse_arp`]) on interface `dev`: (address, MAC) in the table's order.
pub fn parse_arp_on(text: &str, dev: &str) -> Vec<(Ipv4Addr, MacAddr)> {
    text.lines()
        .skip(1)
        .filter(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            f.len() == 6 && f[5] == dev
        })
        .filter_map(fields)
        .filter(|(_, flags, _)| {
            u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|f| f & 2 != 0)
        })
        .map(|(ip, _, mac)| (ip, mac))
        .collect()
}

/// The complete entries of the table's text (see [`parse_arp`]).
fn entries(text: &str) -> impl Iterator<Item = (Ipv4Addr, MacAddr)> + '_ {
    text.lines()
        .skip(1)
        .filter_map(fields)
        .filter(|(_, flags, _)| *flags != "0x0")
        .map(|(ip, _, mac)| (ip, mac))
}

/// A table line's address, flags (as printed, `0x2`) and MAC; None when they do not
/// parse or the MAC is all zeros (an incomplete entry).
fn fields(line: &str) -> Option<(Ipv4Addr, &str, MacAddr)> {
    let mut f = line.split_whitespace();
    let ip: Ipv4Addr = f.next()?.parse().ok()?;
    let _hw_type = f.next()?;
    let flags = f.next()?;
    let mac: MacAddr = f.next()?.parse().ok()?;
    (mac.0 != [0; 6]).then_some((ip, flags, mac))
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
    fn macs_of_a_subnet() {
        let net = |s: &str| s.parse::<crate::config::Ipv4Net>().unwrap();
        let mac = |b| MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, b]);
        let t = format!("{TABLE}192.168.1.21 0x1 0x2 aa:bb:cc:dd:ee:01 * br-lan\n10.0.0.1 0x1 0x2 aa:bb:cc:dd:ee:09 * wan\n");
        assert_eq!(parse_arp_in(&t, &[net("192.168.1.0/24")]), vec![mac(1)]);
        assert_eq!(
            parse_arp_in(&t, &[net("192.168.1.20/32"), net("10.0.0.0/8")]),
            vec![mac(1), mac(9)]
        );
        assert!(
            parse_arp_in(&t, &[net("192.168.1.30/32")]).is_empty(),
            "incomplete"
        );
    }

    #[test]
    fn complete_entries_of_one_interface() {
        let t = format!("{TABLE}192.168.1.70 0x1 0x6 aa:bb:cc:dd:ee:07 * br-lan\n\
             10.0.0.1 0x1 0x2 aa:bb:cc:dd:ee:09 * wan\n192.168.1.80 0x1 0x2 aa:bb:cc:dd:ee:08 * br-lan extra\n");
        let ip = |last| Ipv4Addr::new(192, 168, 1, last);
        let mac = |b| MacAddr([0xaa, 0xbb, 0xcc, 0xdd, 0xee, b]);
        assert_eq!(
            parse_arp_on(&t, "br-lan"),
            vec![(ip(20), mac(1)), (ip(70), mac(7))]
        );
        assert_eq!(parse_arp_on(&t, "lan"), vec![]);
        assert_eq!(parse_arp_on("", "br-lan"), vec![]);
    }

    #[test]
    fn the_header_is_not_an_entry() {
        assert_eq!(parse_arp("", Ipv4Addr::LOCALHOST), None);
        let only = "192.168.1.20 0x1 0x2 aa:bb:cc:dd:ee:01 * lan\n";
        assert_eq!(parse_arp(only, Ipv4Addr::new(192, 168, 1, 20)), None);
    }
}
