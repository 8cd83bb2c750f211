//! The provider's WireGuard file (`vpn::conf::parse`) on arbitrary bytes, with a fake
//! resolver. Nothing may panic; for what imports: the section validates against a plain
//! LAN apart from what the file cannot know, saves and loads unchanged, merge keeps the
//! owner's choices, the keys print back to themselves, and the secrets file round-trips
//! through its text form.

#![no_main]

use std::net::{Ipv4Addr, SocketAddrV4};

use libfuzzer_sys::fuzz_target;
use portcullis::config::Config;
use portcullis::vpn::conf::{merge, parse};
use portcullis::vpn::key::Key;

/// Resolves names starting with `ok` to 198.51.100.7, others not at all.
fn fake(host: &str, port: u16) -> Option<SocketAddrV4> {
    host.starts_with("ok")
        .then_some(SocketAddrV4::new(Ipv4Addr::new(198, 51, 100, 7), port))
}

fuzz_target!(|data: &[u8]| {
    // Keys are read anywhere: raw bytes as a key's text form.
    if let Some(k) = std::str::from_utf8(data).ok().and_then(Key::from_base64) {
        assert_eq!(Key::from_base64(&k.to_base64()), Some(k));
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let imported = match parse(text, &fake) {
        Ok(i) => i,
        Err(e) => {
            assert!(e.line <= text.lines().count(), "{e}");
            let _ = e.to_string();
            return;
        }
    };
    let v = &imported.vpn;
    assert!(v.enabled && v.kill_switch);
    assert!(!v.addresses.is_empty() && !v.peer.allowed_ips.is_empty());
    assert_eq!(
        Key::from_base64(&v.peer.public_key).map(|k| k.to_base64()),
        Some(v.peer.public_key.clone())
    );
    let s = imported.secrets;
    assert_eq!(
        Key::from_base64(&s.private_key.to_base64()),
        Some(s.private_key)
    );
    // The section saves in the config and loads back unchanged; validation never panics.
    let Ok(mut cfg) = Config::parse(
        r#"{"version":1,"lan":{"interface":"br0","subnets":["192.168.1.0/24"]},"wan":{"interface":"eth0"}}"#,
    ) else {
        panic!("base config");
    };
    cfg.vpn = Some(v.clone());
    let _ = portcullis::config::validate(&cfg, portcullis::config::Timestamp(0));
    let saved = cfg.to_json();
    match Config::parse(&saved) {
        Ok(again) => assert_eq!(again, cfg, "saved form differs:\n{saved}"),
        Err(e) => panic!("saved form does not parse: {e}\n{saved}"),
    }
    let mut old = v.clone();
    old.interface = "wgx".into();
    old.kill_switch = false;
    let m = merge(Some(&old), v.clone());
    assert!(m.enabled && !m.kill_switch && m.interface == "wgx" && m.peer == v.peer);
});
