//! The VPN provider's port forwarding: a NAT-PMP client (RFC 6886) that asks the provider's
//! gateway, through the tunnel, for one external port mapped for both UDP and TCP, and keeps
//! it renewed.
//!
//! Sans-IO: the [`Keeper`] takes datagrams and the time (`now`) as arguments and hands out
//! the requests to send to `gateway:5351`; the thread in `provider_io` does the I/O.
//!
//! Requests follow the ProtonVPN convention (`natpmpc -a 1 0 udp 60`): internal port 1,
//! suggested external port the one held (0 when none), lifetime [`LIFETIME_SECS`]. A
//! response's internal port is not checked (ProtonVPN answers 0). The port is held when UDP
//! and TCP were granted the same external port; its lease ends at the earlier of the two
//! grants' ends, counted from when each response arrived (a granted lifetime above
//! [`LIFETIME_SECS`] counts as that: no port stays open longer without an answer). Renewal is due at 3/4 of the
//! granted lifetime. Requests are retransmitted after 250 ms, the interval doubling (§3.1),
//! and an attempt gives up after [`GIVE_UP`]; after silence or a refusal the next attempt
//! waits [`BACKOFF_SECS`]. Neither extends the lease: at its end the port is lost.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::portmap::natpmp::{self, ResultCode};
use crate::portmap::Proto;

/// UDP port of the gateway's NAT-PMP server (RFC 6886 §3.1).
pub const GATEWAY_PORT: u16 = natpmp::SERVER_PORT;
/// Internal port asked for (ProtonVPN's convention; the gateway maps to the tunnel address).
pub const INTERNAL_PORT: u16 = 1;
/// Requested lifetime of each mapping, seconds.
pub const LIFETIME_SECS: u32 = 60;
/// First retransmission interval (RFC 6886 §3.1); it doubles after each.
pub const FIRST_RETRANSMIT: Duration = Duration::from_millis(250);
/// How long one attempt waits for both answers before the gateway counts as silent.
pub const GIVE_UP: Duration = Duration::from_secs(8);
/// Waits before the next attempt after the 1st, 2nd, … consecutive failure, seconds; the
/// last one repeats.
pub const BACKOFF_SECS: [u64; 5] = [5, 10, 20, 40, 60];
/// How far the gateway's epoch may fall behind the client's conservative estimate before it
/// counts as a restart, milliseconds (RFC 6886 §3.6: 2 s).
const EPOCH_TOLERANCE_MS: u64 = 2_000;
/// The shortest wait before a renewal, whatever lifetime was granted.
const MIN_RENEW: Duration = Duration::from_secs(1);
/// Set in the opcode of a response (RFC 6886 §3.1).
const RESPONSE: u8 = 0x80;

/// What changed, for the owner (DNAT) and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A port is held where none was.
    Granted { port: u16 },
    /// A renewal returned another port: `old` is no longer held.
    Changed { old: u16, new: u16 },
    /// The gateway refused (RFC 6886 §3.5 result code); reported when the code changes.
    Refused { code: u16 },
    /// An attempt got no complete answer within [`GIVE_UP`]; reported once per silence.
    Silent,
    /// The lease of `port` ended (or the ports differ) and no renewal kept it.
    Lost { port: u16 },
    /// The gateway's epoch went backwards (§3.6): it restarted; a new attempt starts at once.
    EpochReset,
}

/// The state of the port forwarding, for the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No answer yet.
    Starting,
    /// The last attempt held a port.
    Ok,
    /// The gateway answered with a non-zero result code (§3.5).
    Refused { code: u16 },
    /// No complete answer since the attempt that started at `since`.
    Silent { since: Instant },
    /// UDP and TCP were granted different ports, even after asking TCP for the UDP one.
    PortsDiffer { udp: u16, tcp: u16 },
    /// The tunnel is down: nothing is sent.
    TunnelDown,
}

impl Health {
    /// One line for the UI, e.g. `ok`, `refused by the gateway: 2 (not authorized)`,
    /// `no answer from the gateway for 12 s`.
    pub fn describe(&self, now: Instant) -> String {
        match *self {
            Health::Starting => "requesting a port from the gateway".into(),
            Health::Ok => "ok".into(),
            Health::Refused { code } => {
                format!("refused by the gateway: {code} ({})", meaning(code))
            }
            Health::Silent { since } => format!(
                "no answer from the gateway for {} s",
                now.saturating_duration_since(since).as_secs()
            ),
            Health::PortsDiffer { udp, tcp } => {
                format!("the gateway mapped different ports: UDP {udp}, TCP {tcp}")
            }
            Health::TunnelDown => "tunnel down".into(),
        }
    }
}

/// The meaning of a NAT-PMP result code (RFC 6886 §3.5).
fn meaning(code: u16) -> &'static str {
    const VERSION: u16 = ResultCode::UnsupportedVersion as u16;
    const REFUSED: u16 = ResultCode::NotAuthorized as u16;
    const NETWORK: u16 = ResultCode::NetworkFailure as u16;
    const RESOURCES: u16 = ResultCode::OutOfResources as u16;
    const OPCODE: u16 = ResultCode::UnsupportedOpcode as u16;
    match code {
        VERSION => "unsupported version",
        REFUSED => "not authorized",
        NETWORK => "network failure",
        RESOURCES => "out of resources",
        OPCODE => "unsupported opcode",
        _ => "unknown result code",
    }
}

/// A mapping request (RFC 6886 §3.3), 12 bytes, big-endian.
pub fn request(proto: Proto, suggested_port: u16) -> Vec<u8> {
    let op = match proto {
        Proto::Udp => natpmp::OP_MAP_UDP,
        Proto::Tcp => natpmp::OP_MAP_TCP,
    };
    let mut out = Vec::with_capacity(12);
    out.extend_from_slice(&[0, op, 0, 0]); // version 0, opcode, reserved u16
    out.extend_from_slice(&INTERNAL_PORT.to_be_bytes());
    out.extend_from_slice(&suggested_port.to_be_bytes());
    out.extend_from_slice(&LIFETIME_SECS.to_be_bytes());
    out
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// One protocol's mapping granted by the gateway.
#[derive(Debug, Clone, Copy)]
struct Grant {
    port: u16,
    /// When the response arrived.
    at: Instant,
    lifetime: Duration,
}

impl Grant {
    fn end(&self) -> Instant {
        self.at + self.lifetime
    }
    fn renew_at(&self) -> Instant {
        self.at + (self.lifetime * 3 / 4).max(MIN_RENEW)
    }
}

/// One protocol's part of an attempt.
#[derive(Debug, Clone, Copy)]
enum Leg {
    /// Asked for, no answer yet; `send` is set while a (re)transmission is due.
    Pending {
        suggest: u16,
        send: bool,
    },
    Granted(Grant),
}

/// The requests for UDP and TCP in flight.
#[derive(Debug)]
struct Attempt {
    udp: Leg,
    tcp: Leg,
    started: Instant,
    deadline: Instant,
    /// When the pending requests go out again; None after the last retransmission.
    next_tx: Option<Instant>,
    rto: Duration,
    tcp_retried: bool,
}

/// The held port: `port` until `until`.
#[derive(Debug, Clone, Copy)]
struct Lease {
    port: u16,
    until: Instant,
}

/// The NAT-PMP client of one tunnel. See the module documentation.
#[derive(Debug)]
pub struct Keeper {
    gateway: Ipv4Addr,
    up: bool,
    lease: Option<Lease>,
    attempt: Option<Attempt>,
    /// When the next attempt starts (renewal or retry); None while one runs or when down.
    next_attempt: Option<Instant>,
    failures: usize,
    health: Health,
    /// The last epoch (seconds since start of epoch, §3.6) and when it arrived.
    epoch: Option<(u32, Instant)>,
}

impl Keeper {
    /// A keeper for the gateway at `gateway` (e.g. 10.2.0.1), tunnel up: the first
    /// requests are due at `now`.
    pub fn new(gateway: Ipv4Addr, now: Instant) -> Keeper {
        Keeper {
            gateway,
            up: true,
            lease: None,
            attempt: None,
            next_attempt: Some(now),
            failures: 0,
            health: Health::Starting,
            epoch: None,
        }
    }

    /// The gateway's address; requests go to its port [`GATEWAY_PORT`].
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// A request to send to `gateway:5351` now, if one is due; call until None.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        self.start_if_due(now);
        let a = self.attempt.as_mut()?;
        if a.next_tx.is_some_and(|t| t <= now) {
            for leg in [&mut a.udp, &mut a.tcp] {
                if let Leg::Pending { send, .. } = leg {
                    *send = true;
                }
            }
            // The next retransmission only if it still has its own interval to be answered.
            let next = now + a.rto;
            a.rto *= 2;
            a.next_tx = (next + a.rto <= a.deadline).then_some(next);
        }
        for (proto, leg) in [(Proto::Udp, &mut a.udp), (Proto::Tcp, &mut a.tcp)] {
            if let Leg::Pending {
                suggest,
                send: send @ true,
            } = leg
            {
                *send = false;
                return Some(request(proto, *suggest));
            }
        }
        None
    }

    /// Takes one datagram from `gateway:5351` (the caller checks the source). Anything but a
    /// well-formed response to a pending request is ignored.
    pub fn on_datagram(&mut self, bytes: &[u8], now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        let Some(a) = self.attempt.as_mut() else {
            return ev;
        };
        let (Some(&0), Some(&op), Some(code), Some(epoch)) =
            (bytes.first(), bytes.get(1), be16(bytes, 2), be32(bytes, 4))
        else {
            return ev;
        };
        let leg = match op {
            x if x == RESPONSE | natpmp::OP_MAP_UDP => &mut a.udp,
            x if x == RESPONSE | natpmp::OP_MAP_TCP => &mut a.tcp,
            _ => return ev,
        };
        if !matches!(leg, Leg::Pending { .. }) {
            return ev;
        }
        // Success carries internal port, mapped port and lifetime (§3.3); a refusal's other
        // fields are undefined (§3.5).
        let granted = match (code, be16(bytes, 10), be32(bytes, 12)) {
            (0, Some(port), Some(secs)) => Some((port, secs.min(LIFETIME_SECS))),
            (0, _, _) => return ev,
            _ => None,
        };
        if let Some((port, secs)) = granted {
            *leg = Leg::Granted(Grant {
                port,
                at: now,
                lifetime: Duration::from_secs(u64::from(secs)),
            });
        }
        if self.epoch_went_back(epoch, now) {
            ev.push(Event::EpochReset);
            self.attempt = None;
            self.next_attempt = Some(now);
            return ev;
        }
        self.expire(now, &mut ev);
        if code != 0 {
            self.attempt = None;
            if self.health != (Health::Refused { code }) {
                ev.push(Event::Refused { code });
            }
            self.health = Health::Refused { code };
            self.back_off(now);
            return ev;
        }
        self.finish_if_complete(now, &mut ev);
        ev
    }

    /// Advances time: starts a due attempt, gives up a silent one, ends an expired lease.
    pub fn on_timeout(&mut self, now: Instant) -> Vec<Event> {
        let mut ev = Vec::new();
        self.start_if_due(now);
        if let Some(a) = self.attempt.as_ref().filter(|a| a.deadline <= now) {
            let since = match self.health {
                Health::Silent { since } => since,
                _ => {
                    ev.push(Event::Silent);
                    a.started
                }
            };
            self.health = Health::Silent { since };
            self.attempt = None;
            self.back_off(now);
        }
        self.expire(now, &mut ev);
        ev
    }

    /// When [`Keeper::on_timeout`] / [`Keeper::poll_transmit`] have work next.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let lease = self.lease.map(|l| l.until);
        let work = match &self.attempt {
            Some(a) => Some(a.next_tx.map_or(a.deadline, |t| t.min(a.deadline))),
            None => self.next_attempt,
        };
        match (lease, work) {
            (Some(l), Some(w)) => Some(l.min(w)),
            (l, w) => l.or(w),
        }
    }

    /// The held port and the time left on its lease.
    pub fn held(&self, now: Instant) -> Option<(u16, Duration)> {
        self.lease
            .filter(|l| l.until > now)
            .map(|l| (l.port, l.until - now))
    }

    /// The current health.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// The tunnel came (back) up: request again at once, the backoff forgotten.
    pub fn tunnel_up(&mut self, now: Instant) {
        self.up = true;
        self.attempt = None;
        self.next_attempt = Some(now);
        self.failures = 0;
        if self.health == Health::TunnelDown {
            self.health = Health::Starting;
        }
    }

    /// The tunnel went down at `now`: stop sending. The held port stays until its lease ends.
    pub fn tunnel_down(&mut self, _now: Instant) {
        self.up = false;
        self.attempt = None;
        self.next_attempt = None;
        self.health = Health::TunnelDown;
    }

    fn start_if_due(&mut self, now: Instant) {
        if !self.up || self.attempt.is_some() || self.next_attempt.is_none_or(|t| t > now) {
            return;
        }
        let suggest = self.held(now).map_or(0, |(port, _)| port);
        let leg = Leg::Pending {
            suggest,
            send: false,
        };
        self.next_attempt = None;
        self.attempt = Some(Attempt {
            udp: leg,
            tcp: leg,
            started: now,
            deadline: now + GIVE_UP,
            next_tx: Some(now),
            rto: FIRST_RETRANSMIT,
            tcp_retried: false,
        });
    }

    fn back_off(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let i = self.failures.saturating_sub(1).min(BACKOFF_SECS.len() - 1);
        let secs = BACKOFF_SECS.get(i).copied().unwrap_or(60);
        self.next_attempt = self.up.then_some(now + Duration::from_secs(secs));
    }

    /// §3.6: the gateway restarted when its epoch is more than 2 s below the last one plus
    /// 7/8 of the time elapsed since. Remembers `epoch`.
    fn epoch_went_back(&mut self, epoch: u32, now: Instant) -> bool {
        let back = self.epoch.is_some_and(|(last, at)| {
            let elapsed = u64::try_from(now.saturating_duration_since(at).as_millis());
            let expected = u64::from(last) * 1000 + elapsed.unwrap_or(u64::MAX / 2) / 8 * 7;
            u64::from(epoch) * 1000 + EPOCH_TOLERANCE_MS < expected
        });
        self.epoch = Some((epoch, now));
        back
    }

    fn expire(&mut self, now: Instant, ev: &mut Vec<Event>) {
        if let Some(l) = self.lease.filter(|l| l.until <= now) {
            self.lease = None;
            ev.push(Event::Lost { port: l.port });
        }
    }

    /// Both answers are in: hold the port, or ask TCP again for the UDP port.
    fn finish_if_complete(&mut self, now: Instant, ev: &mut Vec<Event>) {
        let Some(a) = self.attempt.as_mut() else {
            return;
        };
        let (Leg::Granted(udp), Leg::Granted(tcp)) = (a.udp, a.tcp) else {
            return;
        };
        if udp.port != tcp.port {
            if !a.tcp_retried {
                a.tcp_retried = true;
                a.tcp = Leg::Pending {
                    suggest: udp.port,
                    send: false,
                };
                a.next_tx = Some(now);
                a.rto = FIRST_RETRANSMIT;
                a.deadline = now + GIVE_UP;
                return;
            }
            self.attempt = None;
            self.health = Health::PortsDiffer {
                udp: udp.port,
                tcp: tcp.port,
            };
            if let Some(l) = self.lease.take() {
                ev.push(Event::Lost { port: l.port });
            }
            self.back_off(now);
            return;
        }
        self.attempt = None;
        self.failures = 0;
        self.health = Health::Ok;
        match self.lease {
            None => ev.push(Event::Granted { port: udp.port }),
            Some(l) if l.port != udp.port => ev.push(Event::Changed {
                old: l.port,
                new: udp.port,
            }),
            Some(_) => {}
        }
        self.lease = Some(Lease {
            port: udp.port,
            until: udp.end().min(tcp.end()),
        });
        self.next_attempt = Some(udp.renew_at().min(tcp.renew_at()));
    }
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;
