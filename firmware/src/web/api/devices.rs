//! LAN devices and the `dhcp` section: the device list the owner merges from dnsmasq's
//! leases, the neighbour table and the reservations (`GET /api/v1/devices`), and the
//! section itself, replaced whole with `If-Match` (`GET`/`PUT`/`DELETE /api/v1/dhcp`).

use super::{busy, if_match, section_body, App, Call};
use crate::config::Dhcp;
use crate::daemon::{etag, Edit};
use crate::web::http::Response;

/// The `dhcp` section as a PUT body (`null`: no section); an error names the field
/// (`dhcp.reservations[0].mac`). An `etag` field (as the GET answer has) is ignored.
pub(super) fn parse_dhcp(body: &[u8]) -> Result<Option<Dhcp>, Response> {
    if body.trim_ascii() == b"null" {
        return Ok(None);
    }
    section_body("dhcp", body).map(|c| c.dhcp)
}

/// `GET /api/v1/devices`: `{"now": unix s, "devices": [...]}` (see `devices::Device`).
pub(super) fn devices_get(app: &App, _call: &Call<'_>) -> Response {
    match app.daemon.devices() {
        Ok(v) => Response::json(200, &v),
        Err(e) => busy(&e.to_string()),
    }
}

/// `GET /api/v1/dhcp`: `{"dhcp": section or null, "etag": …}`, the ETag also as a header.
pub(super) fn dhcp_get(app: &App, call: &Call<'_>) -> Response {
    let snap = match app.snapshot(call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    /// The answer; serialized as `etag` serializes the section (one copy in the binary).
    #[derive(serde::Serialize)]
    struct Answer<'a> {
        dhcp: &'a Option<Dhcp>,
        etag: &'a str,
    }
    let tag = etag(&snap.config.dhcp);
    Response::json(
        200,
        &Answer {
            dhcp: &snap.config.dhcp,
            etag: &tag,
        },
    )
    .header("ETag", &tag)
}

/// `PUT /api/v1/dhcp`: replaces the section (`null` removes it); `If-Match` required.
pub(super) fn dhcp_put(app: &App, call: &Call<'_>) -> Response {
    let tag = match if_match(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match parse_dhcp(&call.req.body) {
        Ok(dhcp) => put(app, call, tag, dhcp),
        Err(r) => r,
    }
}

/// `DELETE /api/v1/dhcp`: no DHCP server (DNS stays); `If-Match` required.
pub(super) fn dhcp_delete(app: &App, call: &Call<'_>) -> Response {
    match if_match(call) {
        Ok(tag) => put(app, call, tag, None),
        Err(r) => r,
    }
}

fn put(app: &App, call: &Call<'_>, tag: String, dhcp: Option<Dhcp>) -> Response {
    app.edit(
        call,
        Edit::Dhcp {
            if_match: Some(tag),
            dhcp: dhcp.map(Box::new),
        },
        String::new,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn field_of(r: &Response) -> String {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["issues"][0]["field"].as_str().unwrap_or("").to_string()
    }

    #[test]
    fn the_section_parses_and_errors_name_the_field() {
        let d = parse_dhcp(
            br#"{"etag":"\"x\"","start":"192.168.1.100","end":"192.168.1.200",
                "reservations":[{"name":"nas","mac":"AA:bb:cc:dd:ee:ff","address":"192.168.1.10"}]}"#,
        )
        .expect("parses")
        .expect("a section");
        assert_eq!(d.reservations[0].mac.to_string(), "aa:bb:cc:dd:ee:ff");
        assert_eq!(d.lease_secs, crate::config::DEFAULT_LEASE_SECS);
        assert_eq!(parse_dhcp(b" null\n").expect("null"), None);
        let bad = |b: &[u8]| {
            let r = parse_dhcp(b).expect_err("refused");
            assert_eq!(r.status, 422);
            field_of(&r)
        };
        assert_eq!(
            bad(br#"{"start":"192.168.1.100","end":"192.168.1.200","reservations":[{"name":"n","mac":"zz","address":"192.168.1.10"}]}"#),
            "dhcp.reservations[0].mac"
        );
        assert_eq!(bad(br#"{"start":"x","end":"192.168.1.200"}"#), "dhcp.start");
        assert!(
            bad(br#"{"start":"192.168.1.1","end":"192.168.1.2","pool":1}"#).starts_with("dhcp")
        );
        assert_eq!(parse_dhcp(b"[]").expect_err("not an object").status, 400);
        assert_eq!(parse_dhcp(b"\xff").expect_err("not JSON").status, 400);
    }
}
