//! The WireGuard client tunnel (issue 9): the provider's `.conf` file, the secrets, the
//! kernel side of the tunnel (link, WireGuard device, addresses, policy routing) over
//! netlink only, and the provider's port forwarding (NAT-PMP over the tunnel).
//!
//! The firewall side (kill switch, Port Fail guard, DNS redirect, the provider port's
//! DNAT) is planned with the rest of the ruleset in `crate::plan`.

/// Packet mark (`meta mark`) the ruleset puts on packets of LAN devices that use the
/// tunnel; a policy-routing rule sends marked packets to the tunnel's table. Distinct
/// from WireGuard's own fwmark (51820 = 0xca6c).
pub const TUNNEL_MARK: u32 = 0x0001_0000;
/// Conntrack mark (`ct mark`) of connections that arrived through the tunnel (the
/// provider's forwarded port): their replies route back through the tunnel.
pub const CT_FROM_TUNNEL: u32 = 1;
/// Conntrack mark of DNS connections redirected to the tunnel's resolver.
pub const CT_DNS_REDIRECT: u32 = 2;
/// Priority of the first of the tunnel's policy-routing rules (the others follow it):
/// `PRIORITY`: fwmark F → main (WireGuard's own packets leave by the WAN);
/// `PRIORITY + 1`: to ENDPOINT/32 → table T (the Port Fail guard: everything else to the
/// endpoint's address goes through the tunnel; no plain host route to it exists);
/// `PRIORITY + 2`: fwmark TUNNEL_MARK → main, suppress_prefixlength 0 (LAN routes stay);
/// `PRIORITY + 3`: fwmark TUNNEL_MARK → table T.
/// (One rule `not fwmark F to ENDPOINT` would be wrong: the kernel's invert flag negates
/// the whole match, so it would catch every packet but WireGuard's own to the endpoint.)
pub const RULE_PRIORITY: u32 = 10_000;

pub mod conf;
pub mod genl;
pub mod key;
mod nl;
pub mod provider;
pub mod provider_io;
pub mod rtnl;
pub mod rtnl_msg;
pub mod secrets;
pub mod tunnel;
pub mod view;
