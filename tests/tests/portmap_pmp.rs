//! NAT-PMP (Debian's natpmpc) and PCP (our RFC 6887 client) against the real daemon, and
//! leases: a mapping is a kernel element with a timeout, so it ends on time even when the
//! daemon has been killed, and it is saved, so it survives a daemon restart.
//!
//! Needs root, `make deps` (miniupnpc, natpmpc, nmap) and the `portcullis` binary.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use portcullis_e2e::clients;
use portcullis_e2e::netns;
use portcullis_e2e::pcp_client::{self, result, MapRequest, MapResponse};
use portcullis_e2e::poll;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::upnp::{self, natpmpc, natpmpc_lifetime, section, upnpc, RULE_LAN_HOST};
use portcullis_e2e::{Config, Topology, LAN_HOST, ROUTER_LAN, ROUTER_WAN, WAN_HOST};

fn allow_list() -> Config {
    Config::new().upnp(&section("allow_list", &[RULE_LAN_HOST]))
}

#[test]
fn natpmp_maps_udp_and_lifetime_zero_deletes() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let daemon = upnp::serve(&cli, &allow_list());
    upnp::pmp_ready(&t, &daemon);
    let _srv = Server::udp(&t.lan, sa(LAN_HOST, 50001), "lan:50001");
    let wan = || clients::udp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50001));
    assert!(wan().is_err(), "open before the mapping");

    let map = natpmpc(&t.lan, ROUTER_LAN, &["-a", "50001", "50001", "udp", "60"]);
    let life = natpmpc_lifetime(&map);
    assert!(
        matches!(life, Some(1..=60)),
        "{}\n{}",
        map.story(),
        daemon.logs()
    );
    assert!(
        map.stdout.contains("Mapped public port 50001"),
        "{}",
        map.story()
    );
    let got = wan().unwrap_or_else(|e| panic!("UDP through the mapping: {e}\n{}", daemon.logs()));
    assert_eq!(got.label, "lan:50001");

    let del = natpmpc(&t.lan, ROUTER_LAN, &["-a", "50001", "50001", "udp", "0"]);
    assert!(del.ok(), "{}", del.story());
    assert!(
        poll::until_true(Duration::from_secs(2), || wan().is_err()),
        "UDP 50001 still open after lifetime 0\n{}",
        daemon.logs()
    );
}

/// One PCP exchange from the LAN host; panics if the router does not answer.
fn pcp(t: &Topology, req: MapRequest) -> MapResponse {
    let bytes = req.encode();
    let got = netns::run_in(&t.lan, || {
        let s = pcp_client::socket_here(LAN_HOST, Duration::from_secs(2));
        pcp_client::exchange(&s, sa(ROUTER_LAN, pcp_client::PORT), &bytes)
    })
    .unwrap_or_else(|| panic!("no PCP answer to {req:?}"));
    MapResponse::parse(&got).unwrap_or_else(|e| panic!("PCP answer {got:02x?}: {e}"))
}

#[test]
fn pcp_map_renews_with_its_nonce_only_and_lifetime_zero_deletes() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let daemon = upnp::serve(&cli, &allow_list());
    upnp::pmp_ready(&t, &daemon);
    let _srv = Server::tcp(&t.lan, sa(LAN_HOST, 50002), "lan:50002");
    let wan = || clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50002));
    let nonce = *b"e2e-nonce-01";

    let first = pcp(&t, MapRequest::new(LAN_HOST, nonce, 6, 50002, 600));
    assert_eq!(
        first.result,
        result::SUCCESS,
        "{first:?}\n{}",
        daemon.logs()
    );
    assert_eq!(first.nonce, nonce, "the answer echoes the nonce");
    assert_eq!((first.protocol, first.internal_port), (6, 50002));
    assert_eq!(first.external_port, 50002, "the suggested port was free");
    assert!(
        (1..=600).contains(&first.lifetime),
        "lifetime {}",
        first.lifetime
    );
    assert_eq!(first.external_addr, ROUTER_WAN);
    assert_eq!(wan().map(|p| p.label), Ok("lan:50002".to_owned()));

    // Renewal with the same nonce: same port, the new (shorter) lifetime.
    let renew = pcp(&t, MapRequest::new(LAN_HOST, nonce, 6, 50002, 300));
    assert_eq!(renew.result, result::SUCCESS, "{renew:?}");
    assert_eq!(renew.external_port, 50002);
    assert!(
        (1..=300).contains(&renew.lifetime),
        "renewed lifetime {}",
        renew.lifetime
    );

    // Same mapping, another nonce: refused (RFC 6887 §11.3), and the mapping stays.
    let thief = pcp(
        &t,
        MapRequest::new(LAN_HOST, *b"other-nonce!", 6, 50002, 600),
    );
    assert_ne!(thief.result, result::SUCCESS, "{thief:?}");
    let thief_del = pcp(&t, MapRequest::new(LAN_HOST, *b"other-nonce!", 6, 50002, 0));
    assert!(
        wan().is_ok(),
        "a delete with a wrong nonce ({thief_del:?}) closed the mapping"
    );

    let del = pcp(&t, MapRequest::new(LAN_HOST, nonce, 6, 50002, 0));
    assert_eq!(del.result, result::SUCCESS, "{del:?}");
    assert_eq!(del.lifetime, 0);
    assert!(
        poll::until_true(Duration::from_secs(2), || wan().is_err()),
        "still open after the PCP delete\n{}",
        daemon.logs()
    );
    // A request claiming another client address than its source is refused.
    let spoof = pcp(
        &t,
        MapRequest::new(Ipv4Addr::new(192, 168, 1, 20), nonce, 6, 50003, 600),
    );
    assert_ne!(spoof.result, result::SUCCESS, "{spoof:?}");
}

#[test]
fn a_lease_ends_on_time_with_the_daemon_killed() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let mut daemon = upnp::serve(&cli, &allow_list());
    upnp::pmp_ready(&t, &daemon);
    let _srv = Server::tcp(&t.lan, sa(LAN_HOST, 50003), "lan:50003");
    let wan = || clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50003));

    let map = natpmpc(&t.lan, ROUTER_LAN, &["-a", "50003", "50003", "tcp", "3"]);
    let granted = Instant::now();
    let life = natpmpc_lifetime(&map).unwrap_or_else(|| panic!("{}", map.story()));
    assert!(
        (1..=30).contains(&life),
        "asked 3 s, got {life} s: too long for this test\n{}",
        map.story()
    );
    assert!(wan().is_ok(), "mapping answers\n{}", daemon.logs());
    daemon
        .stop(Signal::SIGKILL, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    // A TCP probe costs up to 0.8 s; allow two probes and a second of slack past the lease.
    let bound = Duration::from_secs(u64::from(life) + 3);
    let closed = poll::until_true(bound + Duration::from_secs(1), || wan().is_err());
    assert!(
        closed && granted.elapsed() <= bound + Duration::from_secs(2),
        "the lease of {life} s did not end without the daemon ({:?} after the grant)\n{:?}",
        granted.elapsed(),
        portcullis_e2e::nft::list_table(&t.router)
    );
}

/// The `portcullis status` line of the mapping of TCP `port` to the LAN host, if listed.
fn status_line(cli: &portcullis_e2e::cli::Cli, port: u16) -> Option<String> {
    let needle = format!("tcp {port} → 192.168.1.10:{port}");
    let status = cli.status(false);
    status
        .stdout
        .lines()
        .find(|l| l.contains(&needle))
        .map(str::to_owned)
}

#[test]
fn a_lease_survives_a_daemon_restart() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let cfg = allow_list();
    let mut daemon = upnp::serve(&cli, &cfg);
    upnp::pmp_ready(&t, &daemon);
    let _srv = Server::tcp(&t.lan, sa(LAN_HOST, 50004), "lan:50004");
    let wan = || clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50004));
    let map = natpmpc(&t.lan, ROUTER_LAN, &["-a", "50004", "50004", "tcp", "600"]);
    assert_eq!(natpmpc_lifetime(&map), Some(600), "{}", map.story());
    assert!(wan().is_ok());
    assert!(
        cli.dir.join("leases.json").exists(),
        "no leases.json next to the config"
    );
    assert!(
        status_line(&cli, 50004).is_some(),
        "{}",
        cli.status(false).story()
    );

    daemon
        .stop(Signal::SIGTERM, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    let daemon = upnp::serve(&cli, &cfg);
    upnp::pmp_ready(&t, &daemon);
    let line = status_line(&cli, 50004).unwrap_or_else(|| {
        panic!(
            "the lease is not listed after the restart:\n{}\n{}",
            cli.status(false).story(),
            daemon.logs()
        )
    });
    // The old expiry (about 10 minutes left), not a new or permanent lease.
    assert!(
        line.contains("expires in 9m") || line.contains("expires in 10m"),
        "{line}"
    );
    assert_eq!(
        wan().map(|p| p.label),
        Ok("lan:50004".to_owned()),
        "traffic after the restart\n{}",
        daemon.logs()
    );
    // And UPnP clients see it too (every protocol lists every mapping).
    upnp::soap_ready(&t, &daemon);
    let list = upnpc(&t.lan, &["-i", "-l"]);
    assert!(
        list.stdout.contains("50004->192.168.1.10:50004"),
        "upnpc -l after the restart:\n{}",
        list.story()
    );
}
