//! Every refusal of the `dhcp` section and of forwards to a device, one test each.

use std::net::Ipv4Addr;

use super::tests::{assert_refused, errors, NOW};
use super::*;
use crate::config::{Config, MacAddr};

const MAC: &str = "aa:bb:cc:dd:ee:01";

fn base() -> Config {
    Config::parse(&format!(
        r#"{{
        "version": 1,
        "lan": {{ "interface": "lan0", "subnets": ["192.168.1.0/24", "10.0.0.0/24"] }},
        "wan": {{ "interface": "wan0" }},
        "forwards": [
            {{ "name": "web", "protocol": "tcp", "external_port": 8080,
              "device": "{MAC}", "allow_from": ["203.0.113.0/24"] }}
        ],
        "dhcp": {{ "start": "192.168.1.100", "end": "192.168.1.249", "domain": "home.arpa",
            "reservations": [
                {{ "name": "nas", "mac": "{MAC}", "address": "192.168.1.10" }},
                {{ "name": "printer", "mac": "aa:bb:cc:dd:ee:02", "address": "10.0.0.5" }}
            ] }}
    }}"#
    ))
    .unwrap()
}

fn with(f: impl FnOnce(&mut crate::config::Dhcp)) -> Config {
    let mut c = base();
    f(c.dhcp.as_mut().unwrap());
    c
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn the_base_config_is_valid() {
    assert_eq!(errors(&base()), Vec::<String>::new());
}

#[test]
fn the_pool_must_lie_in_one_lan_subnet() {
    assert_refused(
        &with(|d| d.start = ip("172.16.0.1")),
        "dhcp.start",
        "not inside a LAN subnet",
    );
    assert_refused(
        &with(|d| d.end = ip("10.0.0.9")),
        "dhcp.end",
        "not in 192.168.1.0/24",
    );
}

#[test]
fn the_pool_must_not_run_backwards() {
    assert_refused(
        &with(|d| d.end = ip("192.168.1.50")),
        "dhcp.end",
        "comes before dhcp.start",
    );
    let c = with(|d| d.end = d.start);
    assert_eq!(
        errors(&c),
        Vec::<String>::new(),
        "a pool of one address is fine"
    );
}

#[test]
fn the_pool_excludes_network_and_broadcast() {
    assert_refused(
        &with(|d| d.start = ip("192.168.1.0")),
        "dhcp.start",
        "network or broadcast",
    );
    assert_refused(
        &with(|d| d.end = ip("192.168.1.255")),
        "dhcp.end",
        "network or broadcast",
    );
}

#[test]
fn lease_time_is_bounded() {
    assert_refused(&with(|d| d.lease_secs = 119), "dhcp.lease_secs", "120");
    assert_refused(
        &with(|d| d.lease_secs = 31_536_001),
        "dhcp.lease_secs",
        "31536000",
    );
    assert_eq!(errors(&with(|d| d.lease_secs = 120)), Vec::<String>::new());
    assert_eq!(
        errors(&with(|d| d.lease_secs = 31_536_000)),
        Vec::<String>::new()
    );
}

#[test]
fn the_domain_is_one_to_four_labels() {
    for bad in [
        "",
        "a..b",
        "-lan",
        "lan-",
        "a.b.c.d.e",
        "my_lan",
        "lan\nserver=x",
        "x.",
        &"a".repeat(64),
    ] {
        assert_refused(&with(|d| d.domain = bad.into()), "dhcp.domain", "labels");
    }
    let long = format!("{}.lan", "a".repeat(63));
    for good in ["lan", "home.arpa", "internal", "a-1.b.c.lan", &long] {
        assert_eq!(
            errors(&with(|d| d.domain = good.into())),
            Vec::<String>::new(),
            "{good}"
        );
    }
}

#[test]
fn reservation_names_are_labels() {
    for bad in [
        "",
        "-nas",
        "nas-",
        "my nas",
        "nas.lan",
        "nas\n",
        &"n".repeat(64),
    ] {
        assert_refused(
            &with(|d| d.reservations[1].name = bad.into()),
            "dhcp.reservations[1].name",
            "letters, digits",
        );
    }
}

#[test]
fn reservation_names_are_unique_ignoring_case() {
    assert_refused(
        &with(|d| d.reservations[1].name = "NAS".into()),
        "dhcp.reservations[1].name",
        "used twice",
    );
}

#[test]
fn reservation_macs_are_unique() {
    assert_refused(
        &with(|d| d.reservations[1].mac = MAC.parse::<MacAddr>().unwrap()),
        "dhcp.reservations[1].mac",
        "already has a reservation",
    );
}

#[test]
fn reservation_addresses_are_unique() {
    assert_refused(
        &with(|d| d.reservations[1].address = ip("192.168.1.10")),
        "dhcp.reservations[1].address",
        "reserved twice",
    );
}

#[test]
fn reservation_addresses_are_lan_hosts() {
    assert_refused(
        &with(|d| d.reservations[1].address = ip("172.16.0.1")),
        "dhcp.reservations[1].address",
        "not inside a LAN subnet",
    );
    assert_refused(
        &with(|d| d.reservations[1].address = ip("10.0.0.255")),
        "dhcp.reservations[1].address",
        "network or broadcast",
    );
}

#[test]
fn a_device_needs_a_reservation() {
    let mut c = base();
    c.forwards[0].device = Some("aa:bb:cc:dd:ee:99".parse().unwrap());
    assert_refused(
        &c,
        "forwards[0].device",
        "aa:bb:cc:dd:ee:99: no reservation with this MAC in dhcp.reservations",
    );
    // The missing address is not reported a second time as 0.0.0.0.
    assert_eq!(errors(&c).len(), 1, "{:#?}", errors(&c));
    c.dhcp = None;
    assert_refused(&c, "forwards[0].device", "no reservation");
}

#[test]
fn internal_host_and_device_are_exclusive() {
    let mut c = base();
    c.forwards[0].internal_host = ip("192.168.1.20");
    assert_refused(&c, "forwards[0].internal_host", "not both");
}

#[test]
fn a_forward_needs_a_target() {
    let mut c = base();
    c.forwards[0].device = None;
    assert_refused(&c, "forwards[0].internal_host", "required (or device)");
}

#[test]
fn a_device_target_gets_the_lan_checks() {
    // A reservation outside the LAN (refused there) also fails its forward, by device.
    let c = with(|d| d.reservations[0].address = ip("172.16.0.1"));
    assert_refused(
        &c,
        "forwards[0].device",
        "172.16.0.1 is not inside a LAN subnet",
    );
    assert_refused(
        &c,
        "dhcp.reservations[0].address",
        "not inside a LAN subnet",
    );
}

#[test]
fn the_routers_own_address_is_refused_for_devices_and_reservations() {
    let c = base();
    let r = validate_host(&c, &[ip("192.168.1.10")]);
    let errs: Vec<String> = r
        .errors()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect();
    assert!(
        errs.iter()
            .any(|e| e.starts_with("forwards[0].device: 192.168.1.10 is the router's own address")),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e
            .starts_with("dhcp.reservations[0].address: 192.168.1.10 is the router's own address")),
        "{errs:#?}"
    );
    assert!(!validate_host(&c, &[ip("192.168.1.1")]).has_errors());
}

#[test]
fn device_forwards_parse_and_serialize_without_internal_host() {
    let c = base();
    assert_eq!(c.forward_host(&c.forwards[0]), ip("192.168.1.10"));
    let json = c.to_json();
    assert!(!json.contains("internal_host"), "{json}");
    assert_eq!(Config::parse(&json).unwrap(), c);
}

/// dnsmasq(8) reads a `dhcp-host` field that is `ignore`, `infinite` or a lease time
/// (`3600`, `45m`, `2h`, `1d`, `1w`) as that keyword, not as the host name: a reservation
/// named `ignore` would make dnsmasq refuse the device any address.
#[test]
fn reservation_names_are_not_dnsmasq_keywords() {
    for name in ["ignore", "Infinite", "3600", "45m", "2h", "1d", "1w"] {
        let c = with(|d| d.reservations[0].name = name.into());
        assert_refused(&c, "dhcp.reservations[0].name", name);
    }
}

/// dnsmasq names the router `router.<domain>` (dhcp.rs: `interface-name`), but the web UI
/// answers only Host names it knows (`web::api::host_allowed`: single labels, `.lan`,
/// `.local`, `.home.arpa`, `.internal`, against DNS rebinding). A domain the validation
/// accepts must leave the router's own advertised name usable in a browser; a public
/// suffix (`com`) would also turn every `.com` name local (`local=/com/`).
#[test]
fn every_accepted_domain_names_a_router_the_ui_answers() {
    for domain in ["home", "example.com", "com"] {
        let accepted = errors(&with(|d| d.domain = domain.into())).is_empty();
        let answered = crate::web::api::host_allowed(&format!("router.{domain}"));
        assert!(
            !accepted || answered,
            "dhcp.domain `{domain}` is accepted but http://router.{domain}/ is refused by the UI"
        );
    }
}

/// With `dhcp.enabled: false` dnsmasq hands out no address and renders no reservation
/// (dhcp.rs), so a forward to a device goes to an address nothing gives that device: the
/// owner must at least be told (a warning naming the forward's `device`).
#[test]
fn a_device_forward_with_dhcp_off_is_flagged() {
    let c = with(|d| d.enabled = false);
    let issues: Vec<String> = validate(&c, NOW)
        .issues
        .iter()
        .map(|i| i.field.clone())
        .collect();
    assert!(
        issues.iter().any(|f| f == "forwards[0].device"),
        "no word about forwards[0].device: {issues:?}"
    );
}

/// dnsmasq names the router `router.<domain>`; a device reserved as `router` would take
/// that name from it.
#[test]
fn a_reservation_may_not_be_called_router() {
    assert_refused(
        &with(|d| d.reservations[0].name = "Router".into()),
        "dhcp.reservations[0].name",
        "router's own name",
    );
}
