//! The test network: WAN host, router, LAN host and LAN client in their own namespaces.
//!
//! ```text
//!  [wan ns]                 [router ns]                    [lan ns]            [lanc ns]
//!  eth0 203.0.113.10/24 ── wan0 203.0.113.2/24
//!       203.0.113.11/24     lan0 192.168.1.1/24 ─────── eth0 ┐
//!                                                         br0 192.168.1.10/24
//!                                                             192.168.1.20/24
//!                                                         cl0 ┘ ──────────── eth0 192.168.1.50/24
//! ```
//!
//! The LAN side is a bridge inside the lan namespace, so the LAN client and the LAN host
//! share one segment behind the router's `lan0`, as on a home switch: traffic between
//! them never crosses the router, which is what makes hairpin NAT observable.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::cli::Cli;
use crate::netns::{self, ip};

/// The router's address on the WAN side.
pub const ROUTER_WAN: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// The router's address on the LAN side.
pub const ROUTER_LAN: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
/// The WAN host's first address (its default source).
pub const WAN_HOST: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// A second source address on the WAN host, to connect as another internet client.
pub const WAN_HOST_2: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 11);
/// The LAN host's first address: where forwards point.
pub const LAN_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 10);
/// A second address on the LAN host, to stand in for a second internal server.
pub const LAN_HOST_2: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
/// The LAN client in its own namespace, for hairpin tests.
pub const LAN_CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 50);

/// Names of the namespaces this suite makes start with this, then `<pid>-<n>-`. (The
/// firmware's own kernel tests use `pcx-<pid>-<n>`; keep clear of them.)
pub const PREFIX: &str = "pcxe2e-";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// Three hosts and a router in network namespaces; dropped, it removes them all,
/// kills whatever still runs inside them and deletes its scratch directory.
pub struct Topology {
    /// Namespace of the internet-side host.
    pub wan: String,
    /// Namespace of the router, where `portcullis` runs.
    pub router: String,
    /// Namespace of the LAN host (servers that forwards point to).
    pub lan: String,
    /// Namespace of a second LAN machine (a client for hairpin tests).
    pub lan_client: String,
    /// Scratch directory for config files and logs; removed on drop.
    pub dir: PathBuf,
    made: Vec<String>,
}

/// Panics with a clear message unless running as root.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "the end-to-end tests need root: they create network namespaces and nftables rulesets"
        );
    }
}

impl Topology {
    /// Builds the network. Panics (after cleaning up) if any step fails.
    pub fn new() -> Topology {
        require_root();
        SWEEP.call_once(sweep_stale);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let base = format!("{PREFIX}{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&base);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let mut t = Topology {
            wan: format!("{base}-wan"),
            router: format!("{base}-router"),
            lan: format!("{base}-lan"),
            lan_client: format!("{base}-lanc"),
            dir,
            made: Vec::new(),
        };
        // If a step panics, `t` is dropped and removes what was made so far.
        t.build();
        t
    }

    fn build(&mut self) {
        for ns in [&self.wan, &self.router, &self.lan, &self.lan_client] {
            ip(&["netns", "add", ns]);
            self.made.push(ns.clone());
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        let (w, r, l, c) = (&self.wan, &self.router, &self.lan, &self.lan_client);

        // Cables: router wan0 <-> wan eth0, router lan0 <-> lan eth0, lan cl0 <-> lanc eth0.
        ip(&[
            "-n", r, "link", "add", "wan0", "type", "veth", "peer", "name", "eth0", "netns", w,
        ]);
        ip(&[
            "-n", r, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", l,
        ]);
        ip(&[
            "-n", l, "link", "add", "cl0", "type", "veth", "peer", "name", "eth0", "netns", c,
        ]);
        ip(&["-n", l, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", l, "link", "set", "eth0", "master", "br0"]);
        ip(&["-n", l, "link", "set", "cl0", "master", "br0"]);

        let addr =
            |ns: &str, dev: &str, cidr: &str| ip(&["-n", ns, "addr", "add", cidr, "dev", dev]);
        addr(w, "eth0", "203.0.113.10/24");
        addr(w, "eth0", "203.0.113.11/24");
        addr(r, "wan0", "203.0.113.2/24");
        addr(r, "lan0", "192.168.1.1/24");
        addr(l, "br0", "192.168.1.10/24");
        addr(l, "br0", "192.168.1.20/24");
        addr(c, "eth0", "192.168.1.50/24");

        for (ns, dev) in [
            (w, "eth0"),
            (r, "wan0"),
            (r, "lan0"),
            (l, "eth0"),
            (l, "cl0"),
            (l, "br0"),
            (c, "eth0"),
        ] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        // Every host routes everything through the router. The WAN host thus has a route to
        // 192.168.1.0/24 too: with no ruleset it reaches the LAN by plain routing (the
        // harness self-test), so whatever the WAN host cannot reach once Portcullis is
        // installed was stopped by the router's ruleset, not by a missing route.
        ip(&["-n", w, "route", "add", "default", "via", "203.0.113.2"]);
        ip(&["-n", l, "route", "add", "default", "via", "192.168.1.1"]);
        ip(&["-n", c, "route", "add", "default", "via", "192.168.1.1"]);
        netns::sysctl(r, "net.ipv4.ip_forward", "1");
    }

    /// The `portcullis` CLI bound to the router namespace and this topology's scratch dir.
    pub fn cli(&self) -> Cli {
        Cli::new(&self.router, &self.dir)
    }

    /// Makes one more, empty namespace (only `lo`, up) named after this topology, removed
    /// with it. Useful as a scratch kernel, e.g. to load a ruleset with `nft -f`.
    pub fn add_namespace(&mut self, suffix: &str) -> String {
        let base = self.wan.trim_end_matches("-wan").to_owned();
        let name = format!("{base}-{suffix}");
        ip(&["netns", "add", &name]);
        self.made.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }

    /// A path inside the scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// All namespaces of this topology.
    pub fn namespaces(&self) -> [&str; 4] {
        [&self.wan, &self.router, &self.lan, &self.lan_client]
    }
}

impl Default for Topology {
    fn default() -> Self {
        Topology::new()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.made {
            kill_all_in(ns);
        }
        for ns in &self.made {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .stdin(std::process::Stdio::null())
                .status();
        }
        remove_dir(&self.dir);
    }
}

/// Kills every process living in namespace `ns` — all of them were started by the test
/// that made the namespace — and waits briefly for them to go.
fn kill_all_in(ns: &str) {
    let pids = netns::pids(ns);
    for &p in &pids {
        let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !netns::pids(ns).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes namespaces and scratch dirs left by earlier runs of this suite that were
/// killed before their `Drop` ran (their pid no longer exists).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        kill_all_in(&name);
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &name])
            .status();
        let stem = name
            .rsplit_once('-')
            .map(|(s, _)| s.to_owned())
            .unwrap_or_default();
        remove_dir(&std::env::temp_dir().join(stem));
    }
}
