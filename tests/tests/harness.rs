//! Self-tests of the harness, without Portcullis: the topology routes, servers answer
//! with their labels, clients bind their source address and tell a drop from a refusal,
//! and everything is removed afterwards, even when a test panics.
//!
//! Needs root.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use portcullis_e2e::clients::{self, tcp_flood};
use portcullis_e2e::netns;
use portcullis_e2e::nft;
use portcullis_e2e::scan;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::{
    ProbeError, Topology, LAN_CLIENT, LAN_HOST, LAN_HOST_2, ROUTER_LAN, ROUTER_WAN, WAN_HOST,
    WAN_HOST_2,
};

fn ns_exists(name: &str) -> bool {
    Path::new(&netns::netns_path(name)).exists()
}

#[test]
fn plain_routing_reaches_every_host_without_nat() {
    let t = Topology::new();
    let _lan = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _lan2 = Server::tcp(&t.lan, sa(LAN_HOST_2, 80), "lan2:80");
    let _udp = Server::udp(&t.lan, sa(LAN_HOST, 5353), "lan:udp5353");
    let _wan = Server::tcp(&t.wan, sa(WAN_HOST, 443), "wan:443");

    // WAN -> LAN by plain routing: the server sees the WAN address chosen by the client.
    let p = clients::tcp(&t.wan, WAN_HOST, sa(LAN_HOST, 80)).expect("wan -> lan:80");
    assert_eq!(p.label, "lan:80");
    assert_eq!(*p.peer.ip(), WAN_HOST);
    let p = clients::tcp(&t.wan, WAN_HOST_2, sa(LAN_HOST_2, 80)).expect("wan2 -> lan2:80");
    assert_eq!(p.label, "lan2:80");
    assert_eq!(
        *p.peer.ip(),
        WAN_HOST_2,
        "the client binds its source address"
    );
    let p = clients::udp(&t.wan, WAN_HOST_2, sa(LAN_HOST, 5353)).expect("udp wan2 -> lan");
    assert_eq!(p.label, "lan:udp5353");
    assert_eq!(*p.peer.ip(), WAN_HOST_2);

    // LAN -> WAN and LAN client -> LAN host (same bridge, no router involved).
    let p = clients::tcp(&t.lan, LAN_HOST, sa(WAN_HOST, 443)).expect("lan -> wan");
    assert_eq!((p.label.as_str(), *p.peer.ip()), ("wan:443", LAN_HOST));
    let p = clients::tcp(&t.lan_client, LAN_CLIENT, sa(LAN_HOST, 80)).expect("lanc -> lan");
    assert_eq!((p.label.as_str(), *p.peer.ip()), ("lan:80", LAN_CLIENT));

    // The router's addresses answer from both sides when it has a listener.
    let _r = Server::tcp(&t.router, sa([0, 0, 0, 0].into(), 80), "router:80");
    let p = clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 80)).expect("wan -> router");
    assert_eq!(p.label, "router:80");
    let p = clients::tcp(&t.lan_client, LAN_CLIENT, sa(ROUTER_LAN, 80)).expect("lanc -> router");
    assert_eq!(p.label, "router:80");

    let fwd = netns::run_in(&t.router, || {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap()
    });
    assert_eq!(fwd.trim(), "1");
    assert!(
        nft::list_table(&t.router).is_none(),
        "a new namespace has no portcullis table"
    );
}

#[test]
fn clients_tell_refused_from_dropped() {
    let t = Topology::new();
    // Nothing listens on 81: the LAN host answers with a RST.
    assert_eq!(
        clients::tcp(&t.wan, WAN_HOST, sa(LAN_HOST, 81)),
        Err(ProbeError::Refused)
    );
    // A router that drops forwarded traffic: the SYN vanishes.
    let rules = t.dir.join("drop.nft");
    std::fs::write(
        &rules,
        "table inet harness { chain forward_drop { type filter hook forward priority 0; policy drop; }\n}\n",
    )
    .unwrap();
    nft::load(&t.router, &rules).expect("load drop ruleset");
    let _lan = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let started = std::time::Instant::now();
    assert_eq!(
        clients::tcp(&t.wan, WAN_HOST, sa(LAN_HOST, 80)),
        Err(ProbeError::Timeout)
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "timeouts are short"
    );
    assert_eq!(
        clients::udp(&t.wan, WAN_HOST, sa(LAN_HOST, 80)),
        Err(ProbeError::Timeout)
    );
}

#[test]
fn floods_run_concurrently_inside_the_namespace() {
    let t = Topology::new();
    let server = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let started = std::time::Instant::now();
    let results = tcp_flood(&t.wan, WAN_HOST_2, sa(LAN_HOST, 80), 30);
    assert_eq!(results.len(), 30);
    for r in &results {
        let p = r
            .as_ref()
            .expect("every flood connection succeeds without a ruleset");
        assert_eq!((p.label.as_str(), *p.peer.ip()), ("lan:80", WAN_HOST_2));
    }
    assert_eq!(server.served(), 30);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn nmap_finds_exactly_the_listening_ports() {
    let t = Topology::new();
    // Like a firewalled host: most ports silently dropped (a host that answers every port
    // with a RST makes a fast scan much slower), 443 accepted but closed (RST).
    let rules = t.dir.join("lan-filter.nft");
    std::fs::write(
        &rules,
        "table inet harness {\n\tchain input {\n\t\ttype filter hook input priority 0; policy drop;\n\t\ttcp dport { 22, 443, 8080, 65535 } accept\n\t}\n}\n",
    )
    .unwrap();
    nft::load(&t.lan, &rules).expect("load lan filter");
    let _a = Server::tcp(&t.lan, sa(LAN_HOST, 22), "lan:22");
    let _b = Server::tcp(&t.lan, sa(LAN_HOST, 8080), "lan:8080");
    let _c = Server::tcp(&t.lan, sa(LAN_HOST, 65535), "lan:65535");
    // Recheck nothing: the fast scan alone must find them on an idle path.
    let open = scan::open_tcp_ports(&t.wan, LAN_HOST, &[]);
    assert_eq!(open, BTreeSet::from([22, 8080, 65535]));
    let open = scan::open_tcp_ports(&t.wan, LAN_HOST, &[443, 8080]);
    assert_eq!(open, BTreeSet::from([22, 8080, 65535]));
}

#[test]
fn nft_listings_normalize_counters_and_expiry() {
    let t = Topology::new();
    let rules = t.dir.join("t.nft");
    std::fs::write(
        &rules,
        "table inet portcullis {\n  map m { type inet_service : verdict; flags interval,timeout; elements = { 2222 timeout 1h : drop } }\n  chain c { type filter hook input priority 0; policy accept; counter; }\n}\n",
    )
    .unwrap();
    nft::load(&t.router, &rules).expect("load");
    nft::load(&t.lan, &rules).expect("load");
    // Make the router's counter differ.
    let _ = clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 9));
    let a = nft::list_table(&t.router).expect("table in router");
    let b = nft::list_table(&t.lan).expect("table in lan");
    assert!(a.contains("expires"), "listing shows expiry: {a}");
    assert_eq!(nft::normalize(&a), nft::normalize(&b));
}

#[test]
fn drop_removes_namespaces_processes_and_files_even_on_panic() {
    let names: std::sync::Mutex<Vec<String>> = Default::default();
    let dir: std::sync::Mutex<Option<std::path::PathBuf>> = Default::default();
    let child: std::sync::Mutex<Option<std::process::Child>> = Default::default();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let t = Topology::new();
        *names.lock().unwrap() = t.namespaces().iter().map(|s| s.to_string()).collect();
        *dir.lock().unwrap() = Some(t.dir.clone());
        // A process left running inside a namespace.
        *child.lock().unwrap() = Some(netns::command(&t.lan, "sleep", &["60"]).spawn().unwrap());
        assert!(netns::pids(&t.lan).len() == 1 || netns::pids(&t.lan).len() == 2);
        panic!("a test failing half-way");
    }));
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    assert_eq!(names.len(), 4);
    for n in &names {
        assert!(!ns_exists(n), "namespace {n} is gone");
    }
    assert!(
        !dir.into_inner().unwrap().unwrap().exists(),
        "scratch dir is gone"
    );
}

#[test]
fn namespaces_have_unique_names() {
    let a = Topology::new();
    let b = Topology::new();
    let all: BTreeSet<&str> = a.namespaces().into_iter().chain(b.namespaces()).collect();
    assert_eq!(all.len(), 8);
    for n in &all {
        assert!(ns_exists(n));
    }
}
