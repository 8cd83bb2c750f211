//! Kernel tests of the tunnel's rtnetlink side (`portcullis::vpn::{rtnl, tunnel}`). They
//! need root and `ip` (the oracle: the tests run it, the firmware never does); each test
//! runs in a fresh network namespace deleted by a guard even when the test panics. The
//! host kernel has no WireGuard (and no `dummy` module), so an `ifb` link stands in for
//! the tunnel's link; the WireGuard generic netlink part is proven in the QEMU guests.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nix::sched::{setns, CloneFlags};

use portcullis::config::Ipv4Net;
use portcullis::vpn::key::Key;
use portcullis::vpn::rtnl::Rtnl;
use portcullis::vpn::tunnel::{
    self, install_without_device, remove, remove_kind, rules, rules_installed, TunnelError,
    TunnelPlan, WgDevice, WgPeer,
};

#[path = "fixtures/netns.rs"]
#[allow(dead_code)] // not every helper is used by every test crate
mod netns;
use netns::Netns;

const IF: &str = "wgt0";
/// The stand-in link kind (a kind the host kernel has that needs no arguments).
const KIND: &str = "ifb";
const TABLE: u32 = 51_820;
const FWMARK: u32 = 51_820;

fn net(s: &str) -> Ipv4Net {
    s.parse().expect("prefix")
}

fn sample_plan(endpoint: Ipv4Addr, addresses: &[&str], routes: &[&str]) -> TunnelPlan {
    let routes: Vec<Ipv4Net> = routes.iter().map(|s| net(s)).collect();
    TunnelPlan {
        ifname: IF.into(),
        mtu: 1380,
        addresses: addresses.iter().map(|s| net(s)).collect(),
        device: WgDevice {
            private_key: Key([1; 32]),
            listen_port: None,
            fwmark: FWMARK,
            peer: WgPeer {
                public_key: Key([2; 32]),
                preshared_key: None,
                endpoint: SocketAddrV4::new(endpoint, 51820),
                allowed_ips: routes.clone(),
                keepalive: Some(25),
            },
        },
        table: TABLE,
        routes,
        rules: rules(FWMARK, TABLE, endpoint),
    }
}

const EP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

/// Runs `f` on a thread inside `ns` (setns(2) affects only the calling thread; every
/// socket `f` opens is made in the namespace).
fn within<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        setns(
            File::open(&path).expect("open netns"),
            CloneFlags::CLONE_NEWNET,
        )
        .expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

fn ip(ns: &Netns, args: &[&str]) -> String {
    let out = ns.run("ip", args, None);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// The IPv4 addresses of the tunnel link per `ip -o -4 address show`, sorted.
fn addresses(ns: &Netns) -> Vec<String> {
    let out = ip(ns, &["-o", "-4", "address", "show", "dev", IF]);
    let mut v: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let mut t = l.split_whitespace();
            t.find(|w| *w == "inet")?;
            t.next().map(str::to_string)
        })
        .collect();
    v.sort();
    v
}

/// `ip route show table 51820`; "" when the kernel has no such table (never used).
fn routes(ns: &Netns) -> String {
    let out = ns.run(
        "ip",
        &["-4", "route", "show", "table", &TABLE.to_string()],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && err.contains("FIB table does not exist") {
        return String::new();
    }
    assert!(out.status.success(), "ip route show: {err}");
    String::from_utf8(out.stdout).expect("utf8")
}

fn rule_lines(ns: &Netns) -> String {
    ip(ns, &["-4", "rule", "show"])
}

/// `ip rule show` with our four rules for endpoint `ep` and the kernel's defaults.
fn expected_rules(ep: &str) -> String {
    format!(
        "0:\tfrom all lookup local\n\
         10000:\tfrom all fwmark 0xca6c lookup main\n\
         10001:\tfrom all to {ep} lookup 51820\n\
         10002:\tfrom all fwmark 0x10000/0x10000 lookup main suppress_prefixlength 0\n\
         10003:\tfrom all fwmark 0x10000/0x10000 lookup 51820\n\
         32766:\tfrom all lookup main\n\
         32767:\tfrom all lookup default\n"
    )
}

fn install_in(ns: &Netns, p: &TunnelPlan) {
    let p = p.clone();
    within(ns, move || install_without_device(&p, KIND)).expect("install");
}

#[test]
fn install_creates_the_link_addresses_routes_and_rules() {
    let ns = Netns::new();
    let p = sample_plan(EP, &["10.2.0.2/32"], &["0.0.0.0/0"]);
    install_in(&ns, &p);
    let link = ip(&ns, &["-o", "link", "show", "dev", IF]);
    assert!(link.contains("mtu 1380"), "{link}");
    assert!(link.contains("<BROADCAST,NOARP,UP,LOWER_UP>"), "{link}");
    assert_eq!(addresses(&ns), ["10.2.0.2/32"]);
    assert_eq!(routes(&ns), format!("default dev {IF} scope link \n"));
    assert_eq!(rule_lines(&ns), expected_rules("198.51.100.7"));
    let p2 = p.clone();
    assert!(within(&ns, move || rules_installed(&p2)).expect("rules_installed"));

    let st = within(&ns, || tunnel::read(IF))
        .expect("read")
        .expect("link exists");
    assert!(st.link_up);
    assert_eq!(st.mtu, 1380);
    assert_eq!(st.addresses, vec![net("10.2.0.2/32")]);
    assert_eq!(
        (st.public_key, st.listen_port, st.peers.len()),
        (None, 0, 0)
    );
    assert!(within(&ns, || tunnel::read("nosuch0"))
        .expect("read")
        .is_none());
}

#[test]
fn addresses_converge_add_replace_remove() {
    let ns = Netns::new();
    install_in(&ns, &sample_plan(EP, &["10.2.0.2/32", "10.9.0.1/24"], &[]));
    assert_eq!(addresses(&ns), ["10.2.0.2/32", "10.9.0.1/24"]);
    // Same address, other prefix length; a new one; one dropped.
    install_in(&ns, &sample_plan(EP, &["10.9.0.1/16", "10.3.0.3/32"], &[]));
    assert_eq!(addresses(&ns), ["10.3.0.3/32", "10.9.0.1/16"]);
    // A primary and its secondary in the same subnet, then only the secondary kept.
    install_in(&ns, &sample_plan(EP, &["10.4.0.1/24", "10.4.0.2/24"], &[]));
    assert_eq!(addresses(&ns), ["10.4.0.1/24", "10.4.0.2/24"]);
    install_in(&ns, &sample_plan(EP, &["10.4.0.2/24"], &[]));
    assert_eq!(addresses(&ns), ["10.4.0.2/24"]);
    install_in(&ns, &sample_plan(EP, &[], &[]));
    assert_eq!(addresses(&ns), Vec::<String>::new());
}

#[test]
fn mtu_and_up_converge() {
    let ns = Netns::new();
    let mut p = sample_plan(EP, &[], &[]);
    install_in(&ns, &p);
    ip(&ns, &["link", "set", IF, "down", "mtu", "1500"]);
    p.mtu = 1280;
    install_in(&ns, &p);
    let link = ip(&ns, &["-o", "link", "show", "dev", IF]);
    assert!(link.contains("mtu 1280"), "{link}");
    assert!(link.contains(",UP,"), "{link}");
}

#[test]
fn routes_in_the_table_converge_and_others_are_untouched() {
    let ns = Netns::new();
    install_in(&ns, &sample_plan(EP, &["10.2.0.2/32"], &["0.0.0.0/0"]));
    // Not ours: a route in the tunnel's table (goes) and one in main (stays).
    ip(&ns, &["link", "add", "other0", "type", KIND]);
    ip(&ns, &["link", "set", "other0", "up"]);
    ip(
        &ns,
        &[
            "route",
            "add",
            "172.16.0.0/12",
            "dev",
            "other0",
            "table",
            "51820",
        ],
    );
    ip(&ns, &["route", "add", "172.16.0.0/12", "dev", "other0"]);
    // Host bits are cleared by the plan (`10.1.2.3/8` is 10.0.0.0/8).
    let p = tunnel::plan(&vpn_config(&["10.1.2.3/8", "192.168.5.0/24"]), &secrets()).expect("plan");
    install_in(&ns, &p);
    assert_eq!(
        routes(&ns),
        format!("10.0.0.0/8 dev {IF} scope link \n192.168.5.0/24 dev {IF} scope link \n")
    );
    let main = ip(&ns, &["-4", "route", "show"]);
    assert!(main.contains("172.16.0.0/12 dev other0"), "{main}");
    let p = sample_plan(EP, &[], &[]);
    install_in(&ns, &p);
    assert_eq!(routes(&ns), "");
}

#[test]
fn rules_converge_and_foreign_ones_in_our_range_go() {
    let ns = Netns::new();
    install_in(&ns, &sample_plan(EP, &[], &[]));
    ip(
        &ns,
        &[
            "rule", "add", "pref", "10001", "from", "1.2.3.4", "lookup", "100",
        ],
    );
    ip(
        &ns,
        &[
            "rule", "add", "pref", "9999", "from", "1.2.3.4", "lookup", "100",
        ],
    );
    // One of ours with a selector more (`iif lo`) is not ours: it goes too.
    ip(
        &ns,
        &[
            "rule",
            "add",
            "pref",
            "10002",
            "fwmark",
            "0x10000/0x10000",
            "iif",
            "lo",
            "lookup",
            "51820",
        ],
    );
    let p = sample_plan(Ipv4Addr::new(203, 0, 113, 9), &[], &[]);
    install_in(&ns, &p);
    let want =
        expected_rules("203.0.113.9").replace("10000:", "9999:\tfrom 1.2.3.4 lookup 100\n10000:");
    assert_eq!(rule_lines(&ns), want);
    let got = within(&ns, || Rtnl::open()?.rules(tunnel::RULE_PRIORITIES)).expect("rules");
    let want: Vec<_> = p.rules.iter().map(|r| (*r, false)).collect();
    assert_eq!(got, want);
}

#[test]
fn remove_cleans_everything_and_absent_is_fine() {
    let ns = Netns::new();
    let p = sample_plan(EP, &["10.2.0.2/32"], &["0.0.0.0/0", "10.0.0.0/8"]);
    install_in(&ns, &p);
    ip(
        &ns,
        &[
            "route",
            "add",
            "unreachable",
            "172.16.0.0/12",
            "table",
            "51820",
        ],
    );
    // `remove` deletes WireGuard links only: the stand-in (another kind) stays...
    within(&ns, || remove(IF, TABLE)).expect("remove");
    let links = ip(&ns, &["-o", "link", "show"]);
    assert!(links.contains(IF), "{links}");
    // ... and goes when the kind is the stand-in's.
    within(&ns, || remove_kind(IF, TABLE, KIND)).expect("remove");
    let links = ip(&ns, &["-o", "link", "show"]);
    assert!(!links.contains(IF), "{links}");
    assert_eq!(routes(&ns), "");
    assert_eq!(
        rule_lines(&ns),
        "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
    );
    let p2 = p.clone();
    assert!(!within(&ns, move || rules_installed(&p2)).expect("rules_installed"));
    within(&ns, || remove(IF, TABLE)).expect("remove again");
}

/// `ip -o monitor` in the namespace; lines arrive on a channel.
struct Monitor {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Monitor {
    fn start(ns: &Netns) -> Monitor {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "ip", "-o", "monitor"])
            .args(["link", "address", "route", "rule"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ip monitor");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Monitor { child, lines }
    }

    /// Waits until the monitor listens: adds links `sync0`, `sync1` … until it reports one
    /// (the first may come before it subscribed).
    fn sync(&self, ns: &Netns) {
        for i in 0..100 {
            let _ = ip(ns, &["link", "add", &format!("sync{i}"), "type", KIND]);
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                assert!(l.contains("sync"), "unexpected event {l}");
                return;
            }
        }
        panic!("ip monitor never reported a sentinel link");
    }

    /// Lines until one containing `marker` (which the test caused), that line excluded.
    fn until(&self, marker: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(l) if l.contains(marker) => return seen,
                Ok(l) => seen.push(l),
                Err(e) => panic!("ip monitor: no {marker} ({e}); saw {seen:?}"),
            }
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn install_twice_changes_nothing() {
    let ns = Netns::new();
    let p = sample_plan(
        EP,
        &["10.2.0.2/32", "10.9.0.1/24"],
        &["0.0.0.0/0", "10.0.0.0/8"],
    );
    install_in(&ns, &p);
    let mon = Monitor::start(&ns);
    // Sentinels bracket the second install: the monitor is listening once it reports the
    // first, and has reported everything before the second.
    mon.sync(&ns);
    install_in(&ns, &p);
    let _ = ip(&ns, &["link", "add", "mark2", "type", KIND]);
    let between = mon.until("mark2");
    assert!(
        between.iter().all(|l| l.contains("sync")),
        "the second install changed: {between:?}"
    );
    assert_eq!(rule_lines(&ns), expected_rules("198.51.100.7"));
}

#[test]
fn install_on_a_kernel_without_wireguard_fails_clearly_and_leaves_nothing() {
    if std::path::Path::new("/sys/module/wireguard").exists() {
        eprintln!("this kernel has WireGuard: the no-WireGuard case cannot be shown here");
        return;
    }
    let ns = Netns::new();
    let p = sample_plan(EP, &["10.2.0.2/32"], &["0.0.0.0/0"]);
    let err = within(&ns, move || tunnel::install(&p)).expect_err("no WireGuard here");
    assert!(matches!(err, TunnelError::NoWireGuard), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the kernel has no WireGuard (generic netlink family `wireguard` not found)"
    );
    let links = ip(&ns, &["-o", "link", "show"]);
    assert!(!links.contains(IF), "{links}");
    assert_eq!(routes(&ns), "");
    assert_eq!(
        rule_lines(&ns),
        "0:\tfrom all lookup local\n32766:\tfrom all lookup main\n32767:\tfrom all lookup default\n"
    );
}

fn vpn_config(allowed: &[&str]) -> portcullis::config::Vpn {
    let json = format!(
        r#"{{"enabled": true, "interface": "{IF}", "addresses": ["10.2.0.2/32"], "mtu": 1380,
            "peer": {{"public_key": "{}", "endpoint": "198.51.100.7:51820",
                     "allowed_ips": {:?}}}}}"#,
        Key([2; 32]).to_base64(),
        allowed
    );
    serde_json::from_str(&json).expect("vpn json")
}

fn secrets() -> portcullis::vpn::secrets::Secrets {
    portcullis::vpn::secrets::Secrets {
        private_key: Key([1; 32]),
        preshared_key: None,
    }
}

#[test]
fn a_link_of_another_kind_is_never_taken_over() {
    let ns = Netns::new();
    ip(&ns, &["link", "add", IF, "type", "bridge"]);
    let p = sample_plan(EP, &["10.2.0.2/32"], &["0.0.0.0/0"]);
    let err = within(&ns, move || install_without_device(&p, KIND)).expect_err("a bridge");
    assert!(
        matches!(&err, TunnelError::LinkKind { kind, .. } if kind == "bridge"),
        "{err:?}"
    );
    assert_eq!(addresses(&ns), Vec::<String>::new());
    assert_eq!(routes(&ns), "");
}
