//! Read-only views: Exposure (everything reachable from the internet now: forwards, open
//! triggers, the port mappings LAN devices made and the port the VPN provider forwards), the log, and the system page. Each is
//! built from one daemon snapshot; config and kernel state are paired by name, never by
//! position.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{App, Call};
use crate::config::{covers_everything, Forward, Ipv4Net, PortRange, Trigger};
use crate::status::{ForwardState, TriggerState};
use crate::web::auth;
use crate::web::http::Response;

/// Services that are attacked constantly when open to anyone (the same list the
/// port-mapping policy refuses unless named).
use crate::portmap::policy::RISKY_PORTS as RISKY;

/// The warnings for port ranges reachable by `anyone` (or always, for clear-text logins),
/// one per risky service in the ranges, joined with "; ".
pub fn risk(ranges: &[PortRange], anyone: bool) -> Option<String> {
    let mut found: Vec<String> = Vec::new();
    for &(port, what) in RISKY {
        if !ranges.iter().any(|r| r.contains(port)) {
            continue;
        }
        if port == 21 || port == 23 {
            found.push(format!("{what} ({port}) sends passwords in clear text"));
        } else if anyone {
            found.push(format!(
                "{what} ({port}) open to anyone: a constant target of attacks; add an allow-list"
            ));
        }
    }
    (!found.is_empty()).then(|| found.join("; "))
}

/// Counts the ports of a range as status prints it (`8080`, `8000-8010`); 1 if unparsable.
fn port_count(text: &str) -> u32 {
    text.parse::<PortRange>().map_or(1, |r| r.count())
}

pub(super) fn exposure(app: &App, call: &Call<'_>) -> Response {
    let snap = match app.snapshot(call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let st = match &snap.status {
        Ok(s) => s,
        Err(e) => {
            return Response::json(
                500,
                &json!({
                    "error": format!("the firewall table could not be read: {e}"),
                    "health": snap.health,
                }),
            )
        }
    };
    let hits = app
        .hits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let forwards: HashMap<&str, &Forward> = snap
        .config
        .forwards
        .iter()
        .map(|f| (f.name.as_str(), f))
        .collect();
    let triggers: HashMap<&str, &Trigger> = snap
        .config
        .triggers
        .iter()
        .map(|t| (t.name.as_str(), t))
        .collect();
    let mut rows: Vec<Value> = Vec::new();
    let (mut ports, mut anyone_ports) = (0u32, 0u32);
    for s in &st.forwards {
        let f = forwards.get(s.name.as_str()).copied();
        // A row the kernel holds but the config does not know is always shown: nothing
        // that may pass traffic is hidden.
        if f.is_some() && matches!(s.state, ForwardState::Disabled | ForwardState::Expired) {
            continue;
        }
        let (nets, parsed_all) = match f {
            Some(f) => (f.allow_from.clone(), true),
            None => {
                let nets: Vec<Ipv4Net> =
                    s.allow_from.iter().filter_map(|a| a.parse().ok()).collect();
                let all = nets.len() == s.allow_from.len();
                (nets, all)
            }
        };
        // An allow-list that cannot be read is shown as the worst case.
        let anyone = nets.is_empty() || !parsed_all || covers_everything(&nets);
        let count = f.map_or_else(|| port_count(&s.external_port), |f| f.external_port.count());
        if s.state != ForwardState::NotInstalled {
            ports += count;
            if anyone {
                anyone_ports += count;
            }
        }
        let ranges: Vec<PortRange> = match f {
            Some(f) => vec![f.external_port, f.internal_range()],
            None => s.external_port.parse().into_iter().collect(),
        };
        rows.push(json!({
            "kind": "forward",
            "name": s.name,
            "state": s.state,
            "protocol": s.protocol,
            "external_port": s.external_port,
            "destination": s.destination,
            "allow_from": s.allow_from,
            "anyone": anyone,
            "hits": s.hits_packets,
            "last_hit": hits.last_hit("forward", &s.name),
            "remaining_secs": s.remaining_secs,
            "risk": risk(&ranges, anyone),
            "comment": f.map(|f| f.comment.as_str()).unwrap_or(""),
            "in_config": f.is_some(),
        }));
    }
    let mut armed = 0;
    for s in &st.triggers {
        let t = triggers.get(s.name.as_str()).copied();
        match s.state {
            TriggerState::Open => {}
            // Disabled or removed in the config but the kernel still holds a host: open.
            TriggerState::StillInstalled | TriggerState::NotInConfig if s.host.is_some() => {}
            TriggerState::Armed => {
                armed += 1;
                continue;
            }
            _ => continue,
        }
        let count = t.map_or_else(|| port_count(&s.open_port), |t| t.open_port.count());
        ports += count;
        anyone_ports += count;
        let ranges: Vec<PortRange> = match t {
            Some(t) => vec![t.open_port],
            None => s.open_port.parse().into_iter().collect(),
        };
        rows.push(json!({
            "kind": "trigger",
            "name": s.name,
            "state": s.state,
            "protocol": s.open_protocol,
            "external_port": s.open_port,
            "destination": s.host.map(|h| h.to_string()).unwrap_or_default(),
            "allow_from": [],
            "anyone": true,
            "hits": s.hits_packets,
            "last_hit": hits.last_hit("trigger", &s.name),
            "remaining_secs": s.remaining_secs,
            "risk": risk(&ranges, true),
            "comment": t.map(|t| t.comment.as_str()).unwrap_or(""),
            "in_config": t.is_some(),
        }));
    }
    let portmap = &snap.portmap;
    let (mapping_rows, mapped, mapped_anyone) =
        super::upnp::exposure_rows(&portmap.mappings, call.now);
    rows.extend(mapping_rows);
    ports += mapped;
    anyone_ports += mapped_anyone;
    // The port the VPN provider forwards to a LAN host: open to anyone who reaches the
    // provider's exit address (it arrives through the tunnel only).
    if let Some(row) = snap.vpn.as_ref().and_then(super::vpn::exposure_row) {
        rows.push(row);
        ports += 1;
        anyone_ports += 1;
    }
    let summary = summary(ports, anyone_ports, mapped);
    Response::json(
        200,
        &json!({
            "summary": summary,
            "open_ports": ports,
            "open_to_anyone": anyone_ports,
            "armed_triggers": armed,
            "mapped_ports": mapped,
            "external": portmap.external,
            "table_present": st.table_present,
            "health": snap.health,
            "taken_at": snap.taken_at,
            "rows": rows,
        }),
    )
}

/// The one-line summary: ports open, to anyone, and how many of them LAN devices mapped.
fn summary(ports: u32, anyone_ports: u32, mapped: u32) -> String {
    if ports == 0 {
        return "Nothing is open to the internet.".to_string();
    }
    let plural = if ports == 1 { "port" } else { "ports" };
    let mut s = format!("{ports} {plural} open to the internet, {anyone_ports} to anyone");
    if mapped > 0 {
        s.push_str(&format!(
            " ({mapped} mapped by LAN devices with UPnP, NAT-PMP or PCP)"
        ));
    }
    s
}

pub(super) fn log(app: &App, call: &Call<'_>) -> Response {
    // Reading status refreshes the hit log; the log is shown even if the daemon is busy.
    let _ = app.snapshot(call.now);
    let hits = app
        .hits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .newest_first();
    let audit = app
        .audit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .newest_first();
    Response::json(200, &json!({ "hits": hits, "audit": audit }))
}

pub(super) fn system(app: &App, call: &Call<'_>) -> Response {
    let snap = match app.snapshot(call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    Response::json(
        200,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "trial": snap.trial,
            "health": snap.health,
            "password_rules": auth::PASSWORD_RULES,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(v: &[&str]) -> Vec<Ipv4Net> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn anyone_is_decided_by_coverage_not_spelling() {
        assert!(covers_everything(&nets(&["0.0.0.0/0"])));
        assert!(covers_everything(&nets(&["128.0.0.0/1", "0.0.0.0/1"])));
        assert!(covers_everything(&nets(&[
            "0.0.0.0/2",
            "64.0.0.0/2",
            "128.0.0.0/1",
            "10.0.0.0/8"
        ])));
        // Host bits set still cover their whole prefix.
        assert!(covers_everything(&nets(&["1.2.3.4/0"])));
        assert!(!covers_everything(&nets(&[])));
        assert!(!covers_everything(&nets(&["0.0.0.0/1"])));
        assert!(!covers_everything(&nets(&[
            "0.0.0.0/1",
            "128.0.0.0/2",
            "192.0.0.0/3"
        ])));
        assert!(!covers_everything(&nets(&["0.0.0.0/1", "192.0.0.0/2"])));
        assert!(!covers_everything(&nets(&["255.255.255.255"])));
    }

    #[test]
    fn summary_counts_mapped_ports() {
        assert_eq!(summary(0, 0, 0), "Nothing is open to the internet.");
        assert_eq!(summary(1, 0, 0), "1 port open to the internet, 0 to anyone");
        assert_eq!(
            summary(3, 2, 2),
            "3 ports open to the internet, 2 to anyone \
             (2 mapped by LAN devices with UPnP, NAT-PMP or PCP)"
        );
    }

    #[test]
    fn risky_ports_warn_without_allow_list() {
        let r = |s: &str| s.parse::<PortRange>().unwrap();
        assert!(risk(&[r("2222"), r("22")], true).unwrap().contains("SSH"));
        assert!(risk(&[r("2222"), r("22")], false).is_none());
        assert!(risk(&[r("20-25")], false).unwrap().contains("clear text"));
        // Every risky service of a range is named, not only the first.
        let both = risk(&[r("20-23")], true).unwrap();
        assert!(
            both.contains("FTP") && both.contains("Telnet") && both.contains("SSH"),
            "{both}"
        );
        assert!(risk(&[r("3389")], true).unwrap().contains("Remote Desktop"));
        assert!(risk(&[r("8080")], true).is_none());
    }
}
