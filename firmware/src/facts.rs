//! Gathering host facts (interface addresses) before planning, so the planner stays pure.

use std::net::Ipv4Addr;

use crate::plan::HostFacts;

/// Why host facts could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    #[error("listing interface addresses")]
    Ifaddrs(#[source] nix::Error),
}

/// Reads the IPv4 addresses of the WAN interface. A missing interface or one without an
/// address is not an error: the router may be waiting for DHCP.
pub fn gather(wan_interface: &str) -> Result<HostFacts, FactsError> {
    let mut wan_addrs: Vec<Ipv4Addr> = nix::ifaddrs::getifaddrs()
        .map_err(FactsError::Ifaddrs)?
        .filter(|ifa| ifa.interface_name == wan_interface)
        .filter_map(|ifa| ifa.address.and_then(|a| a.as_sockaddr_in().map(|s| s.ip())))
        .collect();
    wan_addrs.sort_unstable();
    wan_addrs.dedup();
    Ok(HostFacts {
        wan_addrs,
        ..HostFacts::default()
    })
}

/// The IPv4 addresses of an interface (the LAN one: where the web UI listens). A missing
/// interface or one without an address gives an empty list.
pub fn interface_addrs(interface: &str) -> Result<Vec<Ipv4Addr>, FactsError> {
    Ok(gather(interface)?.wan_addrs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_has_its_address() {
        let f = super::gather("lo").unwrap();
        assert!(f.wan_addrs.contains(&std::net::Ipv4Addr::LOCALHOST));
        assert!(super::gather("no-such-if0").unwrap().wan_addrs.is_empty());
    }
}
