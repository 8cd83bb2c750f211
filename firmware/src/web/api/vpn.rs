//! The WireGuard client tunnel as the owner sees and controls it (issue 9): the `vpn`
//! section (replaced whole with `If-Match`, or removed with the key), the import of the
//! provider's wg-quick file, and the live state ([`VpnView`]).
//!
//! The private and preshared keys go from an import body straight into the one
//! [`Edit::Vpn`] that stores them (`vpn.key`, 0600): no answer, audit line or log message
//! carries them. The API shows only the public key the kernel derives (`state.public_key`).

use serde_json::{json, Value};

use super::{body_object, if_match, issue, section_body, App, Call};
use crate::config::{PortRange, Vpn};
use crate::daemon::{etag, Edit};
use crate::vpn::conf::{self, ConfError};
use crate::vpn::view::VpnView;
use crate::web::http::Response;

/// The `vpn` section as a PUT body; an error names the field (`vpn.devices.hosts[0]`).
/// An `etag` field (as the GET answer carries next to it) is ignored.
pub(super) fn parse_vpn(body: &[u8]) -> Result<Vpn, Response> {
    section_body("vpn", body)?
        .vpn
        .ok_or_else(|| issue("vpn", "required (the section)"))
}

/// The `conf` string of an import body (`{"conf": "<the .conf text>"}`).
pub(super) fn parse_import(body: &[u8]) -> Result<String, Response> {
    let m = body_object(body)?;
    match m.get("conf") {
        Some(Value::String(s)) if s.len() <= conf::MAX_LEN => Ok(s.clone()),
        Some(Value::String(_)) => Err(conf_error(&ConfError {
            line: 0,
            key: String::new(),
            reason: "the file is larger than 64 KiB".into(),
        })),
        _ => Err(issue(
            "conf",
            "required (the provider's .conf file as text)",
        )),
    }
}

/// Where a refused file went wrong, as an issue's field: `conf:3:PrivateKey`, `conf:3`,
/// `conf:PublicKey` (a missing key: line 0), or `conf`.
fn conf_field(e: &ConfError) -> String {
    match (e.line, e.key.is_empty()) {
        (0, true) => "conf".into(),
        (0, false) => format!("conf:{}", e.key),
        (n, true) => format!("conf:{n}"),
        (n, false) => format!("conf:{n}:{}", e.key),
    }
}

/// 400 for a refused file: the issue names line and key; `line` and `key` are also given
/// apart for the UI. The parser's reasons never quote a key's value.
fn conf_error(e: &ConfError) -> Response {
    Response::json(
        400,
        &json!({
            "error": format!("the file was refused: {e}"),
            "line": e.line,
            "key": e.key,
            "issues": [{ "severity": "error", "field": conf_field(e), "message": e.reason }],
        }),
    )
}

/// The exposure row of the port the provider forwards (`kind: "vpn"`), when one is held:
/// reachable by anyone who reaches the provider's exit address, through the tunnel only.
pub fn exposure_row(v: &VpnView) -> Option<Value> {
    let pf = v.port_forward.as_ref()?;
    let port = pf.port?;
    let to_port = pf
        .to
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse::<u16>().ok());
    let ranges: Vec<PortRange> = [Some(port), to_port]
        .into_iter()
        .flatten()
        .filter_map(|p| PortRange::new(p, p).ok())
        .collect();
    let host = pf.to.split(':').next().unwrap_or_default();
    Some(json!({
        "kind": "vpn",
        "via": "vpn",
        "provenance": "VPN provider",
        "name": v.interface,
        "host": host,
        "state": "active",
        "protocol": "both",
        "external_port": port.to_string(),
        "destination": pf.to,
        "allow_from": [],
        "anyone": true,
        "hits": null,
        "last_hit": null,
        "remaining_secs": pf.expires_in_secs,
        "risk": super::risk(&ranges, true),
        "comment": format!("forwarded by the VPN provider through {}", v.interface),
        "in_config": true,
    }))
}

/// `GET /api/v1/vpn`: the section, its ETag and the live state, from one snapshot, with
/// the router's clock (`now_unix`, seconds) to age `state.last_handshake_unix` by.
pub(super) fn vpn_get(app: &App, call: &Call<'_>) -> Response {
    let snap = match app.snapshot(call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tag = etag(&snap.config.vpn);
    Response::json(
        200,
        &json!({
            "vpn": snap.config.vpn,
            "etag": tag,
            "state": snap.vpn,
            "now_unix": call.now.0,
        }),
    )
    .header("ETag", &tag)
    .header("Cache-Control", "no-store")
}

/// `PUT /api/v1/vpn`: replaces the section (the key stays); `If-Match` required.
pub(super) fn vpn_put(app: &App, call: &Call<'_>) -> Response {
    let tag = match if_match(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match parse_vpn(&call.req.body) {
        Ok(vpn) => app.edit(
            call,
            Edit::Vpn {
                if_match: Some(tag),
                vpn: Some(Box::new(vpn)),
                secrets: None,
            },
            String::new,
        ),
        Err(r) => r,
    }
}

/// `DELETE /api/v1/vpn`: removes the tunnel and its key; `If-Match` required.
pub(super) fn vpn_delete(app: &App, call: &Call<'_>) -> Response {
    match if_match(call) {
        Ok(tag) => app.edit(
            call,
            Edit::Vpn {
                if_match: Some(tag),
                vpn: None,
                secrets: None,
            },
            String::new,
        ),
        Err(r) => r,
    }
}

/// `POST /api/v1/vpn/import`: the provider's file. Its part replaces the tunnel's (the
/// owner's choices in force are kept), its keys are stored; the answer adds the parser's
/// `notes`.
pub(super) fn vpn_import(app: &App, call: &Call<'_>) -> Response {
    let text = match parse_import(&call.req.body) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let imported = match conf::parse(&text, &conf::NO_RESOLVER) {
        Ok(i) => i,
        Err(e) => return conf_error(&e),
    };
    let old = match app.snapshot(call.now) {
        Ok(s) => s.config.vpn,
        Err(r) => return r,
    };
    let vpn = conf::merge(old.as_ref(), imported.vpn);
    let r = app.edit(
        call,
        Edit::Vpn {
            if_match: None,
            vpn: Some(Box::new(vpn)),
            secrets: Some(imported.secrets),
        },
        String::new,
    );
    if r.status != 200 {
        return r;
    }
    let mut body = crate::store::json::<Value>(&r.body).unwrap_or_else(|_| json!({}));
    if let Value::Object(o) = &mut body {
        o.insert("notes".into(), json!(imported.notes));
    }
    Response {
        body: serde_json::to_vec(&body).unwrap_or_default(),
        ..r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vpn::key::Key;
    use crate::vpn::view::{view, PortForwardView};

    fn field_of(r: &Response) -> String {
        let v: Value = serde_json::from_slice(&r.body).expect("json");
        v["issues"][0]["field"].as_str().unwrap_or("").to_string()
    }

    fn file(private: &str) -> String {
        format!(
            "[Interface]\nAddress = 10.2.0.2/32\nPrivateKey = {private}\nDNS = 10.2.0.1\n\n\
             [Peer]\nPublicKey = {}\nEndpoint = 198.51.100.7:51820\nAllowedIPs = 0.0.0.0/0\n",
            Key([9; 32]).to_base64()
        )
    }

    #[test]
    fn the_section_parses_and_errors_name_the_field() {
        let body = br#"{"etag":"\"x\"","enabled":true,"addresses":["10.2.0.2/32"],
            "peer":{"public_key":"k","endpoint":"198.51.100.7:51820","allowed_ips":["0.0.0.0/0"]},
            "devices":{"all":false,"hosts":["192.168.1.10/32"]},"kill_switch":false,
            "port_forward":{"to":"192.168.1.10","to_port":8080}}"#;
        let v = parse_vpn(body).expect("parses");
        assert!(!v.devices.all && !v.kill_switch);
        assert_eq!(v.devices.hosts.len(), 1);
        assert_eq!(v.port_forward.map(|p| p.to_port), Some(Some(8080)));
        let bad = |b: &[u8]| {
            let r = parse_vpn(b).expect_err("refused");
            assert_eq!(r.status, 422);
            field_of(&r)
        };
        let peer = r#""peer":{"public_key":"k","endpoint":"198.51.100.7:51820","allowed_ips":[]}"#;
        assert_eq!(
            bad(format!(r#"{{{peer},"devices":{{"all":false,"hosts":["nope"]}}}}"#).as_bytes()),
            "vpn.devices.hosts[0]"
        );
        assert_eq!(
            bad(format!(r#"{{{peer},"kill_switch":"yes"}}"#).as_bytes()),
            "vpn.kill_switch"
        );
        assert_eq!(
            bad(format!(r#"{{{peer},"port_forward":{{"to":"x"}}}}"#).as_bytes()),
            "vpn.port_forward.to"
        );
        assert!(bad(format!(r#"{{{peer},"private_key":"k"}}"#).as_bytes()).starts_with("vpn"));
        assert_eq!(parse_vpn(b"[]").expect_err("not an object").status, 400);
    }

    #[test]
    fn a_refused_file_names_line_and_key_but_never_the_value() {
        let secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA";
        let e = conf::parse(&file(secret), &|_, _| None).expect_err("refused");
        let r = conf_error(&e);
        assert_eq!(r.status, 400);
        assert_eq!(field_of(&r), "conf:3:PrivateKey");
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains(secret), "{body}");
        assert!(body.contains("\"line\":3"), "{body}");
        let missing = ConfError {
            line: 0,
            key: "PublicKey".into(),
            reason: "missing".into(),
        };
        assert_eq!(conf_field(&missing), "conf:PublicKey");
        assert_eq!(
            conf_field(&ConfError {
                line: 4,
                key: String::new(),
                reason: String::new()
            }),
            "conf:4"
        );
        // A good file parses with the resolver unused (the Endpoint is an address).
        let ok = conf::parse(&file(&Key([7; 32]).to_base64()), &conf::NO_RESOLVER).expect("parses");
        assert_eq!(ok.secrets.private_key, Key([7; 32]));
    }

    #[test]
    fn import_bodies() {
        assert_eq!(parse_import(br#"{"conf":"x"}"#).ok().as_deref(), Some("x"));
        assert_eq!(field_of(&parse_import(b"{}").expect_err("no conf")), "conf");
        assert_eq!(
            field_of(&parse_import(br#"{"conf":5}"#).expect_err("number")),
            "conf"
        );
        let big = format!(r#"{{"conf":"{}"}}"#, "#".repeat(conf::MAX_LEN + 1));
        let r = parse_import(big.as_bytes()).expect_err("too large");
        assert_eq!((r.status, field_of(&r)), (400, "conf".to_string()));
    }

    #[test]
    fn the_provider_port_is_an_exposure_row_only_while_held() {
        let imported =
            conf::parse(&file(&Key([7; 32]).to_base64()), &conf::NO_RESOLVER).expect("parses");
        let pf = |port: Option<u16>| PortForwardView {
            port,
            to: "192.168.1.10:3389".into(),
            health: "ok".into(),
            expires_in_secs: Some(42),
        };
        let v = |p| {
            view(
                &imported.vpn,
                None,
                Some(pf(p)),
                &Default::default(),
                true,
                None,
                0,
            )
        };
        assert!(exposure_row(&v(None)).is_none());
        let mut none = v(None);
        none.port_forward = None;
        assert!(exposure_row(&none).is_none());
        let row = exposure_row(&v(Some(51413))).expect("a row");
        assert_eq!(row["kind"], "vpn");
        assert_eq!(row["provenance"], "VPN provider");
        assert_eq!(row["external_port"], "51413");
        assert_eq!(row["destination"], "192.168.1.10:3389");
        assert_eq!(row["host"], "192.168.1.10");
        assert_eq!(row["anyone"], true);
        assert_eq!(row["remaining_secs"], 42);
        assert!(row["risk"]
            .as_str()
            .unwrap_or("")
            .contains("Remote Desktop"));
    }
}
