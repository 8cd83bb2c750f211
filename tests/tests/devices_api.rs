//! LAN devices through the web API, against real DHCP (issue 10): `portcullis serve
//! --run-dir RUN` in the router namespace of a [`Topology`] with a `dhcp` section, a real
//! dnsmasq writing RUN/dnsmasq.leases, and two LAN client namespaces on the LAN's bridge
//! that get their addresses with `busybox udhcpc`, each sending a host name.
//!
//! dnsmasq runs as the image runs it (S40dnsmasq, [`portcullis_e2e::dnsmasq`]), and the
//! daemon restarts it when a reservation changes. `GET /api/v1/devices` lists both clients
//! with host name, MAC, address and online; a reservation PUT through `/api/v1/dhcp`
//! (If-Match; a stale one is refused) shows as `reserved` and `name`; a forward added with
//! `device` = the client's MAC passes TCP from the WAN host to the client, and after the
//! reservation moves (the client renews) the same forward reaches the new address; the
//! reservation cannot be removed while the forward uses it.
//!
//! Needs root, dnsmasq and busybox (`make deps`) and the `portcullis` binary. Everything it
//! starts lives in the topology's namespaces and dies with it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use portcullis_e2e::cli::binary;
use portcullis_e2e::clients;
use portcullis_e2e::dnsmasq::{Dnsmasq, START_WITHIN};
use portcullis_e2e::netns::{self, ip};
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::web::{self, raw_request, Api, PASSWORD};
use portcullis_e2e::{poll, Config, Topology, ROUTER_LAN, ROUTER_WAN, WAN_HOST};
use serde_json::{json, Value};

const MAC_A: &str = "02:00:5e:10:00:0a";
const MAC_B: &str = "02:00:5e:10:00:0b";

/// A process the test started; killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Panics unless `program` is installed.
fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()));
    assert!(found, "{program} is needed (make deps)");
}

/// Starts `portcullis --run-dir RUN serve` on the saved config and waits until its
/// control socket answers.
fn serve(t: &Topology, run: &Path, dns: &Dnsmasq) -> Proc {
    let cli = t.cli();
    let bin = binary();
    let (saved, run) = (cli.saved.display().to_string(), run.display().to_string());
    let mut cmd = netns::command(
        &t.router,
        &bin.to_string_lossy(),
        &["--config", &saved, "--run-dir", &run, "serve"],
    );
    cmd.stdout(std::fs::File::create(t.path("serve.out")).expect("serve.out"));
    cmd.stderr(std::fs::File::create(t.path("serve.err")).expect("serve.err"));
    let p = Proc(cmd.spawn().expect("spawn portcullis serve"));
    let up = poll::until_true(Duration::from_secs(10), || {
        t.path("control.sock").exists() && cli.status(false).code == Some(0)
    });
    assert!(up, "serve did not start\n{}", logs(t, dns));
    p
}

/// A saved config with a DHCP pool (leases of `lease_secs`), dnsmasq as the image runs it
/// (S40dnsmasq renders the saved config; its lease file is in the RUN_DIR the daemon reads
/// and restarts it through), the daemon, the first password set, and a second session.
fn start(t: &Topology, lease_secs: u32) -> (Dnsmasq, Proc, Api, Session) {
    let dhcp =
        json!({ "start": "192.168.1.100", "end": "192.168.1.149", "lease_secs": lease_secs });
    let cfg = Config::new().to_json().replacen(
        "  \"forwards\"",
        &format!("  \"dhcp\": {dhcp},\n  \"forwards\""),
        1,
    );
    let cli = t.cli();
    std::fs::write(&cli.saved, cfg).expect("write the saved config");
    let dns = Dnsmasq::start(&t.router, &cli.saved, &t.dir, &[]);
    let daemon = serve(t, &dns.run_dir, &dns);
    assert!(web::wait_listening(
        &t.lan_client,
        SocketAddr::from((ROUTER_LAN, 80))
    ));
    let api = Api::setup(&t.lan_client, sa(ROUTER_LAN, 80));
    let s = Session::login(&t.lan_client);
    (dns, daemon, api, s)
}

fn logs(t: &Topology, dns: &Dnsmasq) -> String {
    let read = |n: &str| std::fs::read_to_string(t.path(n)).unwrap_or_default();
    format!(
        "--- serve ---\n{}{}{}",
        read("serve.out"),
        read("serve.err"),
        dns.log()
    )
}

/// A LAN client namespace with MAC `mac`, cabled into the LAN bridge.
fn lan_client(t: &mut Topology, suffix: &str, mac: &str) -> String {
    let ns = t.add_namespace(suffix);
    let port = format!("d{suffix}");
    ip(&[
        "-n", &t.lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ]);
    ip(&["-n", &t.lan, "link", "set", &port, "master", "br0", "up"]);
    ip(&["-n", &ns, "link", "set", "eth0", "address", mac, "up"]);
    ns
}

/// The udhcpc script: sets the address and default route it is given (POSIX sh).
fn script(t: &Topology) -> PathBuf {
    let p = t.path("udhcpc.sh");
    if !p.exists() {
        std::fs::write(
            &p,
            "#!/bin/sh\ncase \"$1\" in\n  deconfig) ip addr flush dev \"$interface\" ;;\n  \
             bound|renew) ip addr flush dev \"$interface\"\n    \
             ip addr add \"$ip/${mask:-24}\" dev \"$interface\"\n    \
             ip route replace default via \"$router\" ;;\nesac\n",
        )
        .expect("write udhcpc.sh");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    p
}

/// Gets a lease in `ns` with `busybox udhcpc` sending host name `name`; then talks to the
/// router once so its neighbour table holds the client. Returns the address.
fn lease(t: &Topology, dns: &Dnsmasq, ns: &str, name: &str) -> Ipv4Addr {
    let s = script(t).display().to_string();
    let host = format!("hostname:{name}");
    let out = netns::output(netns::command(
        ns,
        "busybox",
        &[
            "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-x", &host, "-s", &s,
        ],
    ));
    assert!(
        out.status.success(),
        "udhcpc in {ns}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        logs(t, dns)
    );
    let addr = ip(&["-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"])
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address in {ns} after udhcpc"));
    let reached = web::connects(ns, SocketAddr::from((ROUTER_LAN, 80)));
    assert!(reached, "{ns} cannot reach the router");
    addr
}

/// A second session of the web API (the first is [`Api::setup`]'s), to send If-Match.
struct Session {
    ns: String,
    cookie: String,
    csrf: String,
}

impl Session {
    fn login(ns: &str) -> Session {
        let body = json!({ "password": PASSWORD }).to_string();
        let to = SocketAddr::from((ROUTER_LAN, 80));
        // The password hash is deliberately slow; on a loaded machine one try of a debug
        // build can outlast the 10 s read timeout: try again (a busy hasher answers 503).
        let (_, head, body) = poll::until(Duration::from_secs(60), || {
            netns::run_in(ns, || {
                raw_request(to, "POST", "/api/v1/login", "", "", &body, &[])
            })
            .ok()
            .filter(|r| r.0 == 200)
        })
        .expect("login within 60 s");
        let cookie = head
            .split("pc_session=")
            .nth(1)
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_owned();
        let csrf = json_of(&body)["csrf"].as_str().expect("csrf").to_owned();
        Session {
            ns: ns.to_owned(),
            cookie,
            csrf,
        }
    }

    /// (status, JSON body, ETag header).
    fn call(
        &self,
        method: &str,
        path: &str,
        body: &str,
        if_match: Option<&str>,
    ) -> (u16, Value, String) {
        let to = SocketAddr::from((ROUTER_LAN, 80));
        let extra: Vec<(&str, &str)> = if_match.map(|t| ("If-Match", t)).into_iter().collect();
        let (status, head, body) = netns::run_in(&self.ns, || {
            raw_request(to, method, path, &self.cookie, &self.csrf, body, &extra)
        })
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let etag = head
            .lines()
            .find_map(|l| l.strip_prefix("ETag: "))
            .unwrap_or_default()
            .to_owned();
        (status, json_of(&body), etag)
    }

    fn device(&self, mac: &str) -> Option<Value> {
        let (status, v, _) = self.call("GET", "/api/v1/devices", "", None);
        assert_eq!(status, 200, "{v}");
        v["devices"]
            .as_array()?
            .iter()
            .find(|d| d["mac"] == mac)
            .cloned()
    }

    /// Puts `dhcp` with the section's current ETag; returns the status and body.
    fn put_dhcp(&self, dhcp: &Value) -> (u16, Value) {
        let (_, _, tag) = self.call("GET", "/api/v1/dhcp", "", None);
        let (status, v, _) = self.call("PUT", "/api/v1/dhcp", &dhcp.to_string(), Some(&tag));
        (status, v)
    }
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or(Value::Null)
}

/// Whether a TCP connection from the WAN host to the router's port 8080 reaches the
/// server labelled `label` (polled: the ruleset changes with the reservation).
fn wan_reaches(t: &Topology, label: &str) -> bool {
    poll::until_true(Duration::from_secs(5), || {
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_ok_and(|p| p.label == label)
    })
}

#[test]
fn devices_from_real_leases_and_a_forward_that_follows_its_device() {
    require("busybox");
    let mut t = Topology::new();
    let (dns, _daemon, _api, s) = start(&t, 120);

    let a = lan_client(&mut t, "ca", MAC_A);
    let b = lan_client(&mut t, "cb", MAC_B);
    let addr_a = lease(&t, &dns, &a, "alpha");
    let addr_b = lease(&t, &dns, &b, "bravo");
    assert_ne!(addr_a, addr_b);

    // Both devices, from the lease file and the neighbour table.
    for (mac, name, addr) in [(MAC_A, "alpha", addr_a), (MAC_B, "bravo", addr_b)] {
        let d = poll::until(Duration::from_secs(5), || {
            s.device(mac)
                .filter(|d| d["online"] == true && d["hostname"] == name)
        })
        .unwrap_or_else(|| panic!("{mac} not listed: {:?}\n{}", s.device(mac), logs(&t, &dns)));
        assert_eq!(d["address"], addr.to_string(), "{d}");
        assert!(d["lease_expires"].as_u64().is_some(), "{d}");
        assert!(d["last_seen"].as_u64().is_some(), "{d}");
        assert_eq!((&d["reserved"], &d["name"]), (&Value::Null, &Value::Null));
    }

    // The section's guards: If-Match required, a stale one refused, a bad field named.
    let (status, got, tag) = s.call("GET", "/api/v1/dhcp", "", None);
    assert_eq!(status, 200);
    assert_eq!(got["dhcp"]["start"], "192.168.1.100");
    assert_eq!(got["etag"], tag.as_str());
    let mut reserved = got["dhcp"].clone();
    reserved["reservations"] =
        json!([{ "name": "alpha-srv", "mac": MAC_A, "address": "192.168.1.30" }]);
    let body = reserved.to_string();
    assert_eq!(s.call("PUT", "/api/v1/dhcp", &body, None).0, 428);
    let (status, v, _) = s.call("PUT", "/api/v1/dhcp", &body, Some("\"0000000000000000\""));
    assert_eq!(status, 409, "stale If-Match: {v}");
    let mut bad = reserved.clone();
    bad["reservations"][0]["mac"] = json!("zz");
    let (status, v) = s.put_dhcp(&bad);
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["issues"][0]["field"], "dhcp.reservations[0].mac");

    // The reservation shows on the device at once, and the daemon restarts dnsmasq with it.
    let old = dns.pid().expect("dnsmasq runs");
    let (status, v) = s.put_dhcp(&reserved);
    assert_eq!(status, 200, "{v}");
    let d = s.device(MAC_A).expect("still listed");
    assert_eq!(
        (&d["name"], &d["reserved"]),
        (&json!("alpha-srv"), &json!("192.168.1.30"))
    );

    // A forward to the device; dnsmasq learns the reservation and the client renews.
    let fwd = json!({ "name": "web", "protocol": "tcp", "external_port": 8080,
        "internal_port": 80, "device": MAC_A, "allow_from": [] });
    let (status, v, _) = s.call("POST", "/api/v1/forwards", &fwd.to_string(), None);
    assert_eq!(status, 200, "{v}");
    let (_, v, _) = s.call("GET", "/api/v1/forwards/web", "", None);
    assert_eq!(v["device"], MAC_A, "{v}");
    let old = dns
        .restarted(old, START_WITHIN)
        .unwrap_or_else(|| panic!("dnsmasq was not restarted\n{}", logs(&t, &dns)));
    assert_eq!(lease(&t, &dns, &a, "alpha").to_string(), "192.168.1.30");
    let srv = Server::tcp(&a, sa(Ipv4Addr::new(192, 168, 1, 30), 80), "alpha-30");
    assert!(wan_reaches(&t, "alpha-30"), "{}", logs(&t, &dns));
    drop(srv);

    // The reservation moves: the same forward follows it.
    reserved["reservations"][0]["address"] = json!("192.168.1.31");
    let (status, v) = s.put_dhcp(&reserved);
    assert_eq!(status, 200, "{v}");
    dns.restarted(old, START_WITHIN)
        .unwrap_or_else(|| panic!("dnsmasq was not restarted\n{}", logs(&t, &dns)));
    assert_eq!(lease(&t, &dns, &a, "alpha").to_string(), "192.168.1.31");
    let _srv = Server::tcp(&a, sa(Ipv4Addr::new(192, 168, 1, 31), 80), "alpha-31");
    assert!(wan_reaches(&t, "alpha-31"), "{}", logs(&t, &dns));
    let d = s.device(MAC_A).expect("listed");
    assert_eq!(
        (&d["address"], &d["reserved"]),
        (&json!("192.168.1.31"), &json!("192.168.1.31"))
    );
    // A reservation a forward uses cannot go: the refusal names the forward.
    let mut none = reserved.clone();
    none["reservations"] = json!([]);
    let (status, v) = s.put_dhcp(&none);
    assert_eq!(status, 422, "{v}");
    let fields: Vec<&str> = v["issues"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|i| i["severity"] == "error")
        .filter_map(|i| i["field"].as_str())
        .collect();
    assert_eq!(fields, ["forwards[0].device"], "{v}");
    // The other device is untouched.
    assert_eq!(
        s.device(MAC_B).expect("listed")["address"],
        addr_b.to_string()
    );
}

/// A reservation of an address another device holds now (here B's unexpired lease, as
/// the forward form's "reserve this address" offers for a typed address) re-points a
/// device forward at B at once: dnsmasq leaves B its address until B renews (half the
/// lease time, 6 h by default), so the WAN reaches the wrong machine meanwhile. Such a
/// reservation must be refused (naming the address) while the lease lasts.
#[test]
fn a_reservation_of_an_address_another_device_holds_is_refused() {
    require("busybox");
    let mut t = Topology::new();
    let (dns, _daemon, _api, s) = start(&t, 3600);
    let b = lan_client(&mut t, "cb", MAC_B);
    let addr_b = lease(&t, &dns, &b, "bravo");

    let (_, got, _) = s.call("GET", "/api/v1/dhcp", "", None);
    let mut reserved = got["dhcp"].clone();
    reserved["reservations"] =
        json!([{ "name": "alpha", "mac": MAC_A, "address": addr_b.to_string() }]);
    let (status, v) = s.put_dhcp(&reserved);
    let fwd = json!({ "name": "web", "protocol": "tcp", "external_port": 8080,
        "internal_port": 80, "device": MAC_A, "allow_from": [] });
    let wrong =
        status == 200 && s.call("POST", "/api/v1/forwards", &fwd.to_string(), None).0 == 200 && {
            let _srv = Server::tcp(&b, sa(addr_b, 80), "bravo");
            wan_reaches(&t, "bravo")
        };
    assert!(
        !wrong,
        "the forward to device {MAC_A} reaches B ({addr_b}) from the WAN"
    );
    assert_eq!(status, 422, "{addr_b} is leased to {MAC_B}: {v}");
    assert_eq!(
        v["issues"][0]["field"], "dhcp.reservations[0].address",
        "{v}"
    );
}
