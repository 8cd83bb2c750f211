//! Port mappings LAN devices make themselves (UPnP IGD, NAT-PMP, PCP), as the owner sees
//! and controls them: the config's `upnp` section (replaced whole, with `If-Match`, as one
//! [`Edit::Upnp`]), the live mappings (revoked one by one, per host or all), and the
//! approval queue of `ask` mode (each request approved once, always, or denied).
//!
//! The daemon's owner decides and installs; these handlers only send it one intent per
//! request and audit what the owner did. Everything a client wrote (descriptions) is data:
//! the UI sets it with `textContent`, the CLI strips control characters
//! ([`crate::status::render_mappings`]).

use std::net::Ipv4Addr;

use serde_json::{json, Value};

use super::{body_object, busy, if_match, invalid, issue, section_body, App, Call};
use crate::config::{PortRange, Timestamp, Upnp};
use crate::daemon::{chain, etag, Edit, EditError};
use crate::portmap::table::{Decision, Revoke};
use crate::portmap::{Mapping, Proto, Via};
use crate::web::http::Response;

/// How the UI and the exposure view name a protocol.
pub fn via_label(via: Via) -> &'static str {
    match via {
        Via::Upnp => "UPnP",
        Via::Natpmp => "NAT-PMP",
        Via::Pcp => "PCP",
    }
}

/// A mapping as the API shows it: its fields, without the PCP nonce (the client's secret
/// for renewing and deleting it), plus `secs_left` at `now`.
pub fn mapping_json(m: &Mapping, now: Timestamp) -> Value {
    let mut v = serde_json::to_value(m).unwrap_or(Value::Null);
    if let Value::Object(o) = &mut v {
        o.remove("nonce");
        o.insert("secs_left".into(), json!(m.secs_left(now)));
    }
    v
}

/// One exposure row per live mapping (`kind: "mapping"`), with the ports they open and
/// how many of them anyone may reach (a mapping without a remote host is open to anyone).
pub fn exposure_rows(mappings: &[Mapping], now: Timestamp) -> (Vec<Value>, u32, u32) {
    let mut anyone_ports = 0;
    let rows = mappings
        .iter()
        .map(|m| {
            let anyone = m.remote_host.is_none();
            if anyone {
                anyone_ports += 1;
            }
            let ranges: Vec<PortRange> = [m.external_port, m.internal_port]
                .into_iter()
                .filter_map(|p| PortRange::new(p, p).ok())
                .collect();
            json!({
                "kind": "mapping",
                "via": m.via,
                "provenance": via_label(m.via),
                "name": m.description,
                "host": m.client,
                "mac": m.mac,
                "state": "active",
                "protocol": m.proto,
                "external_port": m.external_port.to_string(),
                "destination": format!("{}:{}", m.client, m.internal_port),
                "allow_from": m.remote_host.map(|r| r.to_string()).into_iter().collect::<Vec<_>>(),
                "anyone": anyone,
                "hits": null,
                "last_hit": null,
                "remaining_secs": m.secs_left(now),
                "risk": super::risk(&ranges, anyone),
                "comment": m.description,
                "in_config": true,
            })
        })
        .collect::<Vec<_>>();
    let ports = u32::try_from(rows.len()).unwrap_or(u32::MAX);
    (rows, ports, anyone_ports)
}

/// The `upnp` section as a PUT body; an error names the field (`upnp.allow[1].hosts[0]`).
/// An `etag` field (as the GET answer carries next to it) is ignored.
pub(super) fn parse_upnp(body: &[u8]) -> Result<Upnp, Response> {
    section_body("upnp", body).map(|c| c.upnp)
}

/// The body of `POST /api/v1/upnp/revoke`: `{"host": "192.168.1.10"}` or `{"all": true}`.
pub(super) fn parse_revoke(body: &[u8]) -> Result<Revoke, Response> {
    let m = body_object(body)?;
    match (m.get("host"), m.get("all")) {
        (Some(Value::String(h)), None) => h
            .parse::<Ipv4Addr>()
            .map(|client| Revoke::Host { client })
            .map_err(|_| issue("host", "not an IPv4 address")),
        (None, Some(Value::Bool(true))) => Ok(Revoke::All),
        _ => Err(issue(
            "",
            "send {\"host\": \"<IPv4 address>\"} or {\"all\": true}",
        )),
    }
}

/// The body of a decision: `{"decision": "once"|"always"|"deny"}`.
pub(super) fn parse_decision(body: &[u8]) -> Result<Decision, Response> {
    let m = body_object(body)?;
    m.get("decision")
        .cloned()
        .and_then(|v| serde_json::from_value(v).ok())
        .ok_or_else(|| issue("decision", "one of \"once\", \"always\", \"deny\""))
}

/// `{proto}/{external_port}` of the mapping route, e.g. `tcp/50000`.
pub(super) fn parse_mapping_key(param: &str) -> Option<(Proto, u16)> {
    let (p, port) = param.split_once('/')?;
    let proto = match p {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        _ => return None,
    };
    let port = port.parse::<u16>().ok().filter(|&n| n != 0)?;
    Some((proto, port))
}

/// What the audit log says about removed mappings.
fn removed_detail(removed: &[Mapping]) -> String {
    let list: Vec<String> = removed
        .iter()
        .take(8)
        .map(|m| {
            format!(
                "{} {} → {}:{} ({})",
                m.proto.as_str(),
                m.external_port,
                m.client,
                m.internal_port,
                via_label(m.via)
            )
        })
        .collect();
    let more = removed.len().saturating_sub(list.len());
    let mut s = format!("{} removed", removed.len());
    if !list.is_empty() {
        s = format!("{s}: {}", list.join(", "));
    }
    if more > 0 {
        s = format!("{s} and {more} more");
    }
    s
}

/// `GET /api/v1/upnp`.
pub(super) fn upnp_get(app: &App, call: &Call<'_>) -> Response {
    let snap = match app.snapshot(call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let pm = &snap.portmap;
    let tag = etag(&snap.config.upnp);
    let mappings: Vec<Value> = pm
        .mappings
        .iter()
        .map(|m| mapping_json(m, call.now))
        .collect();
    Response::json(
        200,
        &json!({
            "upnp": snap.config.upnp,
            "etag": tag,
            "mappings": mappings,
            "pending": pm.pending,
            "external": pm.external,
            "listening": pm.listening,
            "listen_error": pm.listen_error,
        }),
    )
    .header("ETag", &tag)
}

/// `PUT /api/v1/upnp`: replaces the section; `If-Match` required.
pub(super) fn upnp_put(app: &App, call: &Call<'_>) -> Response {
    let tag = match if_match(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match parse_upnp(&call.req.body) {
        Ok(upnp) => app.edit(
            call,
            Edit::Upnp {
                if_match: Some(tag),
                upnp,
            },
            String::new,
        ),
        Err(r) => r,
    }
}

/// Sends a revoke to the owner and audits it.
fn revoke(app: &App, call: &Call<'_>, r: Revoke, target: &str) -> Result<Vec<Mapping>, Response> {
    match app.daemon.revoke(r) {
        Ok(Err(refused)) => {
            app.audit(call, "upnp.revoke", target, false, &refused.to_string());
            Err(Response::error(500, &refused.to_string()))
        }
        Ok(Ok(removed)) => {
            app.audit(
                call,
                "upnp.revoke",
                target,
                !removed.is_empty(),
                &removed_detail(&removed),
            );
            Ok(removed)
        }
        Err(e) => Err(busy(&e.to_string())),
    }
}

/// `DELETE /api/v1/upnp/mappings/{proto}/{external_port}`.
pub(super) fn mapping_delete(app: &App, call: &Call<'_>) -> Response {
    let Some((proto, external_port)) = parse_mapping_key(&call.param) else {
        return Response::error(404, "no such mapping (expected …/mappings/tcp|udp/PORT)");
    };
    let target = format!("{} {external_port}", proto.as_str());
    match revoke(
        app,
        call,
        Revoke::One {
            proto,
            external_port,
        },
        &target,
    ) {
        Ok(removed) if removed.is_empty() => Response::error(
            404,
            &format!(
                "no {} mapping on external port {external_port}",
                proto.as_str()
            ),
        ),
        Ok(removed) => Response::json(200, &json!({ "ok": true, "revoked": removed.len() })),
        Err(r) => r,
    }
}

/// `POST /api/v1/upnp/revoke`: every mapping of one host, or all.
pub(super) fn revoke_many(app: &App, call: &Call<'_>) -> Response {
    let r = match parse_revoke(&call.req.body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let target = match &r {
        Revoke::Host { client } => client.to_string(),
        _ => "all".to_string(),
    };
    match revoke(app, call, r, &target) {
        Ok(removed) => Response::json(200, &json!({ "revoked": removed.len() })),
        Err(resp) => resp,
    }
}

/// `POST /api/v1/upnp/pending/{id}`: the owner's answer to a waiting request.
pub(super) fn pending_decide(app: &App, call: &Call<'_>) -> Response {
    let Ok(id) = call.param.parse::<u64>() else {
        return Response::error(404, "no such request");
    };
    let decision = match parse_decision(&call.req.body) {
        Ok(d) => d,
        Err(r) => return r,
    };
    let action = match decision {
        Decision::Once => "upnp.approve_once",
        Decision::Always => "upnp.approve_always",
        Decision::Deny => "upnp.deny",
    };
    // Only to name the request in the audit log; the owner decides on its own queue.
    let target = app
        .snapshot(call.now)
        .ok()
        .and_then(|s| {
            s.portmap.pending.iter().find(|p| p.id == id).map(|p| {
                let ext = match p.external_port {
                    0 => "any port".to_string(),
                    n => n.to_string(),
                };
                format!(
                    "{} {} {ext} → :{} ({})",
                    p.client,
                    p.proto.as_str(),
                    p.internal_port,
                    via_label(p.via)
                )
            })
        })
        .unwrap_or_else(|| format!("request {id}"));
    match app.daemon.decide(id, decision) {
        Err(e) => busy(&e.to_string()),
        Ok(Err(e @ (EditError::NoSuchRequest(_) | EditError::NotFound { .. }))) => {
            Response::error(404, &e.to_string())
        }
        Ok(Err(EditError::Invalid(report))) => {
            app.audit(call, action, &target, false, "refused by validation");
            invalid(&report)
        }
        Ok(Err(e)) => {
            let msg = chain(&e);
            app.audit(call, action, &target, false, &msg);
            Response::error(500, &msg)
        }
        Ok(Ok(rule)) => {
            let detail = rule
                .as_ref()
                .map(|r| {
                    format!(
                        "rule added: {}",
                        serde_json::to_string(r).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            app.audit(call, action, &target, true, &detail);
            Response::json(200, &json!({ "ok": true, "rule": rule }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpnpMode;

    fn mapping(via: Via, remote: Option<Ipv4Addr>) -> Mapping {
        Mapping {
            via,
            client: Ipv4Addr::new(192, 168, 1, 10),
            mac: "aa:bb:cc:dd:ee:ff".parse().ok(),
            proto: Proto::Tcp,
            external_port: 50000,
            internal_port: 3389,
            remote_host: remote,
            description: "game".into(),
            nonce: Some([7; 12]),
            created_at: Timestamp(1000),
            expires_at: Timestamp(1600),
        }
    }

    #[test]
    fn mappings_show_time_left_but_never_the_pcp_nonce() {
        let v = mapping_json(&mapping(Via::Pcp, None), Timestamp(1002));
        assert_eq!(v["secs_left"], 598);
        assert_eq!(v["via"], "pcp");
        assert_eq!(v["mac"], "aa:bb:cc:dd:ee:ff");
        assert!(v.get("nonce").is_none(), "{v}");
        assert_eq!(
            mapping_json(&mapping(Via::Pcp, None), Timestamp(9999))["secs_left"],
            0
        );
    }

    #[test]
    fn exposure_counts_mappings_and_who_may_reach_them() {
        let ms = [
            mapping(Via::Upnp, None),
            mapping(Via::Natpmp, Some(Ipv4Addr::new(203, 0, 113, 7))),
        ];
        let (rows, ports, anyone) = exposure_rows(&ms, Timestamp(1000));
        assert_eq!((ports, anyone), (2, 1));
        assert_eq!(rows[0]["provenance"], "UPnP");
        assert_eq!(rows[0]["destination"], "192.168.1.10:3389");
        assert_eq!(rows[0]["anyone"], true);
        assert_eq!(rows[0]["remaining_secs"], 600);
        // The internal port is Remote Desktop: open to anyone, that is a risk.
        assert!(rows[0]["risk"]
            .as_str()
            .unwrap_or("")
            .contains("Remote Desktop"));
        assert_eq!(rows[1]["provenance"], "NAT-PMP");
        assert_eq!(rows[1]["anyone"], false);
        assert_eq!(rows[1]["allow_from"][0], "203.0.113.7");
        assert!(rows[1]["risk"].is_null());
    }

    #[test]
    fn the_section_parses_and_errors_name_the_field() {
        let u = parse_upnp(
            br#"{"mode":"ask","etag":"\"x\"","allow":[{"hosts":["192.168.1.0/24"],"external_ports":"50000-50100"}]}"#,
        )
        .expect("parses");
        assert_eq!(u.mode, UpnpMode::Ask);
        assert_eq!(u.allow.len(), 1);
        let bad = |b: &[u8]| {
            let r = parse_upnp(b).expect_err("refused");
            assert_eq!(r.status, 422);
            let v: Value = serde_json::from_slice(&r.body).expect("json");
            v["issues"][0]["field"].as_str().unwrap_or("").to_string()
        };
        assert_eq!(
            bad(br#"{"allow":[{"external_ports":"1-2"},{"hosts":["nope"],"external_ports":"5"}]}"#),
            "upnp.allow[1].hosts[0]"
        );
        assert_eq!(bad(br#"{"mode":"sometimes"}"#), "upnp.mode");
        assert_eq!(bad(br#"{"mdoe":"ask"}"#), "upnp.mdoe");
        assert_eq!(bad(br#"{"max_lease_secs":-1}"#), "upnp.max_lease_secs");
        assert_eq!(parse_upnp(b"[]").expect_err("not an object").status, 400);
    }

    #[test]
    fn revoke_and_decision_bodies() {
        assert!(matches!(
            parse_revoke(br#"{"host":"192.168.1.10"}"#),
            Ok(Revoke::Host { client }) if client == Ipv4Addr::new(192, 168, 1, 10)
        ));
        assert!(matches!(parse_revoke(br#"{"all":true}"#), Ok(Revoke::All)));
        for bad in [
            &br#"{"all":false}"#[..],
            br#"{"host":"x"}"#,
            br#"{"host":"192.168.1.10","all":true}"#,
            b"{}",
        ] {
            assert!(parse_revoke(bad).is_err());
        }
        assert!(matches!(
            parse_decision(br#"{"decision":"always"}"#),
            Ok(Decision::Always)
        ));
        assert!(parse_decision(br#"{"decision":"Always"}"#).is_err());
        assert!(parse_decision(b"{}").is_err());
    }

    #[test]
    fn mapping_keys() {
        assert_eq!(parse_mapping_key("tcp/50000"), Some((Proto::Tcp, 50000)));
        assert_eq!(parse_mapping_key("udp/1"), Some((Proto::Udp, 1)));
        for bad in ["tcp/0", "icmp/5", "tcp/70000", "tcp", "tcp/5/6", "TCP/5"] {
            assert_eq!(parse_mapping_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn audit_detail_is_bounded() {
        let many: Vec<Mapping> = (0..20).map(|_| mapping(Via::Upnp, None)).collect();
        let d = removed_detail(&many);
        assert!(d.starts_with("20 removed: tcp 50000"), "{d}");
        assert!(d.ends_with("and 12 more"), "{d}");
        assert_eq!(removed_detail(&[]), "0 removed");
    }
}
