//! Attacks on the port-mapping feature found by the issue 8 review. Each test failed on
//! the code as reviewed and passes since its fix; with the `attack_*` unit tests they
//! keep the fixes in place.
//!
//! Needs root, `make deps` (miniupnpc, natpmpc, nmap) and the `portcullis` binary.

use std::net::SocketAddrV4;
use std::time::Duration;

use portcullis_e2e::cli::Daemon;
use portcullis_e2e::netns;
use portcullis_e2e::pcp_client::{self, natpmp_map, PmpResponse};
use portcullis_e2e::servers::sa;
use portcullis_e2e::upnp::{self, section, RULE_LAN_HOST};
use portcullis_e2e::web::Api;
use portcullis_e2e::{Config, Topology, LAN_HOST, ROUTER_LAN};
use serde_json::Value;

fn allow_list(t: &Topology) -> Daemon {
    upnp::require_tools();
    let cli = t.cli();
    let daemon = upnp::serve(
        &cli,
        &Config::new().upnp(&section("allow_list", &[RULE_LAN_HOST])),
    );
    upnp::pmp_ready(t, &daemon);
    daemon
}

/// A body as sent, or with its chunked transfer coding removed (the API streams large
/// answers chunked; `Api::call` hands back the raw body).
fn dechunk(body: &str) -> String {
    let looks_chunked = body
        .split("\r\n")
        .next()
        .is_some_and(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_hexdigit()));
    if !looks_chunked {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// GET `path` as JSON.
fn get_json(api: &Api, path: &str) -> Value {
    let (status, body) = api.call("GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    let body = dechunk(&body);
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// The audit entries (newest first) from GET /api/v1/log.
fn audit(api: &Api) -> Vec<Value> {
    let v = get_json(api, "/api/v1/log");
    v["audit"].as_array().cloned().unwrap_or_default()
}

/// One LAN host maps and unmaps one allowed port with NAT-PMP, 200 times (a second or two
/// at the server's own rate limit of 200 requests a second). Created and closed mappings
/// are "always logged" and share the 300-entry audit ring with the owner's changes, so the
/// churn pushes every earlier entry — here the first-boot setup — out of the log. The audit
/// module promises that floods from the LAN (failed logins) never push a change out; a
/// mapping churn does. (Each of those 400 requests also rewrites `leases.json`: 400 flash
/// writes from one LAN program.)
#[test]
fn attack_natpmp_churn_does_not_push_the_owners_entries_out_of_the_audit_log() {
    let t = Topology::new();
    let daemon = allow_list(&t);
    let api = Api::setup(&t.lan, sa(ROUTER_LAN, 80));
    let before = audit(&api);
    assert!(
        before.iter().any(|e| e["action"] == "setup"),
        "no setup entry to begin with: {before:?}"
    );

    let dst = SocketAddrV4::new(ROUTER_LAN, pcp_client::PORT);
    let granted = netns::run_in(&t.lan, || {
        let s = pcp_client::socket_here(LAN_HOST, Duration::from_secs(2));
        let mut granted = 0u32;
        for _ in 0..200 {
            let map = pcp_client::exchange(&s, dst, &natpmp_map(false, 50005, 50005, 60));
            if map
                .and_then(|b| PmpResponse::parse(&b).ok())
                .is_some_and(|r| r.result == 0 && r.lifetime > 0)
            {
                granted += 1;
            }
            let _ = pcp_client::exchange(&s, dst, &natpmp_map(false, 50005, 50005, 0));
        }
        granted
    });
    assert!(
        granted > 100,
        "only {granted} of 200 maps granted\n{}",
        daemon.logs()
    );

    let after = audit(&api);
    let churn = after
        .iter()
        .filter(|e| e["action"].as_str().is_some_and(|a| a.starts_with("upnp.")))
        .count();
    assert!(
        after.iter().any(|e| e["action"] == "setup"),
        "one LAN host's {granted} map/unmap cycles pushed the owner's setup entry out of \
         the audit log ({churn} of its {} entries are upnp.*)",
        after.len()
    );
}

/// `leases.json` is trusted as it is read back: a lease that runs ten years (a clock that
/// ran ahead when it was saved, or a damaged file), one for the router's own LAN address
/// and one for the LAN broadcast address are all restored and installed, although the
/// policy clamps leases to `max_lease_secs` (a day) and a forward may point at neither
/// address. The start-up reconcile checks rules and claims only.
#[test]
fn attack_restored_leases_are_clamped_and_never_target_the_router_or_broadcast() {
    upnp::require_tools();
    let t = Topology::new();
    let cli = t.cli();
    let now = portcullis_e2e::time::unix_now();
    let at = |secs: u64| portcullis_e2e::time::rfc3339(secs);
    let lease = |client: &str, port: u16, internal: u16, expires: u64| {
        format!(
            r#""tcp/{port:05}": {{"via": "upnp", "client": "{client}", "proto": "tcp",
            "external_port": {port}, "internal_port": {internal},
            "created_at": "{}", "expires_at": "{}"}}"#,
            at(now),
            at(expires)
        )
    };
    let leases = format!(
        r#"{{"mappings": {{ {}, {}, {} }}, "approved": []}}"#,
        lease("192.168.1.10", 50021, 50021, now + 10 * 365 * 86_400),
        lease("192.168.1.1", 50020, 80, now + 600),
        lease("192.168.1.255", 50022, 50022, now + 600),
    );
    cli.write("leases.json", &leases);
    let wide =
        r#"{"hosts": ["192.168.1.0/24"], "external_ports": "50000-50100", "protocol": "both"}"#;
    let daemon = upnp::serve(&cli, &Config::new().upnp(&section("allow_list", &[wide])));
    let status = cli.status(false).stdout;
    let ruleset = portcullis_e2e::nft::list_table(&t.router).unwrap_or_default();
    let mut wrong = Vec::new();
    for line in status.lines().filter(|l| l.contains(" → ")) {
        if line.contains("→ 192.168.1.1:") || line.contains("→ 192.168.1.255:") {
            wrong.push(format!("restored a mapping to a non-host: {line}"));
        }
        // Clamped to the maximum, a day, it prints as exactly "1d".
        let left = line.split("expires in ").nth(1).unwrap_or("").trim();
        if left.contains('d') && left != "1d" {
            wrong.push(format!("restored a lease longer than a day: {line}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\n--- status ---\n{status}\n--- ruleset (excerpt) ---\n{}\n{}",
        wrong.join("\n"),
        ruleset
            .lines()
            .filter(|l| l.contains("5002"))
            .collect::<Vec<_>>()
            .join("\n"),
        daemon.logs()
    );
}

/// Every map, refresh and delete rewrites the whole `leases.json` (pretty-printed, about
/// 280 bytes a mapping, so 1.1 MiB with 4,096 of them) next to the config: on a router,
/// flash. Nothing throttles it: a client renewing one mapping in a loop (NAT-PMP allows
/// 200 requests a second per host) makes the router rewrite the file as fast as it can.
/// Measured in the lab with 4,096 mappings from 70 addresses: 2.6 GB written while they
/// were made, then 8 MB/s during a refresh loop from 8 addresses. A refresh only moves an
/// expiry the kernel already holds; it need not hit the flash each time.
#[test]
fn attack_renewing_one_mapping_in_a_loop_does_not_rewrite_leases_json_each_time() {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    let t = Topology::new();
    let daemon = allow_list(&t);
    let dst = SocketAddrV4::new(ROUTER_LAN, pcp_client::PORT);
    let renew = |n: usize| {
        netns::run_in(&t.lan, || {
            let s = pcp_client::socket_here(LAN_HOST, Duration::from_secs(2));
            (0..n)
                .filter(|_| {
                    pcp_client::exchange(&s, dst, &natpmp_map(false, 50007, 50007, 3600))
                        .and_then(|b| PmpResponse::parse(&b).ok())
                        .is_some_and(|r| r.result == 0)
                })
                .count()
        })
    };
    assert_eq!(renew(1), 1, "first map\n{}", daemon.logs());
    let ino = Inotify::init(InitFlags::IN_NONBLOCK).expect("inotify");
    ino.add_watch(
        &t.cli().dir,
        AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE,
    )
    .expect("watch the state dir");
    let granted = renew(100);
    assert!(granted >= 90, "{granted} of 100 renewals granted");
    let mut saves = 0;
    while let Ok(events) = ino.read_events() {
        if events.is_empty() {
            break;
        }
        saves += events
            .iter()
            .filter(|e| {
                e.mask.contains(AddWatchFlags::IN_MOVED_TO)
                    && e.name.as_deref().is_some_and(|n| n == "leases.json")
            })
            .count();
    }
    assert!(
        saves <= 10,
        "{granted} renewals of one mapping rewrote leases.json {saves} times"
    );
}
