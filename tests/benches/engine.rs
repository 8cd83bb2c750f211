//! `make bench`: the forward engine's costs, measured side by side in one run, printed as
//! Markdown for BENCHMARKS.md. Needs root (network namespaces, nftables) and iperf3.
//!
//! 1. Apply time: our one-batch netlink apply versus `nft -f` of the very text `plan`
//!    prints, for 10 to 10,000 forwards plus 100 triggers, in a scratch namespace.
//! 2. Datapath: TCP throughput (iperf3) and new-connection rate from the WAN host to a LAN
//!    server through one forward, with 1 and with 1,000 forwards installed, with one
//!    forward plus 1,000 live port mappings (UPnP/NAT-PMP/PCP leases), and the same for a
//!    linear one-rule-per-forward table, interleaved and repeated.
//!
//! Environment: `PCX_BENCH_QUICK=1` runs fewer sizes and shorter samples (for a smoke run);
//! `PCX_BENCH_ONLY=apply` or `PCX_BENCH_ONLY=datapath` runs one of the two parts;
//! `PCX_BENCH_ROUNDS`, `PCX_BENCH_IPERF_SECS` and `PCX_BENCH_CONN_MS` set the datapath's
//! rounds and sample lengths.

use std::fmt::Write as _;
use std::io::Read;
use std::net::{SocketAddrV4, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis::config::{
    Config, Forward, Per, PortRange, Protocol, RateLimit, Timestamp, Trigger,
};
use portcullis::nft::Nft;
use portcullis::plan::{self, HostFacts};
use portcullis::portmap::{Mapping, Proto, Via};
use portcullis::render::render;
use portcullis_e2e::netns;
use portcullis_e2e::{Topology, LAN_HOST, ROUTER_WAN, WAN_HOST};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The forward every datapath sample goes through.
const PROBE_PORT: u16 = 5201;

fn quick() -> bool {
    std::env::var_os("PCX_BENCH_QUICK").is_some()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    portcullis_e2e::topology::require_root();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Command: `make bench` (`cargo bench -p portcullis-e2e --bench engine`), release build.\n"
    );
    let only = std::env::var("PCX_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "apply" {
        apply_times(&mut out);
    }
    if only.is_empty() || only == "datapath" {
        datapath(&mut out);
    }
    println!("\n{out}");
}

/// `n` forwards (every one with an allow-list, every 10th with a rate limit and logging)
/// and `triggers` triggers; forward 0 is the datapath probe (port 5201 to the LAN host).
fn config(n: usize, triggers: usize) -> Config {
    let mut text = String::from(
        r#"{"version":1,"lan":{"interface":"lan0","subnets":["192.168.1.0/24"]},"wan":{"interface":"wan0"}}"#,
    );
    let mut cfg = Config::parse(&text).expect("base config");
    text.clear();
    for i in 0..n {
        let port = if i == 0 {
            PROBE_PORT
        } else {
            u16::try_from(20_000 + i).expect("port fits")
        };
        cfg.forwards.push(Forward {
            name: format!("f{i}"),
            enabled: true,
            protocol: Protocol::Tcp,
            external_port: PortRange::single(port),
            internal_host: LAN_HOST,
            device: None,
            internal_port: None,
            allow_from: vec!["203.0.113.0/24".parse().expect("prefix")],
            rate_limit: (i % 10 == 5).then_some(RateLimit {
                connections: 100,
                per: Per::Second,
                burst: 100,
            }),
            log: i % 10 == 5,
            expires_at: None,
            comment: String::new(),
        });
    }
    for i in 0..triggers {
        let i16 = u16::try_from(i).expect("trigger index fits");
        cfg.triggers.push(Trigger {
            name: format!("t{i}"),
            enabled: true,
            trigger_protocol: Protocol::Tcp,
            trigger_port: PortRange::single(1_000 + i16),
            open_protocol: Protocol::Udp,
            open_port: PortRange::single(11_000 + i16),
            timeout_secs: 600,
            comment: String::new(),
        });
    }
    let report = portcullis::config::validate(&cfg, Timestamp::now());
    assert!(!report.has_errors(), "bench config invalid:\n{report}");
    cfg
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn apply_times(out: &mut String) {
    let t = Topology::new();
    let sizes: &[usize] = if quick() {
        &[10, 1000]
    } else {
        &[10, 100, 1000, 10_000]
    };
    let runs = if quick() { 3 } else { 5 };
    let facts = HostFacts {
        wan_addrs: vec![ROUTER_WAN],
        ..HostFacts::default()
    };
    let _ = writeln!(out, "### Apply time (median of {runs}; + 100 triggers)\n");
    let _ = writeln!(
        out,
        "| forwards | rules | netlink apply (ms) | `nft -f` same text (ms) | ratio |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let cfg = config(n, 100);
        let rs = plan::plan(&cfg, &facts, Timestamp::now());
        let script = t.path(&format!("plan-{n}.nft"));
        std::fs::write(&script, render(&rs)).expect("write plan text");
        let (ours, theirs) = netns::run_in(&t.router, || {
            let mut nft = Nft::open().expect("netlink socket");
            let mut ours = Vec::new();
            let mut theirs = Vec::new();
            for _ in 0..runs {
                // Alternate so that neither side always runs on a warm table.
                let start = Instant::now();
                nft.apply(&rs).expect("apply");
                ours.push(start.elapsed());
                let start = Instant::now();
                let st = Command::new("nft")
                    .arg("-f")
                    .arg(&script)
                    .status()
                    .expect("run nft");
                theirs.push(start.elapsed());
                assert!(st.success(), "nft -f failed for {n} forwards");
            }
            nft.delete_table(plan::TABLE).expect("delete table");
            (median(ours), median(theirs))
        });
        let _ = writeln!(
            out,
            "| {n} | {} | {} | {} | {:.2} |",
            rs.rule_count(),
            ms(ours),
            ms(theirs),
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
        eprintln!("apply {n}: ours {ours:?}, nft -f {theirs:?}");
    }
    out.push('\n');
}

/// Which table is installed in the router for a datapath sample.
#[derive(Clone, Copy, Debug)]
enum Setup {
    Portcullis(usize),
    /// One probe forward plus this many live port mappings (UPnP/NAT-PMP/PCP leases).
    Mappings(usize),
    Linear(usize),
}

impl Setup {
    fn label(self) -> String {
        match self {
            Setup::Portcullis(n) => format!("portcullis, {n} forward(s)"),
            Setup::Mappings(n) => format!("portcullis, 1 forward + {n} port mappings"),
            Setup::Linear(n) => format!("linear chain, {n} rule(s)"),
        }
    }

    fn install(self, t: &Topology) {
        let router = t.router.clone();
        netns::run_in(&router, || {
            let mut nft = Nft::open().expect("netlink socket");
            nft.delete_table(plan::TABLE).expect("delete ours");
            nft.delete_table("linear").expect("delete linear");
        });
        match self {
            Setup::Portcullis(_) | Setup::Mappings(_) => {
                let (n, leases) = match self {
                    Setup::Mappings(m) => (1, m),
                    Setup::Portcullis(n) | Setup::Linear(n) => (n, 0),
                };
                // The connection-rate probe uses PROBE_PORT + 1: one more forward, last.
                let mut cfg = config(n, 0);
                let mut f = cfg.forwards[0].clone();
                f.name = "rate".into();
                f.external_port = PortRange::single(PROBE_PORT + 1);
                cfg.forwards.push(f);
                let now = Timestamp::now();
                let facts = HostFacts {
                    wan_addrs: vec![ROUTER_WAN],
                    leases: mappings(leases, now),
                    ..HostFacts::default()
                };
                let rs = plan::plan(&cfg, &facts, now);
                netns::run_in(&router, || Nft::open().and_then(|mut n| n.apply(&rs)))
                    .expect("apply");
            }
            Setup::Linear(n) => {
                // One DNAT rule per forward, the probe's rule last: the classic layout
                // whose cost grows with every forward.
                let mut s = String::from(
                    "table inet linear {\n chain dstnat {\n  type nat hook prerouting priority -100; policy accept;\n",
                );
                for i in 1..n {
                    let _ = writeln!(
                        s,
                        "  iifname \"wan0\" ip saddr 203.0.113.0/24 tcp dport {} dnat ip to {LAN_HOST}",
                        20_000 + i
                    );
                }
                for port in [PROBE_PORT, PROBE_PORT + 1] {
                    let _ = writeln!(
                        s,
                        "  iifname \"wan0\" ip saddr 203.0.113.0/24 tcp dport {port} dnat ip to {LAN_HOST}"
                    );
                }
                s.push_str(" }\n}\n");
                let path = t.path("linear.nft");
                std::fs::write(&path, s).expect("write linear");
                let st = netns::command(&router, "nft", &["-f", &path.to_string_lossy()])
                    .status()
                    .expect("nft");
                assert!(st.success(), "loading the linear table failed");
            }
        }
    }
}

/// `n` live NAT-PMP mappings of one LAN host on ports 30000 and up, an hour left.
fn mappings(n: usize, now: Timestamp) -> Vec<Mapping> {
    (0..n)
        .map(|i| {
            let port = 30_000 + u16::try_from(i).unwrap_or(0);
            Mapping {
                via: Via::Natpmp,
                client: LAN_HOST,
                mac: None,
                proto: Proto::Tcp,
                external_port: port,
                internal_port: port,
                remote_host: None,
                description: String::new(),
                nonce: None,
                created_at: now,
                expires_at: Timestamp(now.0 + 3_600),
            }
        })
        .collect()
}

/// iperf3 throughput in bits per second from the WAN host through the probe forward.
fn throughput(t: &Topology, secs: u32) -> f64 {
    let out = netns::command(
        &t.wan,
        "iperf3",
        &[
            "-c",
            &ROUTER_WAN.to_string(),
            "-p",
            &PROBE_PORT.to_string(),
            "-t",
            &secs.to_string(),
            "-J",
        ],
    )
    .stderr(Stdio::null())
    .output()
    .expect("run iperf3");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text).expect("iperf3 JSON");
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 gave no result: {text}"))
}

/// New TCP connections per second (connect, read the greeting, close) through the forward.
fn connection_rate(t: &Topology, window: Duration) -> f64 {
    let dst = SocketAddrV4::new(ROUTER_WAN, PROBE_PORT + 1);
    netns::run_in(&t.wan, || {
        let start = Instant::now();
        let mut n = 0u64;
        let mut buf = [0u8; 128];
        while start.elapsed() < window {
            let s = TcpStream::connect_timeout(&dst.into(), Duration::from_secs(1))
                .expect("connect through the forward");
            // Reset on close so the client's ports do not pile up in TIME_WAIT.
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::Linger,
                &nix::libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                },
            )
            .expect("SO_LINGER");
            let mut s = s;
            let _ = s.read(&mut buf);
            n += 1;
        }
        n as f64 / start.elapsed().as_secs_f64()
    })
}

fn datapath(out: &mut String) {
    let t = Topology::new();
    // iperf3 on the probe port; a greeting server one port up for the connection rate.
    let mut iperf = netns::command(
        &t.lan,
        "iperf3",
        &[
            "-s",
            "-B",
            &LAN_HOST.to_string(),
            "-p",
            &PROBE_PORT.to_string(),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("start iperf3 server");
    let greeter = Greeter::start(&t.lan, SocketAddrV4::new(LAN_HOST, PROBE_PORT + 1));
    std::thread::sleep(Duration::from_millis(300));

    let setups = [
        Setup::Portcullis(1),
        Setup::Portcullis(1000),
        Setup::Linear(1),
        Setup::Linear(1000),
        Setup::Mappings(1000),
    ];
    let rounds = std::env::var("PCX_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick() { 1 } else { 3 });
    let (secs, window) = if quick() {
        (1, Duration::from_millis(500))
    } else {
        (3, Duration::from_secs(2))
    };
    // Shorter samples and more rounds pair samples closer in time (a shared machine's
    // load drifts): `PCX_BENCH_IPERF_SECS=1 PCX_BENCH_CONN_MS=500 PCX_BENCH_ROUNDS=25`.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let secs = env("PCX_BENCH_IPERF_SECS").map_or(secs, |v| u32::try_from(v).unwrap_or(secs));
    let window = env("PCX_BENCH_CONN_MS").map_or(window, Duration::from_millis);
    let mut tput = vec![Vec::new(); setups.len()];
    let mut rate = vec![Vec::new(); setups.len()];
    for _ in 0..rounds {
        for (i, s) in setups.iter().enumerate() {
            s.install(&t);
            tput[i].push(throughput(&t, secs));
            rate[i].push(connection_rate(&t, window));
            eprintln!(
                "{}: {:.2} Gbit/s, {:.0} conn/s",
                s.label(),
                tput[i].last().copied().unwrap_or_default() / 1e9,
                rate[i].last().copied().unwrap_or_default()
            );
        }
    }
    let _ = iperf.kill();
    let _ = iperf.wait();
    greeter.stop();
    let med = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let _ = writeln!(
        out,
        "### Datapath through one forward (median of {rounds} interleaved rounds; iperf3 {secs} s, connection loop {} s)\n",
        window.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "| ruleset | TCP throughput (Gbit/s) | new connections/s | throughput vs 1 | conn/s vs 1 | paired: throughput vs 1 | paired: conn/s vs 1 |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    // Paired: the ratio of each round's sample to the same round's 1-forward sample (taken
    // seconds apart), then the median of those ratios: robust against a machine whose
    // load changes between rounds.
    let paired = |v: &Vec<Vec<f64>>, i: usize, base: usize| {
        let ratios: Vec<f64> = v[i].iter().zip(&v[base]).map(|(a, b)| a / b).collect();
        100.0 * med(&ratios)
    };
    for (i, s) in setups.iter().enumerate() {
        // Each is compared with its own kind's smallest table (setups[0] or setups[2]).
        let base = match s {
            Setup::Linear(_) => 2,
            Setup::Portcullis(_) | Setup::Mappings(_) => 0,
        };
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.0} | {:.1} % | {:.1} % | {:.1} % | {:.1} % |",
            s.label(),
            med(&tput[i]) / 1e9,
            med(&rate[i]),
            100.0 * med(&tput[i]) / med(&tput[base]),
            100.0 * med(&rate[i]) / med(&rate[base]),
            paired(&tput, i, base),
            paired(&rate, i, base),
        );
    }
    let _ = writeln!(
        out,
        "\nWAN host {WAN_HOST} → router {ROUTER_WAN} → LAN host {LAN_HOST}, veth pairs in network namespaces on one machine."
    );
}

/// A minimal accept-write-close server for the connection-rate probe: blocking accept on
/// its own thread, so the server never adds polling delay to a connection.
struct Greeter {
    stop: Arc<AtomicBool>,
    addr: SocketAddrV4,
    ns: String,
    thread: std::thread::JoinHandle<()>,
}

impl Greeter {
    fn start(ns: &str, addr: SocketAddrV4) -> Greeter {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (ns2, stop2) = (ns.to_string(), stop.clone());
        let thread = std::thread::spawn(move || {
            netns::enter(&ns2);
            let l = TcpListener::bind(addr).expect("bind greeter");
            tx.send(()).expect("greeter ready");
            for s in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(mut s) = s {
                    let _ = std::io::Write::write_all(&mut s, b"lan\n");
                }
            }
        });
        rx.recv().expect("greeter started");
        Greeter {
            stop,
            addr,
            ns: ns.to_string(),
            thread,
        }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept with one last connection from inside its namespace.
        let addr = self.addr;
        netns::run_in(&self.ns, || {
            let _ = TcpStream::connect_timeout(&addr.into(), Duration::from_secs(1));
        });
        let _ = self.thread.join();
    }
}
