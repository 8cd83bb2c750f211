//! The owner stays in charge of port mappings (issue 8): switching UPnP off closes every
//! mapping at once, open connections included, and in `ask` mode a request no rule allows
//! waits for the owner's decision in the web API ("once" grants it, "deny" refuses it).
//!
//! Needs root, `make deps` (miniupnpc, natpmpc, nmap) and the `portcullis` binary.

use std::time::{Duration, Instant};

use portcullis_e2e::clients;
use portcullis_e2e::flow::{TcpSink, TcpStream};
use portcullis_e2e::netns;
use portcullis_e2e::pcp_client::{self, MapRequest, MapResponse};
use portcullis_e2e::poll;
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::upnp::{self, natpmpc, section, upnpc, upnpc_mapped, RULE_LAN_HOST};
use portcullis_e2e::web::Api;
use portcullis_e2e::{Config, Topology, LAN_HOST, ROUTER_LAN, ROUTER_WAN, WAN_HOST};
use serde_json::Value;

/// Nothing of a cut flow may arrive later than this after the apply returned.
const CUT_WITHIN: Duration = Duration::from_secs(1);
/// How long the WAN peer keeps sending after that.
const WATCH: Duration = Duration::from_secs(3);

#[test]
fn switching_upnp_off_closes_every_mapping_and_cuts_open_flows() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let on = Config::new().upnp(&section("allow_list", &[RULE_LAN_HOST]));
    let daemon = upnp::serve(&cli, &on);
    upnp::pmp_ready(&t, &daemon);
    let sink = TcpSink::start(&t.lan, sa(LAN_HOST, 50000));
    let _udp = Server::udp(&t.lan, sa(LAN_HOST, 50001), "lan:50001");
    // One mapping by NAT-PMP (TCP, the flow's) and one by PCP (UDP).
    let pmp = natpmpc(&t.lan, ROUTER_LAN, &["-a", "50000", "50000", "tcp", "600"]);
    assert!(pmp.stdout.contains("Mapped public port"), "{}", pmp.story());
    let req = MapRequest::new(LAN_HOST, *b"policy-nonce", 17, 50001, 600).encode();
    let answer = netns::run_in(&t.lan, || {
        let s = pcp_client::socket_here(LAN_HOST, Duration::from_secs(2));
        pcp_client::exchange(&s, sa(ROUTER_LAN, pcp_client::PORT), &req)
    });
    let answer = answer.map(|a| MapResponse::parse(&a));
    assert!(
        matches!(answer, Some(Ok(ref r)) if r.result == 0),
        "PCP map: {answer:?}"
    );
    assert!(clients::udp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50001)).is_ok());

    let _peer = TcpStream::start(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50000));
    assert!(
        poll::until_true(Duration::from_secs(3), || sink.arrivals.count() >= 5),
        "the flow through the mapping never delivered"
    );

    let off = Config::new().upnp(&section("off", &[RULE_LAN_HOST]));
    cli.apply_text("off.json", &off.to_json());
    let deadline = Instant::now() + CUT_WITHIN;
    poll::sleep_until(deadline + WATCH);
    let late = sink.arrivals.after(deadline);
    assert_eq!(
        late,
        0,
        "{late} pieces of the established flow arrived after UPnP was switched off\n{}",
        daemon.logs()
    );
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50000)).is_err(),
        "TCP mapping still open"
    );
    assert!(
        clients::udp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50001)).is_err(),
        "UDP mapping still open"
    );
    // And the servers are gone from the LAN side.
    let lan_side = || {
        upnp::open_ports(
            &t.lan,
            ROUTER_LAN,
            &[upnp::SSDP_PORT, upnp::SOAP_PORT, upnp::PMP_PORT],
        )
    };
    let gone = poll::until_true(Duration::from_secs(5), || lan_side().is_empty());
    assert!(
        gone,
        "still listening with UPnP off: {:?}\n{}",
        lan_side(),
        upnp::listening(&t.router)
    );
}

/// The pending request for `port`, from GET /api/v1/upnp (its id).
fn pending_id(api: &Api, port: u16) -> Option<String> {
    let (status, body) = api.call("GET", "/api/v1/upnp", "");
    assert_eq!(status, 200, "GET /api/v1/upnp: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    v["pending"].as_array()?.iter().find_map(|p| {
        (p["external_port"].as_u64() == Some(u64::from(port))).then(|| match &p["id"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    })
}

/// upnpc's AddPortMapping of `port` (TCP, to the LAN host itself).
fn ask(t: &Topology, port: u16) -> upnp::Out {
    let p = port.to_string();
    upnpc(
        &t.lan,
        &[
            "-i",
            "-e",
            "ask",
            "-a",
            "192.168.1.10",
            &p,
            &p,
            "TCP",
            "600",
        ],
    )
}

#[test]
fn ask_mode_queues_a_request_for_the_owner_once_grants_and_deny_refuses() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let cfg = Config::new().upnp(&section("ask", &[]));
    let daemon = upnp::serve(&cli, &cfg);
    upnp::soap_ready(&t, &daemon);
    let api = Api::setup(&t.lan, sa(ROUTER_LAN, 80));
    let _srv = Server::tcp(&t.lan, sa(LAN_HOST, 50010), "lan:50010");

    let first = ask(&t, 50010);
    assert!(!upnpc_mapped(&first), "granted before the owner said so");
    let id = poll::until(Duration::from_secs(5), || pending_id(&api, 50010)).unwrap_or_else(|| {
        panic!(
            "no pending request for 50010: {:?}\n{}",
            api.call("GET", "/api/v1/upnp", ""),
            daemon.logs()
        )
    });
    let (status, body) = api.call(
        "POST",
        &format!("/api/v1/upnp/pending/{id}"),
        r#"{"decision": "once"}"#,
    );
    assert!((200..300).contains(&status), "approve: {status} {body}");
    let retry = ask(&t, 50010);
    assert!(upnpc_mapped(&retry), "{}\n{}", retry.story(), daemon.logs());
    assert_eq!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50010)).map(|p| p.label),
        Ok("lan:50010".to_owned())
    );
    let (_, listing) = api.call("GET", "/api/v1/upnp", "");
    assert!(
        listing.contains("50010"),
        "mapping not in the API: {listing}"
    );

    let second = ask(&t, 50011);
    assert!(!upnpc_mapped(&second), "{}", second.story());
    let id = poll::until(Duration::from_secs(5), || pending_id(&api, 50011))
        .unwrap_or_else(|| panic!("no pending request for 50011\n{}", daemon.logs()));
    let (status, body) = api.call(
        "POST",
        &format!("/api/v1/upnp/pending/{id}"),
        r#"{"decision": "deny"}"#,
    );
    assert!((200..300).contains(&status), "deny: {status} {body}");
    let retry = ask(&t, 50011);
    assert!(!upnpc_mapped(&retry), "denied, yet: {}", retry.story());
    assert!(clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 50011)).is_err());

    // The owner can still take back what "once" gave.
    let (status, body) = api.call("DELETE", "/api/v1/upnp/mappings/tcp/50010", "");
    assert!((200..300).contains(&status), "delete: {status} {body}");
    assert!(
        poll::until_true(Duration::from_secs(2), || clients::tcp(
            &t.wan,
            WAN_HOST,
            sa(ROUTER_WAN, 50010)
        )
        .is_err()),
        "the mapping deleted through the API still answers"
    );
}
