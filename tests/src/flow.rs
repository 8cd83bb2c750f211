//! Long-lived flows for the tests that change intent under an open connection: a WAN
//! peer that keeps sending on one socket (UDP) or one connection (TCP), and a LAN
//! receiver that records when each piece of data arrived. A test then asks whether
//! anything arrived after a moment (the change's acknowledgement, an expiry).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    sendto, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrIn,
};

use crate::clients;
use crate::netns;

/// How often a stream sends.
pub const EVERY: Duration = Duration::from_millis(20);
const TICK: Duration = Duration::from_millis(10);

/// When data arrived at a receiver.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<Instant>>>);

impl Arrivals {
    fn record(&self) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Instant::now());
    }

    fn times(&self) -> Vec<Instant> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Everything received so far.
    pub fn count(&self) -> usize {
        self.times().len()
    }

    /// How many arrived strictly after `t`.
    pub fn after(&self, t: Instant) -> usize {
        self.times().iter().filter(|&&a| a > t).count()
    }

    /// The last arrival, if any.
    pub fn last(&self) -> Option<Instant> {
        self.times().last().copied()
    }
}

/// A thread that runs until its flag is set, stopped on drop.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(ns: &str, body: impl FnOnce(&AtomicBool) + Send + 'static) -> Worker {
        let stop = Arc::new(AtomicBool::new(false));
        let (ns, flag) = (ns.to_owned(), stop.clone());
        let thread = thread::spawn(move || {
            netns::enter(&ns);
            body(&flag);
        });
        Worker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP receiver on the LAN side: records each datagram and echoes it back, so the
/// connection is established in conntrack as a real exchange would be.
pub struct UdpSink {
    pub arrivals: Arrivals,
    _worker: Worker,
}

impl UdpSink {
    pub fn start(ns: &str, addr: SocketAddrV4) -> UdpSink {
        let arrivals = Arrivals::default();
        let seen = arrivals.clone();
        let (ready, bound) = mpsc::channel();
        let worker = Worker::spawn(ns, move |stop| {
            let s = match UdpSocket::bind(addr) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(format!("bind udp {addr}: {e}")));
                    return;
                }
            };
            let _ = s.set_read_timeout(Some(TICK));
            let _ = ready.send(Ok(()));
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((n, peer)) = s.recv_from(&mut buf) {
                    seen.record();
                    let _ = s.send_to(&buf[..n], peer);
                }
            }
        });
        match bound.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("udp sink thread died"),
        }
        UdpSink {
            arrivals,
            _worker: worker,
        }
    }
}

/// A WAN peer sending a datagram every [`EVERY`] from one socket (one conntrack flow).
pub struct UdpStream {
    _worker: Worker,
}

impl UdpStream {
    pub fn start(ns: &str, src: Ipv4Addr, dst: SocketAddrV4) -> UdpStream {
        let (ready, bound) = mpsc::channel();
        let worker = Worker::spawn(ns, move |stop| {
            let s = match UdpSocket::bind(SocketAddrV4::new(src, 0)).and_then(|s| {
                s.connect(dst)?;
                Ok(s)
            }) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(format!("udp socket {src} -> {dst}: {e}")));
                    return;
                }
            };
            let _ = s.set_nonblocking(true);
            let _ = ready.send(Ok(()));
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::SeqCst) {
                // Errors (ICMP unreachable reported on a connected socket) are expected
                // once the router drops the flow; keep sending.
                let _ = s.send(b"data");
                while s.recv(&mut buf).is_ok() {}
                thread::sleep(EVERY);
            }
        });
        match bound.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("udp stream thread died"),
        }
        UdpStream { _worker: worker }
    }
}

/// A TCP receiver on the LAN side: accepts connections and records every read.
pub struct TcpSink {
    pub arrivals: Arrivals,
    _worker: Worker,
}

impl TcpSink {
    pub fn start(ns: &str, addr: SocketAddrV4) -> TcpSink {
        let arrivals = Arrivals::default();
        let seen = arrivals.clone();
        let (ready, bound) = mpsc::channel();
        let worker = Worker::spawn(ns, move |stop| {
            let l = match TcpListener::bind(addr) {
                Ok(l) => l,
                Err(e) => {
                    let _ = ready.send(Err(format!("bind tcp {addr}: {e}")));
                    return;
                }
            };
            let _ = l.set_nonblocking(true);
            let _ = ready.send(Ok(()));
            let mut conns = Vec::new();
            let mut buf = [0u8; 4096];
            while !stop.load(Ordering::SeqCst) {
                if let Ok((c, _)) = l.accept() {
                    let _ = c.set_nonblocking(true);
                    conns.push(c);
                }
                for c in &mut conns {
                    loop {
                        match c.read(&mut buf) {
                            Ok(0) => break,
                            Ok(_) => seen.record(),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                            Err(_) => break,
                        }
                    }
                }
                thread::sleep(TICK);
            }
        });
        match bound.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("tcp sink thread died"),
        }
        TcpSink {
            arrivals,
            _worker: worker,
        }
    }
}

/// A WAN peer with one open TCP connection, writing a few bytes every [`EVERY`].
pub struct TcpStream {
    _worker: Worker,
}

impl TcpStream {
    /// Connects from `src` to `dst` in `ns`; panics if the connection cannot be made.
    pub fn start(ns: &str, src: Ipv4Addr, dst: SocketAddrV4) -> TcpStream {
        let (ready, connected) = mpsc::channel();
        let worker = Worker::spawn(ns, move |stop| {
            let mut s = match clients::connect_here(Some(src), dst, clients::TIMEOUT) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready.send(Err(format!("tcp {src} -> {dst}: {e}")));
                    return;
                }
            };
            let _ = s.set_nonblocking(true);
            let _ = ready.send(Ok(()));
            while !stop.load(Ordering::SeqCst) {
                // Once the router drops the flow the send buffer fills; keep trying.
                let _ = s.write(b"data");
                thread::sleep(EVERY);
            }
        });
        match connected.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("tcp stream thread died"),
        }
        TcpStream { _worker: worker }
    }
}

/// Sends `count` TCP SYNs to `dst` from the namespace `ns`, source addresses counting up
/// from `first_src` (spoofed: raw IPv4 packets built here), `per_burst` at a time with a
/// short pause between bursts so that the veth backlog does not overflow. Returns how
/// many were sent.
pub fn syn_flood(
    ns: &str,
    first_src: Ipv4Addr,
    dst: SocketAddrV4,
    count: u32,
    per_burst: u32,
) -> u32 {
    netns::run_in(ns, || {
        let fd = socket(
            AddressFamily::Inet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::Raw,
        )
        .expect("raw socket (IP_HDRINCL)");
        let to = SockaddrIn::from(dst);
        let mut sent = 0;
        for i in 0..count {
            let src = Ipv4Addr::from(u32::from(first_src).wrapping_add(i));
            let sport = 40000 + u16::try_from(i % 20000).unwrap_or(0);
            let pkt = syn_packet(src, sport, dst);
            if sendto(fd.as_raw_fd(), &pkt, &to, MsgFlags::empty()).is_ok() {
                sent += 1;
            }
            if per_burst > 0 && i % per_burst == per_burst - 1 {
                thread::sleep(Duration::from_millis(2));
            }
        }
        sent
    })
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).unwrap_or(0xffff)
}

/// An IPv4 + TCP SYN packet (no options).
fn syn_packet(src: Ipv4Addr, sport: u16, dst: SocketAddrV4) -> [u8; 40] {
    let mut p = [0u8; 40];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&40u16.to_be_bytes());
    p[6] = 0x40; // don't fragment
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.ip().octets());
    let ip_sum = checksum(&p[..20]);
    p[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    let tcp = 20;
    p[tcp..tcp + 2].copy_from_slice(&sport.to_be_bytes());
    p[tcp + 2..tcp + 4].copy_from_slice(&dst.port().to_be_bytes());
    p[tcp + 4..tcp + 8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    p[tcp + 12] = 5 << 4;
    p[tcp + 13] = 0x02; // SYN
    p[tcp + 14..tcp + 16].copy_from_slice(&64240u16.to_be_bytes());
    let mut pseudo = Vec::with_capacity(32);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.ip().octets());
    pseudo.extend_from_slice(&[0, 6, 0, 20]);
    pseudo.extend_from_slice(&p[tcp..]);
    let tcp_sum = checksum(&pseudo);
    p[tcp + 16..tcp + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    p
}

#[cfg(test)]
mod tests {
    #[test]
    fn checksums_verify_to_zero() {
        let p = super::syn_packet(
            "10.0.0.1".parse().unwrap(),
            40000,
            "203.0.113.2:8080".parse().unwrap(),
        );
        assert_eq!(super::checksum(&p[..20]), 0);
    }
}
