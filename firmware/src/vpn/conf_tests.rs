//! The provider file import: real-looking files, every refusal, merge.

use super::*;
use crate::config::{ProviderForward, DEFAULT_GATEWAY};

const PRIV: &str = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
const PUB: &str = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";
const PSK: &str = "//////////////////////////////////////////8=";

/// Resolves `vpn.example.net` only.
fn fake(host: &str, port: u16) -> Option<SocketAddrV4> {
    (host == "vpn.example.net").then(|| SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), port))
}

fn no_dns(_: &str, _: u16) -> Option<SocketAddrV4> {
    panic!("no name to resolve here")
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

/// As ProtonVPN's download page writes it (keys replaced).
fn proton() -> String {
    format!(
        "[Interface]\n\
         # Key for router\n\
         # Bouncing = 5\n\
         # NetShield = 1\n\
         # Moderate NAT = off\n\
         # NAT-PMP (Port Forwarding) = on\n\
         # VPN Accelerator = on\n\
         PrivateKey = {PRIV}\n\
         Address = 10.2.0.2/32, 2a07:b944::2:2/128\n\
         DNS = 10.2.0.1, 2a07:b944::2:1\n\
         \n\
         [Peer]\n\
         # NL#123\n\
         PublicKey = {PUB}\n\
         AllowedIPs = 0.0.0.0/0, ::/0\n\
         Endpoint = 203.0.113.5:51820\n"
    )
}

/// Mullvad-style, with odd spacing, case, CRLF, and comments after values.
fn mullvad() -> String {
    format!(
        "\u{feff}# Mullvad WireGuard config\r\n\
         [interface]\r\n\
         privatekey={PRIV}\r\n\
         ADDRESS =  10.64.12.34/32,fc00:bbbb:bbbb:bb01::c:2233/128   # tunnel\r\n\
         Dns=193.138.218.74\r\n\
         MTU = 1380\r\n\
         PostUp = iptables -I OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -j REJECT\r\n\
         PreDown = iptables -D OUTPUT ! -o %i -m mark ! --mark $(wg show %i fwmark) -j REJECT\r\n\
         \r\n\
         [ Peer ]\r\n\
         PublicKey\t=\t{PUB}\r\n\
         presharedkey = {PSK}\r\n\
         AllowedIPs = 0.0.0.0/0\r\n\
         AllowedIPs = ::0/0\r\n\
         Endpoint = vpn.example.net:3000\r\n\
         PersistentKeepalive = 25\r\n"
    )
}

#[test]
fn a_protonvpn_file() {
    let i = parse(&proton(), &no_dns).unwrap();
    let v = &i.vpn;
    assert!(v.enabled && v.kill_switch);
    assert_eq!(v.interface, "wg0");
    assert_eq!(v.addresses, vec![net("10.2.0.2/32")]);
    assert_eq!(v.dns, vec![Ipv4Addr::new(10, 2, 0, 1)]);
    assert_eq!(v.mtu, DEFAULT_MTU);
    assert_eq!(v.listen_port, None);
    assert_eq!((v.fwmark, v.table), (DEFAULT_FWMARK, DEFAULT_TABLE));
    assert_eq!(v.peer.public_key, PUB);
    assert_eq!(v.peer.endpoint, "203.0.113.5:51820".parse().unwrap());
    assert_eq!(v.peer.allowed_ips, vec![Ipv4Net::ANY]);
    assert_eq!(v.peer.persistent_keepalive, None);
    assert_eq!(v.devices, VpnDevices::default());
    assert_eq!(v.port_forward, None);
    assert_eq!(i.secrets.private_key, Key::from_base64(PRIV).unwrap());
    assert_eq!(i.secrets.preshared_key, None);
    assert_eq!(i.notes, vec![IPV6_NOTE.to_string()]);
}

#[test]
fn a_mullvad_style_file() {
    let i = parse(&mullvad(), &fake).unwrap();
    let v = &i.vpn;
    assert_eq!(v.addresses, vec![net("10.64.12.34/32")]);
    assert_eq!(v.dns, vec![Ipv4Addr::new(193, 138, 218, 74)]);
    assert_eq!(v.mtu, 1380);
    assert_eq!(v.peer.endpoint, "198.51.100.7:3000".parse().unwrap());
    assert_eq!(v.peer.allowed_ips, vec![Ipv4Net::ANY]);
    assert_eq!(v.peer.persistent_keepalive, Some(25));
    assert_eq!(i.secrets.preshared_key, Some(Key([0xff; 32])));
    assert_eq!(
        i.notes,
        vec![
            IPV6_NOTE.to_string(),
            "PostUp ignored: Portcullis never runs commands".to_string(),
            "PreDown ignored: Portcullis never runs commands".to_string(),
        ]
    );
    // The imported section is a valid config section, and saves and loads unchanged.
    let mut cfg = crate::config::Config::parse(
        r#"{"version":1,"lan":{"interface":"br0","subnets":["192.168.1.0/24"]},"wan":{"interface":"eth0"}}"#,
    )
    .unwrap();
    cfg.vpn = Some(i.vpn.clone());
    let r = crate::config::validate(&cfg, crate::config::Timestamp(0));
    assert!(!r.has_errors(), "{r}");
    assert_eq!(crate::config::Config::parse(&cfg.to_json()).unwrap(), cfg);
}

#[test]
fn the_other_interface_keys() {
    let text = format!(
        "[Interface]\nPrivateKey={PRIV}\nAddress=10.0.0.2\nAddress = 10.0.1.2/24, 10.0.0.2\n\
         DNS = 10.0.0.1\nDNS = 10.0.0.53, lan.example, 10.0.0.1\nListenPort = 51000\n\
         FwMark = 0x1234\nTable = 1000\nSaveConfig = true\nPreUp = x\nPostDown = y\n\
         [Peer]\nPublicKey={PUB}\nEndpoint=203.0.113.5:51820\nAllowedIPs=10.0.0.0/8,192.168.5.0/24\n\
         PersistentKeepalive = off\n"
    );
    let i = parse(&text, &no_dns).unwrap();
    let v = &i.vpn;
    assert_eq!(v.addresses, vec![net("10.0.0.2/32"), net("10.0.1.2/24")]);
    assert_eq!(
        v.dns,
        vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 53)]
    );
    assert_eq!(v.listen_port, Some(51000));
    assert_eq!((v.fwmark, v.table), (0x1234, 1000));
    assert_eq!(
        v.peer.allowed_ips,
        vec![net("10.0.0.0/8"), net("192.168.5.0/24")]
    );
    assert_eq!(v.peer.persistent_keepalive, None);
    assert_eq!(i.notes.len(), 4, "{:?}", i.notes);
    assert!(i.notes.iter().any(|n| n.starts_with("DNS search domains")));
    assert!(i.notes.iter().any(|n| n.starts_with("SaveConfig ignored")));
    assert!(!i.notes.iter().any(|n| n.starts_with("IPv6")));
}

#[test]
fn table_off_and_fwmark_off_fall_back_with_a_note() {
    for (table, fwmark) in [("off", "off"), ("auto", "0"), ("main", "off")] {
        let text = proton().replace(
            "[Peer]",
            &format!("Table = {table}\nFwMark = {fwmark}\n[Peer]"),
        );
        let i = parse(&text, &no_dns).unwrap();
        assert_eq!((i.vpn.table, i.vpn.fwmark), (DEFAULT_TABLE, DEFAULT_FWMARK));
        assert!(
            i.notes
                .iter()
                .any(|n| n.starts_with(&format!("Table = {table} ignored"))),
            "{:?}",
            i.notes
        );
        assert!(i.notes.iter().any(|n| n.starts_with("FwMark off ignored")));
    }
}

/// Parses `text`, expecting a refusal at `line` naming `key`.
#[track_caller]
fn refused(text: &str, line: usize, key: &str, needle: &str) {
    match parse(text, &fake) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            assert_eq!((e.line, e.key.as_str()), (line, key), "{e}\n{text}");
            assert!(e.reason.contains(needle), "{e}");
        }
    }
}

/// The ProtonVPN file with line `n` (1-based) replaced by `with`.
fn proton_with(n: usize, with: &str) -> String {
    let mut lines: Vec<String> = proton().lines().map(String::from).collect();
    lines[n - 1] = with.to_string();
    lines.join("\n")
}

#[test]
fn bad_values_name_their_line_and_key() {
    // Line numbers of proton(): 8 PrivateKey, 9 Address, 10 DNS, 14 PublicKey, 15 AllowedIPs,
    // 16 Endpoint.
    let cases: &[(usize, &str, &str, &str)] = &[
        (8, "PrivateKey = abc", "PrivateKey", NOT_A_KEY),
        (8, "PrivateKey =", "PrivateKey", NOT_A_KEY),
        (9, "Address = 10.2.0.256/32", "Address", "not an IPv4"),
        (9, "Address = 10.2.0.2/33", "Address", "longer than 32"),
        (9, "Address = fe80::zz/64", "Address", "not an IP address"),
        (10, "DNS = 10.2.0.1, bad_name!", "DNS", "neither"),
        (10, "MTU = big", "MTU", "number of bytes"),
        (10, "MTU = 70000", "MTU", "number of bytes"),
        (10, "ListenPort = -1", "ListenPort", "port"),
        (10, "FwMark = 0xzz", "FwMark", "number"),
        (
            10,
            "Frobnicate = 1",
            "Frobnicate",
            "unknown key in [Interface]",
        ),
        (
            10,
            "PublicKey = x",
            "PublicKey",
            "unknown key in [Interface]",
        ),
        (10, "just words", "just words", "Key = Value"),
        (
            14,
            "PublicKey = 3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK0=",
            "PublicKey",
            NOT_A_KEY,
        ),
        (14, "PresharedKey = nope", "PresharedKey", NOT_A_KEY),
        (
            15,
            "AllowedIPs = 0.0.0.0/0, 10.0.0.0/x",
            "AllowedIPs",
            "not an IPv4",
        ),
        (15, "AllowedIPs = ::/0", "AllowedIPs", "no IPv4 prefix"),
        (
            15,
            "PersistentKeepalive = soon",
            "PersistentKeepalive",
            "seconds",
        ),
        (15, "Address = 10.2.0.2", "Address", "unknown key in [Peer]"),
        (
            16,
            "Endpoint = [2001:db8::1]:51820",
            "Endpoint",
            "IPv6 endpoints are not supported yet",
        ),
        (
            16,
            "Endpoint = 2001:db8::1:51820",
            "Endpoint",
            "IPv6 endpoints are not supported yet",
        ),
        (16, "Endpoint = 203.0.113.5", "Endpoint", "host:port"),
        (16, "Endpoint = 203.0.113.5:0", "Endpoint", "UDP port"),
        (16, "Endpoint = 203.0.113.5:65536", "Endpoint", "UDP port"),
        (
            16,
            "Endpoint = unknown.example:51820",
            "Endpoint",
            "`unknown.example` is a host name; give the server's IPv4 address instead",
        ),
        (
            16,
            "Endpoint = bad host:51820",
            "Endpoint",
            "not an IPv4 address or host name",
        ),
        (16, "[Peer]", "[Peer]", "one peer is supported"),
        (16, "[Wireguard]", "[Wireguard]", "unknown section"),
        (16, "[Peer", "[Peer", "ends with `]`"),
    ];
    for &(line, with, key, needle) in cases {
        refused(&proton_with(line, with), line, key, needle);
    }
}

#[test]
fn missing_keys_name_the_key_on_line_zero() {
    for (drop, key) in [
        (8, "PrivateKey"),
        (9, "Address"),
        (14, "PublicKey"),
        (15, "AllowedIPs"),
        (16, "Endpoint"),
    ] {
        refused(&proton_with(drop, "# gone"), 0, key, "missing");
    }
    // No [Peer] at all.
    let full = proton();
    let head: Vec<&str> = full.lines().take(11).collect();
    refused(&head.join("\n"), 0, "PublicKey", "missing");
    refused("", 0, "PrivateKey", "missing");
    // Only an IPv6 address: refused on its line.
    refused(
        &proton_with(9, "Address = 2a07:b944::2:2/128"),
        9,
        "Address",
        "no IPv4 address",
    );
}

#[test]
fn a_key_outside_any_section_is_refused() {
    refused(
        &format!("PrivateKey = {PRIV}\n{}", proton()),
        1,
        "PrivateKey",
        "outside any section",
    );
}

#[test]
fn a_huge_file_is_refused_whole() {
    let mut text = proton();
    text.push_str(&"#".repeat(MAX_LEN));
    refused(&text, 0, "", "64 KiB");
}

#[test]
fn the_message_names_line_and_key() {
    let e = parse(&proton_with(8, "PrivateKey = abc"), &fake).unwrap_err();
    assert_eq!(
        e.to_string(),
        "line 8, PrivateKey: not a WireGuard key (44 characters of base64)"
    );
    let e = parse("", &fake).unwrap_err();
    assert_eq!(e.to_string(), "PrivateKey: missing");
    let e = parse(&"#".repeat(MAX_LEN + 1), &fake).unwrap_err();
    assert_eq!(e.to_string(), "the file is larger than 64 KiB");
    // A long key is shortened in the message.
    let e = parse(&proton_with(10, &format!("{} = 1", "K".repeat(500))), &fake).unwrap_err();
    assert_eq!(e.key.chars().count(), 40);
}

#[test]
fn odd_inputs_do_not_panic() {
    for text in [
        "[",
        "]",
        "[]",
        "=",
        "[Interface]\n=",
        "[Peer]\nEndpoint = :",
        "[Peer]\nEndpoint = :1",
        "[Peer]\nEndpoint = é:1",
        "[Peer]\nAllowedIPs = ,,, ,",
        "[Interface]\nAddress = /",
        "[Interface]\nAddress = 1.2.3.4/",
        "[Interface]\nDNS = é",
        "[Interface]\nFwMark = 0x",
        "\u{feff}",
        "\r\r\r",
        "[Interface]\nPrivateKey = ééééééééééééééééééééééé",
    ] {
        assert!(parse(text, &fake).is_err(), "{text:?}");
    }
}

#[test]
fn merge_keeps_the_owners_choices() {
    let first = parse(&proton(), &no_dns).unwrap().vpn;
    assert_eq!(merge(None, first.clone()), first);
    let mut mine = first.clone();
    mine.enabled = false;
    mine.interface = "proton".into();
    mine.fwmark = 7;
    mine.table = 77;
    mine.kill_switch = false;
    mine.devices = VpnDevices {
        all: false,
        hosts: vec![net("192.168.1.20")],
        macs: Vec::new(),
    };
    mine.port_forward = Some(ProviderForward {
        gateway: DEFAULT_GATEWAY,
        to: Ipv4Addr::new(192, 168, 1, 20),
        to_port: Some(6881),
    });
    let new = parse(&mullvad(), &fake).unwrap().vpn;
    let merged = merge(Some(&mine), new.clone());
    assert!(merged.enabled);
    assert_eq!(merged.interface, "proton");
    assert_eq!((merged.fwmark, merged.table), (7, 77));
    assert!(!merged.kill_switch);
    assert_eq!(merged.devices, mine.devices);
    assert_eq!(merged.port_forward, mine.port_forward);
    assert_eq!(merged.addresses, new.addresses);
    assert_eq!(merged.dns, new.dns);
    assert_eq!(merged.mtu, new.mtu);
    assert_eq!(merged.listen_port, new.listen_port);
    assert_eq!(merged.peer, new.peer);
}
