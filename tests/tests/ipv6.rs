//! IPv6 on the router's WAN link (issue 7, part 6), with the real daemon: the router
//! answers neighbour solicitation on wan0, takes an address from a router advertisement
//! sent in the WAN namespace, and an IPv6 scan from the WAN finds nothing open.
//!
//! Needs root, nft, nmap, python3 (the advertisement is written with a raw ICMPv6
//! socket) and the `portcullis` binary (see netns.rs).

use std::time::Duration;

use portcullis_e2e::netns::{self, ip};
use portcullis_e2e::poll;
use portcullis_e2e::scan::parse_grepable;
use portcullis_e2e::servers::sa;
use portcullis_e2e::{clients, Config, Forward, Topology, LAN_HOST, ROUTER_WAN, WAN_HOST};

/// The prefix the WAN "ISP router" advertises.
const PREFIX: &str = "2001:db8:7::";
/// The WAN host's own address in it.
const WAN_HOST_6: &str = "2001:db8:7::10";

/// Sends one router advertisement for PREFIX/64 (on-link, autonomous) from the WAN
/// host's eth0 to all nodes, hop limit 255, as an upstream router would.
const SEND_RA: &str = r#"
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
idx = socket.if_nametoindex("eth0")
# type 134, code 0, checksum (kernel), cur hop limit 64, flags 0, router lifetime 1800 s,
# reachable 0, retrans 0; then a prefix information option (type 3, 4 x 8 bytes):
# /64, flags L|A, valid 86400 s, preferred 14400 s.
ra = struct.pack("!BBHBBHII", 134, 0, 0, 64, 0, 1800, 0, 0)
pi = struct.pack("!BBBBIII", 3, 4, 64, 0xC0, 86400, 14400, 0)
pi += socket.inet_pton(socket.AF_INET6, sys.argv[1])
s.sendto(ra + pi, ("ff02::1", 0, 0, idx))
"#;

/// Global IPv6 addresses of `dev` in `ns`.
fn global_addrs(ns: &str, dev: &str) -> Vec<String> {
    ip(&[
        "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "global",
    ])
    .lines()
    .filter_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "inet6")?;
        Some(w.get(i + 1)?.split('/').next()?.to_owned())
    })
    .collect()
}

/// Is `dev`'s link-local address in `ns` usable (duplicate address detection done)?
fn link_local_ready(ns: &str, dev: &str) -> bool {
    let out = ip(&[
        "-n", ns, "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
    ]);
    out.contains("inet6") && !out.contains("tentative")
}

#[test]
fn router_does_ipv6_neighbour_discovery_and_slaac_on_the_wan_and_exposes_nothing() {
    let t = Topology::new();
    let cli = t.cli();
    let cfg = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    std::fs::write(&cli.saved, cfg.to_json()).unwrap();
    let _web = portcullis_e2e::servers::Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let daemon = cli.serve_until(Duration::from_secs(5), || {
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_ok()
    });

    ip(&[
        "-n",
        &t.wan,
        "-6",
        "addr",
        "add",
        &format!("{WAN_HOST_6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    let ready = poll::until_true(Duration::from_secs(5), || {
        link_local_ready(&t.wan, "eth0") && link_local_ready(&t.router, "wan0")
    });
    assert!(ready, "link-local addresses never became usable");

    // Router advertisement -> the router configures an address in the prefix (SLAAC).
    // Sent again while polling: the first one may arrive before the router listens.
    let router_addr = poll::until(Duration::from_secs(8), || {
        netns::run_ok(netns::command(&t.wan, "python3", &["-c", SEND_RA, PREFIX]));
        global_addrs(&t.router, "wan0")
            .into_iter()
            .find(|a| a.starts_with("2001:db8:7:"))
    });
    let Some(router_addr) = router_addr else {
        panic!(
            "the router took no address from the advertised prefix {PREFIX}/64:\n{}\n{}",
            ip(&["-n", &t.router, "-6", "addr", "show", "dev", "wan0"]),
            daemon.logs()
        );
    };
    eprintln!("router's SLAAC address on wan0: {router_addr}");

    // Neighbour solicitation -> advertisement: the WAN host learns the router's
    // link-layer address for it (any packet to it makes the kernel solicit).
    ip(&["-n", &t.wan, "-6", "neigh", "flush", "dev", "eth0"]);
    let resolved = poll::until_true(Duration::from_secs(5), || {
        let _ = netns::output(netns::command(
            &t.wan,
            "python3",
            &[
                "-c",
                "import socket,sys; socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'x', (sys.argv[1], 9))",
                &router_addr,
            ],
        ));
        let n = ip(&[
            "-n",
            &t.wan,
            "-6",
            "neigh",
            "show",
            "dev",
            "eth0",
            "to",
            &router_addr,
        ]);
        n.contains("lladdr") && !n.contains("FAILED") && !n.contains("INCOMPLETE")
    });
    assert!(
        resolved,
        "the router did not answer neighbour solicitation for {router_addr}: {}",
        ip(&["-n", &t.wan, "-6", "neigh", "show", "dev", "eth0"])
    );

    // Nothing on the router is open to the WAN over IPv6.
    let out = netns::run_ok(netns::command(
        &t.wan,
        "nmap",
        &[
            "-6",
            "-sS",
            "-p",
            "1-65535",
            "-n",
            "-Pn",
            "--open",
            "--max-retries",
            "1",
            "--min-rate",
            "20000",
            "-oG",
            "-",
            &router_addr,
        ],
    ));
    let open = parse_grepable(&out);
    assert!(
        open.is_empty(),
        "TCP ports open to the WAN on {router_addr}: {open:?}"
    );
    // The forward stays an IPv4 one: its port is not reachable over IPv6 either.
    assert!(!open.contains(&8080));
}
