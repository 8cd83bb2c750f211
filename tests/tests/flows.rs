//! Open connections end when the owner's intent ends (issue 7). Each test opens a real
//! flow from the WAN host through the router running Portcullis to a LAN receiver that
//! records when data arrives, changes the intent under it (removes, narrows, re-points,
//! disables or lets a forward expire, lets a trigger time out), and checks that nothing
//! arrives more than [`CUT_WITHIN`] after the change while the peer keeps sending — or,
//! where the new intent still allows the flow, that it keeps arriving.
//!
//! Needs root, nft and the `portcullis` binary (see netns.rs).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use portcullis_e2e::clients;
use portcullis_e2e::flow::{syn_flood, Arrivals, TcpSink, TcpStream, UdpSink, UdpStream};
use portcullis_e2e::netns;
use portcullis_e2e::poll;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::time::in_secs;
use portcullis_e2e::{
    Config, Forward, Topology, Trigger, LAN_CLIENT, LAN_HOST, LAN_HOST_2, ROUTER_WAN, WAN_HOST,
    WAN_HOST_2,
};

/// The promise: no packet of a flow the new intent no longer allows reaches the LAN host
/// later than this after the change (or after `expires_at`).
const CUT_WITHIN: Duration = Duration::from_secs(1);
/// How long the peer keeps sending after that, to show that nothing more gets through.
const WATCH: Duration = Duration::from_secs(3);

fn setup() -> (Topology, portcullis_e2e::cli::Cli) {
    let t = Topology::new();
    let cli = t.cli();
    (t, cli)
}

/// Waits until the flow delivers (a few pieces of data arrived).
#[track_caller]
fn flowing(a: &Arrivals, what: &str) {
    let ok = poll::until_true(Duration::from_secs(3), || a.count() >= 5);
    assert!(
        ok,
        "{what}: the flow never delivered ({} arrivals)",
        a.count()
    );
}

/// The peer keeps sending for [`WATCH`] after `deadline`; nothing may arrive after it.
#[track_caller]
fn cut_by(a: &Arrivals, deadline: Instant, what: &str) {
    let before = a.count();
    poll::sleep_until(deadline + WATCH);
    let late = a.after(deadline);
    assert_eq!(
        late,
        0,
        "{what}: {late} pieces of data still reached the LAN host after the deadline \
         ({before} arrived before it was checked; last {:?} ago)",
        a.last().map(|l| l.elapsed())
    );
}

/// The flow still delivers well after the change.
#[track_caller]
fn still_flowing(a: &Arrivals, change: Instant, what: &str) {
    let later = change + CUT_WITHIN + Duration::from_millis(500);
    let ok = poll::until_true(Duration::from_secs(5), || a.after(later) > 0);
    assert!(
        ok,
        "{what}: the flow stopped (last arrival {:?} ago)",
        a.last().map(|l| l.elapsed())
    );
}

/// `instant` for a wall-clock time (now if it is past).
fn instant_of(t: SystemTime) -> Instant {
    Instant::now() + t.duration_since(SystemTime::now()).unwrap_or_default()
}

/// The config text with forward `name` disabled.
fn disabled(json: &str, name: &str) -> String {
    let from = format!("{{ \"name\": \"{name}\", ");
    assert!(json.contains(&from), "forward {name} in {json}");
    json.replacen(&from, &format!("{from}\"enabled\": false, "), 1)
}

#[test]
fn udp_flow_ends_when_its_forward_is_removed() {
    let (t, cli) = setup();
    let sink = UdpSink::start(&t.lan, sa(LAN_HOST, 53));
    let other = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    let with = other
        .clone()
        .forward(Forward::udp("dns", "5353", LAN_HOST).to_port("53"));
    cli.apply_text("with.json", &with.to_json());
    let _peer = UdpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 5353));
    flowing(&sink.arrivals, "udp through forward dns");

    cli.apply_text("without.json", &other.to_json());
    let ack = Instant::now();
    cut_by(
        &sink.arrivals,
        ack + CUT_WITHIN,
        "udp flow after forward dns was removed",
    );
}

fn narrowing(allow_after: &[&str]) -> (Topology, TcpSink, TcpStream, Instant) {
    let (t, cli) = setup();
    let sink = TcpSink::start(&t.lan, sa(LAN_HOST, 80));
    let wide = Config::new().forward(
        Forward::tcp("web", "8080", LAN_HOST)
            .to_port("80")
            .allow(&["203.0.113.0/24"]),
    );
    cli.apply_text("wide.json", &wide.to_json());
    let peer = TcpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080));
    flowing(&sink.arrivals, "tcp from 203.0.113.10 through forward web");
    let narrow = Config::new().forward(
        Forward::tcp("web", "8080", LAN_HOST)
            .to_port("80")
            .allow(allow_after),
    );
    cli.apply_text("narrow.json", &narrow.to_json());
    (t, sink, peer, Instant::now())
}

#[test]
fn tcp_flow_ends_when_allow_from_no_longer_includes_the_peer() {
    // Only the WAN host's second address remains allowed.
    let (_t, sink, _peer, ack) = narrowing(&["203.0.113.11", "198.51.100.0/24"]);
    cut_by(
        &sink.arrivals,
        ack + CUT_WITHIN,
        "tcp from 203.0.113.10 after allow_from was narrowed to exclude it",
    );
}

#[test]
fn tcp_flow_lives_on_when_allow_from_still_includes_the_peer() {
    let (_t, sink, _peer, ack) = narrowing(&["203.0.113.8/30"]);
    still_flowing(
        &sink.arrivals,
        ack,
        "tcp from 203.0.113.10 after allow_from was narrowed to 203.0.113.8/30",
    );
}

#[test]
fn flows_end_at_expires_at_without_the_daemon() {
    let (t, cli) = setup();
    let udp = UdpSink::start(&t.lan, sa(LAN_HOST, 53));
    let tcp = TcpSink::start(&t.lan, sa(LAN_HOST, 80));
    let _keep = Server::tcp(&t.lan, sa(LAN_HOST, 81), "lan:81");
    let (at, expiry) = in_secs(6);
    let cfg = Config::new()
        .forward(
            Forward::udp("dns", "5353", LAN_HOST)
                .to_port("53")
                .expires_at(&at),
        )
        .forward(
            Forward::tcp("web", "8080", LAN_HOST)
                .to_port("80")
                .expires_at(&at),
        )
        .forward(Forward::tcp("keep", "8081", LAN_HOST).to_port("81"));
    std::fs::write(&cli.saved, cfg.to_json()).unwrap();
    // The daemon installs the saved config, then dies: expiry must not need it.
    let daemon = cli.serve_until(Duration::from_secs(5), || {
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8081)).is_ok()
    });
    drop(daemon);

    let _u = UdpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 5353));
    let _c = TcpStream::start(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 8080));
    flowing(&udp.arrivals, "udp before expires_at");
    flowing(&tcp.arrivals, "tcp before expires_at");
    let deadline = instant_of(expiry) + CUT_WITHIN;
    assert!(
        Instant::now() < instant_of(expiry),
        "the flows opened only after expires_at {at}: the test machine is too slow"
    );
    cut_by(
        &udp.arrivals,
        deadline,
        &format!("udp after expires_at {at}"),
    );
    assert_eq!(
        tcp.arrivals.after(deadline),
        0,
        "tcp still delivered after expires_at {at} + 1 s"
    );
}

#[test]
fn tcp_flow_ends_when_the_forward_points_to_another_host() {
    let (t, cli) = setup();
    let sink = TcpSink::start(&t.lan, sa(LAN_HOST, 80));
    let _new = Server::tcp(&t.lan, sa(LAN_HOST_2, 80), "lan2:80");
    let cfg = |host: Ipv4Addr| {
        Config::new()
            .forward(Forward::tcp("web", "8080", host).to_port("80"))
            .to_json()
    };
    cli.apply_text("old.json", &cfg(LAN_HOST));
    let _peer = TcpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080));
    flowing(&sink.arrivals, "tcp to the old internal host");

    cli.apply_text("new.json", &cfg(LAN_HOST_2));
    let ack = Instant::now();
    // New connections go to the new host...
    let p = clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 8080));
    assert_eq!(
        p.map(|p| p.label),
        Ok("lan2:80".to_string()),
        "a new connection after internal_host changed"
    );
    // ...and the old connection to the old host ends.
    cut_by(
        &sink.arrivals,
        ack + CUT_WITHIN,
        "tcp to 192.168.1.10 after internal_host became 192.168.1.20",
    );
}

#[test]
fn tcp_flow_ends_when_the_forward_is_disabled() {
    let (t, cli) = setup();
    let sink = TcpSink::start(&t.lan, sa(LAN_HOST, 80));
    let cfg = Config::new()
        .forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"))
        .forward(Forward::tcp("other", "8081", LAN_HOST).to_port("81"));
    cli.apply_text("on.json", &cfg.to_json());
    let _peer = TcpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080));
    flowing(&sink.arrivals, "tcp through forward web");

    cli.apply_text("off.json", &disabled(&cfg.to_json(), "web"));
    let ack = Instant::now();
    cut_by(
        &sink.arrivals,
        ack + CUT_WITHIN,
        "tcp after forward web was disabled",
    );
}

#[test]
fn reapplying_an_unchanged_config_keeps_a_tcp_connection() {
    let (t, cli) = setup();
    let sink = TcpSink::start(&t.lan, sa(LAN_HOST, 80));
    let cfg = Config::new().forward(
        Forward::tcp("web", "8080", LAN_HOST)
            .to_port("80")
            .allow(&["203.0.113.0/24"]),
    );
    cli.apply_text("a.json", &cfg.to_json());
    let _peer = TcpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080));
    flowing(&sink.arrivals, "tcp through forward web");
    cli.apply_text("b.json", &cfg.to_json());
    let ack = Instant::now();
    still_flowing(&sink.arrivals, ack, "tcp after re-applying the same config");
}

/// Opens trigger `irc-ident` (outbound tcp 6660-6669 opens inbound 113, `timeout` s)
/// from `host` in namespace `ns`; returns when the trigger traffic ended.
fn trigger_from(ns: &str, host: Ipv4Addr) -> Instant {
    let p = clients::tcp(ns, host, sa(WAN_HOST, 6667));
    assert!(p.is_ok(), "trigger connection from {host}: {p:?}");
    Instant::now()
}

#[test]
fn trigger_inbound_flow_ends_when_its_timeout_passes() {
    let (t, cli) = setup();
    let _irc = Server::tcp(&t.wan, sa(WAN_HOST, 6667), "wan:6667");
    let sink = TcpSink::start(&t.lan, sa(LAN_HOST_2, 113));
    let cfg = Config::new().trigger(Trigger::tcp("irc-ident", "6660-6669", "113", 2));
    cli.apply_text("trigger.json", &cfg.to_json());
    let last_trigger = trigger_from(&t.lan, LAN_HOST_2);
    let _peer = TcpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113));
    flowing(&sink.arrivals, "inbound tcp through the open trigger");
    cut_by(
        &sink.arrivals,
        last_trigger + Duration::from_secs(2) + CUT_WITHIN,
        "inbound tcp through trigger irc-ident after its 2 s timeout",
    );
}

#[test]
fn another_hosts_trigger_traffic_does_not_keep_the_holders_ports_open() {
    let (t, cli) = setup();
    let _irc = Server::tcp(&t.wan, sa(WAN_HOST, 6667), "wan:6667");
    let _holder = Server::tcp(&t.lan, sa(LAN_HOST, 113), "holder:113");
    let _other = Server::tcp(&t.lan_client, sa(LAN_CLIENT, 113), "other:113");
    let cfg = Config::new().trigger(Trigger::tcp("irc-ident", "6660-6669", "113", 2));
    cli.apply_text("trigger.json", &cfg.to_json());
    let last_trigger = trigger_from(&t.lan, LAN_HOST);
    let p = clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113));
    assert_eq!(
        p.map(|p| p.label),
        Ok("holder:113".to_string()),
        "the trigger opened 113 to the host that triggered it"
    );

    // A second LAN host keeps sending trigger traffic the whole time.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            netns::enter(&t.lan_client);
            while !stop.load(Ordering::SeqCst) {
                let _ = clients::tcp_here(
                    Some(LAN_CLIENT),
                    sa(WAN_HOST, 6667),
                    Duration::from_millis(300),
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        // The holder's entry ends on its own timeout (2 s after its last trigger packet;
        // the kernel may take up to a second more to free the slot), whatever the other
        // host sends.
        let released = poll::until(Duration::from_secs(6), || {
            match clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113)) {
                Ok(p) if p.label == "holder:113" => None,
                other => Some(other),
            }
        });
        let held_for = last_trigger.elapsed();
        // Once free, the other host's traffic takes the trigger over.
        let taken = poll::until_true(Duration::from_secs(4), || {
            clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 113))
                .is_ok_and(|p| p.label == "other:113")
        });
        stop.store(true, Ordering::SeqCst);
        assert!(
            released.is_some(),
            "the holder still had port 113 {held_for:?} after its last trigger packet \
             (timeout 2 s): the other host's trigger traffic kept it open"
        );
        assert!(
            held_for >= Duration::from_millis(1500),
            "the holder lost the trigger after {held_for:?}, before its 2 s timeout"
        );
        assert!(
            taken,
            "the other host never got the trigger once it was free"
        );
    });
}

/// Packets of named counter `name` in the router's table.
fn counter_packets(router: &str, name: &str) -> u64 {
    let out = netns::run_ok(netns::command(
        router,
        "nft",
        &["list", "counter", "inet", "portcullis", name],
    ));
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in {out}"))
}

#[test]
fn a_full_rate_limit_meter_refuses_new_sources() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let cfg = Config::new().forward(
        Forward::tcp("web", "8080", LAN_HOST)
            .to_port("80")
            .rate_limit(100, "second", 100),
    );
    cli.apply_text("rl.json", &cfg.to_json());
    // A known source gets its bucket before the flood.
    let p = clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080));
    assert!(p.is_ok(), "before the flood: {p:?}");

    // 80,000 SYNs from as many spoofed sources: more than the meter's 65,535 entries.
    let sent = syn_flood(
        &t.wan,
        Ipv4Addr::new(10, 0, 0, 1),
        sa(ROUTER_WAN, 8080),
        80_000,
        200,
    );
    assert_eq!(sent, 80_000, "raw SYNs sent");
    // Each spoofed source sends one SYN, well under its own rate: every refusal of one
    // is the full meter's.
    let refused = poll::until(Duration::from_secs(10), || {
        let n = counter_packets(&t.router, "rate_limited");
        (n >= 10_000).then_some(n)
    });
    let Some(refused) = refused else {
        panic!(
            "the flood did not fill the meter: counter rate_limited is {}",
            counter_packets(&t.router, "rate_limited")
        );
    };
    eprintln!("meter full: {refused} new sources refused");
    // Fail closed: a new source is refused while the meter is full...
    let p = clients::tcp(&t.wan, WAN_HOST_2, sa(ROUTER_WAN, 8080));
    assert!(
        p.is_err(),
        "a new source got through a full meter (it is not rate-limited at all): {p:?}"
    );
    // ...while a source that already has its bucket keeps its (limited) access.
    let p = clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080));
    assert!(p.is_ok(), "a source with a bucket during the flood: {p:?}");
}

#[test]
fn status_shows_forwards_the_kernel_still_passes_whatever_the_config_says() {
    let (t, cli) = setup();
    let _web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");
    let cfg = Config::new()
        .forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"))
        .forward(Forward::udp("old", "4000-4001", LAN_HOST));
    cli.apply_text("both.json", &cfg.to_json());
    // The saved config changes without being applied (as while the daemon has not
    // reconciled yet): `web` disabled, `old` gone. The kernel still forwards both.
    let only_web = Config::new().forward(Forward::tcp("web", "8080", LAN_HOST).to_port("80"));
    std::fs::write(&cli.saved, disabled(&only_web.to_json(), "web")).unwrap();
    let p = clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080));
    assert!(p.is_ok(), "the kernel still forwards web: {p:?}");

    let text = cli.status(false).ok().stdout;
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no status row for {name}:\n{text}"))
            .to_owned()
    };
    assert!(row("web").contains("still_installed"), "{text}");
    let old = row("old");
    assert!(
        old.contains("not_in_config") && old.contains("udp") && old.contains("4000-4001"),
        "{text}"
    );
}
