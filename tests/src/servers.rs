//! Servers that say who they are.
//!
//! Every TCP connection gets one line, `<label> peer=<ip>:<port>\n`, then the server
//! closes it; every UDP datagram gets the same line back. The label (for example
//! `lan:80`) proves which host and port a test reached; `peer` shows the source address
//! the server saw, which reveals NAT. Servers stop and free their port when dropped.

use std::io::{ErrorKind, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::netns;

/// Which transport a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A running server in some namespace. Dropping it stops it.
pub struct Server {
    /// What it answers with.
    pub label: String,
    /// Where it listens.
    pub addr: SocketAddrV4,
    served: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts a TCP server in `ns` listening on `addr` (0.0.0.0 for any address) that
    /// answers `label`. Returns once the socket is listening.
    pub fn tcp(ns: &str, addr: SocketAddrV4, label: &str) -> Server {
        Server::start(ns, addr, label, Proto::Tcp)
    }

    /// Starts a UDP echo-with-label server in `ns` bound to `addr`.
    pub fn udp(ns: &str, addr: SocketAddrV4, label: &str) -> Server {
        Server::start(ns, addr, label, Proto::Udp)
    }

    fn start(ns: &str, addr: SocketAddrV4, label: &str, proto: Proto) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicU64::new(0));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let (ns2, label2, stop2, served2) = (
            ns.to_owned(),
            label.to_owned(),
            stop.clone(),
            served.clone(),
        );
        let thread = thread::spawn(move || {
            netns::enter(&ns2);
            match proto {
                Proto::Tcp => match TcpListener::bind(addr) {
                    Ok(l) => {
                        let _ = ready_tx.send(Ok(()));
                        serve_tcp(l, &label2, &stop2, &served2);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("bind tcp {addr} in {ns2}: {e}")));
                    }
                },
                Proto::Udp => match UdpSocket::bind(addr) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        serve_udp(s, &label2, &stop2, &served2);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("bind udp {addr} in {ns2}: {e}")));
                    }
                },
            }
        });
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("{e}"),
            Err(_) => panic!("server thread for {label} died before listening"),
        }
        Server {
            label: label.to_owned(),
            addr,
            served,
            stop,
            thread: Some(thread),
        }
    }

    /// How many connections (TCP) or datagrams (UDP) it has answered.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The line a server sends for a peer.
pub fn greeting(label: &str, peer: SocketAddr) -> String {
    format!("{label} peer={peer}\n")
}

const TICK: Duration = Duration::from_millis(10);

fn serve_tcp(l: TcpListener, label: &str, stop: &AtomicBool, served: &AtomicU64) {
    l.set_nonblocking(true).expect("nonblocking listener");
    while !stop.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((mut s, peer)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(greeting(label, peer).as_bytes());
                served.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
            Err(_) => thread::sleep(TICK),
        }
    }
}

fn serve_udp(s: UdpSocket, label: &str, stop: &AtomicBool, served: &AtomicU64) {
    s.set_read_timeout(Some(TICK)).expect("udp read timeout");
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((_, peer)) = s.recv_from(&mut buf) {
            let _ = s.send_to(greeting(label, peer).as_bytes(), peer);
            served.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// `ip:port` shorthand.
pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}
