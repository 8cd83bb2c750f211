//! The provider port-forwarding client on a real kernel (root): two network namespaces
//! joined by a veth. The client side's end is named like a tunnel and has 10.2.0.2/32 with
//! no route to the gateway, so the requests only get out because the socket is bound to the
//! device; the gateway side has 10.2.0.1/24 and runs a fake NAT-PMP gateway (a thread in
//! that namespace) that grants, changes the port, refuses and goes silent on command.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use portcullis::portmap::natpmp::{self, map_response, Request, ResultCode};
use portcullis::portmap::Proto;
use portcullis::vpn::provider::Event;
use portcullis::vpn::provider_io::{self, Update};

const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);

fn run(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The client and gateway namespaces; both deleted on drop (which removes the veth too).
struct Topology {
    client: String,
    gateway: String,
    tunnel: String,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.client, &self.gateway] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

impl Topology {
    fn new() -> Topology {
        static N: AtomicU32 = AtomicU32::new(0);
        let pid = format!(
            "{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let t = Topology {
            client: format!("pcxprov-c-{pid}"),
            gateway: format!("pcxprov-g-{pid}"),
            tunnel: format!("wgp{pid}"),
        };
        run(&["netns", "add", &t.client]);
        run(&["netns", "add", &t.gateway]);
        let peer = format!("gwp{pid}");
        run(&[
            "-n", &t.client, "link", "add", &t.tunnel, "type", "veth", "peer", "name", &peer,
            "netns", &t.gateway,
        ]);
        run(&[
            "-n",
            &t.client,
            "addr",
            "add",
            "10.2.0.2/32",
            "dev",
            &t.tunnel,
        ]);
        run(&["-n", &t.gateway, "addr", "add", "10.2.0.1/24", "dev", &peer]);
        run(&["-n", &t.client, "link", "set", &t.tunnel, "up"]);
        run(&["-n", &t.gateway, "link", "set", &peer, "up"]);
        // The premise: the client has no route to the gateway.
        let route = Command::new("ip")
            .args(["-n", &t.client, "route", "get", "10.2.0.1"])
            .output()
            .expect("run ip");
        assert!(!route.status.success(), "a route to the gateway exists");
        t
    }
}

/// Runs `f` in a thread that entered namespace `ns` (setns(2) affects only that thread,
/// and threads it starts inherit it).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).expect("open netns");
        setns(&file, CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
}

/// What the fake gateway answers.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Grant { port: u16, lifetime: u32 },
    Refuse(ResultCode),
    Silent,
}

/// A NAT-PMP gateway on 10.2.0.1:5351 answering per its mode; records each request and its
/// source.
struct FakeGateway {
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Vec<(SocketAddr, Request)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeGateway {
    fn start(ns: &str, mode: Mode) -> FakeGateway {
        let mode = Arc::new(Mutex::new(mode));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, s, st) = (mode.clone(), seen.clone(), stop.clone());
        let (ready_tx, ready) = channel();
        let thread = in_ns(ns, move || {
            let sock = UdpSocket::bind((GATEWAY, natpmp::SERVER_PORT)).expect("bind gateway");
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            ready_tx.send(()).expect("ready");
            let start = Instant::now();
            let mut buf = [0u8; 64];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(req @ Request::Map { proto, .. }) = natpmp::parse(&buf[..n]) else {
                    continue;
                };
                s.lock().unwrap().push((from, req));
                let epoch = 1000 + u32::try_from(start.elapsed().as_secs()).unwrap();
                let reply = match *m.lock().unwrap() {
                    Mode::Grant { port, lifetime } => {
                        map_response(proto, ResultCode::Success, epoch, 0, port, lifetime)
                    }
                    Mode::Refuse(code) => map_response(proto, code, epoch, 0, 0, 0),
                    Mode::Silent => continue,
                };
                sock.send_to(&reply, from).expect("reply");
            }
        });
        ready
            .recv_timeout(Duration::from_secs(5))
            .expect("gateway up");
        FakeGateway {
            mode,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Receives updates until one satisfies `done` (given it and every event so far), within
/// `limit`; panics with the history otherwise.
fn wait_for(
    rx: &Receiver<Update>,
    limit: Duration,
    what: &str,
    done: impl Fn(&Update, &[Event]) -> bool,
) -> Update {
    let end = Instant::now() + limit;
    let mut history = Vec::new();
    let mut events = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let u = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no update: {what} within {limit:?}; saw {history:#?}"));
        events.extend(u.events.iter().copied());
        if done(&u, &events) {
            return u;
        }
        history.push(u);
    }
}

fn spawn_in(ns: &str, ifname: String) -> (provider_io::ProviderHandle, Receiver<Update>) {
    let (tx, rx) = channel();
    let report: Box<dyn Fn(Update) + Send> = Box::new(move |u| {
        let _ = tx.send(u);
    });
    let handle = in_ns(ns, move || provider_io::spawn(ifname, GATEWAY, report))
        .join()
        .expect("spawn thread")
        .expect("spawn provider");
    (handle, rx)
}

fn held_port(u: &Update) -> Option<u16> {
    u.held.map(|h| h.0)
}

#[test]
fn provider_port_through_a_device_bound_socket() {
    let topo = Topology::new();
    let gw = FakeGateway::start(
        &topo.gateway,
        Mode::Grant {
            port: 40000,
            lifetime: 4,
        },
    );
    let (handle, rx) = spawn_in(&topo.client, topo.tunnel.clone());

    // Grant: both protocols asked from 10.2.0.2, internal port 1, 60 s.
    let u = wait_for(&rx, Duration::from_secs(5), "grant", |u, _| {
        held_port(u) == Some(40000)
    });
    assert_eq!(u.health, "ok");
    assert!(u.events.contains(&Event::Granted { port: 40000 }), "{u:?}");
    assert!(u
        .held
        .is_some_and(|(_, left)| left <= Duration::from_secs(4)));
    {
        let seen = gw.seen.lock().unwrap();
        let protos: Vec<Proto> = seen
            .iter()
            .map(|(from, req)| {
                assert_eq!(from.ip(), CLIENT, "source address");
                let Request::Map {
                    proto,
                    internal_port,
                    external_port,
                    lifetime_secs,
                } = *req
                else {
                    panic!("{req:?}")
                };
                assert_eq!((internal_port, external_port, lifetime_secs), (1, 0, 60));
                proto
            })
            .collect();
        assert!(protos.contains(&Proto::Udp) && protos.contains(&Proto::Tcp));
    }

    // The gateway changes the port: seen at the renewal (3 s into a 4 s lease).
    gw.set(Mode::Grant {
        port: 40001,
        lifetime: 4,
    });
    let u = wait_for(&rx, Duration::from_secs(6), "change", |u, ev| {
        held_port(u) == Some(40001)
            && ev.contains(&Event::Changed {
                old: 40000,
                new: 40001,
            })
    });
    assert_eq!(u.health, "ok");
    assert!(gw.seen.lock().unwrap().iter().any(|(_, r)| matches!(
        r,
        Request::Map {
            external_port: 40000,
            ..
        }
    )));

    // Refusal: health says so at the next renewal; the port is gone at lease end.
    gw.set(Mode::Refuse(ResultCode::NotAuthorized));
    wait_for(&rx, Duration::from_secs(6), "refusal", |u, ev| {
        u.health == "refused by the gateway: 2 (not authorized)"
            && ev.contains(&Event::Refused { code: 2 })
    });
    wait_for(
        &rx,
        Duration::from_secs(6),
        "lease end after refusal",
        |u, ev| u.held.is_none() && ev.contains(&Event::Lost { port: 40001 }),
    );

    // The tunnel comes back: requested at once, not after the backoff.
    gw.set(Mode::Grant {
        port: 40002,
        lifetime: 4,
    });
    handle.tunnel_up();
    let u = wait_for(
        &rx,
        Duration::from_secs(3),
        "grant after tunnel up",
        |u, _| held_port(u) == Some(40002),
    );
    assert!(u.events.contains(&Event::Granted { port: 40002 }), "{u:?}");

    // Silence: the port is gone at lease end, and the health says silent within ~8 s of the
    // renewal.
    gw.set(Mode::Silent);
    wait_for(
        &rx,
        Duration::from_secs(6),
        "lease end in silence",
        |u, ev| u.held.is_none() && ev.contains(&Event::Lost { port: 40002 }),
    );
    let u = wait_for(&rx, Duration::from_secs(10), "silent", |u, ev| {
        u.health.starts_with("no answer from the gateway for") && ev.contains(&Event::Silent)
    });
    assert_eq!(u.held, None);

    let t = Instant::now();
    handle.stop();
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    drop(gw);
    drop(topo);
}

#[test]
fn missing_interface_is_reported_and_stop_is_prompt() {
    let topo = Topology::new();
    let missing = format!("nowg{}", std::process::id());
    let (handle, rx) = spawn_in(&topo.client, missing.clone());
    let u = wait_for(&rx, Duration::from_secs(2), "missing", |u, _| {
        u.health == format!("tunnel interface {missing} missing")
    });
    assert_eq!(u.held, None);
    let t = Instant::now();
    handle.stop();
    assert!(
        t.elapsed() < Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    drop(topo);
}
