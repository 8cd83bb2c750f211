//! rtnetlink operations for the tunnel on a synchronous `NETLINK_ROUTE` socket: the link,
//! its IPv4 addresses, the routes of the tunnel's table and the policy-routing rules, each
//! converged to what the plan wants. Messages are built in [`super::rtnl_msg`].

use std::io;

use super::nl::{Nl, NETLINK_ROUTE};
use super::rtnl_msg::{self as msg, Link, Route};
use super::tunnel::{RuleSpec, TunnelError};
use crate::config::Ipv4Net;

/// A dumped rule, whether it is foreign (see [`msg::decode_rule`]), and its payload.
type RawRule = ((RuleSpec, bool), Vec<u8>);

/// An open `NETLINK_ROUTE` socket in the calling thread's network namespace.
pub struct Rtnl {
    nl: Nl,
}

fn errno_is(e: &io::Error, errno: i32) -> bool {
    e.raw_os_error() == Some(errno)
}

impl Rtnl {
    /// Opens the socket (errors: [`TunnelError::Open`]).
    pub fn open() -> Result<Rtnl, TunnelError> {
        let nl = Nl::open(NETLINK_ROUTE).map_err(|source| TunnelError::Open {
            protocol: "NETLINK_ROUTE",
            source,
        })?;
        Ok(Rtnl { nl })
    }

    /// Sends one request that the kernel acknowledges.
    fn ack(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> io::Result<()> {
        let seq = self.nl.next_seq();
        self.nl.request(&build(seq), seq, |_| Ok(()))
    }

    /// Dumps IPv4 objects of `ty`, keeping each payload (for an exact delete) with what
    /// `decode` makes of it.
    fn dump<T>(
        &mut self,
        ty: u16,
        what: &'static str,
        decode: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Vec<(T, Vec<u8>)>, TunnelError> {
        let seq = self.nl.next_seq();
        let mut out = Vec::new();
        self.nl
            .request(&msg::dump_ipv4(seq, ty), seq, |p| {
                if let Some(t) = decode(p) {
                    out.push((t, p.to_vec()));
                }
                Ok(())
            })
            .map_err(|source| TunnelError::Dump { what, source })?;
        Ok(out)
    }

    /// The link named `name`, or none (ENODEV).
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, TunnelError> {
        let seq = self.nl.next_seq();
        match self.nl.request_one(&msg::get_link(seq, name), seq) {
            Ok(p) => msg::decode_link(&p)
                .map(Some)
                .ok_or_else(|| TunnelError::Dump {
                    what: "the link",
                    source: io::Error::new(io::ErrorKind::InvalidData, "short RTM_NEWLINK"),
                }),
            Err(e) if errno_is(&e, nix::libc::ENODEV) => Ok(None),
            Err(source) => Err(TunnelError::Dump {
                what: "the link",
                source,
            }),
        }
    }

    /// Creates link `name` of `kind` ("wireguard"; tests use "dummy").
    pub fn create_link(&mut self, name: &str, kind: &str) -> Result<(), TunnelError> {
        self.ack(|seq| msg::new_link(seq, name, kind))
            .map_err(|source| TunnelError::CreateLink {
                ifname: name.to_string(),
                source,
            })
    }

    /// The link named `name` with kind `kind`, created if missing. A link of that name
    /// and another kind is an error ([`TunnelError::LinkKind`]), never taken over.
    pub fn ensure_link(&mut self, name: &str, kind: &str) -> Result<Link, TunnelError> {
        if self.link(name)?.is_none() {
            self.create_link(name, kind)?;
        }
        let link = self.link(name)?.ok_or_else(|| TunnelError::CreateLink {
            ifname: name.to_string(),
            source: io::Error::from_raw_os_error(nix::libc::ENODEV),
        })?;
        if link.kind.as_deref() != Some(kind) {
            return Err(TunnelError::LinkKind {
                ifname: name.to_string(),
                kind: link.kind.unwrap_or_default(),
            });
        }
        Ok(link)
    }

    /// Deletes link `name`; Ok if it does not exist.
    pub fn delete_link(&mut self, name: &str) -> Result<(), TunnelError> {
        match self.ack(|seq| msg::del_link(seq, name)) {
            Err(e) if !errno_is(&e, nix::libc::ENODEV) => Err(TunnelError::DeleteLink {
                ifname: name.to_string(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Sets the MTU (bytes) of `link` if it differs.
    pub fn set_mtu(&mut self, ifname: &str, link: &Link, mtu: u32) -> Result<(), TunnelError> {
        if link.mtu == mtu {
            return Ok(());
        }
        self.ack(|seq| msg::set_mtu(seq, link.index, mtu))
            .map_err(|source| TunnelError::SetLink {
                ifname: ifname.to_string(),
                what: "MTU",
                source,
            })
    }

    /// Brings `link` up if it is not.
    pub fn set_up(&mut self, ifname: &str, link: &Link) -> Result<(), TunnelError> {
        if link.flags & msg::IFF_UP != 0 {
            return Ok(());
        }
        self.ack(|seq| msg::set_up(seq, link.index))
            .map_err(|source| TunnelError::SetLink {
                ifname: ifname.to_string(),
                what: "up",
                source,
            })
    }

    /// The IPv4 addresses of link `index`, in the kernel's order.
    pub fn addresses(&mut self, index: u32) -> Result<Vec<Ipv4Net>, TunnelError> {
        Ok(self
            .addresses_raw(index)?
            .into_iter()
            .map(|(n, _)| n)
            .collect())
    }

    fn addresses_raw(&mut self, index: u32) -> Result<Vec<(Ipv4Net, Vec<u8>)>, TunnelError> {
        let all = self.dump(msg::RTM_GETADDR, "addresses", msg::decode_addr)?;
        Ok(all
            .into_iter()
            .filter(|((i, _), _)| *i == index)
            .map(|((_, n), p)| (n, p))
            .collect())
    }

    /// Converges the IPv4 addresses of link `index` to `want`: deletes the others first
    /// (deleting a primary address after adding a secondary of its subnet would take the
    /// secondary with it), then adds the missing ones.
    pub fn converge_addresses(
        &mut self,
        ifname: &str,
        index: u32,
        want: &[Ipv4Net],
    ) -> Result<(), TunnelError> {
        let have = self.addresses_raw(index)?;
        for (net, payload) in &have {
            if !want.contains(net) {
                match self.ack(|seq| msg::echo_delete(seq, msg::RTM_DELADDR, payload)) {
                    // Already gone with a deleted primary address.
                    Err(e) if errno_is(&e, nix::libc::EADDRNOTAVAIL) => {}
                    Err(source) => {
                        return Err(TunnelError::DeleteAddress {
                            address: *net,
                            ifname: ifname.to_string(),
                            source,
                        })
                    }
                    Ok(()) => {}
                }
            }
        }
        let kept: Vec<Ipv4Net> = self.addresses(index)?;
        for net in want {
            if !kept.contains(net) {
                self.ack(|seq| msg::new_addr(seq, index, *net))
                    .map_err(|source| TunnelError::AddAddress {
                        address: *net,
                        ifname: ifname.to_string(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// The IPv4 routes of routing table `table`.
    pub fn routes(&mut self, table: u32) -> Result<Vec<Route>, TunnelError> {
        Ok(self
            .routes_raw(table)?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    fn routes_raw(&mut self, table: u32) -> Result<Vec<(Route, Vec<u8>)>, TunnelError> {
        let all = self.dump(msg::RTM_GETROUTE, "routes", msg::decode_route)?;
        Ok(all.into_iter().filter(|(r, _)| r.table == table).collect())
    }

    /// Converges table `table` to exactly `want`, each `dst dev <oif>`: adds the missing
    /// routes first (so the table never empties), then deletes every other route in it.
    /// With `oif` none only deletes (the flush of [`super::tunnel::remove`]).
    pub fn converge_routes(
        &mut self,
        table: u32,
        oif: Option<u32>,
        want: &[Ipv4Net],
    ) -> Result<(), TunnelError> {
        let have = self.routes_raw(table)?;
        let wanted = |r: &Route| {
            oif.is_some()
                && r.plain
                && r.oif == oif
                && want
                    .iter()
                    .any(|w| w.network() == r.dst.addr() && w.prefix_len() == r.dst.prefix_len())
        };
        if let Some(oif) = oif {
            for w in want {
                let present = have.iter().any(|(r, _)| {
                    wanted(r) && r.dst.addr() == w.network() && r.dst.prefix_len() == w.prefix_len()
                });
                if !present {
                    self.ack(|seq| msg::new_route(seq, table, *w, oif))
                        .map_err(|source| TunnelError::AddRoute {
                            dst: *w,
                            table,
                            source,
                        })?;
                }
            }
        }
        for (r, payload) in &have {
            if !wanted(r) {
                match self.ack(|seq| msg::echo_delete(seq, msg::RTM_DELROUTE, payload)) {
                    Err(e) if !errno_is(&e, nix::libc::ESRCH) => {
                        return Err(TunnelError::DeleteRoute {
                            dst: r.dst,
                            table,
                            source: e,
                        })
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The IPv4 policy-routing rules with a priority in `priorities`, and whether each
    /// has selectors or an action our rules never use.
    pub fn rules(
        &mut self,
        priorities: std::ops::RangeInclusive<u32>,
    ) -> Result<Vec<(RuleSpec, bool)>, TunnelError> {
        Ok(self
            .rules_raw(&priorities)?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    fn rules_raw(
        &mut self,
        priorities: &std::ops::RangeInclusive<u32>,
    ) -> Result<Vec<RawRule>, TunnelError> {
        let all = self.dump(msg::RTM_GETRULE, "rules", msg::decode_rule)?;
        Ok(all
            .into_iter()
            .filter(|((r, _), _)| priorities.contains(&r.priority))
            .collect())
    }

    /// Converges the IPv4 rules with a priority in `priorities` to exactly `want`: adds
    /// the missing ones first, then deletes every other rule in that range (so a changed
    /// rule is never absent, only briefly doubled).
    pub fn converge_rules(
        &mut self,
        priorities: std::ops::RangeInclusive<u32>,
        want: &[RuleSpec],
    ) -> Result<(), TunnelError> {
        let have = self.rules_raw(&priorities)?;
        let ok = |(r, foreign): &(RuleSpec, bool)| !*foreign && want.contains(r);
        for w in want {
            if !have.iter().any(|(r, _)| !r.1 && r.0 == *w) {
                self.ack(|seq| msg::new_rule(seq, w))
                    .map_err(|source| TunnelError::AddRule {
                        priority: w.priority,
                        source,
                    })?;
            }
        }
        let mut seen: Vec<&RuleSpec> = Vec::new();
        for (r, payload) in &have {
            // Keep one copy of each wanted rule; duplicates go too.
            if ok(r) && !seen.contains(&&r.0) {
                seen.push(&r.0);
                continue;
            }
            match self.ack(|seq| msg::echo_delete(seq, msg::RTM_DELRULE, payload)) {
                Err(e) if !errno_is(&e, nix::libc::ENOENT) => {
                    return Err(TunnelError::DeleteRule {
                        priority: r.0.priority,
                        source: e,
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }
}
