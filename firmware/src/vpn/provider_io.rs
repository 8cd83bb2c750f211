//! The thread that runs a [`Keeper`]: one UDP socket bound to the tunnel interface
//! (`SO_BINDTODEVICE`, socket(7)) and to 0.0.0.0:0, talking to `gateway:5351`.
//!
//! No route needs to point at the gateway: for a device-bound socket the kernel treats a
//! destination it has no route for as on-link on that device. Datagrams from anywhere but
//! `gateway:5351` are dropped. The thread waits in poll(2) at most [`POLL_MS`] ms at a time,
//! so [`ProviderHandle::stop`] returns promptly. When the interface does not exist (or a
//! send fails) the socket is closed, the health reads `tunnel interface NAME missing` and
//! binding is retried every [`REBIND`]. It never spawns processes.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{setsockopt, sockopt};

use super::provider::{Event, Health, Keeper, GATEWAY_PORT};

/// Longest wait in poll, milliseconds: how late a control message or `stop` may be seen.
pub const POLL_MS: u16 = 50;
/// How often binding is retried while the interface is missing.
pub const REBIND: Duration = Duration::from_secs(3);

/// What the thread reports: whenever the held port or the health changed, or events
/// happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The held port and the lease time left on it.
    pub held: Option<(u16, Duration)>,
    /// [`Health::describe`], or `tunnel interface NAME missing`.
    pub health: String,
    /// What happened since the last update.
    pub events: Vec<Event>,
}

/// Why the thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("starting the provider port-forwarding thread")]
    Spawn {
        #[source]
        source: io::Error,
    },
}

/// Tunnel state handed to the thread (`Flags::tunnel`): the last one given wins. (Two
/// atomics rather than a channel: a channel type of its own costs kilobytes on mipsel.)
const NO_CHANGE: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// What the owner's side and the thread share.
#[derive(Debug, Default)]
struct Flags {
    stop: AtomicBool,
    /// [`NO_CHANGE`], [`UP`] or [`DOWN`], taken (reset) by the thread.
    tunnel: AtomicU8,
}

/// The running thread; [`ProviderHandle::stop`] (or dropping it) ends it.
#[derive(Debug)]
pub struct ProviderHandle {
    flags: Arc<Flags>,
    thread: Option<JoinHandle<()>>,
}

impl ProviderHandle {
    /// The tunnel came (back) up: rebind and request again at once.
    pub fn tunnel_up(&self) {
        self.flags.tunnel.store(UP, Ordering::Relaxed);
    }

    /// The tunnel went down: stop sending; the held port lasts until its lease ends.
    pub fn tunnel_down(&self) {
        self.flags.tunnel.store(DOWN, Ordering::Relaxed);
    }

    /// Ends the thread (within about [`POLL_MS`] ms) and closes its socket.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for ProviderHandle {
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the thread `vpn-provider` keeping a port at `gateway` through interface `ifname`
/// (tunnel taken as up); `report` is called from that thread. The thread inherits the
/// caller's network namespace.
pub fn spawn(
    ifname: String,
    gateway: Ipv4Addr,
    report: Box<dyn Fn(Update) + Send>,
) -> Result<ProviderHandle, ProviderError> {
    let flags = Arc::new(Flags::default());
    let shared = Arc::clone(&flags);
    let now = Instant::now();
    let worker = Worker {
        to: SocketAddrV4::new(gateway, GATEWAY_PORT),
        keeper: Keeper::new(gateway, now),
        ifname,
        report,
        sock: None,
        up: true,
        next_bind: now,
        last: None,
    };
    let thread = std::thread::Builder::new()
        .name("vpn-provider".into())
        .spawn(move || worker.run(&shared))
        .map_err(|source| ProviderError::Spawn { source })?;
    Ok(ProviderHandle {
        flags,
        thread: Some(thread),
    })
}

/// A UDP socket on 0.0.0.0:0 bound to `ifname`, non-blocking.
fn bind(ifname: &str) -> io::Result<UdpSocket> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    setsockopt(&sock, sockopt::BindToDevice, &OsString::from(ifname)).map_err(io::Error::from)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// What the thread owns.
struct Worker {
    to: SocketAddrV4,
    keeper: Keeper,
    ifname: String,
    report: Box<dyn Fn(Update) + Send>,
    sock: Option<UdpSocket>,
    /// What the owner said about the tunnel.
    up: bool,
    next_bind: Instant,
    /// The held port and health last reported (None in the health: interface missing).
    last: Option<(Option<u16>, Option<Health>)>,
}

impl Worker {
    fn run(mut self, flags: &Flags) {
        let mut buf = [0u8; 64];
        while !flags.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let change = flags.tunnel.swap(NO_CHANGE, Ordering::Relaxed);
            if change != NO_CHANGE {
                self.up = change == UP;
                if self.up {
                    // The interface may have been made again: bind to the new one.
                    self.sock = None;
                    self.next_bind = now;
                } else {
                    self.keeper.tunnel_down(now);
                }
            }
            if self.up && self.sock.is_none() && self.next_bind <= now {
                match bind(&self.ifname) {
                    Ok(s) => {
                        self.sock = Some(s);
                        self.keeper.tunnel_up(now);
                    }
                    Err(_) => {
                        self.next_bind = now + REBIND;
                        self.keeper.tunnel_down(now);
                    }
                }
            }
            let mut events = self.keeper.on_timeout(now);
            if let Some(sock) = &self.sock {
                loop {
                    match sock.recv_from(&mut buf) {
                        Ok((n, SocketAddr::V4(from))) if from == self.to => {
                            let msg = buf.get(..n).unwrap_or_default();
                            events.extend(self.keeper.on_datagram(msg, now));
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let mut failed = false;
                while let Some(req) = self.keeper.poll_transmit(now) {
                    failed |= sock.send_to(&req, self.to).is_err();
                }
                if failed {
                    self.sock = None;
                    self.next_bind = now + REBIND;
                    self.keeper.tunnel_down(now);
                }
            }
            self.report(events, now);
            let until = self
                .keeper
                .next_wakeup()
                .map(|t| t.saturating_duration_since(now));
            let wait = until.map_or(POLL_MS, |d| {
                u16::try_from(d.as_millis()).map_or(POLL_MS, |ms| ms.min(POLL_MS))
            });
            match &self.sock {
                Some(sock) => {
                    let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
                    let _ = poll(&mut fds, PollTimeout::from(wait));
                }
                None => std::thread::sleep(Duration::from_millis(u64::from(wait))),
            }
        }
    }

    /// Calls `report` when the held port or the health changed or events happened.
    fn report(&mut self, events: Vec<Event>, now: Instant) {
        let missing = self.up && self.sock.is_none();
        let health = (!missing).then(|| *self.keeper.health());
        let held = self.keeper.held(now);
        let key = (held.map(|h| h.0), health);
        if events.is_empty() && self.last == Some(key) {
            return;
        }
        self.last = Some(key);
        let health = match health {
            Some(h) => h.describe(now),
            None => format!("tunnel interface {} missing", self.ifname),
        };
        (self.report)(Update {
            held,
            health,
            events,
        });
    }
}
