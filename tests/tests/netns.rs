//! End-to-end tests of Portcullis in network namespaces: a WAN host, the router running
//! the real `portcullis` binary, a LAN host with labelled servers and a second LAN
//! machine. Each test builds its own topology, so they run in parallel.
//!
//! Needs root, nmap, nft and iproute2, and the binary (`cargo build -p portcullis`, or
//! `PORTCULLIS_BIN`).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant, SystemTime};

use portcullis_e2e::cli::Cli;
use portcullis_e2e::clients::{self, tcp_flood};
use portcullis_e2e::json::Json;
use portcullis_e2e::nft;
use portcullis_e2e::poll;
use portcullis_e2e::scan;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::time::in_secs;
use portcullis_e2e::{
    Config, Forward, Probe, ProbeError, Topology, Trigger, LAN_CLIENT, LAN_HOST, LAN_HOST_2,
    ROUTER_LAN, ROUTER_WAN, WAN_HOST, WAN_HOST_2,
};

const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

fn setup() -> (Topology, Cli) {
    let t = Topology::new();
    let cli = t.cli();
    (t, cli)
}

/// Asserts a probe reached the server labelled `label`; returns what it saw.
#[track_caller]
fn reached(r: Result<Probe, ProbeError>, label: &str, what: &str) -> Probe {
    match r {
        Ok(p) => {
            assert_eq!(p.label, label, "{what}: reached the wrong service");
            p
        }
        Err(e) => panic!("{what}: expected to reach {label}, but the probe {e}"),
    }
}

/// Asserts a probe got no answer.
#[track_caller]
fn blocked(r: Result<Probe, ProbeError>, what: &str) {
    if let Ok(p) = r {
        panic!(
            "{what}: expected no answer, but reached {} (seen from {})",
            p.label, p.peer
        );
    }
}

/// Time left until `t` (zero if past).
fn until(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::now()).unwrap_or_default()
}

#[test]
fn forwards_reach_the_lan_service_on_its_internal_port() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    // A decoy on the external port number: reaching it would mean no port translation.
    let _decoy = Server::tcp(&t.lan, sa(LAN_HOST, 8080), "lan:8080");
    let _dns = Server::udp(&t.lan, sa(LAN_HOST, 53), "lan:udp53");
    let mut game = Vec::new();
    for port in 27015..=27017 {
        game.push(Server::tcp(
            &t.lan,
            sa(LAN_HOST_2, port),
            &format!("lan2:{port}"),
        ));
        game.push(Server::udp(
            &t.lan,
            sa(LAN_HOST_2, port),
            &format!("lan2:udp{port}"),
        ));
    }
    let cfg = Config::new()
        .forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"))
        .forward(Forward::udp("dns", "5353", LAN_HOST).to_port("53"))
        .forward(Forward::both("game", "27015-27017", LAN_HOST_2));
    cli.apply_text("fwd.json", &cfg.to_json());

    let p = reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "tcp wan -> router:8080",
    );
    assert_eq!(
        *p.peer.ip(),
        WAN_HOST,
        "the LAN server sees the real internet client (DNAT only, no SNAT)"
    );
    reached(
        clients::udp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 5353)),
        "lan:udp53",
        "udp wan -> router:5353",
    );
    for port in [27015, 27017] {
        reached(
            clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, port)),
            &format!("lan2:{port}"),
            "tcp to a port of a `both` range",
        );
        reached(
            clients::udp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, port)),
            &format!("lan2:udp{port}"),
            "udp to a port of a `both` range",
        );
    }
    // The protocol matters: a TCP forward does not forward UDP and vice versa.
    let _udp8080 = Server::udp(&t.lan, sa(LAN_HOST, 80), "lan:udp80");
    blocked(
        clients::udp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "udp to a tcp-only forward",
    );
    let _tcp53 = Server::tcp(&t.lan, sa(LAN_HOST, 53), "lan:53");
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 5353)),
        "tcp to a udp-only forward",
    );
    // The LAN host is reachable only through forwards, not by routing to it directly.
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(LAN_HOST, 80)),
        "wan -> lan host address directly",
    );
}

#[test]
fn allow_list_admits_listed_sources_only() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _ssh = Server::tcp(&t.lan, sa(LAN_HOST, 22), "lan:22");
    let _open = Server::tcp(&t.lan, sa(LAN_HOST, 443), "lan:443");
    let cfg = Config::new()
        // Only the second WAN address.
        .forward(
            Forward::tcp("web", "8080", LAN_HOST)
                .to_port("80")
                .allow(&["203.0.113.11"]),
        )
        // A prefix covering 203.0.113.8-11: both WAN addresses.
        .forward(
            Forward::tcp("ssh", "2222", LAN_HOST)
                .to_port("22")
                .allow(&["198.51.100.0/24", "203.0.113.8/30"]),
        )
        // A prefix that covers neither.
        .forward(
            Forward::tcp("tls", "8443", LAN_HOST)
                .to_port("443")
                .allow(&["203.0.113.128/25"]),
        );
    cli.apply_text("allow.json", &cfg.to_json());

    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "203.0.113.10 is not in web's allow_from",
    );
    let p = reached(
        clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "203.0.113.11 is in web's allow_from",
    );
    assert_eq!(*p.peer.ip(), WAN_HOST_2);
    for src in [WAN_HOST, WAN_HOST_2] {
        reached(
            clients::tcp(&t.wan, src, sa(ROUTER_WAN, 2222)),
            "lan:22",
            &format!("{src} is inside 203.0.113.8/30"),
        );
        blocked(
            clients::tcp(&t.wan, src, sa(ROUTER_WAN, 8443)),
            &format!("{src} is outside 203.0.113.128/25"),
        );
    }
}

#[test]
fn rate_limit_cuts_a_flood_from_one_source_only() {
    let (t, cli) = setup();
    let web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let cfg = Config::new().forward(
        Forward::tcp("web", "8080", LAN_HOST)
            .to_port("80")
            .rate_limit(5, "minute", 5),
    );
    cli.apply_text("rl.json", &cfg.to_json());

    let results = tcp_flood(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080), 30);
    let ok = results.iter().filter(|r| r.is_ok()).count();
    eprintln!("rate limit: {ok} of 30 simultaneous connections got through");
    for r in results.iter().flatten() {
        assert_eq!(r.label, "lan:80");
    }
    // 5/minute with a burst of 5 lets about 5-10 through; one spare for token refill.
    assert!(
        (1..=11).contains(&ok),
        "30 connections at once with 5/minute burst 5: {ok} got through, expected 1 to 11"
    );
    assert_eq!(web.served(), u64::try_from(ok).unwrap());
    // The limit is per source: another address is not affected by the first one's flood.
    reached(
        clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "a second source during the first one's flood",
    );
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "the flooding source is still limited",
    );
}

#[test]
fn expired_forward_stops_in_the_kernel_without_the_daemon() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _keep = Server::tcp(&t.lan, sa(LAN_HOST, 81), "lan:81");
    let (at, expiry) = in_secs(4);
    let cfg = Config::new()
        .forward(
            Forward::tcp("temp", "8080", LAN_HOST)
                .to_port("80")
                .expires_at(&at),
        )
        .forward(Forward::tcp("keep", "8081", LAN_HOST).to_port("81"));
    // No daemon: only the kernel can close the forward.
    cli.apply_text("expiry.json", &cfg.to_json());

    assert!(
        until(expiry) > Duration::from_millis(500),
        "the test machine is too slow: apply took until the expiry"
    );
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "before expires_at",
    );
    // The kernel timeout is set at apply time; allow it a second of rounding.
    std::thread::sleep(until(expiry) + Duration::from_millis(1200));
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        &format!("1.2 s after expires_at {at}, with no daemon running"),
    );
    blocked(
        clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 8080)),
        "after expiry, from another source too",
    );
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)),
        "lan:81",
        "a forward without expires_at keeps working",
    );
}

#[test]
fn serve_removes_the_expired_forward_from_the_saved_config() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _keep = Server::tcp(&t.lan, sa(LAN_HOST, 81), "lan:81");
    let (at, expiry) = in_secs(3);
    let cfg = Config::new()
        .forward(
            Forward::tcp("temp", "8080", LAN_HOST)
                .to_port("80")
                .expires_at(&at),
        )
        .forward(Forward::tcp("keep", "8081", LAN_HOST).to_port("81"));
    std::fs::write(&cli.saved, cfg.to_json()).unwrap();
    // The daemon loads and applies the saved config.
    let mut daemon = cli.serve_until(Duration::from_secs(5), || {
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)).is_ok()
    });
    let saved = std::fs::read_to_string(&cli.saved).unwrap();
    assert!(
        saved.contains("\"temp\""),
        "the forward is still saved before it expires:\n{saved}"
    );

    let removed = poll::until(until(expiry) + Duration::from_secs(4), || {
        let text = std::fs::read_to_string(&cli.saved).ok()?;
        (!text.contains("\"temp\"")).then_some(text)
    });
    let Some(saved) = removed else {
        panic!(
            "serve did not remove forward `temp` (expires_at {at}) from {} within 4 s of expiry:\n{}\n{}",
            cli.saved.display(),
            std::fs::read_to_string(&cli.saved).unwrap_or_default(),
            daemon.logs()
        );
    };
    assert!(
        SystemTime::now() + Duration::from_millis(100) >= expiry,
        "removed before its expiry"
    );
    assert!(
        saved.contains("\"keep\""),
        "the other forward stays:\n{saved}"
    );
    cli.check(&cli.saved).ok();
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "the expired forward",
    );

    // SIGTERM: the daemon exits and leaves the ruleset in place.
    let code = daemon
        .stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        code,
        Some(0),
        "serve's exit code on SIGTERM\n{}",
        daemon.logs()
    );
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)),
        "lan:81",
        "after the daemon exited, the ruleset stays installed",
    );
}

#[test]
fn trigger_opens_the_port_to_the_triggering_host_for_its_timeout() {
    let (t, cli) = setup();
    let _irc = Server::tcp(&t.wan, sa(WAN_HOST, 6667), "wan:6667");
    let _ident1 = Server::tcp(&t.lan, sa(LAN_HOST, 113), "lan:113");
    let _ident2 = Server::tcp(&t.lan, sa(LAN_HOST_2, 113), "lan2:113");
    let cfg = Config::new().trigger(Trigger::tcp("irc-ident", "6660-6669", "113", 2));
    cli.apply_text("trigger.json", &cfg.to_json());

    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113)),
        "open port before any trigger",
    );
    // The LAN host, from its second address, connects out to the trigger port.
    let p = reached(
        clients::tcp(&t.lan, LAN_HOST_2, sa(WAN_HOST, 6667)),
        "wan:6667",
        "lan -> wan trigger connection",
    );
    assert_eq!(
        *p.peer.ip(),
        ROUTER_WAN,
        "LAN -> WAN traffic is masqueraded"
    );
    let triggered = Instant::now();

    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113)),
        "lan2:113",
        "open port right after the trigger, to the host that triggered",
    );
    poll::sleep_until(triggered + Duration::from_millis(1000));
    reached(
        clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 113)),
        "lan2:113",
        "open port 1 s into a 2 s timeout",
    );
    let closed = poll::until_true(Duration::from_secs(5), || {
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113)).is_err()
    });
    let after = triggered.elapsed();
    assert!(
        closed,
        "the opened port was still open {after:?} after the last trigger packet (timeout 2 s)"
    );
    assert!(
        after >= Duration::from_millis(1500),
        "closed after only {after:?}, timeout is 2 s"
    );
    // Other ports were never opened by the trigger.
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 6667)),
        "the trigger port itself inbound",
    );
}

#[test]
fn hairpin_from_the_lan_to_the_wan_address_reaches_the_forward() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _dns = Server::udp(&t.lan, sa(LAN_HOST, 53), "lan:udp53");
    let cfg = Config::new()
        .forward(
            Forward::tcp("web", "8080", LAN_HOST)
                .to_port("80")
                .allow(&["198.51.100.0/24"]),
        )
        .forward(Forward::udp("dns", "5353", LAN_HOST).to_port("53"));
    cli.apply_text("hairpin.json", &cfg.to_json());

    // A second LAN machine (its own namespace, same bridge as the server).
    let p = reached(
        clients::tcp(&t.lan_client, LAN_CLIENT, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "lan client -> router WAN address:8080 (allow_from restricts WAN sources only)",
    );
    eprintln!("hairpin peer seen by the server: {}", p.peer);
    reached(
        clients::udp(&t.lan_client, LAN_CLIENT, sa(ROUTER_WAN, 5353)),
        "lan:udp53",
        "udp hairpin",
    );
    // The server's own host, from its other address.
    reached(
        clients::tcp(&t.lan, LAN_HOST_2, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "hairpin from the server's own host",
    );
    // allow_from still applies to WAN sources.
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "WAN source outside allow_from",
    );
}

#[test]
fn only_forwarded_ports_are_open_from_the_wan() {
    let (t, cli) = setup();
    let mut servers = Vec::new();
    for port in [22, 80, 443, 8080, 2222] {
        servers.push(Server::tcp(
            &t.lan,
            sa(LAN_HOST, port),
            &format!("lan:{port}"),
        ));
    }
    for port in 27015..=27017 {
        servers.push(Server::tcp(
            &t.lan,
            sa(LAN_HOST_2, port),
            &format!("lan2:{port}"),
        ));
    }
    // The router's own services: the web UI (and stand-ins for ssh and dns).
    for port in [80, 22, 53] {
        servers.push(Server::tcp(
            &t.router,
            sa(ANY, port),
            &format!("router:{port}"),
        ));
    }
    let _router_dns = Server::udp(&t.router, sa(ANY, 53), "router:udp53");
    let cfg = Config::new()
        .forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"))
        .forward(
            Forward::tcp("ssh", "2222", LAN_HOST)
                .to_port("22")
                .allow(&["203.0.113.0/24"]),
        )
        .forward(Forward::both("game", "27015-27017", LAN_HOST_2))
        .trigger(Trigger::tcp("irc-ident", "6660-6669", "113", 600));
    cli.apply_text("scan.json", &cfg.to_json());

    let forwarded = BTreeSet::from([2222, 8080, 27015, 27016, 27017]);
    // Forwarded ports, ports where something listens behind them, the trigger's port.
    let recheck = [2222, 8080, 27015, 27016, 27017, 22, 80, 443, 53, 113];
    let open = scan::open_tcp_ports(&t.wan, ROUTER_WAN, &recheck);
    assert_eq!(
        open, forwarded,
        "open TCP ports of the router's WAN address seen from the internet"
    );
    // Scanning the LAN host's own address through the router: no LAN service is
    // reachable by routing. (Forwards match on the WAN interface whatever the destination
    // address, so a forwarded port may show here too; it leads to the forward's target.)
    let open = scan::open_tcp_ports(&t.wan, LAN_HOST, &recheck);
    assert!(
        open.is_subset(&forwarded),
        "LAN services reachable from the WAN by routing to the LAN host: {:?}",
        open.difference(&forwarded).collect::<Vec<_>>()
    );

    // The router's own services: closed from the WAN, on either of its addresses...
    for dst in [ROUTER_WAN, ROUTER_LAN] {
        blocked(
            clients::tcp(&t.wan, WAN_HOST, sa(dst, 80)),
            &format!("router web UI at {dst} from the WAN"),
        );
        blocked(
            clients::udp(&t.wan, WAN_HOST, sa(dst, 53)),
            &format!("router udp 53 at {dst} from the WAN"),
        );
    }
    // ...and open from the LAN.
    reached(
        clients::tcp(&t.lan_client, LAN_CLIENT, sa(ROUTER_LAN, 80)),
        "router:80",
        "router web UI from the LAN",
    );
    reached(
        clients::udp(&t.lan_client, LAN_CLIENT, sa(ROUTER_LAN, 53)),
        "router:udp53",
        "router udp 53 from the LAN",
    );
}

/// A config with every feature, for comparing `plan` with what the kernel holds.
fn full_config() -> Config {
    let (later, _) = in_secs(86_400);
    Config::new()
        .forward(
            Forward::tcp("web", "8080", LAN_HOST)
                .to_port("80")
                .allow(&["198.51.100.0/24", "203.0.113.0/24"])
                .rate_limit(30, "minute", 10)
                .log(),
        )
        .forward(Forward::both("game", "27015-27020", LAN_HOST_2))
        .forward(
            Forward::tcp("friend-ssh", "2222", LAN_HOST)
                .to_port("22")
                .allow(&["198.51.100.77"])
                .expires_at(&later),
        )
        .forward(Forward::udp("voip", "5060", LAN_HOST))
        .trigger(Trigger::tcp("irc-ident", "6660-6669", "113", 600))
}

#[test]
fn plan_output_loads_into_the_kernel_as_what_apply_installs() {
    let (mut t, cli) = setup();
    let scratch = t.add_namespace("scratch");
    let file = cli.write("full.json", &full_config().to_json());

    let plan = cli.plan(&file).ok();
    let plan_file = cli.write("plan.nft", &plan.stdout);
    if let Err(e) = nft::load(&scratch, &plan_file) {
        panic!(
            "`nft -f` refused the output of `portcullis plan`:\n{e}\n--- plan ---\n{}",
            plan.stdout
        );
    }
    cli.apply(&file).ok();

    let planned = nft::list_table(&scratch).expect("plan created table inet portcullis");
    let applied = nft::list_table(&t.router).expect("apply created table inet portcullis");
    let (planned_n, planned_t) = nft::split_element_timeouts(&nft::normalize(&planned));
    let (applied_n, applied_t) = nft::split_element_timeouts(&nft::normalize(&applied));
    assert_eq!(
        planned_n, applied_n,
        "`nft list table inet portcullis` after `nft -f <plan>` (left) and after `portcullis apply` (right) differ"
    );
    assert_eq!(planned_t.len(), applied_t.len());
    for (p, a) in planned_t.iter().zip(&applied_t) {
        let diff = if p > a { *p - *a } else { *a - *p };
        assert!(
            diff <= Duration::from_secs(5),
            "element timeouts differ by more than the time between plan and apply: {p:?} vs {a:?}"
        );
    }
    assert!(
        !planned_t.is_empty(),
        "the forward with expires_at has an element timeout in the kernel:\n{applied}"
    );
}

#[test]
fn check_refuses_bad_configs_naming_the_field() {
    let (_t, cli) = setup();
    let good = cli.write("good.json", &full_config().to_json());
    let run = cli.check(&good);
    assert_eq!(
        run.code,
        Some(0),
        "check of a valid config\n{}",
        run.story()
    );

    let cases = [
        (
            Config::new().forward(Forward::tcp("web", "8080", Ipv4Addr::new(10, 0, 0, 5))),
            "forwards[0].internal_host",
        ),
        (
            Config::new()
                .forward(Forward::tcp("a", "8080", LAN_HOST))
                .forward(Forward::tcp("b", "70000", LAN_HOST)),
            "forwards[1].external_port",
        ),
        (
            Config::new()
                .forward(Forward::tcp("web", "8080", LAN_HOST))
                .trigger(Trigger::tcp("web", "6667", "113", 2)),
            "triggers[0].name",
        ),
        (
            Config::new().forward(
                Forward::tcp("old", "2222", LAN_HOST)
                    .to_port("22")
                    .expires_at("2020-01-01T00:00:00Z"),
            ),
            "forwards[0].expires_at",
        ),
    ];
    for (i, (cfg, field)) in cases.iter().enumerate() {
        let file = cli.write(&format!("bad{i}.json"), &cfg.to_json());
        let run = cli.check(&file);
        assert_eq!(
            run.code,
            Some(1),
            "check of bad config {i}\n{}",
            run.story()
        );
        let all = format!("{}{}", run.stdout, run.stderr);
        assert!(
            all.lines()
                .any(|l| l.starts_with("error: ") && l.contains(field)),
            "check's output has no `error: ...{field}...` line\n{}",
            run.story()
        );
    }
}

#[test]
fn check_names_the_field_of_a_malformed_value() {
    let (_t, cli) = setup();
    let cfg = Config::new().forward(
        Forward::tcp("web", "8080", LAN_HOST)
            .to_port("80")
            .allow(&["198.51.100.0/24", "not-an-address"]),
    );
    let file = cli.write("malformed.json", &cfg.to_json());
    let run = cli.check(&file);
    assert_eq!(
        run.code,
        Some(1),
        "check of a malformed address\n{}",
        run.story()
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.lines()
            .any(|l| l.starts_with("error: ") && l.contains("allow_from")),
        "check's output has no `error: <field>: <reason>` line naming allow_from\n{}",
        run.story()
    );
}

#[test]
fn invalid_apply_changes_neither_the_kernel_nor_the_saved_config() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let good = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    cli.apply_text("good.json", &good.to_json());
    let saved_before = std::fs::read(&cli.saved).expect("apply saved the config");
    let table_before = nft::normalize(&nft::list_table(&t.router).expect("table installed"));

    let bad = Config::new()
        .forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"))
        .forward(Forward::tcp("db", "5432", Ipv4Addr::new(10, 9, 9, 9)));
    let file = cli.write("bad.json", &bad.to_json());
    let run = cli.apply(&file);
    assert_eq!(
        run.code,
        Some(1),
        "apply of an invalid config\n{}",
        run.story()
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(
        all.contains("forwards[1].internal_host"),
        "apply names the bad field\n{}",
        run.story()
    );

    assert_eq!(
        std::fs::read(&cli.saved).unwrap(),
        saved_before,
        "the saved config changed"
    );
    let table_after = nft::normalize(&nft::list_table(&t.router).expect("table still installed"));
    assert_eq!(table_after, table_before, "the installed ruleset changed");
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "the old forward still works",
    );
}

#[test]
fn reapply_replaces_forwards_and_leaves_other_tables_alone() {
    let (t, cli) = setup();
    let _a = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _b = Server::tcp(&t.lan, sa(LAN_HOST, 81), "lan:81");
    // Someone else's table in the router.
    let other = cli.write(
        "other.nft",
        "table ip other {\n\tchain c {\n\t\ttype filter hook input priority 10; policy accept;\n\t}\n}\n",
    );
    nft::load(&t.router, &other).expect("load a foreign table");

    let first = Config::new().forward(Forward::tcp("a", "8080", LAN_HOST).to_port("80"));
    cli.apply_text("first.json", &first.to_json());
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "first config",
    );
    let second = Config::new().forward(Forward::tcp("b", "8081", LAN_HOST).to_port("81"));
    cli.apply_text("second.json", &second.to_json());
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)),
        "lan:81",
        "second config",
    );
    blocked(
        clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 8080)),
        "the first config's forward after the second apply",
    );
    let saved = std::fs::read_to_string(&cli.saved).unwrap();
    assert!(
        saved.contains("\"b\"") && !saved.contains("\"a\""),
        "saved:\n{saved}"
    );

    let ruleset = nft::list_ruleset(&t.router);
    let tables: Vec<&str> = ruleset
        .lines()
        .filter(|l| l.starts_with("table "))
        .collect();
    assert_eq!(
        tables,
        ["table ip other {", "table inet portcullis {"],
        "Portcullis keeps to its own table\n{ruleset}"
    );
}

/// Runs `status --json` and parses it.
fn status_json(cli: &Cli) -> Json {
    let run = cli.status(true).ok();
    Json::parse(&run.stdout)
        .unwrap_or_else(|e| panic!("status --json printed invalid JSON: {e}\n{}", run.stdout))
}

#[test]
fn status_reports_state_hits_and_time_left() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _irc = Server::tcp(&t.wan, sa(WAN_HOST, 6667), "wan:6667");
    let _ident = Server::tcp(&t.lan, sa(LAN_HOST_2, 113), "lan2:113");
    let (at, _) = in_secs(3600);
    let cfg = Config::new()
        .forward(
            Forward::tcp("web", "8080", LAN_HOST)
                .to_port("80")
                .expires_at(&at),
        )
        .forward(Forward::udp("game", "27015", LAN_HOST_2))
        .trigger(Trigger::tcp("irc-ident", "6660-6669", "113", 30));
    cli.apply_text("status.json", &cfg.to_json());

    for _ in 0..3 {
        reached(
            clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
            "lan:80",
            "wan -> web",
        );
    }
    let s = status_json(&cli);
    assert_eq!(s.get("table_present").as_bool(), Some(true), "{s:?}");
    let web = s
        .get("forwards")
        .named("web")
        .expect("status lists forward web");
    assert_eq!(web.get("state").as_str(), Some("active"), "web: {web:?}");
    assert_eq!(
        web.get("hits_packets").as_u64(),
        Some(3),
        "three connections were forwarded: {web:?}"
    );
    let left = web
        .get("remaining_secs")
        .as_u64()
        .expect("web expires: time left");
    assert!(
        (3590..=3600).contains(&left),
        "web expires in an hour, status says {left} s"
    );
    let game = s
        .get("forwards")
        .named("game")
        .expect("status lists forward game");
    assert_eq!(game.get("state").as_str(), Some("active"), "game: {game:?}");
    assert_eq!(game.get("hits_packets").as_u64(), Some(0), "game: {game:?}");
    assert!(
        game.get("remaining_secs").is_null(),
        "game never expires: {game:?}"
    );
    let trg = s
        .get("triggers")
        .named("irc-ident")
        .expect("status lists the trigger");
    assert_eq!(
        trg.get("state").as_str(),
        Some("armed"),
        "before any trigger: {trg:?}"
    );
    assert!(trg.get("host").is_null(), "{trg:?}");

    reached(
        clients::tcp(&t.lan, LAN_HOST_2, sa(WAN_HOST, 6667)),
        "wan:6667",
        "trigger connection",
    );
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113)),
        "lan2:113",
        "opened port",
    );
    let s = status_json(&cli);
    let trg = s
        .get("triggers")
        .named("irc-ident")
        .expect("status lists the trigger");
    assert_eq!(
        trg.get("state").as_str(),
        Some("open"),
        "after the trigger: {trg:?}"
    );
    assert_eq!(trg.get("host").as_str(), Some("192.168.1.20"), "{trg:?}");
    let left = trg
        .get("remaining_secs")
        .as_u64()
        .expect("an open trigger has time left");
    assert!(
        (25..=30).contains(&left),
        "trigger timeout 30 s, {left} s left"
    );
    assert!(
        trg.get("hits_packets").as_u64().unwrap_or(0) >= 1,
        "one inbound connection on the open port: {trg:?}"
    );

    // The human form names every forward and trigger.
    let text = cli.status(false).ok().stdout;
    for name in ["web", "game", "irc-ident"] {
        assert!(text.contains(name), "status text lacks {name}:\n{text}");
    }
}

#[test]
fn daemon_web_ui_answers_the_lan_only() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let cfg = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    std::fs::write(&cli.saved, cfg.to_json()).unwrap();
    let mut daemon = cli.serve();

    let ui = poll::until(Duration::from_secs(5), || {
        clients::http_get(&t.lan_client, LAN_CLIENT, sa(ROUTER_LAN, 80), "/").ok()
    });
    let Some(status_line) = ui else {
        panic!(
            "no web UI on {ROUTER_LAN}:80 from the LAN\n{}",
            daemon.logs()
        );
    };
    assert!(
        status_line.starts_with("HTTP/1.1 2") || status_line.starts_with("HTTP/1.0 2"),
        "GET / from the LAN: {status_line}"
    );
    for dst in [ROUTER_WAN, ROUTER_LAN] {
        let r = clients::http_get(&t.wan, WAN_HOST, sa(dst, 80), "/");
        assert!(r.is_err(), "web UI at {dst}:80 answered the WAN: {r:?}");
    }
    let open = scan::open_tcp_ports(&t.wan, ROUTER_WAN, &[80, 8080]);
    assert_eq!(
        open,
        BTreeSet::from([8080]),
        "open ports of the router's WAN address while the daemon runs"
    );
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "the forward while the daemon runs",
    );

    let code = daemon
        .stop(nix::sys::signal::Signal::SIGINT, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(code, Some(0), "exit code on SIGINT\n{}", daemon.logs());
    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "lan:80",
        "the forward after SIGINT",
    );
}

#[test]
fn serve_reloads_the_saved_config_on_sighup() {
    let (t, cli) = setup();
    let _a = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _b = Server::tcp(&t.lan, sa(LAN_HOST, 81), "lan:81");
    let first = Config::new().forward(Forward::tcp("a", "8080", LAN_HOST).to_port("80"));
    std::fs::write(&cli.saved, first.to_json()).unwrap();
    let daemon = cli.serve_until(Duration::from_secs(5), || {
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_ok()
    });

    let second = Config::new().forward(Forward::tcp("b", "8081", LAN_HOST).to_port("81"));
    std::fs::write(&cli.saved, second.to_json()).unwrap();
    nix::sys::signal::kill(daemon.pid(), nix::sys::signal::Signal::SIGHUP).unwrap();
    let reloaded = poll::until_true(Duration::from_secs(5), || {
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)).is_ok()
    });
    assert!(
        reloaded,
        "SIGHUP did not install the new saved config\n{}",
        daemon.logs()
    );
    blocked(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
        "the old forward after reload",
    );
}

#[test]
fn lan_reaches_the_internet_masqueraded_and_the_internet_cannot_reach_in() {
    let (t, cli) = setup();
    let _https = Server::tcp(&t.wan, sa(WAN_HOST, 443), "wan:443");
    let _dns = Server::udp(&t.wan, sa(WAN_HOST, 53), "wan:udp53");
    let _ssh = Server::tcp(&t.lan, sa(ANY, 22), "lan:22");
    cli.apply_text("empty.json", &Config::new().to_json());

    for (ns, src) in [(&t.lan, LAN_HOST), (&t.lan_client, LAN_CLIENT)] {
        let p = reached(
            clients::tcp(ns, src, sa(WAN_HOST, 443)),
            "wan:443",
            &format!("tcp {src} -> internet"),
        );
        assert_eq!(*p.peer.ip(), ROUTER_WAN, "{src} is masqueraded");
        let p = reached(
            clients::udp(ns, src, sa(WAN_HOST, 53)),
            "wan:udp53",
            &format!("udp {src} -> internet"),
        );
        assert_eq!(*p.peer.ip(), ROUTER_WAN, "{src} is masqueraded (udp)");
    }
    for dst in [LAN_HOST, LAN_CLIENT, ROUTER_WAN] {
        blocked(
            clients::tcp(&t.wan, WAN_HOST, sa(dst, 22)),
            &format!("unsolicited wan -> {dst}:22"),
        );
    }
}

#[test]
fn reapplying_keeps_hit_counts_and_open_triggers() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let _irc = Server::tcp(&t.wan, sa(WAN_HOST, 6667), "wan:6667");
    let _ident = Server::tcp(&t.lan, sa(LAN_HOST_2, 113), "lan2:113");
    let _game = Server::udp(&t.lan, sa(LAN_HOST_2, 27015), "lan2:udp27015");
    let cfg = Config::new()
        .forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"))
        .trigger(Trigger::tcp("irc-ident", "6660-6669", "113", 30));
    cli.apply_text("before.json", &cfg.to_json());
    for _ in 0..2 {
        reached(
            clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)),
            "lan:80",
            "wan -> web",
        );
    }
    reached(
        clients::tcp(&t.lan, LAN_HOST_2, sa(WAN_HOST, 6667)),
        "wan:6667",
        "trigger connection",
    );

    // An unrelated change replaces the whole table.
    let cfg = cfg.forward(Forward::udp("game", "27015", LAN_HOST_2));
    cli.apply_text("after.json", &cfg.to_json());

    reached(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113)),
        "lan2:113",
        "the trigger opened before the change is still open to the same host",
    );
    reached(
        clients::udp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 27015)),
        "lan2:udp27015",
        "the new forward works",
    );
    let s = status_json(&cli);
    let web = s.get("forwards").named("web").expect("web listed");
    assert_eq!(
        web.get("hits_packets").as_u64(),
        Some(2),
        "hits counted before the change are kept: {web:?}"
    );
    let trg = s
        .get("triggers")
        .named("irc-ident")
        .expect("trigger listed");
    assert_eq!(trg.get("state").as_str(), Some("open"), "{trg:?}");
    let left = trg.get("remaining_secs").as_u64().expect("time left");
    assert!(
        (20..=30).contains(&left),
        "the trigger keeps its remaining time, not a fresh one or none: {left} s"
    );
}
