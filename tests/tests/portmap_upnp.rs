//! UPnP IGD under the owner's policy (issue 8), with Debian's `upnpc` on the LAN host and
//! the real daemon in network namespaces: off by default (nothing to discover, nothing
//! listening on either side), and in `allow_list` mode a mapping the rule allows is made,
//! carries WAN and hairpin traffic, is listed and deleted, while every request the rule
//! does not allow is refused and opens nothing.
//!
//! Needs root, `make deps` (miniupnpc, natpmpc, nmap) and the `portcullis` binary.

use std::time::Duration;

use portcullis_e2e::clients;
use portcullis_e2e::netns;
use portcullis_e2e::poll;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::upnp::{self, natpmpc, section, upnpc, upnpc_mapped, RULE_LAN_HOST};
use portcullis_e2e::{Config, Topology, LAN_CLIENT, LAN_HOST, ROUTER_LAN, ROUTER_WAN, WAN_HOST};

/// upnpc's own words when SSDP found nothing (miniupnpc 2.2.4).
const NO_IGD: &str = "No IGD UPnP Device found on the network";

#[test]
fn off_by_default_nothing_is_found_and_nothing_listens() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let _daemon = upnp::serve(&cli, &Config::new());

    let l = upnpc(&t.lan, &["-l"]);
    assert!(
        l.text().contains(NO_IGD) && !l.stdout.contains("desc:"),
        "upnpc found a gateway with UPnP off:\n{}",
        l.story()
    );
    let p = natpmpc(&t.lan, ROUTER_LAN, &[]);
    assert!(
        !p.stdout.contains("Public IP address"),
        "NAT-PMP answered with UPnP off:\n{}",
        p.story()
    );
    let ports = [upnp::SSDP_PORT, upnp::SOAP_PORT, upnp::PMP_PORT];
    let wan = upnp::open_ports(&t.wan, ROUTER_WAN, &ports);
    assert!(wan.is_empty(), "open on the WAN address: {wan:?}");
    let lan = upnp::open_ports(&t.lan, ROUTER_LAN, &ports);
    assert!(
        lan.is_empty(),
        "open on the LAN address with UPnP off: {lan:?}\n{}",
        upnp::listening(&t.router)
    );
}

/// The allow-list config most tests share: the LAN host may map 50000-50100.
fn allow_list() -> Config {
    Config::new().upnp(&section("allow_list", &[RULE_LAN_HOST]))
}

#[test]
fn an_allowed_mapping_carries_wan_and_hairpin_traffic_is_listed_and_deleted() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let daemon = upnp::serve(&cli, &allow_list());
    upnp::soap_ready(&t, &daemon);
    let _srv = Server::tcp(&t.lan, sa(LAN_HOST, 50000), "lan:50000");
    let wan = || clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50000));
    assert!(wan().is_err(), "port 50000 open before any mapping");

    // Discovery over SSDP, then AddPortMapping (-i: 203.0.113.2 is a reserved address).
    let add = upnpc(
        &t.lan,
        &[
            "-i",
            "-e",
            "test",
            "-a",
            "192.168.1.10",
            "50000",
            "50000",
            "TCP",
            "600",
        ],
    );
    assert!(upnpc_mapped(&add), "{}\n{}", add.story(), daemon.logs());
    let got = wan().unwrap_or_else(|e| panic!("WAN through the mapping: {e}\n{}", daemon.logs()));
    assert_eq!(got.label, "lan:50000");
    assert_eq!(*got.peer.ip(), WAN_HOST, "the LAN host sees the WAN client");
    // Hairpin: another LAN machine reaches the mapping through the WAN address.
    let hair = clients::tcp(&t.lan_client, LAN_CLIENT, sa(ROUTER_WAN, 50000));
    assert_eq!(
        hair.map(|p| p.label),
        Ok("lan:50000".to_owned()),
        "hairpin from the LAN client"
    );

    for flag in ["-l", "-L"] {
        let list = upnpc(&t.lan, &["-i", flag]);
        assert!(
            list.stdout.contains("50000->192.168.1.10:50000"),
            "upnpc {flag} does not list the mapping:\n{}",
            list.story()
        );
    }

    let del = upnpc(&t.lan, &["-i", "-d", "50000", "TCP"]);
    assert!(del.ok(), "{}", del.story());
    assert!(
        poll::until_true(Duration::from_secs(2), || wan().is_err()),
        "port 50000 still open after DeletePortMapping\n{}",
        daemon.logs()
    );
    let list = upnpc(&t.lan, &["-i", "-l"]);
    assert!(
        !list.stdout.contains("50000->"),
        "still listed:\n{}",
        list.story()
    );
}

#[test]
fn requests_the_rule_does_not_allow_are_refused_and_open_nothing() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let daemon = upnp::serve(&cli, &allow_list());
    upnp::soap_ready(&t, &daemon);
    let _c = Server::tcp(&t.lan_client, sa(LAN_CLIENT, 50000), "lanc:50000");
    let _h2 = Server::tcp(&t.lan, sa(portcullis_e2e::LAN_HOST_2, 50001), "lan2:50001");

    // Another LAN machine (no rule names it) asks for the very same mapping for itself.
    let other = upnpc(
        &t.lan_client,
        &[
            "-i",
            "-e",
            "x",
            "-a",
            "192.168.1.50",
            "50000",
            "50000",
            "TCP",
            "600",
        ],
    );
    assert!(!upnpc_mapped(&other), "{}", other.story());
    // The allowed host asks for a mapping to another host (secure mode).
    let third = upnpc(
        &t.lan,
        &[
            "-i",
            "-e",
            "x",
            "-a",
            "192.168.1.20",
            "50001",
            "50001",
            "TCP",
            "600",
        ],
    );
    assert!(!upnpc_mapped(&third), "{}", third.story());
    // The allowed host asks for a port outside its range.
    let ssh = upnpc(
        &t.lan,
        &[
            "-i",
            "-e",
            "x",
            "-a",
            "192.168.1.10",
            "22",
            "22",
            "TCP",
            "600",
        ],
    );
    assert!(!upnpc_mapped(&ssh), "{}", ssh.story());
    // Nor through NAT-PMP, for another machine's request.
    let pmp = natpmpc(
        &t.lan_client,
        ROUTER_LAN,
        &["-a", "50002", "50002", "tcp", "60"],
    );
    assert!(
        !pmp.stdout.contains("Mapped public port"),
        "{}",
        pmp.story()
    );

    for port in [50000, 50001, 50002, 22] {
        assert!(
            clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, port)).is_err(),
            "port {port} open after refused requests\n{}",
            daemon.logs()
        );
    }
    let list = upnpc(&t.lan, &["-i", "-l"]);
    assert!(
        !list.stdout.contains("->192.168.1."),
        "a refused request is listed:\n{}",
        list.story()
    );
    // The servers never listen on the WAN side.
    let scan = upnp::open_ports(&t.wan, ROUTER_WAN, &[1900, 5000, 5351]);
    assert!(scan.is_empty(), "open on the WAN address: {scan:?}");
    let soap_from_wan = netns::run_in(&t.wan, || {
        clients::connect_here(None, sa(ROUTER_WAN, upnp::SOAP_PORT), clients::TIMEOUT)
    });
    assert!(soap_from_wan.is_err(), "SOAP reachable from the WAN");
}
