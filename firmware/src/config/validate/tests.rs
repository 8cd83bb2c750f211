//! Every refusal the config validator makes, one test each.

use super::*;
use crate::config::{Config, Protocol};

pub(super) const NOW: Timestamp = Timestamp(1_795_888_800); // 2026-11-28T18:00:00Z

fn base() -> Config {
    Config::parse(
        r#"{
        "version": 1,
        "lan": { "interface": "lan0", "subnets": ["192.168.1.0/24"] },
        "wan": { "interface": "wan0" },
        "forwards": [
            { "name": "web", "protocol": "tcp", "external_port": 8080,
              "internal_host": "192.168.1.10", "internal_port": 80,
              "allow_from": ["203.0.113.0/24"] }
        ],
        "triggers": [
            { "name": "irc", "trigger_protocol": "tcp", "trigger_port": "6660-6669",
              "open_protocol": "tcp", "open_port": 113 }
        ]
    }"#,
    )
    .unwrap()
}

/// The errors of a config, as "field: message" lines.
pub(super) fn errors(cfg: &Config) -> Vec<String> {
    validate(cfg, NOW)
        .errors()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect()
}

#[track_caller]
pub(super) fn assert_refused(cfg: &Config, field: &str, needle: &str) {
    let errs = errors(cfg);
    assert!(
        errs.iter()
            .any(|e| e.starts_with(&format!("{field}: ")) && e.contains(needle)),
        "expected an error on {field} mentioning {needle:?}, got {errs:#?}"
    );
}

#[test]
fn the_base_config_is_valid() {
    assert_eq!(errors(&base()), Vec::<String>::new());
}

#[test]
fn overlapping_external_ports_between_forwards_are_refused() {
    let mut c = base();
    let mut f = c.forwards[0].clone();
    f.name = "web2".into();
    f.external_port = "8000-8085".parse().unwrap();
    f.internal_port = None;
    c.forwards.push(f);
    assert_refused(
        &c,
        "forwards[1].external_port",
        "overlaps 8080 of forward `web`",
    );
}

#[test]
fn overlap_between_a_forward_and_a_trigger_is_refused() {
    let mut c = base();
    c.triggers[0].open_port = "8080-8090".parse().unwrap();
    assert_refused(&c, "triggers[0].open_port", "overlaps");
}

#[test]
fn same_port_on_different_protocols_is_fine() {
    let mut c = base();
    let mut f = c.forwards[0].clone();
    f.name = "web-udp".into();
    f.protocol = Protocol::Udp;
    c.forwards.push(f);
    assert_eq!(errors(&c), Vec::<String>::new());
}

#[test]
fn both_protocols_overlap_with_either() {
    let mut c = base();
    let mut f = c.forwards[0].clone();
    f.name = "web-both".into();
    f.protocol = Protocol::Both;
    c.forwards.push(f);
    assert_refused(&c, "forwards[1].external_port", "(tcp) overlaps");
}

#[test]
fn disabled_forwards_do_not_claim_ports() {
    let mut c = base();
    let mut f = c.forwards[0].clone();
    f.name = "web-old".into();
    f.enabled = false;
    c.forwards.push(f);
    assert_eq!(errors(&c), Vec::<String>::new());
}

#[test]
fn overlapping_trigger_ports_are_refused() {
    let mut c = base();
    let mut t = c.triggers[0].clone();
    t.name = "irc2".into();
    t.open_port = PortRange::single(114);
    t.trigger_port = "6669-6670".parse().unwrap();
    c.triggers.push(t);
    assert_refused(
        &c,
        "triggers[1].trigger_port",
        "trigger port 6669-6670 (tcp) overlaps",
    );
}

#[test]
fn internal_host_outside_the_lan_is_refused() {
    let mut c = base();
    c.forwards[0].internal_host = "10.0.0.5".parse().unwrap();
    assert_refused(
        &c,
        "forwards[0].internal_host",
        "not inside a LAN subnet (192.168.1.0/24)",
    );
    c.forwards[0].internal_host = "192.168.1.255".parse().unwrap();
    assert_refused(&c, "forwards[0].internal_host", "broadcast");
}

#[test]
fn ranges_of_different_length_are_refused() {
    let mut c = base();
    c.forwards[0].external_port = "8000-8010".parse().unwrap();
    c.forwards[0].internal_port = Some("9000-9005".parse().unwrap());
    assert_refused(&c, "forwards[0].internal_port", "same length");
}

/// The config of `base()` as JSON with `edit` applied to its JSON value.
fn json_with(edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut v = serde_json::to_value(base()).unwrap();
    edit(&mut v);
    v.to_string()
}

/// Parses `text`, expecting it to be refused at `field` with a message containing `needle`.
fn assert_parse_refused(text: &str, field: &str, needle: &str) {
    match Config::parse(text) {
        Err(crate::config::ConfigError::Parse {
            field: f, message, ..
        }) => assert!(
            f == field && message.contains(needle),
            "expected {field}: ..{needle}.., got {f}: {message}"
        ),
        other => panic!("expected a parse error on {field}, got {other:?}"),
    }
}

/// Invalid port ranges cannot even be parsed; the error names the field.
#[test]
fn port_zero_and_ports_above_65535_are_refused() {
    let text = json_with(|v| v["forwards"][0]["external_port"] = 0.into());
    assert_parse_refused(&text, "forwards[0].external_port", "port 0");
    let text = json_with(|v| v["forwards"][0]["external_port"] = "65530-65536".into());
    assert_parse_refused(&text, "forwards[0].external_port", "above 65535");
    let text = json_with(|v| v["forwards"][0]["internal_port"] = 70000.into());
    assert_parse_refused(&text, "forwards[0].internal_port", "above 65535");
    let text = json_with(|v| v["forwards"][0]["internal_port"] = "90-80".into());
    assert_parse_refused(&text, "forwards[0].internal_port", "ends before it starts");
    let text = json_with(|v| v["triggers"][0]["trigger_port"] = 0.into());
    assert_parse_refused(&text, "triggers[0].trigger_port", "port 0");
    let text = json_with(|v| v["triggers"][0]["open_port"] = (-5).into());
    assert_parse_refused(&text, "triggers[0].open_port", "negative");
    let text = json_with(|v| v["management"]["http_port"] = 0.into());
    assert_parse_refused(&text, "management.http_port", "port 0");
    let text = json_with(|v| v["management"]["http_port"] = 65536.into());
    assert_parse_refused(&text, "management.http_port", "above 65535");
}

/// The crash of issue 7: a byte-index slice through a multi-byte character. Now a parse
/// error naming the field, from the API and from the saved file alike.
#[test]
fn malformed_expiry_times_are_refused_naming_the_field() {
    let text = json_with(|v| v["forwards"][0]["expires_at"] = "2030-01-01T00:00:00+0é00".into());
    assert_parse_refused(&text, "forwards[0].expires_at", "non-ASCII");
    let text = json_with(|v| v["forwards"][0]["expires_at"] = "2030-02-30T00:00:00Z".into());
    assert_parse_refused(&text, "forwards[0].expires_at", "day 30 does not exist");
    let text = json_with(|v| v["forwards"][0]["expires_at"] = "2030-01-01 00:00:00Z".into());
    assert_parse_refused(&text, "forwards[0].expires_at", "expected `T`");
    let text = json_with(|v| v["forwards"][0]["expires_at"] = 1_900_000_000.into());
    assert_parse_refused(&text, "forwards[0].expires_at", "expected a string");
}

/// A management port of 0 written in code (the parser refuses it) is still refused.
#[test]
fn management_port_zero_is_refused() {
    let mut c = base();
    c.management.http_port = 0;
    assert_refused(&c, "management.http_port", "port 0");
}

#[test]
fn ports_the_router_serves_are_refused() {
    let mut c = base();
    c.forwards[0].external_port = "79-81".parse().unwrap();
    c.forwards[0].internal_port = None;
    assert_refused(
        &c,
        "forwards[0].external_port",
        "80/tcp is served by the router itself (web UI)",
    );
    c.management.http_port = 8443;
    c.forwards[0].external_port = PortRange::single(8443);
    assert_refused(&c, "forwards[0].external_port", "8443/tcp");
    c.forwards[0].external_port = PortRange::single(5351);
    c.forwards[0].protocol = Protocol::Udp;
    assert_refused(&c, "forwards[0].external_port", "NAT-PMP");
}

#[test]
fn malformed_cidrs_are_refused_at_parse_time_naming_the_value() {
    let text = serde_json::to_string(&base())
        .unwrap()
        .replace("203.0.113.0/24", "203.0.113.0/33");
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(
        err.contains("203.0.113.0/33") && err.contains("longer than 32"),
        "{err}"
    );
    let text = serde_json::to_string(&base())
        .unwrap()
        .replace("203.0.113.0/24", "203.0.113/24");
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(err.contains("not an IPv4 address or prefix"), "{err}");
}

#[test]
fn cidrs_with_host_bits_are_refused() {
    let mut c = base();
    c.forwards[0].allow_from = vec!["203.0.113.7/24".parse().unwrap()];
    assert_refused(
        &c,
        "forwards[0].allow_from[0]",
        "did you mean 203.0.113.0/24",
    );
    c.lan.subnets = vec!["192.168.1.1/24".parse().unwrap()];
    assert_refused(&c, "lan.subnets[0]", "host bits");
}

#[test]
fn expiry_in_the_past_is_refused() {
    let mut c = base();
    c.forwards[0].expires_at = Some(Timestamp(NOW.0 - 1));
    assert_refused(&c, "forwards[0].expires_at", "is in the past");
    c.forwards[0].expires_at = Some(Timestamp(NOW.0 + 60));
    assert_eq!(errors(&c), Vec::<String>::new());
    c.forwards[0].expires_at = Some("9999-01-01T00:00:00Z".parse().unwrap());
    assert_refused(&c, "forwards[0].expires_at", "more than 10 years ahead");
}

#[test]
fn overlapping_lan_subnets_are_refused() {
    let mut c = base();
    c.lan.subnets = vec![
        "192.168.0.0/16".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ];
    assert_refused(
        &c,
        "lan.subnets[1]",
        "192.168.1.0/24 overlaps 192.168.0.0/16 (lan.subnets[0])",
    );
    // The later entry is blamed whatever the order of the addresses.
    c.lan.subnets.reverse();
    assert_refused(
        &c,
        "lan.subnets[1]",
        "192.168.0.0/16 overlaps 192.168.1.0/24 (lan.subnets[0])",
    );
    c.lan.subnets = vec![
        "10.0.0.0/8".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
        "10.20.0.0/16".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ];
    assert_refused(&c, "lan.subnets[2]", "overlaps 10.0.0.0/8 (lan.subnets[0])");
    assert_refused(
        &c,
        "lan.subnets[3]",
        "is the same subnet as 192.168.1.0/24 (lan.subnets[1])",
    );
    assert_eq!(errors(&c).len(), 2, "{:#?}", errors(&c));
    // Adjacent subnets share no address.
    c.lan.subnets = vec![
        "192.168.0.0/24".parse().unwrap(),
        "192.168.1.0/24".parse().unwrap(),
    ];
    assert_eq!(errors(&c), Vec::<String>::new());
}

#[test]
fn lan_subnets_in_special_blocks_are_refused() {
    for (net, what) in [
        ("127.0.0.0/8", "loopback"),
        ("0.0.0.0/8", "this network"),
        ("224.0.0.0/8", "multicast"),
        ("239.1.0.0/16", "multicast"),
        ("240.0.0.0/8", "reserved"),
        ("255.255.255.0/24", "reserved"),
    ] {
        let mut c = base();
        c.lan.subnets.push(net.parse().unwrap());
        assert_refused(&c, "lan.subnets[1]", what);
    }
}

#[test]
fn forwards_to_the_router_itself_are_refused() {
    let mut c = base();
    let router = ["192.168.1.1".parse().unwrap(), "10.9.9.9".parse().unwrap()];
    assert_eq!(validate_host(&c, &router), Report::default());
    c.forwards[0].internal_host = "192.168.1.1".parse().unwrap();
    let r = validate_host(&c, &router);
    let errs: Vec<String> = r
        .errors()
        .map(|i| format!("{}: {}", i.field, i.message))
        .collect();
    assert_eq!(
        errs,
        ["forwards[0].internal_host: 192.168.1.1 is the router's own address; forward to a host on the LAN"]
    );
    assert_eq!(validate_host(&c, &[]), Report::default());
}

#[test]
fn allow_lists_covering_everything_warn_like_empty_ones() {
    for list in [
        vec!["0.0.0.0/0"],
        vec!["0.0.0.0/1", "128.0.0.0/1"],
        vec!["203.0.113.0/24", "128.0.0.0/1", "0.0.0.0/1"],
    ] {
        let mut c = base();
        c.forwards[0].allow_from = list.iter().map(|s| s.parse().unwrap()).collect();
        assert!(c.forwards[0].open_to_anyone());
        let r = validate(&c, NOW);
        assert!(!r.has_errors(), "{r}");
        let w: Vec<_> = r.warnings().collect();
        assert_eq!(w.len(), 1, "{list:?}: {r}");
        assert_eq!(w[0].field, "forwards[0].allow_from");
        assert!(w[0].message.contains("anyone"), "{}", w[0].message);
    }
    let mut c = base();
    c.forwards[0].allow_from = vec!["0.0.0.0/1".parse().unwrap(), "128.0.0.0/2".parse().unwrap()];
    assert!(!c.forwards[0].open_to_anyone());
    assert_eq!(validate(&c, NOW).warnings().count(), 0);
}

#[test]
fn empty_allow_list_is_a_warning_not_an_error() {
    let mut c = base();
    c.forwards[0].allow_from.clear();
    let r = validate(&c, NOW);
    assert!(!r.has_errors());
    let w: Vec<_> = r.warnings().collect();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].field, "forwards[0].allow_from");
    assert!(w[0].message.contains("anyone"));
}

#[test]
fn names_must_be_safe_and_unique() {
    let mut c = base();
    c.triggers[0].name = "web".into();
    assert_refused(&c, "triggers[0].name", "used twice");
    c.triggers[0].name = "Bad Name".into();
    assert_refused(&c, "triggers[0].name", "lowercase");
    c.triggers[0].name = "x".repeat(25);
    assert_refused(&c, "triggers[0].name", "1 to 24");
}

#[test]
fn interfaces_must_be_real_names_and_distinct() {
    let mut c = base();
    c.wan.interface = "lan0".into();
    assert_refused(&c, "wan.interface", "must differ");
    c.wan.interface = "a-very-long-interface".into();
    assert_refused(&c, "wan.interface", "1 to 15");
    c.wan.interface = "wan\"0".into();
    assert_refused(&c, "wan.interface", "not a valid interface name");
}

#[test]
fn rate_limits_and_timeouts_must_be_sane() {
    let mut c = base();
    c.forwards[0].rate_limit = Some(crate::config::RateLimit {
        connections: 0,
        per: crate::config::Per::Second,
        burst: 0,
    });
    assert_refused(&c, "forwards[0].rate_limit.connections", "at least 1");
    assert_refused(&c, "forwards[0].rate_limit.burst", "1 to 100000");
    c.triggers[0].timeout_secs = 0;
    assert_refused(&c, "triggers[0].timeout_secs", "1 to 86400");
}

#[test]
fn unknown_fields_and_wrong_versions_are_refused() {
    let text = serde_json::to_string(&base())
        .unwrap()
        .replace("\"allow_from\"", "\"allow_form\"");
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(err.contains("unknown field `allow_form`"), "{err}");
    let text = serde_json::to_string(&base())
        .unwrap()
        .replace("\"version\":1", "\"version\":2");
    let err = Config::parse(&text).unwrap_err().to_string();
    assert!(err.starts_with("version:"), "{err}");
}

/// Found by fuzzing: text after the config object was ignored, and with it the early
/// version check (which parses the whole text), so a version-0 file was read as version 1.
#[test]
fn text_after_the_config_object_is_refused() {
    let text = serde_json::to_string(&base()).unwrap();
    assert!(Config::parse(&format!("{text}\n\n")).is_ok());
    assert_parse_refused(&format!("{text} x"), "(config)", "trailing characters");
    assert_parse_refused(&format!("{text}{{}}"), "(config)", "trailing characters");
    let v0 = text.replace("\"version\":1", "\"version\":0");
    let err = Config::parse(&format!("{v0}]")).unwrap_err().to_string();
    assert!(err.contains("trailing characters"), "{err}");
    let err = Config::parse(&v0).unwrap_err().to_string();
    assert!(err.starts_with("version:"), "{err}");
}

#[test]
fn ten_thousand_forwards_validate() {
    let mut c = base();
    c.lan.subnets = vec!["10.0.0.0/16".parse().unwrap()];
    c.forwards = (0..10_000u32)
        .map(|i| {
            let mut f = base().forwards[0].clone();
            f.name = format!("f{i}");
            f.external_port = PortRange::single(u16::try_from(20_000 + i).unwrap());
            f.internal_host = std::net::Ipv4Addr::from(0x0a00_0000 + 2 + i);
            f
        })
        .collect();
    assert_eq!(errors(&c), Vec::<String>::new());
}
