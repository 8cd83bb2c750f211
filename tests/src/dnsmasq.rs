//! dnsmasq in a test namespace: the router's LAN DHCP/DNS server run exactly as the image
//! runs it (the init script `board/common/rootfs-overlay/etc/init.d/S40dnsmasq`, whose
//! supervisor renders `portcullis dhcp-config` and runs dnsmasq), and a plain dnsmasq as an
//! upstream DNS server on the WAN side.
//!
//! Needs `dnsmasq` (Debian: dnsmasq-base, which installs no service) at `$DNSMASQ` or
//! /usr/sbin/dnsmasq. Every file lives in a directory of its own, removed on drop.

use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{cli, netns, poll};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How long dnsmasq may take to answer after a (re)start.
pub const START_WITHIN: Duration = Duration::from_secs(15);

/// The dnsmasq binary under test.
pub fn binary() -> PathBuf {
    let p = std::env::var_os("DNSMASQ").map_or_else(|| "/usr/sbin/dnsmasq".into(), PathBuf::from);
    assert!(
        p.is_file(),
        "dnsmasq is missing at {}: `apt-get install dnsmasq-base` (make deps) or set DNSMASQ",
        p.display()
    );
    p
}

/// The supervisor init script in this repository.
pub fn init_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../board/common/rootfs-overlay/etc/init.d/S40dnsmasq")
}

/// One line of dnsmasq's lease file: `EXPIRY MAC ADDRESS HOSTNAME CLIENT-ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub mac: String,
    pub address: Ipv4Addr,
    /// `*` when the client sent none.
    pub hostname: String,
}

/// S40dnsmasq's supervisor running in a namespace. Dropped, it stops the supervisor and
/// dnsmasq (`S40dnsmasq stop`, then SIGKILL to whatever is left) and removes its directory.
pub struct Dnsmasq {
    pub ns: String,
    /// The directory of this instance (removed on drop): `run/` and `log`.
    pub dir: PathBuf,
    /// RUN_DIR: dnsmasq.conf, dnsmasq.pid, dnsmasq.leases, resolv.conf.wan. Give it to
    /// `portcullis serve --run-dir` so the daemon restarts this dnsmasq.
    pub run_dir: PathBuf,
    config: PathBuf,
}

impl Dnsmasq {
    /// Starts the supervisor in `ns` for the saved Portcullis config `config`, with
    /// `upstream` as the WAN's DNS servers (RUN_DIR/resolv.conf.wan), in a new directory
    /// under `scratch`; returns once dnsmasq answers DNS on 127.0.0.1 in `ns`. Panics
    /// (after cleaning up) with the log otherwise.
    pub fn start(ns: &str, config: &Path, scratch: &Path, upstream: &[Ipv4Addr]) -> Dnsmasq {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = scratch.join(format!("dnsmasq-{}-{n}", std::process::id()));
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", run_dir.display()));
        let d = Dnsmasq {
            ns: ns.to_owned(),
            dir,
            run_dir,
            config: config.to_path_buf(),
        };
        let resolv: String = upstream
            .iter()
            .map(|a| format!("nameserver {a}\n"))
            .collect();
        std::fs::write(d.run_dir.join("resolv.conf.wan"), resolv).expect("write resolv.conf.wan");
        let out = netns::run_ok(d.script("start"));
        assert!(out.contains("OK"), "S40dnsmasq start: {out}\n{}", d.log());
        if poll::until(START_WITHIN, || d.pid().filter(|_| d.answers())).is_none() {
            panic!(
                "dnsmasq did not answer within {START_WITHIN:?}\n{}",
                d.log()
            );
        }
        d
    }

    /// `S40dnsmasq ARG` in the namespace with this instance's paths.
    fn script(&self, arg: &str) -> Command {
        let mut c = netns::command(&self.ns, &init_script().to_string_lossy(), &[arg]);
        c.env("PORTCULLIS", cli::binary())
            .env("DNSMASQ", binary())
            .env("CONFIG", &self.config)
            .env("RUN_DIR", &self.run_dir)
            .env("LOG", self.dir.join("log"));
        c
    }

    /// dnsmasq's pid from its pid file, if that process is a live dnsmasq.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.run_dir.join("dnsmasq.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "dnsmasq").then_some(pid)
    }

    /// Waits until a dnsmasq other than `old` runs and answers; returns its pid.
    pub fn restarted(&self, old: i32, within: Duration) -> Option<i32> {
        poll::until(within, || {
            self.pid().filter(|p| *p != old && self.answers())
        })
    }

    /// Whether dnsmasq answers a DNS query (for `router.lan`, any answer) on 127.0.0.1:53.
    pub fn answers(&self) -> bool {
        netns::run_in(&self.ns, || {
            dns_answers(Ipv4Addr::LOCALHOST, Duration::from_millis(300))
        })
    }

    /// The leases dnsmasq has written.
    pub fn leases(&self) -> Vec<Lease> {
        let text = std::fs::read_to_string(self.run_dir.join("dnsmasq.leases")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                Some(Lease {
                    mac: (*f.get(1)?).to_owned(),
                    address: f.get(2)?.parse().ok()?,
                    hostname: (*f.get(3)?).to_owned(),
                })
            })
            .collect()
    }

    /// The rendered config, the supervisor's log (with dnsmasq's and portcullis's stderr).
    pub fn log(&self) -> String {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- dnsmasq.conf ---\n{}--- S40dnsmasq log ---\n{}",
            read(self.run_dir.join("dnsmasq.conf")),
            read(self.dir.join("log"))
        )
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let dnsmasq = self.pid();
        let supervisor = std::fs::read_to_string(self.run_dir.join("dnsmasq.supervise.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        let _ = netns::output(self.script("stop"));
        for p in [supervisor, dnsmasq].into_iter().flatten() {
            if Path::new(&format!("/proc/{p}")).exists() {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain dnsmasq on the WAN side: answers `address=/DOMAIN/ADDR` records on `listen`,
/// nothing else (no resolv.conf, no /etc/hosts, no DHCP). Killed on drop.
pub struct Upstream {
    child: Child,
    log: PathBuf,
}

impl Upstream {
    /// Starts it in `ns` on `listen`:53 (an address of `ns`); returns once it answers.
    pub fn start(
        ns: &str,
        listen: Ipv4Addr,
        records: &[(&str, Ipv4Addr)],
        scratch: &Path,
    ) -> Upstream {
        let log = scratch.join(format!(
            "upstream-{}-{}.log",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let mut args = vec![
            "--keep-in-foreground".to_owned(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--conf-file=/dev/null".into(),
            "--pid-file".into(),
            "--bind-interfaces".into(),
            format!("--listen-address={listen}"),
            "--log-facility=-".into(),
            "--log-queries".into(),
        ];
        args.extend(records.iter().map(|(d, a)| format!("--address=/{d}/{a}")));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = netns::command(ns, &binary().to_string_lossy(), &argv);
        let f = File::create(&log).expect("create upstream log");
        cmd.stderr(f.try_clone().expect("dup log")).stdout(f);
        let child = cmd.spawn().expect("spawn upstream dnsmasq");
        let up = Upstream { child, log };
        if !poll::until_true(START_WITHIN, || {
            netns::run_in(ns, || dns_answers(listen, Duration::from_millis(300)))
        }) {
            panic!("upstream dnsmasq did not answer\n{}", up.log());
        }
        up
    }

    /// What it logged (its queries).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Sends one DNS query (A `router.lan`, RFC 1035 §4.1) to `server`:53 from the current
/// thread's namespace; true when a reply with the same id comes back within `timeout`.
pub fn dns_answers(server: Ipv4Addr, timeout: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(timeout));
    // The low bits of the pid as the id, so concurrent tests do not answer each other.
    let id = std::process::id().to_be_bytes();
    let id = [id[2], id[3]];
    let mut q = vec![id[0], id[1], 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    q.extend_from_slice(b"\x06router\x03lan\x00\x00\x01\x00\x01");
    if sock.send_to(&q, (server, 53)).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(sock.recv(&mut buf), Ok(n) if n >= 12 && buf[..2] == id)
}
