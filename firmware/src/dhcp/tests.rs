use std::path::Path;

use super::render;
use crate::config::Config;

const BASE: &str = r#"{"version": 1,
  "lan": {"interface": "lan0", "subnets": ["192.168.1.0/24"]},
  "wan": {"interface": "wan0"}"#;

fn cfg(rest: &str) -> Config {
    Config::parse(&format!("{BASE}{rest}}}")).expect("test config parses")
}

const RUN: &str = "/var/run/portcullis";

/// The lines every rendering has, before the DHCP part.
fn head(domain: &str) -> String {
    format!(
        "# rendered by portcullis dhcp-config; edits are overwritten\n\
         interface=lan0\ninterface=lo\nbind-dynamic\n\
         resolv-file=/var/run/portcullis/resolv.conf.wan\n\
         domain-needed\nbogus-priv\ncache-size=1000\n\
         domain={domain}\nlocal=/{domain}/\nexpand-hosts\n\
         interface-name=router.{domain},lan0\n\
         pid-file=/var/run/portcullis/dnsmasq.pid\n\
         dhcp-leasefile=/var/run/portcullis/dnsmasq.leases\n"
    )
}

#[test]
fn without_a_dhcp_section_only_dns_is_served() {
    assert_eq!(render(&cfg(""), Path::new(RUN)), head("lan"));
}

#[test]
fn pool_lease_time_and_reservations() {
    let c = cfg(
        r#", "dhcp": {"start": "192.168.1.100", "end": "192.168.1.249",
        "lease_secs": 3600, "domain": "home.arpa", "reservations": [
        {"name": "nas", "mac": "AA:BB:CC:DD:EE:01", "address": "192.168.1.10"},
        {"name": "printer", "mac": "aa:bb:cc:dd:ee:02", "address": "192.168.1.11",
         "comment": "upstairs"}]}"#,
    );
    let want = head("home.arpa")
        + "dhcp-range=192.168.1.100,192.168.1.249,3600\n\
           dhcp-authoritative\n\
           dhcp-name-match=set:wpad-ignore,wpad\n\
           dhcp-ignore-names=tag:wpad-ignore\n\
           dhcp-host=aa:bb:cc:dd:ee:01,192.168.1.10,nas\n\
           dhcp-host=aa:bb:cc:dd:ee:02,192.168.1.11,printer\n";
    assert_eq!(render(&c, Path::new(RUN)), want);
}

#[test]
fn a_disabled_section_serves_dns_with_its_domain_and_no_addresses() {
    let c = cfg(r#", "dhcp": {"enabled": false, "start": "192.168.1.100",
        "end": "192.168.1.249", "domain": "home", "reservations": [
        {"name": "nas", "mac": "aa:bb:cc:dd:ee:01", "address": "192.168.1.10"}]}"#);
    assert_eq!(render(&c, Path::new(RUN)), head("home"));
}

#[test]
fn the_run_dir_names_the_files() {
    let text = render(&cfg(""), Path::new("/tmp/x-1"));
    for line in [
        "resolv-file=/tmp/x-1/resolv.conf.wan",
        "pid-file=/tmp/x-1/dnsmasq.pid",
        "dhcp-leasefile=/tmp/x-1/dnsmasq.leases",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

/// Strings that slipped past validation never add a line or an option.
#[test]
fn strings_cannot_inject_options() {
    let mut c = cfg(
        r#", "dhcp": {"start": "192.168.1.100", "end": "192.168.1.249",
        "reservations": [{"name": "nas", "mac": "aa:bb:cc:dd:ee:01",
        "address": "192.168.1.10"}]}"#,
    );
    c.lan.interface = "lan0\ninterface=wan0".into();
    if let Some(d) = c.dhcp.as_mut() {
        d.domain = "lan\ndhcp-script=/tmp/evil".into();
        d.reservations[0].name = "nas\nserver=1.2.3.4".into();
    }
    let text = render(&c, Path::new("/run/a b\nuser=root"));
    for bad in ["wan0", "evil", "server=", "user=", "a b"] {
        assert!(!text.contains(bad), "`{bad}` leaked into\n{text}");
    }
    // Still never every interface: loopback stays the only one named.
    assert!(text.lines().any(|l| l == "interface=lo"), "{text}");
    assert!(!text.lines().any(|l| l == "interface=lan0"), "{text}");
    assert!(text.lines().any(|l| l == "domain=lan"), "{text}");
    assert!(
        text.lines()
            .any(|l| l == "dhcp-host=aa:bb:cc:dd:ee:01,192.168.1.10"),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("interface=")).count(),
        1
    );
}

/// Safe mode keeps a saved `dhcp` section that parses but was never validated: a
/// reservation address given twice makes dnsmasq 2.90 exit at start ("duplicate
/// dhcp-host IP address", status 1), so the LAN would get neither addresses nor DNS.
/// The rendering keeps only the first reservation of an address.
#[test]
fn a_reserved_address_is_rendered_once() {
    let c = cfg(
        r#", "dhcp": {"start": "192.168.1.100", "end": "192.168.1.249", "reservations": [
        {"name": "nas", "mac": "aa:bb:cc:dd:ee:01", "address": "192.168.1.10"},
        {"name": "tv", "mac": "aa:bb:cc:dd:ee:02", "address": "192.168.1.10"}]}"#,
    );
    let text = render(&c, Path::new(RUN));
    let hosts: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("dhcp-host="))
        .collect();
    assert_eq!(
        hosts,
        ["dhcp-host=aa:bb:cc:dd:ee:01,192.168.1.10,nas"],
        "{text}"
    );
}

/// A name dnsmasq would read as a keyword of `dhcp-host` (`ignore`: never answer the
/// device; `infinite` or `2h`: a lease time) is never rendered as the name.
#[test]
fn names_that_are_dnsmasq_keywords_are_left_out() {
    for name in ["ignore", "infinite", "120", "2h"] {
        let c = cfg(&format!(
            r#", "dhcp": {{"start": "192.168.1.100", "end": "192.168.1.249", "reservations": [
            {{"name": "{name}", "mac": "aa:bb:cc:dd:ee:01", "address": "192.168.1.10"}}]}}"#
        ));
        let text = render(&c, Path::new(RUN));
        assert!(
            text.lines()
                .any(|l| l == "dhcp-host=aa:bb:cc:dd:ee:01,192.168.1.10"),
            "{name}: {text}"
        );
    }
}

/// A LAN client must not claim the name `wpad` (CERT VU#598349: browsers that
/// auto-detect a proxy would then send their web traffic through that client). dnsmasq
/// does not refuse it by default; its example config has the two lines.
#[test]
fn clients_cannot_claim_wpad() {
    let c = cfg(r#", "dhcp": {"start": "192.168.1.100", "end": "192.168.1.249"}"#);
    let text = render(&c, Path::new(RUN));
    for line in [
        "dhcp-name-match=set:wpad-ignore,wpad",
        "dhcp-ignore-names=tag:wpad-ignore",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

/// `dhcp-config` renders the saved config without validating it (`Config::load` only
/// parses; the daemon goes to safe mode, dnsmasq does not). A LAN interface equal to the
/// WAN's (refused by validation, possible in a hand-edited file) must not put dnsmasq's
/// DHCP server and DNS resolver on the WAN.
#[test]
fn the_wan_interface_is_never_served() {
    let mut c = cfg(r#", "dhcp": {"start": "192.168.1.100", "end": "192.168.1.249"}"#);
    c.lan.interface = "wan0".into();
    let text = render(&c, Path::new(RUN));
    assert!(
        !text.contains("wan0"),
        "dnsmasq would serve the WAN:\n{text}"
    );
}
