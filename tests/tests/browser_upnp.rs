//! The owner sees and controls port mappings in a real browser (issue 8): headless
//! Chromium over WebDriver ([`portcullis_e2e::browser`]) against the real `portcullis
//! serve` in the router namespace of a [`Topology`], from the LAN client's namespace.
//!
//! With `upnp` off the UPnP page says so and NAT-PMP finds no gateway; the owner switches
//! to `allow_list` and adds a rule for the LAN client (192.168.1.50) on 50000-50100, which
//! the daemon puts in force; natpmpc on the LAN client maps 50000, and the UPnP page shows
//! it (protocol, port, host, NAT-PMP, time left) as does the Exposure page (with its
//! provenance); "Revoke" closes it in the kernel; in `ask` mode a request outside the rule
//! waits in the approval queue, "Approve once" lets upnpc's retry through. Screenshots go
//! to `out/browser/upnp-*.png`.
//!
//! Needs root, `make deps` (chromium, chromium-driver, miniupnpc, natpmpc, nmap) and the
//! `portcullis` binary. Everything it starts lives in the topology's namespaces and dies
//! with it, pass or fail.

use std::net::SocketAddr;
use std::time::Duration;

use portcullis_e2e::browser::{require, with_browser, Driver};
use portcullis_e2e::cli::{Cli, Daemon};
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::upnp::{self, natpmpc, section, upnpc, upnpc_mapped};
use portcullis_e2e::web::{self, Api, PASSWORD};
use portcullis_e2e::{clients, poll};
use portcullis_e2e::{Config, Topology, LAN_CLIENT, ROUTER_LAN, ROUTER_WAN, WAN_HOST};
use serde_json::{json, Value};

/// The rule the owner types in: the LAN client may map 50000-50100, TCP and UDP.
const RULE_HOSTS: &str = "192.168.1.50/32";
const RULE_PORTS: &str = "50000-50100";
/// Mapped by NAT-PMP under the rule.
const PMP_PORT: u16 = 50000;
/// Asked for with UPnP in `ask` mode: outside the rule.
const ASK_PORT: u16 = 50200;

#[test]
fn owner_sees_revokes_and_approves_port_mappings_in_the_browser() {
    require("chromium");
    require("chromedriver");
    upnp::require_tools();
    assert_eq!(
        RULE_HOSTS,
        format!("{LAN_CLIENT}/32"),
        "the rule is for the LAN client"
    );
    let t = Topology::new();
    let cli = t.cli();
    let daemon = upnp::serve(&cli, &Config::new().upnp(&section("off", &[])));
    let up = web::wait_listening(&t.lan_client, SocketAddr::from((ROUTER_LAN, 80)));
    assert!(up, "web UI not listening\n{}", daemon.logs());
    // The password is set through the API; the browser logs in with it.
    let api = Api::setup(&t.lan_client, sa(ROUTER_LAN, 80));
    let _pmp_srv = Server::tcp(&t.lan_client, sa(LAN_CLIENT, PMP_PORT), "lanc:pmp");
    let _ask_srv = Server::tcp(&t.lan_client, sa(LAN_CLIENT, ASK_PORT), "lanc:ask");

    let result = with_browser(&t, |d| drive(&t, &cli, &daemon, &api, d));
    let mut daemon = daemon;
    let stopped = daemon.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    if let Err(p) = result {
        eprintln!("{}", daemon.logs());
        std::panic::resume_unwind(p);
    }
    stopped.unwrap();
}

fn drive(t: &Topology, cli: &Cli, daemon: &Daemon, api: &Api, d: &Driver) {
    let ui = format!("http://{ROUTER_LAN}/");
    d.goto(&ui);
    d.type_into("#login-password", PASSWORD);
    d.click("#login-submit");
    d.el("#summary");

    // Off: the page says so, the Off choice is selected, and NAT-PMP finds no gateway.
    d.click("a[href='#/upnp']");
    d.wait("#upnp-off", "off banner", |s| s.contains("find no gateway"));
    assert!(
        selected(d, "#upnp-mode-off"),
        "Off is not the selected mode"
    );
    d.el("#upnp-mappings-none");
    let probe = natpmpc(&t.lan_client, ROUTER_LAN, &[]);
    assert!(
        !probe.stdout.contains("Public IP address"),
        "NAT-PMP answered with UPnP off: {}",
        probe.story()
    );
    d.screenshot("upnp-01-off");

    // allow_list, then the rule for the LAN client.
    d.click("#upnp-mode-allow_list");
    d.click("#upnp-mode-submit");
    d.wait("#flash", "mode saved", |s| {
        s.contains("UPnP settings saved")
    });
    d.gone("#upnp-off");
    assert!(
        selected(d, "#upnp-mode-allow_list"),
        "allow_list not selected after the save"
    );
    d.wait("#upnp-rules-none", "no rules yet", |s| {
        s.contains("every request is refused")
    });
    d.type_into("#rule-hosts", RULE_HOSTS);
    d.type_into("#rule-external_ports", RULE_PORTS);
    d.screenshot("upnp-02-add-rule");
    d.click("#upnp-rule-submit");
    d.wait("#flash", "rule added", |s| s.contains("Rule added"));
    let (_, row) = d.wait("#upnp-rules tr[data-rule='0']", "the rule", |s| {
        // A /32 is shown (and saved) as the bare address.
        s.contains(&LAN_CLIENT.to_string()) && s.contains(RULE_PORTS)
    });
    assert!(row.contains("tcp+udp"), "{row}");

    // In force: the saved config has it, the API reports the servers listening, and
    // NAT-PMP answers the LAN client.
    let saved = saved_upnp(cli);
    assert_eq!(saved["mode"], "allow_list", "{saved}");
    let rules = saved["allow"].as_array().cloned().unwrap_or_default();
    assert_eq!(rules.len(), 1, "{saved}");
    assert!(
        [json!([RULE_HOSTS]), json!([LAN_CLIENT.to_string()])].contains(&rules[0]["hosts"]),
        "{saved}"
    );
    assert_eq!(rules[0]["external_ports"], json!(RULE_PORTS), "{saved}");
    assert!(
        rules[0]["protocol"].is_null() || rules[0]["protocol"] == "both",
        "{saved}"
    );
    let listening = poll::until_true(Duration::from_secs(10), || {
        upnp_state(api)["listening"] == json!(true)
    });
    assert!(
        listening,
        "not listening: {}\n{}",
        upnp_state(api),
        daemon.logs()
    );
    let answers = poll::until_true(Duration::from_secs(10), || {
        natpmpc(&t.lan_client, ROUTER_LAN, &[])
            .stdout
            .contains("Public IP address")
    });
    assert!(answers, "NAT-PMP never answered\n{}", daemon.logs());

    // A mapping by NAT-PMP from the LAN client: it works, and the page shows it by itself
    // (the live part refreshes every 5 s).
    let p = PMP_PORT.to_string();
    let got = natpmpc(&t.lan_client, ROUTER_LAN, &["-a", &p, &p, "tcp", "600"]);
    assert!(got.stdout.contains("Mapped public port"), "{}", got.story());
    assert_eq!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, PMP_PORT)).map(|p| p.label),
        Ok("lanc:pmp".to_owned()),
        "the mapping does not reach the LAN client"
    );
    let key = format!("tcp/{PMP_PORT}");
    let row = format!("#upnp-mappings tr[data-mapping='{key}']");
    d.wait(&row, "the NAT-PMP mapping", |s| {
        s.contains(&format!("tcp {PMP_PORT}"))
            && s.contains(&format!("{LAN_CLIENT}:{PMP_PORT}"))
            && s.contains("NAT-PMP")
    });
    let (_, left) = d.wait(
        &format!("{row} td[data-label='Time left']"),
        "time left",
        |s| minutes_left(s).is_some(),
    );
    let mins = minutes_left(&left).unwrap();
    assert!(
        (9..=10).contains(&mins),
        "time left {left:?} for a 600 s lease"
    );
    d.scroll_to(&row);
    d.screenshot("upnp-03-mapping");

    // The Exposure page lists it, with where it came from.
    d.click("a[href='#/exposure']");
    let (_, exp) = d.wait(
        &format!("#exposure-rows tr[data-name='{key}']"),
        "the mapping on the Exposure page",
        |s| s.contains("NAT-PMP") && s.contains(&format!("by {LAN_CLIENT}")),
    );
    assert!(
        exp.contains(&format!("{LAN_CLIENT}:{PMP_PORT}")) && exp.contains("anyone"),
        "{exp}"
    );
    d.wait("#summary", "summary", |s| s.contains("1 port open"));
    d.screenshot("upnp-04-exposure");

    // Revoke: gone from the page, the status and the kernel.
    d.click("a[href='#/upnp']");
    d.click(&format!("button[data-revoke='{key}']"));
    d.wait("#flash", "revoked", |s| {
        s.contains(&format!("Mapping tcp {PMP_PORT} revoked"))
    });
    d.gone(&row);
    d.scroll_to("#upnp-mappings-none");
    let status = cli.status(false);
    assert!(
        !status.stdout.contains(&format!("tcp {PMP_PORT} →")),
        "status still lists it:\n{}",
        status.stdout
    );
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, PMP_PORT)).is_err(),
        "the revoked mapping still reaches the LAN client"
    );
    d.screenshot("upnp-05-revoked");

    // Ask mode: a request outside the rule waits for the owner.
    d.click("#upnp-mode-ask");
    d.click("#upnp-mode-submit");
    d.wait("#flash", "mode saved", |s| {
        s.contains("UPnP settings saved")
    });
    assert!(
        selected(d, "#upnp-mode-ask"),
        "ask not selected after the save"
    );
    d.wait("#upnp-live", "empty queue", |s| {
        s.contains("Nothing is waiting")
    });
    let first = ask(t);
    assert!(
        !upnpc_mapped(&first),
        "granted before the owner said so: {}",
        first.story()
    );
    let pending = "#upnp-pending tbody tr";
    let (_, req) = d.wait(pending, "the request in the queue", |s| {
        s.contains(&LAN_CLIENT.to_string())
            && s.contains(&format!("tcp {ASK_PORT} → port {ASK_PORT}"))
    });
    assert!(req.contains("UPnP"), "{req}");
    d.scroll_to(pending);
    d.screenshot("upnp-06-pending");
    d.click(&format!("{pending} button[data-decide='once']"));
    d.wait("#flash", "approved", |s| s.contains("Approved once"));
    d.gone(pending);
    let retry = ask(t);
    assert!(upnpc_mapped(&retry), "{}\n{}", retry.story(), daemon.logs());
    assert_eq!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, ASK_PORT)).map(|p| p.label),
        Ok("lanc:ask".to_owned())
    );
    d.wait(
        &format!("#upnp-mappings tr[data-mapping='tcp/{ASK_PORT}']"),
        "the approved mapping",
        |s| s.contains("UPnP") && s.contains(&format!("{LAN_CLIENT}:{ASK_PORT}")),
    );
    d.scroll_to("#upnp-mappings");
    d.screenshot("upnp-07-approved");
}

/// True when the element (a radio button) is selected.
fn selected(d: &Driver, css: &str) -> bool {
    let id = d.el(css);
    d.call("GET", &format!("/element/{id}/selected"), None) == json!(true)
}

/// Minutes of a "9m 58s" / "10m 0s" time-left text.
fn minutes_left(s: &str) -> Option<u64> {
    let (m, rest) = s.trim().split_once("m ")?;
    rest.strip_suffix('s')?.parse::<u64>().ok()?;
    m.parse().ok()
}

/// The `upnp` section of the saved config file.
fn saved_upnp(cli: &Cli) -> Value {
    let text = std::fs::read_to_string(&cli.saved).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let cfg: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    cfg["upnp"].clone()
}

/// GET /api/v1/upnp.
fn upnp_state(api: &Api) -> Value {
    let (status, body) = api.call("GET", "/api/v1/upnp", "");
    assert_eq!(status, 200, "GET /api/v1/upnp: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// upnpc's AddPortMapping of [`ASK_PORT`] (TCP, to the LAN client itself).
fn ask(t: &Topology) -> upnp::Out {
    let p = ASK_PORT.to_string();
    let me = LAN_CLIENT.to_string();
    upnpc(
        &t.lan_client,
        &["-i", "-e", "ask", "-a", &me, &p, &p, "TCP", "600"],
    )
}
