//! `make bench` (or `make bench-portmap`): port mapping, Debian's miniupnpd (nftables
//! backend) and Portcullis side by side in one run, each in its own copy of the same
//! namespace topology, printed as Markdown for BENCHMARKS.md. Needs root and
//! `make deps` (miniupnpd-nftables).
//!
//! 1. Mappings per second: one LAN client sends 1,000 SOAP AddPortMapping requests, one
//!    TCP connection each as upnpc does, to the control URL the root description names.
//! 2. The daemon's resident memory with those 1,000 mappings live, and before the first:
//!    VmRSS (all of it) and RssAnon (heap and stacks; the rest is the binary and the
//!    shared libraries it maps, file-backed).
//! 3. Installed size: each binary plus the shared libraries it needs beyond the C library,
//!    the loader and libgcc_s, which every Debian system has (miniupnpd: libmnl, libnftnl; ours: the
//!    binary `PORTCULLIS_BIN` names, which also does everything else the router does).
//!
//! Portcullis is measured as the host build (`PORTCULLIS_BIN`, glibc) and, when
//! `PORTCULLIS_MUSL_BIN` names an existing file, as the static musl build routers run
//! (`make cross-x86_64`: the same build as the router targets, for this CPU): musl's
//! allocator keeps memory differently from glibc's. `PORTMAP_BENCH_SMAPS=1` also prints
//! each daemon's largest anonymous mappings.
//!
//! miniupnpd runs in the router namespace only (`ip netns exec`), with its own nftables
//! table created there first, so it never sees the host's firewall.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_e2e::netns;
use portcullis_e2e::poll;
use portcullis_e2e::upnp::{self, Soap};
use portcullis_e2e::{Config, Topology, LAN_HOST, ROUTER_LAN};

/// How many mappings each daemon is asked for.
const MAPPINGS: u16 = 1_000;
const FIRST_PORT: u16 = 50_000;

/// One daemon's figures.
struct Figures {
    name: &'static str,
    per_sec: f64,
    median_ms: f64,
    mem: Memory,
    installed: String,
}

/// Resident memory before the first request and with all mappings live, KiB.
#[derive(Clone, Copy, Default)]
struct Memory {
    idle_rss: u64,
    idle_anon: u64,
    rss: u64,
    anon: u64,
}

/// (VmRSS, RssAnon) of a process, KiB.
fn rss(pid: i32) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = s.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?))
}

/// With `PORTMAP_BENCH_SMAPS` set: the process's largest anonymous mappings.
fn print_smaps(pid: i32, what: &str) {
    if std::env::var_os("PORTMAP_BENCH_SMAPS").is_none() {
        return;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut maps: Vec<(u64, String)> = Vec::new();
    let mut head = String::new();
    for line in text.lines() {
        if let Some(kb) = line.strip_prefix("Anonymous:") {
            let kb: u64 = kb.trim().trim_end_matches(" kB").parse().unwrap_or(0);
            maps.push((kb, head.clone()));
        } else if line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains('-'))
        {
            head = line.to_owned();
        }
    }
    maps.sort_by_key(|m| std::cmp::Reverse(m.0));
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count);
    eprintln!("{what}: {threads} threads; largest anonymous mappings (KiB):");
    for (kb, head) in maps.iter().take(12) {
        eprintln!("  {kb:>6}  {head}");
    }
}

fn main() {
    portcullis_e2e::topology::require_root();
    upnp::require_miniupnpd();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    match miniupnpd() {
        Ok(f) => rows.push(f),
        Err(e) => notes.push(format!("miniupnpd: {e}")),
    }
    match portcullis(None) {
        Ok(f) => rows.push(f),
        Err(e) => notes.push(format!("Portcullis: {e}")),
    }
    match std::env::var_os("PORTCULLIS_MUSL_BIN").map(PathBuf::from) {
        Some(bin) if bin.is_file() => match portcullis(Some(bin)) {
            Ok(f) => rows.push(f),
            Err(e) => notes.push(format!("Portcullis (static musl): {e}")),
        },
        _ => notes.push(
            "Portcullis static musl build: PORTCULLIS_MUSL_BIN unset or missing \
             (`make cross-x86_64`)"
                .to_owned(),
        ),
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Command: `make cross-x86_64 bench-portmap` (`cargo bench -p portcullis-e2e --bench portmap`), release builds.\n"
    );
    let _ = writeln!(
        out,
        "### Port mapping: {MAPPINGS} SOAP AddPortMapping requests from one LAN client\n"
    );
    let _ = writeln!(
        out,
        "| daemon | mappings/s | median request (ms) | VmRSS with {MAPPINGS} mappings (KiB) | \
         RssAnon with {MAPPINGS} (KiB) | idle VmRSS / RssAnon (KiB) | installed size |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---|");
    for f in &rows {
        let m = f.mem;
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.2} | {} | {} | {} / {} | {} |",
            f.name, f.per_sec, f.median_ms, m.rss, m.anon, m.idle_rss, m.idle_anon, f.installed
        );
    }
    for n in &notes {
        let _ = writeln!(out, "\nNot measured: {n}");
    }
    println!("\n{out}");
}

/// Sends the requests from the LAN host and reads the daemon's memory afterwards.
fn measure(t: &Topology, soap: &Soap, pid: i32, what: &str) -> Result<(f64, f64, Memory), String> {
    let soap = soap.clone();
    let no_proc = || format!("{what}: no /proc/{pid}/status");
    let (idle_rss, idle_anon) = rss(pid).ok_or_else(no_proc)?;
    let (elapsed, mut each) = netns::run_in(&t.lan, || -> Result<_, String> {
        let mut each = Vec::with_capacity(usize::from(MAPPINGS));
        let start = Instant::now();
        for i in 0..MAPPINGS {
            let port = FIRST_PORT + i;
            let t0 = Instant::now();
            let (status, text) = soap.add_port_mapping(port, "TCP", port, LAN_HOST, 3600)?;
            each.push(t0.elapsed());
            if status != 200 {
                return Err(format!(
                    "{what}: AddPortMapping {port}: HTTP {status}\n{text}"
                ));
            }
        }
        Ok((start.elapsed(), each))
    })?;
    each.sort();
    let median = each[each.len() / 2].as_secs_f64() * 1e3;
    let (rss, anon) = rss(pid).ok_or_else(no_proc)?;
    print_smaps(pid, what);
    let mem = Memory {
        idle_rss,
        idle_anon,
        rss,
        anon,
    };
    Ok((f64::from(MAPPINGS) / elapsed.as_secs_f64(), median, mem))
}

/// Bytes of `path` after following links.
fn size_of(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn kib(bytes: u64) -> String {
    format!("{} KiB", bytes / 1024)
}

/// A binary plus the shared libraries it needs beyond what every Debian system has (the C
/// library, the loader, libgcc_s).
fn installed(bin: &Path) -> String {
    let ldd = Command::new("ldd").arg(bin).output().map(|o| o.stdout);
    let text = String::from_utf8_lossy(&ldd.unwrap_or_default()).into_owned();
    let mut total = size_of(bin);
    let mut libs = Vec::new();
    for line in text.lines() {
        let Some((name, rest)) = line.trim().split_once(" => ") else {
            continue;
        };
        // In Debian's `required` set (libc6, libgcc-s1): on every system already.
        if ["libc.so", "ld-linux", "libgcc_s.so"]
            .iter()
            .any(|base| name.starts_with(base))
        {
            continue;
        }
        let path = rest.split_whitespace().next().unwrap_or("");
        total += size_of(Path::new(path));
        libs.push(name.to_owned());
    }
    if libs.is_empty() {
        return format!("{} (binary only)", kib(total));
    }
    format!(
        "{} (binary {} + {})",
        kib(total),
        kib(size_of(bin)),
        libs.join(", ")
    )
}

/// Where a program is on PATH (or /usr/sbin).
fn which(program: &str) -> PathBuf {
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("command -v {program} || echo /usr/sbin/{program}"),
        ])
        .output()
        .expect("sh");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// The table and chains miniupnpd adds its rules to (what its nft_init.sh makes).
const MINIUPNPD_TABLE: &str = "table inet miniupnpd {
  chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
";

/// miniupnpd's config: secure mode, NAT-PMP and PCP on, one allow rule for the range.
/// `ext_ip` is a public stand-in: miniupnpd refuses to serve when the WAN address is a
/// reserved one (the topology's 203.0.113.2 is TEST-NET-3); it is only reported.
fn miniupnpd_conf(uuid_tail: u32) -> String {
    format!(
        "ext_ifname=wan0\next_ip=11.22.33.44\nlistening_ip=lan0\nhttp_port={port}\n\
         enable_natpmp=yes\nenable_upnp=yes\nsecure_mode=yes\nsystem_uptime=yes\n\
         notify_interval=60\nclean_ruleset_interval=600\n\
         uuid=3d3cec3a-8cf0-11e0-98ee-{uuid_tail:012x}\n\
         upnp_table_name=miniupnpd\nupnp_nat_table_name=miniupnpd\n\
         upnp_forward_chain=miniupnpd\nupnp_nat_chain=prerouting_miniupnpd\n\
         upnp_nat_postrouting_chain=postrouting_miniupnpd\n\
         allow {FIRST_PORT}-{last} 192.168.1.0/24 1-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
        port = upnp::SOAP_PORT,
        last = FIRST_PORT + MAPPINGS * 2,
    )
}

fn wait_soap(t: &Topology, logs: impl Fn() -> String) -> Result<Soap, String> {
    poll::until(Duration::from_secs(15), || {
        netns::run_in(&t.lan, || {
            Soap::discover_here(std::net::SocketAddrV4::new(ROUTER_LAN, upnp::SOAP_PORT)).ok()
        })
    })
    .ok_or_else(|| format!("no root description on {ROUTER_LAN}:5000\n{}", logs()))
}

fn miniupnpd() -> Result<Figures, String> {
    let t = Topology::new();
    let table = t.path("miniupnpd.nft");
    std::fs::write(&table, MINIUPNPD_TABLE).map_err(|e| e.to_string())?;
    portcullis_e2e::nft::load(&t.router, &table)?;
    let conf = t.path("miniupnpd.conf");
    std::fs::write(&conf, miniupnpd_conf(std::process::id())).map_err(|e| e.to_string())?;
    let log = t.path("miniupnpd.log");
    let bin = which("miniupnpd");
    let (c, p) = (conf.to_string_lossy(), t.path("miniupnpd.pid"));
    // Without -d, as the Debian service runs it: it daemonizes and logs to syslog at its
    // default level (with -d it logs every rule it reads back at debug level, which
    // dominates its cost). It stays in the router namespace; the topology kills it.
    let status = netns::command(
        &t.router,
        &bin.to_string_lossy(),
        &["-f", &c, "-P", &p.to_string_lossy()],
    )
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
    .status()
    .map_err(|e| format!("spawn miniupnpd: {e}"))?;
    if !status.success() {
        return Err(format!("miniupnpd exited with {status}"));
    }
    let pid = poll::until(Duration::from_secs(5), || {
        std::fs::read_to_string(&p).ok()?.trim().parse::<i32>().ok()
    })
    .ok_or("miniupnpd wrote no pid file")?;
    let logs = || std::fs::read_to_string(&log).unwrap_or_default();
    let soap = wait_soap(&t, logs)?;
    let (per_sec, median_ms, mem) = measure(&t, &soap, pid, "miniupnpd")?;
    Ok(Figures {
        name: "miniupnpd 2.3.1 (Debian, nftables)",
        per_sec,
        median_ms,
        mem,
        installed: installed(&bin),
    })
}

/// `portcullis serve`: the host build, or the static musl build at `musl`.
fn portcullis(musl: Option<PathBuf>) -> Result<Figures, String> {
    let t = Topology::new();
    let mut cli = t.cli();
    let name = if let Some(bin) = musl {
        cli.bin = bin;
        "Portcullis, static musl build (`portcullis serve`)"
    } else {
        "Portcullis, host build (glibc) (`portcullis serve`)"
    };
    let rule = format!(
        r#"{{"hosts": ["{LAN_HOST}/32"], "external_ports": "{FIRST_PORT}-{}", "protocol": "both"}}"#,
        FIRST_PORT + MAPPINGS * 2
    );
    let section = format!(
        r#"{{"mode": "allow_list", "allow": [{rule}], "max_per_host": {}}}"#,
        u32::from(MAPPINGS) * 2
    );
    let cfg = Config::new().upnp(&section);
    std::fs::write(&cli.saved, cfg.to_json()).map_err(|e| e.to_string())?;
    let daemon = cli.serve();
    let pid = daemon.pid().as_raw();
    let soap = wait_soap(&t, || daemon.logs())?;
    let (per_sec, median_ms, mem) = measure(&t, &soap, pid, name)?;
    Ok(Figures {
        name,
        per_sec,
        median_ms,
        mem,
        installed: format!("{}, the whole router", installed(&cli.bin)),
    })
}
