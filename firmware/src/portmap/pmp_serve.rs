//! The NAT-PMP/PCP server: one UDP socket per LAN address on 5351.
//!
//! One thread polls the sockets (200 ms at most per wait, so [`PmpService::stop`] returns
//! promptly) and answers each datagram with [`natpmp::handle`] (first byte 0) or
//! [`pcp::handle`] (anything else: version 2, or UNSUPP_VERSION). Datagrams from outside
//! the LAN subnets, from the router itself, from source port 0 or longer than 1100 bytes
//! are dropped unanswered, and each host is held to [`RATE_PER_SEC`] requests a second.
//!
//! At start, and again when the external address or the epoch changes, the thread
//! multicasts the NAT-PMP public-address announcement (RFC 6886 §3.2.1) and the PCP
//! ANNOUNCE (RFC 6887 §14.1.3) to 224.0.0.1:5350 [`ANNOUNCEMENTS`] times, the first two
//! 250 ms apart and the intervals doubling. The sockets are bound to the LAN interface
//! (SO_BINDTODEVICE), which is also the interface multicasts leave by.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};

use super::{natpmp, neigh, pcp, LanSide, Mapper};

/// Requests a second one host may send on average.
pub const RATE_PER_SEC: u32 = 200;
/// Requests one host may send at once above the average.
const BURST: u32 = 50;
/// Hosts the rate limiter remembers; the longest idle is forgotten first.
const LIMITER_HOSTS: usize = 64;
/// How many times each announcement is sent (RFC 6886 §3.2.1).
pub const ANNOUNCEMENTS: u32 = 10;
/// Wait between the first two announcements; it doubles after each.
const FIRST_INTERVAL: Duration = Duration::from_millis(250);
/// Longest wait in poll, milliseconds: how late `stop` may be.
const POLL_MS: u16 = 200;
/// Datagrams read from one socket per wake, so one socket cannot starve the others.
const READS_PER_WAKE: usize = 16;

/// Where announcements go: the all-hosts group, the NAT-PMP/PCP client port.
const ANNOUNCE_TO: SocketAddrV4 =
    SocketAddrV4::new(Ipv4Addr::new(224, 0, 0, 1), natpmp::CLIENT_PORT);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum PmpError {
    #[error("the LAN side has no IPv4 address to serve NAT-PMP/PCP on")]
    NoAddress,
    #[error("binding a UDP socket to {addr}:{port}")]
    Bind {
        addr: Ipv4Addr,
        port: u16,
        #[source]
        source: io::Error,
    },
    #[error("binding the NAT-PMP/PCP socket on {addr} to interface {interface}")]
    BindToDevice {
        addr: Ipv4Addr,
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("making the NAT-PMP/PCP socket on {addr} non-blocking")]
    Nonblocking {
        addr: Ipv4Addr,
        #[source]
        source: io::Error,
    },
    #[error("starting the NAT-PMP/PCP thread")]
    Spawn {
        #[source]
        source: io::Error,
    },
}

/// The running server; [`PmpService::stop`] (or dropping it) ends its thread.
#[derive(Debug)]
pub struct PmpService {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    bound: Vec<SocketAddrV4>,
}

impl PmpService {
    /// Binds `addr:5351` for every LAN address, on the LAN interface, and starts the
    /// thread that answers requests with `mapper` and sends the start announcements.
    pub fn start(lan: &LanSide, mapper: Arc<dyn Mapper>) -> Result<PmpService, PmpError> {
        start_on(lan, mapper, natpmp::SERVER_PORT, ANNOUNCE_TO)
    }

    /// The addresses the sockets are bound to.
    pub fn bound(&self) -> &[SocketAddrV4] {
        &self.bound
    }

    /// Ends the thread (within [`POLL_MS`] ms) and closes the sockets.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for PmpService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// [`PmpService::start`] on `port` (0 = an ephemeral one, for tests) announcing to
/// `announce_to`.
pub(crate) fn start_on(
    lan: &LanSide,
    mapper: Arc<dyn Mapper>,
    port: u16,
    announce_to: SocketAddrV4,
) -> Result<PmpService, PmpError> {
    if lan.addrs.is_empty() {
        return Err(PmpError::NoAddress);
    }
    let mut socks = Vec::with_capacity(lan.addrs.len());
    let mut bound = Vec::with_capacity(lan.addrs.len());
    for &addr in &lan.addrs {
        let sock = UdpSocket::bind((addr, port)).map_err(|source| PmpError::Bind {
            addr,
            port,
            source,
        })?;
        setsockopt(
            &sock,
            sockopt::BindToDevice,
            &OsString::from(&lan.interface),
        )
        .map_err(|e| PmpError::BindToDevice {
            addr,
            interface: lan.interface.clone(),
            source: io::Error::from(e),
        })?;
        sock.set_nonblocking(true)
            .map_err(|source| PmpError::Nonblocking { addr, source })?;
        let local = match sock.local_addr() {
            Ok(SocketAddr::V4(a)) => a,
            _ => SocketAddrV4::new(addr, port),
        };
        bound.push(local);
        socks.push(sock);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let server = Server {
        socks,
        lan: lan.clone(),
        mapper,
        limiter: Limiter::default(),
        announce_to,
    };
    let flag = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("pmp".into())
        .spawn(move || server.run(&flag))
        .map_err(|source| PmpError::Spawn { source })?;
    Ok(PmpService {
        stop,
        thread: Some(thread),
        bound,
    })
}

/// What the service thread owns.
struct Server {
    socks: Vec<UdpSocket>,
    lan: LanSide,
    mapper: Arc<dyn Mapper>,
    limiter: Limiter,
    announce_to: SocketAddrV4,
}

/// The announcement schedule: how many were sent and when the next one is due.
struct Announcing {
    sent: u32,
    next: Instant,
    /// What was announced: a change of either starts the schedule again.
    external: Option<Ipv4Addr>,
    epoch: u32,
}

impl Server {
    fn run(mut self, stop: &AtomicBool) {
        let mut buf = [0u8; pcp::MAX_LEN + 1];
        let mut ann = Announcing {
            sent: 0,
            next: Instant::now(),
            external: self.mapper.external().addr,
            epoch: self.mapper.epoch_secs(),
        };
        let mut checked = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now.duration_since(checked) >= Duration::from_secs(1) {
                checked = now;
                let (external, epoch) = (self.mapper.external().addr, self.mapper.epoch_secs());
                if external != ann.external || epoch < ann.epoch {
                    ann = Announcing {
                        sent: 0,
                        next: now,
                        external,
                        epoch,
                    };
                }
                ann.epoch = epoch;
            }
            if ann.sent < ANNOUNCEMENTS && now >= ann.next {
                self.announce();
                ann.next = now + FIRST_INTERVAL * 2u32.pow(ann.sent);
                ann.sent += 1;
            }
            let mut wait = POLL_MS;
            if ann.sent < ANNOUNCEMENTS {
                let due = ann.next.saturating_duration_since(now).as_millis();
                wait = wait.min(u16::try_from(due).unwrap_or(POLL_MS));
            }
            let ready: Vec<bool> = {
                let mut fds: Vec<PollFd<'_>> = self
                    .socks
                    .iter()
                    .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN))
                    .collect();
                if poll(&mut fds, PollTimeout::from(wait)).is_err() {
                    // EINTR; anything else would repeat, so do not spin on it.
                    std::thread::sleep(Duration::from_millis(u64::from(POLL_MS)));
                    continue;
                }
                fds.iter()
                    .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                    .collect()
            };
            for (i, r) in ready.into_iter().enumerate() {
                if r {
                    self.serve(i, &mut buf);
                }
            }
        }
    }

    /// Reads and answers what is waiting on socket `i`.
    fn serve(&mut self, i: usize, buf: &mut [u8; pcp::MAX_LEN + 1]) {
        for _ in 0..READS_PER_WAKE {
            let Some(sock) = self.socks.get(i) else {
                return;
            };
            let (n, from) = match sock.recv_from(buf) {
                Ok(r) => r,
                Err(_) => return,
            };
            let SocketAddr::V4(src) = from else { continue };
            let ip = *src.ip();
            if n > pcp::MAX_LEN || src.port() == 0 || !self.lan.is_lan_host(ip) {
                continue;
            }
            if !self.limiter.allow(ip, Instant::now()) {
                continue;
            }
            let msg = buf.get(..n).unwrap_or_default();
            if let Some(reply) = answer(msg, ip, &*self.mapper) {
                let _ = sock.send_to(&reply, src);
            }
        }
    }

    /// Multicasts both announcements once, from the first socket.
    fn announce(&self) {
        let Some(sock) = self.socks.first() else {
            return;
        };
        let epoch = self.mapper.epoch_secs();
        let to = self.announce_to;
        if let Some(pmp) = natpmp::announcement(self.mapper.external().addr, epoch) {
            if let Err(e) = sock.send_to(&pmp, to) {
                eprintln!("portcullis: nat-pmp: announcing to {to} failed: {e}");
            }
        }
        if let Err(e) = sock.send_to(&pcp::announcement(epoch), to) {
            eprintln!("portcullis: pcp: announcing to {to} failed: {e}");
        }
    }
}

/// The answer to one datagram from LAN host `src`: NAT-PMP for version 0, PCP for
/// anything else. The MAC is looked up for mapping requests only (opcode 1 or 2).
fn answer(msg: &[u8], src: Ipv4Addr, mapper: &dyn Mapper) -> Option<Vec<u8>> {
    let (&version, &op) = match msg {
        [v, o, ..] => (v, o),
        _ => return None,
    };
    let mac = if op == 1 || op == 2 {
        neigh::mac_of(src)
    } else {
        None
    };
    if version == 0 {
        natpmp::handle(msg, src, mac, mapper)
    } else {
        pcp::handle(msg, src, mac, mapper)
    }
}

/// Per-host rate limit (GCRA: a token bucket kept as one time per host): on average
/// [`RATE_PER_SEC`] requests a second, [`BURST`] at once. Remembers [`LIMITER_HOSTS`]
/// hosts; a new one takes the place of the longest idle.
#[derive(Debug, Default)]
struct Limiter {
    /// Host and its theoretical arrival time: when its bucket will be full again.
    hosts: Vec<(Ipv4Addr, Instant)>,
}

impl Limiter {
    /// Whether `host` may be answered at `now` (and counts the request if so).
    fn allow(&mut self, host: Ipv4Addr, now: Instant) -> bool {
        let step = Duration::from_secs(1) / RATE_PER_SEC;
        let i = match self.hosts.iter().position(|(h, _)| *h == host) {
            Some(i) => i,
            None if self.hosts.len() < LIMITER_HOSTS => {
                self.hosts.push((host, now));
                self.hosts.len() - 1
            }
            None => {
                let idle = (0..self.hosts.len())
                    .min_by_key(|&i| self.hosts[i].1)
                    .unwrap_or(0);
                self.hosts[idle] = (host, now);
                idle
            }
        };
        let Some((_, tat)) = self.hosts.get_mut(i) else {
            return false;
        };
        let start = (*tat).max(now);
        if start > now + step * BURST {
            return false;
        }
        *tat = start + step;
        true
    }
}

#[cfg(test)]
#[path = "pmp_fake.rs"]
pub(crate) mod fake;

#[cfg(test)]
#[path = "pmp_serve_tests.rs"]
mod tests;
