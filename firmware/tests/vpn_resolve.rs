//! The Endpoint resolver's DNS over real UDP sockets (root): a network namespace the
//! test makes, with a fake DNS server (a thread in it) on 127.0.0.53:53 answering A
//! queries, a silent one on 127.0.0.54:53 and nothing on 127.0.0.55:53.
//! `resolve_with` runs in the namespace with resolv.conf texts naming them and the real
//! `udp_exchange`.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use portcullis::vpn::resolve::{self, resolve_with, udp_exchange, ResolveError};

const SERVER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 53);
const SILENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 54);
const NOBODY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 55);
const VPN_IP: [u8; 4] = [198, 51, 100, 7];

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A namespace with `lo` up; deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let ns = Netns(format!("pcxdns-{}", std::process::id()));
        ip(&["netns", "add", &ns.0]);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `f` in a thread that entered the namespace (setns(2) affects only it).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = File::open(&path).expect("open netns");
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The question name of a query in wire form (labels up to the root), if it has one.
fn qname(q: &[u8]) -> Option<&[u8]> {
    let end = 12 + q.get(12..)?.iter().position(|&b| b == 0)?;
    q.get(12..=end)
}

/// The fake server's reply to query `q`: `vpn.example.test` → a wrong-id datagram first,
/// then CNAME `edge.example.test` + its A record; `missing.example.test` → NXDOMAIN;
/// anything else → SERVFAIL.
fn replies(q: &[u8]) -> Vec<Vec<u8>> {
    let name = qname(q).unwrap_or_default();
    let qend = 12 + name.len() + 4;
    let mut m = q[..qend].to_vec();
    if name == b"\x03vpn\x07example\x04test\x00" {
        m[2..4].copy_from_slice(&[0x81, 0x80]); // QR, RD, RA, NOERROR
        m[6..8].copy_from_slice(&[0, 2]); // ANCOUNT 2
                                          // vpn.example.test CNAME edge.example.test (owner: pointer to the question).
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 1, 44, 0, 7]);
        let edge = m.len();
        m.extend_from_slice(b"\x04edge\xc0\x10"); // "edge" + pointer to "example.test"
                                                  // edge.example.test A 198.51.100.7
        let ptr = u8::try_from(edge).unwrap();
        m.extend_from_slice(&[0xc0, ptr, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4]);
        m.extend_from_slice(&VPN_IP);
        let mut decoy = m.clone();
        decoy[0] ^= 0xff; // another id, another address: must be ignored
        let n = decoy.len();
        decoy[n - 4..].copy_from_slice(&[6, 6, 6, 6]);
        vec![decoy, m]
    } else if name == b"\x07missing\x07example\x04test\x00" {
        m[2..4].copy_from_slice(&[0x81, 0x83]); // NXDOMAIN
        vec![m]
    } else {
        m[2..4].copy_from_slice(&[0x81, 0x82]); // SERVFAIL
        vec![m]
    }
}

/// The fake server on SERVER:53 (and a socket on SILENT:53 that never answers); counts
/// queries.
struct FakeDns {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<usize>>,
}

impl FakeDns {
    fn start(ns: &Netns) -> FakeDns {
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let (ready_tx, ready) = channel();
        let thread = ns.run(move || {
            let sock = UdpSocket::bind((SERVER, 53)).expect("bind server");
            let _silent = UdpSocket::bind((SILENT, 53)).expect("bind silent");
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            ready_tx.send(()).expect("ready");
            let mut buf = [0u8; 512];
            let mut queries = 0;
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                queries += 1;
                for r in replies(&buf[..n]) {
                    sock.send_to(&r, from).expect("reply");
                }
            }
            queries
        });
        ready.recv_timeout(Duration::from_secs(5)).expect("dns up");
        FakeDns {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the server; the number of queries it saw.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().map_or(0, |t| t.join().expect("server"))
    }
}

impl Drop for FakeDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `resolve_with(host, no hosts file, resolv_conf, udp_exchange)` in the namespace, and
/// how long it took.
fn lookup(
    ns: &Netns,
    host: &'static str,
    resolv_conf: String,
) -> (Result<Ipv4Addr, ResolveError>, Duration) {
    ns.run(move || {
        let t = Instant::now();
        let mut send = |s: SocketAddrV4, m: &[u8]| udp_exchange(s, m);
        let r = resolve_with(host, "", &resolv_conf, &mut send);
        (r, t.elapsed())
    })
    .join()
    .expect("lookup thread")
}

#[test]
fn dns_over_udp_in_a_namespace() {
    let ns = Netns::new();
    let dns = FakeDns::start(&ns);
    let conf = |servers: &[Ipv4Addr]| -> String {
        servers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect()
    };

    // Resolves through the CNAME, ignoring the wrong-id datagram that came first.
    let (r, took) = lookup(&ns, "vpn.example.test", conf(&[SERVER]));
    assert_eq!(r.expect("resolves"), Ipv4Addr::from(VPN_IP));
    assert!(took < Duration::from_secs(1), "{took:?}");

    // NXDOMAIN: the error names it, and no other server or round is asked.
    let (r, took) = lookup(&ns, "missing.example.test", conf(&[SERVER, SERVER]));
    let e = r.expect_err("no such name");
    assert!(matches!(e, ResolveError::NxDomain { .. }), "{e:?}");
    assert!(e.to_string().contains("NXDOMAIN"), "{e}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // SERVFAIL from the server each round: the RCODE is reported.
    let (r, _) = lookup(&ns, "other.example.test", conf(&[SERVER]));
    let e = r.expect_err("servfail");
    assert!(matches!(e, ResolveError::Failed { rcode: 2, .. }), "{e:?}");

    // Nobody listening: ICMP port unreachable ends each try at once.
    let (r, took) = lookup(&ns, "vpn.example.test", conf(&[NOBODY]));
    let e = r.expect_err("nobody");
    assert!(matches!(e, ResolveError::Timeout { .. }), "{e:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A silent server first: its try times out (2 s), then the next one answers.
    let (r, took) = lookup(&ns, "vpn.example.test", conf(&[SILENT, SERVER]));
    assert_eq!(r.expect("second server"), Ipv4Addr::from(VPN_IP));
    assert!(
        took >= resolve::TIMEOUT && took < resolve::TIMEOUT + Duration::from_secs(1),
        "{took:?}"
    );

    // Only a silent server: ROUNDS tries of TIMEOUT each, then the error.
    let (r, took) = lookup(&ns, "vpn.example.test", conf(&[SILENT]));
    let e = r.expect_err("silent");
    assert!(matches!(e, ResolveError::Timeout { .. }), "{e:?}");
    let bound = resolve::TIMEOUT * 2;
    assert!(
        took >= bound && took < bound + Duration::from_secs(1),
        "{took:?}"
    );

    // What reached the server: vpn (1), missing (1: NXDOMAIN ends the lookup), other
    // (2 rounds), vpn after the silent one (1).
    assert_eq!(dns.stop(), 5);
}
