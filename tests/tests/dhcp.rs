//! The LAN's DHCP and DNS server end to end, on a real kernel with real clients: the router
//! namespace runs `portcullis serve` and S40dnsmasq's supervisor (dnsmasq configured by
//! `portcullis dhcp-config`), the LAN client namespace runs `busybox udhcpc` and
//! `busybox nslookup`, the WAN namespace runs an upstream DNS server (a second dnsmasq).
//!
//! Proves: the client gets a pool address, the router as gateway and DNS server; names
//! resolve upstream and locally (`router.DOMAIN`, the client's own host name); a reservation
//! committed through the daemon restarts dnsmasq and the client's renewal gets it; a forward
//! to the device follows its reservation when it moves; a reservation a forward uses cannot
//! be deleted. Needs root, dnsmasq (dnsmasq-base) and busybox.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use portcullis_e2e::clients::{tcp_here, TIMEOUT};
use portcullis_e2e::dnsmasq::{dns_answers, Dnsmasq, Upstream};
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::{netns, poll, Topology, ROUTER_LAN, ROUTER_WAN, WAN_HOST};

const CLIENT_MAC: &str = "02:00:5e:10:00:0a";
const HOSTNAME: &str = "pcxclient";
const DOMAIN: &str = "home.lan";
const UPSTREAM_NAME: &str = "example.test";
const UPSTREAM_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const FIRST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 60);
const MOVED: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 61);
const PORT: u16 = 8000;
const WITHIN: Duration = Duration::from_secs(20);

/// The router's config: a pool of .100–.149; `reserved` reserves an address for the client
/// and adds a forward of tcp/8000 to it as a device.
fn config(reserved: Option<Ipv4Addr>, forward: bool) -> String {
    let reservations = reserved.map_or_else(String::new, |a| {
        format!(r#", "reservations": [{{"name": "box", "mac": "{CLIENT_MAC}", "address": "{a}"}}]"#)
    });
    let forwards = if forward {
        format!(
            r#"{{"name": "web", "protocol": "tcp", "external_port": {PORT},
                "device": "{CLIENT_MAC}", "allow_from": ["203.0.113.0/24"]}}"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{{"version": 1,
  "lan": {{"interface": "lan0", "subnets": ["192.168.1.0/24"]}},
  "wan": {{"interface": "wan0"}},
  "management": {{"http_port": 8080}},
  "forwards": [{forwards}],
  "dhcp": {{"start": "192.168.1.100", "end": "192.168.1.149", "lease_secs": 600,
            "domain": "{DOMAIN}"{reservations}}}
}}"#
    )
}

/// A process started for the test; killed on drop.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let f = File::create(&log).expect("create log");
        cmd.stderr(f.try_clone().expect("dup log")).stdout(f);
        let child = cmd.spawn().expect("spawn");
        Proc { child, log }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pid fits"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the client's udhcpc script recorded at its last `bound`/`renew`.
fn lease_of(file: &Path) -> Option<(Ipv4Addr, String, String, String)> {
    let text = std::fs::read_to_string(file).ok()?;
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .unwrap_or_default()
            .to_owned()
    };
    Some((
        get("ip").parse().ok()?,
        get("router"),
        get("dns"),
        get("domain"),
    ))
}

/// udhcpc's event script: configures the interface and records what it got.
const SCRIPT: &str = r#"#!/bin/sh
case "$1" in
deconfig)
	ip -4 addr flush dev "$interface"
	ip link set "$interface" up
	rm -f "$OUT"
	;;
bound | renew)
	ip -4 addr flush dev "$interface"
	ip addr add "$ip/${mask:-24}" dev "$interface"
	ip route replace default via "$router" dev "$interface"
	printf 'ip=%s\nrouter=%s\ndns=%s\ndomain=%s\n' "$ip" "$router" "$dns" "$domain" >"$OUT.tmp"
	mv -f "$OUT.tmp" "$OUT"
	;;
esac
exit 0
"#;

fn nslookup(ns: &str, name: &str) -> String {
    let out = netns::output(netns::command(
        ns,
        "busybox",
        &["nslookup", name, &ROUTER_LAN.to_string()],
    ));
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The addresses in `busybox nslookup`'s answer (the `Address:` lines after `Name:`; the
/// first `Address:` line is the server's own).
fn answers(out: &str) -> Vec<Ipv4Addr> {
    out.lines()
        .skip_while(|l| !l.starts_with("Name:"))
        .filter_map(|l| l.strip_prefix("Address:")?.trim().parse().ok())
        .collect()
}

/// Polls until `name` resolves to `addr` through the router (dnsmasq may be restarting).
#[track_caller]
fn resolves(ns: &str, name: &str, addr: Ipv4Addr) {
    let mut last = String::new();
    let ok = poll::until_true(WITHIN, || {
        last = nslookup(ns, name);
        answers(&last) == [addr]
    });
    assert!(ok, "{name} did not resolve to {addr}:\n{last}");
}

/// Applies `text` through the daemon and waits for dnsmasq's restart; returns the new pid.
#[track_caller]
fn apply_and_restart(t: &Topology, dns: &Dnsmasq, name: &str, text: &str) -> i32 {
    let old = dns.pid().expect("dnsmasq runs");
    let cli = t.cli();
    let run = cli.apply(&cli.write(name, text));
    assert_eq!(run.code, Some(0), "apply {name}\n{}", run.story());
    assert!(
        run.stdout.contains("through the running daemon"),
        "{}",
        run.story()
    );
    dns.restarted(old, WITHIN)
        .unwrap_or_else(|| panic!("dnsmasq was not restarted after {name}\n{}", dns.log()))
}

/// Renews the client's lease (SIGUSR1) until it holds `addr`.
#[track_caller]
fn renew_to(udhcpc: &Proc, out: &Path, addr: Ipv4Addr) {
    let got = poll::until(WITHIN, || {
        if lease_of(out).is_some_and(|l| l.0 == addr) {
            return Some(());
        }
        let _ = kill(udhcpc.pid(), Signal::SIGUSR1);
        std::thread::sleep(Duration::from_millis(500));
        None
    });
    assert!(
        got.is_some(),
        "the client did not get {addr}: {:?}\n{}",
        lease_of(out),
        udhcpc.log()
    );
}

fn probe_forward(t: &Topology) -> Result<String, String> {
    netns::run_in(&t.wan, || {
        tcp_here(Some(WAN_HOST), SocketAddrV4::new(ROUTER_WAN, PORT), TIMEOUT)
            .map(|p| p.label)
            .map_err(|e| e.to_string())
    })
}

#[test]
fn lan_clients_get_addresses_names_and_forwards_that_follow_reservations() {
    let t = Topology::new();
    let (r, c) = (t.router.clone(), t.lan_client.clone());
    let cli = t.cli();
    cli.write("saved.json", &config(None, false));

    let upstream = Upstream::start(&t.wan, WAN_HOST, &[(UPSTREAM_NAME, UPSTREAM_ADDR)], &t.dir);
    let dns = Dnsmasq::start(&r, &cli.saved, &t.dir, &[WAN_HOST]);
    let bin = cli.bin.to_string_lossy().into_owned();
    let saved = cli.saved.to_string_lossy().into_owned();
    let run_dir = dns.run_dir.to_string_lossy().into_owned();
    let serve = Proc::spawn(
        netns::command(
            &r,
            &bin,
            &["--config", &saved, "--run-dir", &run_dir, "serve"],
        ),
        t.path("serve.log"),
    );
    // Polling `status` would race the daemon for its lock: read its log instead.
    assert!(
        poll::until_true(WITHIN, || serve
            .log()
            .contains("ruleset installed (start-up)")),
        "serve did not start\n{}",
        serve.log()
    );

    // The client: no address of its own, a known MAC and host name.
    netns::ip(&["-n", &c, "addr", "flush", "dev", "eth0"]);
    netns::ip(&["-n", &c, "link", "set", "eth0", "address", CLIENT_MAC]);
    let script = t.path("udhcpc.script");
    std::fs::write(&script, SCRIPT).expect("write script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod script");
    let out = t.path("udhcpc.lease");
    let mut cmd = netns::command(
        &c,
        "busybox",
        &[
            "udhcpc",
            "-f",
            "-i",
            "eth0",
            "-s",
            &script.to_string_lossy(),
            "-x",
            &format!("hostname:{HOSTNAME}"),
            "-t",
            "20",
            "-T",
            "1",
            "-A",
            "1",
        ],
    );
    cmd.env("OUT", &out);
    let udhcpc = Proc::spawn(cmd, t.path("udhcpc.log"));

    // An address from the pool, the router as gateway and DNS server, the domain.
    let (ip, router, dns_server, domain) = poll::until(WITHIN, || lease_of(&out))
        .unwrap_or_else(|| panic!("no lease\n{}\n{}", udhcpc.log(), dns.log()));
    let pool =
        u32::from(Ipv4Addr::new(192, 168, 1, 100))..=u32::from(Ipv4Addr::new(192, 168, 1, 149));
    assert!(pool.contains(&u32::from(ip)), "{ip} is outside the pool");
    assert_eq!(router, ROUTER_LAN.to_string());
    assert_eq!(dns_server.trim(), ROUTER_LAN.to_string());
    assert_eq!(domain, DOMAIN);
    let routes = netns::ip(&["-n", &c, "-4", "route", "show", "default"]);
    assert!(
        routes.contains(&format!("default via {ROUTER_LAN}")),
        "{routes}"
    );
    assert!(
        dns.leases()
            .iter()
            .any(|l| l.mac == CLIENT_MAC && l.address == ip && l.hostname == HOSTNAME),
        "lease file: {:?}",
        dns.leases()
    );

    // Names: upstream through the WAN's server, the router's and the client's own.
    resolves(&c, UPSTREAM_NAME, UPSTREAM_ADDR);
    assert!(upstream.log().contains(UPSTREAM_NAME), "{}", upstream.log());
    resolves(&c, &format!("router.{DOMAIN}"), ROUTER_LAN);
    resolves(&c, &format!("{HOSTNAME}.{DOMAIN}"), ip);
    // The local domain is never asked upstream.
    let unknown = format!("nosuch.{DOMAIN}");
    assert_eq!(answers(&nslookup(&c, &unknown)), Vec::<Ipv4Addr>::new());
    assert!(!upstream.log().contains(&unknown), "{}", upstream.log());
    // dnsmasq listens on the LAN and loopback only, never on the WAN address (asked from
    // inside the router, where the ruleset lets loopback traffic in).
    assert!(netns::run_in(&r, || {
        dns_answers(ROUTER_LAN, TIMEOUT) && !dns_answers(ROUTER_WAN, TIMEOUT)
    }));

    // A reservation and a forward to the device: dnsmasq restarts, the renewal gets it.
    apply_and_restart(&t, &dns, "reserved.json", &config(Some(FIRST), true));
    renew_to(&udhcpc, &out, FIRST);
    // The lease file is kept across the restart and written by the new dnsmasq (which runs
    // as nobody: it writes through the file it opened as root).
    assert!(
        poll::until_true(WITHIN, || dns
            .leases()
            .iter()
            .any(|l| l.mac == CLIENT_MAC && l.address == FIRST)),
        "{:?}",
        dns.leases()
    );
    let first = Server::tcp(&c, sa(FIRST, PORT), "first");
    assert_eq!(probe_forward(&t), Ok("first".to_owned()));
    resolves(&c, &format!("box.{DOMAIN}"), FIRST);

    // The reservation moves: the forward follows, the old address gets nothing.
    apply_and_restart(&t, &dns, "moved.json", &config(Some(MOVED), true));
    renew_to(&udhcpc, &out, MOVED);
    drop(first);
    netns::ip(&[
        "-n",
        &t.lan,
        "addr",
        "add",
        &format!("{FIRST}/24"),
        "dev",
        "br0",
    ]);
    let old = Server::tcp(&t.lan, sa(FIRST, PORT), "old");
    let moved = Server::tcp(&c, sa(MOVED, PORT), "moved");
    let mut last = Err(String::new());
    assert!(
        poll::until_true(WITHIN, || {
            last = probe_forward(&t);
            last.as_deref() == Ok("moved")
        }),
        "the forward did not follow the reservation: {last:?}"
    );
    assert_eq!(old.served(), 0, "the old address still got traffic");
    assert!(moved.served() >= 1);

    // The reservation cannot go while the forward uses it.
    let pid = dns.pid();
    let run = cli.apply(&cli.write("orphan.json", &config(None, true)));
    assert_ne!(run.code, Some(0), "{}", run.story());
    assert!(
        run.stderr.contains("forwards[0].device"),
        "the refusal does not name the field\n{}",
        run.story()
    );
    assert_eq!(dns.pid(), pid, "a refused config restarted dnsmasq");
    assert_eq!(probe_forward(&t), Ok("moved".to_owned()));
    drop((udhcpc, serve, dns, upstream));
}

/// `portcullis dhcp-config` renders the saved config; a broken one falls back to what safe
/// mode salvages (the dhcp section) with a warning; with nothing usable it fails.
#[test]
fn dhcp_config_renders_the_saved_config_or_its_salvage() {
    let dir = std::env::temp_dir().join(format!("pcxe2e-dhcpcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    struct Gone(PathBuf);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _gone = Gone(dir.clone());
    let saved = dir.join("config.json");
    let run = |saved: &Path| {
        let out = Command::new(portcullis_e2e::cli::binary())
            .args([
                "--config",
                &saved.to_string_lossy(),
                "--run-dir",
                "/run/x",
                "dhcp-config",
            ])
            .output()
            .expect("run portcullis");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let pool = "dhcp-range=192.168.1.100,192.168.1.149,600";

    std::fs::write(&saved, config(Some(FIRST), true)).expect("write");
    let (code, out, err) = run(&saved);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with("# rendered by portcullis dhcp-config"),
        "{out}"
    );
    for line in [
        pool,
        "dhcp-host=02:00:5e:10:00:0a,192.168.1.60,box",
        "interface=lan0",
        "pid-file=/run/x/dnsmasq.pid",
    ] {
        assert!(out.lines().any(|l| l == line), "{line} missing:\n{out}");
    }
    assert_eq!(err, "");

    // A forward that does not parse: the daemon would start in safe mode; DHCP goes on.
    let broken = config(Some(FIRST), true).replace(
        &format!("\"external_port\": {PORT}"),
        "\"external_port\": \"x\"",
    );
    std::fs::write(&saved, broken).expect("write");
    let (code, out, err) = run(&saved);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.lines().any(|l| l == pool), "{out}");
    assert!(out.lines().any(|l| l == "interface=lan0"), "{out}");
    assert!(
        err.contains("unusable") && err.contains("salvaged"),
        "{err}"
    );

    // Nothing to salvage: no LAN interface.
    let (code, out, err) = run(&dir.join("missing.json"));
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out, "");
    assert!(err.contains("no LAN interface"), "{err}");
}
