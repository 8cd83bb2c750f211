//! Every name the planner invents for the kernel: the table, chains, sets, maps and
//! counters. The planner, the read-back and status all import them from here, so a name
//! has exactly one spelling.

/// The table Portcullis owns. Nothing outside it is ever touched.
pub const TABLE: &str = "portcullis";

/// Log prefix of forward hits; the daemon and the UI find hits in the kernel log by it.
pub const LOG_PREFIX: &str = "portcullis fwd ";

/// Protocol numbers the per-protocol shared sets exist for.
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;

/// Fixed chains.
pub const DSTNAT: &str = "dstnat";
pub const INBOUND: &str = "inbound";
pub const INPUT: &str = "input";
pub const FORWARD: &str = "forward";
pub const SRCNAT: &str = "srcnat";
/// Re-checks every packet of a DNATed connection against the live intent.
pub const FLOWS: &str = "flows";

/// The VPN tunnel's chains (issue 9): marks the tunnel devices' packets (prerouting,
/// mangle priority), and guards the router's own packets to the VPN endpoint (output).
pub const VPN_MARK: &str = "vpn_mark";
pub const OUTPUT: &str = "output";

/// Fixed sets.
pub const LAN_NETS: &str = "lan_nets";
pub const WAN_ADDRS: &str = "wan_addrs";

/// Counter of packets of DNATed connections the owner's intent no longer allows (a
/// forward removed, narrowed, changed or expired; a trigger timed out).
pub const FLOWS_CUT: &str = "flows_cut";
/// Counter of new connections a rate limit refused: over their source's rate, or from a
/// new source while the meter was full (it fails closed).
pub const RATE_LIMITED: &str = "rate_limited";

/// LAN devices that use the VPN tunnel, by IPv4 address (interval set) and by MAC.
pub const VPN_HOSTS: &str = "vpn_hosts";
pub const VPN_MACS: &str = "vpn_macs";
/// Base of the per-protocol maps of the VPN provider's forwarded port
/// (`port : LAN host . port`), used only for packets arriving through the tunnel.
pub const VPN_DNAT: &str = "vpn_dnat";
/// Counter of packets of tunnel devices the kill switch kept from leaving outside the
/// tunnel.
pub const VPN_KILL_SWITCH: &str = "vpn_kill_switch";
/// Counter of packets to the VPN endpoint's address that would have left by the WAN in
/// clear (the Port Fail guard), from the router or the LAN.
pub const VPN_PORT_FAIL: &str = "vpn_port_fail";
/// Counter of tunnel devices' DNS packets (port 53) to the router itself, dropped so
/// their queries never resolve outside the tunnel.
pub const VPN_DNS_BLOCKED: &str = "vpn_dns_blocked";

/// Bases of the per-protocol shared sets and maps (see [`per_proto`]).
pub const ALLOW: &str = "allow";
pub const SPECIAL: &str = "special";
pub const CTR: &str = "ctr";
pub const DNAT_PORT: &str = "dnat_port";
pub const DNAT_HOST: &str = "dnat_host";
pub const TRIGGER_IN: &str = "trigger_in";
pub const TRIGGER_OUT: &str = "trigger_out";
/// Which trigger owns a DNATed connection, by its original destination port.
pub const TRIGGER_FLOW: &str = "trigger_flow";
/// Live forwards as `external port . WAN peer . internal host . internal port`.
pub const FLOWS_SET: &str = "flows";

/// Prefix of every per-forward name.
pub const FORWARD_PREFIX: &str = "fwd_";
/// Prefix of every per-trigger name.
pub const TRIGGER_PREFIX: &str = "trg_";

/// Name of a per-protocol shared set or map, e.g. `allow_tcp`.
pub fn per_proto(base: &str, proto: u8) -> String {
    format!("{base}_{}", if proto == TCP { "tcp" } else { "udp" })
}

/// Name of a forward's counter object (also the name of its log chain, if it logs).
pub fn forward_counter(name: &str) -> String {
    format!("{FORWARD_PREFIX}{name}")
}

/// The forward a counter name belongs to, if it is a forward counter.
pub fn forward_of_counter(counter: &str) -> Option<&str> {
    counter.strip_prefix(FORWARD_PREFIX)
}

/// Name of a trigger's dynamic map, which holds the LAN host it is open to; also the name
/// of its counter, and the prefix of its chains.
pub fn trigger_map(name: &str) -> String {
    format!("{TRIGGER_PREFIX}{name}")
}

/// Is this set a trigger's host map (`trg_NAME`, not one of its other objects)? Names of
/// other per-trigger objects contain a `.`, which config names cannot.
pub fn is_trigger_map(set: &str) -> bool {
    set.starts_with(TRIGGER_PREFIX) && !set.contains('.')
}

/// The trigger a host-map name belongs to.
pub fn trigger_of_map(set: &str) -> Option<&str> {
    set.strip_prefix(TRIGGER_PREFIX)
        .filter(|_| is_trigger_map(set))
}

const HOLDER_SUFFIX: &str = ".holder";
const IN_SUFFIX: &str = "_in";

/// A trigger's size-1 set of the LAN host holding it: only that host's traffic refreshes
/// the trigger, and only that host's inbound connections live on.
pub fn trigger_holder(name: &str) -> String {
    format!("{}{HOLDER_SUFFIX}", trigger_map(name))
}

/// A trigger's inbound chain (DNAT to the holder).
pub fn trigger_in_chain(name: &str) -> String {
    format!("{}{IN_SUFFIX}", trigger_map(name))
}

/// The trigger an inbound chain belongs to.
pub fn trigger_of_in_chain(chain: &str) -> Option<&str> {
    chain
        .strip_prefix(TRIGGER_PREFIX)
        .and_then(|c| c.strip_suffix(IN_SUFFIX))
}

/// A trigger's outbound chain (records the holder).
pub fn trigger_out_chain(name: &str) -> String {
    format!("{}_out", trigger_map(name))
}

/// A trigger's flow check chain (is the connection's LAN host still the holder?).
pub fn trigger_flow_chain(name: &str) -> String {
    format!("{}.flow", trigger_map(name))
}

/// Per rate-limit class: the chain and meter set shared by forwards with that limit,
/// e.g. `rl_30_minute_10`.
pub fn rate_class(connections: u32, per: &str, burst: u32) -> String {
    format!("rl_{connections}_{per}_{burst}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(per_proto(CTR, TCP), "ctr_tcp");
        assert_eq!(per_proto(FLOWS_SET, UDP), "flows_udp");
        assert_eq!(forward_of_counter(&forward_counter("web")), Some("web"));
        assert_eq!(trigger_of_map(&trigger_map("irc")), Some("irc"));
        assert_eq!(trigger_of_map(&trigger_holder("irc")), None);
        assert_eq!(trigger_of_in_chain(&trigger_in_chain("a_in")), Some("a_in"));
        assert_eq!(rate_class(30, "minute", 10), "rl_30_minute_10");
    }
}
