//! The owner imports and controls the WireGuard client in a real browser (issue 9):
//! headless Chromium over WebDriver ([`portcullis_e2e::browser`]) against the real
//! `portcullis serve` in the router namespace of a [`Topology`], from the LAN client.
//!
//! A file with a bad PrivateKey line is refused, the page naming the line and the key; a
//! good file (random keys), chosen with the file picker, is imported: the page shows the
//! parser's notes, the endpoint, and the state the daemon reports (this host's kernel has
//! no WireGuard, so the tunnel cannot exist: the page shows the daemon's error as it is);
//! the private key is stored 0600 in `vpn.key` and is in no page, API answer, backup,
//! audit line, saved config or daemon log. The owner then sends one host through the
//! tunnel with the provider's port forwarded to it (saved: the API shows it), and removes
//! the tunnel (section and key gone). Screenshots go to `out/browser/vpn-*.png`.
//!
//! Needs root, `make deps` (chromium, chromium-driver) and the `portcullis` binary.
//! Everything it starts lives in the topology's namespaces and dies with it.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use portcullis_e2e::browser::{require, with_browser, Driver};
use portcullis_e2e::cli::{Cli, Daemon};
use portcullis_e2e::servers::sa;
use portcullis_e2e::web::{self, Api, PASSWORD};
use portcullis_e2e::{poll, upnp};
use portcullis_e2e::{Config, Topology, LAN_CLIENT, ROUTER_LAN};
use serde_json::{json, Value};

/// The provider's server in the file (an address: no DNS needed).
const ENDPOINT: &str = "198.51.100.7:51820";

#[test]
fn owner_imports_and_controls_the_vpn_in_the_browser() {
    require("chromium");
    require("chromedriver");
    let t = Topology::new();
    let cli = t.cli();
    let daemon = upnp::serve(&cli, &Config::new());
    let up = web::wait_listening(&t.lan_client, SocketAddr::from((ROUTER_LAN, 80)));
    assert!(up, "web UI not listening\n{}", daemon.logs());
    let api = Api::setup(&t.lan_client, sa(ROUTER_LAN, 80));
    let keys = Keys::random();
    let file = t.path("provider.conf");
    std::fs::write(&file, keys.file(&keys.private)).unwrap();

    let result = with_browser(&t, |d| {
        drive(&cli, &daemon, &api, d, &keys, &file.display().to_string())
    });
    let mut daemon = daemon;
    let stopped = daemon.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    if let Err(p) = result {
        eprintln!("{}", daemon.logs());
        std::panic::resume_unwind(p);
    }
    stopped.unwrap();
    // Nothing the daemon printed, from start to stop, carries the key.
    assert!(
        !daemon.logs().contains(&keys.private),
        "the daemon logged the private key"
    );
}

fn drive(cli: &Cli, daemon: &Daemon, api: &Api, d: &Driver, keys: &Keys, file: &str) {
    d.goto(&format!("http://{ROUTER_LAN}/"));
    d.type_into("#login-password", PASSWORD);
    d.click("#login-submit");
    d.el("#summary");

    d.click("a[href='#/vpn']");
    d.wait("#vpn-none", "no tunnel yet", |s| s.contains("No tunnel"));
    d.gone("#vpn-settings-form");
    d.screenshot("vpn-01-none");

    // A bad PrivateKey (line 3): refused, naming the line and the key; nothing saved.
    let bad = keys.file("not-a-key");
    d.type_into("#import-conf", &bad);
    d.click("#vpn-import-submit");
    let (_, err) = d.wait(
        "#vpn-import-form .err[data-for='conf']",
        "the parser's error",
        |s| !s.is_empty(),
    );
    assert!(err.starts_with("Line 3, PrivateKey: "), "{err}");
    assert!(
        !err.contains("not-a-key"),
        "the error quotes the value: {err}"
    );
    let (status, body) = api.call(
        "POST",
        "/api/v1/vpn/import",
        &json!({ "conf": bad }).to_string(),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(json_of(&body)["issues"][0]["field"], "conf:3:PrivateKey");
    assert_eq!(vpn_get(api)["vpn"], Value::Null);
    d.screenshot("vpn-02-bad-file");

    // The good file through the file picker (FileReader fills the box), then Import.
    d.on_element("#import-file", |id| {
        d.try_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": file })),
        )
    });
    let read = poll::until_true(Duration::from_secs(10), || {
        value_of(d, "#import-conf").contains("[Peer]")
    });
    assert!(read, "the file picker did not fill the box");
    d.click("#vpn-import-submit");
    d.wait("#flash", "imported", |s| s.contains("Imported"));
    let (_, notes) = d.wait("#vpn-notes", "the parser's notes", |s| !s.is_empty());
    assert!(
        notes.contains("never runs commands") && notes.contains("IPv6"),
        "{notes}"
    );
    d.wait("#vpn-endpoint", "the endpoint", |s| s.contains(ENDPOINT));
    // A /32 is shown as the bare address.
    d.wait("#vpn-addresses", "the tunnel address", |s| {
        s.ends_with("10.2.0.2")
    });

    // The state is what the daemon reports: here the tunnel cannot be created (no
    // WireGuard in this kernel), so "error" with the daemon's reason, word for word.
    let state = poll::until(Duration::from_secs(10), || {
        let v = vpn_get(api);
        (v["state"]["state"] == "error" && v["state"]["error"].is_string()).then_some(v)
    })
    .unwrap_or_else(|| panic!("no error state: {}\n{}", vpn_get(api), daemon.logs()));
    let why = state["state"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!why.is_empty());
    assert_eq!(state["state"]["has_private_key"], true, "{state}");
    assert_eq!(state["state"]["link"], "absent", "{state}");
    d.wait("#vpn-state-word", "state error", |s| s == "error");
    d.wait("#vpn-error-text", "the daemon's reason", |s| s == why);
    // With the real tunnel module the reason is the kernel's refusal of a WireGuard link
    // (EOPNOTSUPP); the page then says in plain words that the kernel lacks WireGuard.
    let lower = why.to_ascii_lowercase();
    if lower.contains("not supported") || lower.contains("no wireguard") {
        d.wait("#vpn-no-wireguard", "no WireGuard in the kernel", |s| {
            s.contains("kernel has no WireGuard support")
        });
    }
    d.wait("#vpn-kill-note", "kill switch note", |s| {
        s.contains("no internet until it is connected")
    });
    d.screenshot("vpn-03-imported");

    // The private key is nowhere the owner (or anyone with the session) can read.
    let source = d.call("GET", "/source", None);
    let source = source.as_str().unwrap_or_default();
    assert!(
        source.contains(ENDPOINT),
        "page source without the endpoint"
    );
    assert!(
        !source.contains(&keys.private),
        "the page holds the private key"
    );
    let (status, got) = api.call("GET", "/api/v1/vpn", "");
    assert_eq!(status, 200);
    assert!(!got.contains(&keys.private), "GET /api/v1/vpn: {got}");
    assert!(!got.contains(&keys.preshared), "GET /api/v1/vpn: {got}");
    assert!(
        got.contains(&keys.peer),
        "the peer's public key is shown: {got}"
    );
    let (status, secrets, backup) = fetch(
        d,
        "GET",
        "/config",
        None,
        None,
        "X-Portcullis-Backup-Secrets",
    );
    assert_eq!(status, 200, "{backup}");
    assert_eq!(secrets, "none", "the backup's secrets header");
    assert!(backup.contains(ENDPOINT), "the backup has no vpn section");
    assert!(
        !backup.contains(&keys.private),
        "the backup holds the private key"
    );
    assert!(
        !backup.contains(&keys.preshared),
        "the backup holds the preshared key"
    );
    let (_, log) = api.call("GET", "/api/v1/log", "");
    assert!(log.contains("vpn.import"), "import not audited: {log}");
    assert!(
        !log.contains(&keys.private),
        "the audit log holds the private key"
    );
    let saved = std::fs::read_to_string(&cli.saved).unwrap();
    assert!(
        !saved.contains(&keys.private),
        "the saved config holds the key"
    );
    let key_file = cli.saved.with_file_name("vpn.key");
    let meta =
        std::fs::metadata(&key_file).unwrap_or_else(|e| panic!("{}: {e}", key_file.display()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o600, "vpn.key mode");
    let mut stored = String::new();
    std::fs::File::open(&key_file)
        .and_then(|mut f| f.read_to_string(&mut stored))
        .unwrap();
    assert!(
        stored.contains(&keys.private),
        "vpn.key lacks the imported key"
    );

    // The API's guards on the section: If-Match required, a stale one refused, a bad
    // field named.
    let section = vpn_get(api)["vpn"].clone();
    let tag = vpn_get(api)["etag"].as_str().unwrap_or_default().to_owned();
    let (status, _, body) = fetch(d, "PUT", "/vpn", Some(&section), None, "ETag");
    assert_eq!(status, 428, "PUT without If-Match: {body}");
    let mut bad = section.clone();
    bad["devices"] = json!({ "all": false, "hosts": ["192.168.1.300"] });
    let (status, _, body) = fetch(d, "PUT", "/vpn", Some(&bad), Some(&tag), "ETag");
    assert_eq!(status, 422, "{body}");
    assert_eq!(json_of(&body)["issues"][0]["field"], "vpn.devices.hosts[0]");
    let (status, _, body) = fetch(
        d,
        "PUT",
        "/vpn",
        Some(&section),
        Some("\"0000000000000000\""),
        "ETag",
    );
    assert_eq!(status, 409, "stale If-Match: {body}");

    // One host through the tunnel, the provider's port forwarded to it.
    d.click("#vpn-devices-some");
    d.type_into("#vpn-devices", &LAN_CLIENT.to_string());
    d.click("#vpn-kill_switch");
    d.wait("#vpn-kill-warn", "kill switch warning", |s| {
        s.contains("your real address shows")
    });
    d.click("#vpn-kill_switch");
    d.gone("#vpn-kill-warn:not([hidden])");
    d.click("#vpn-pf_on");
    d.type_into("#vpn-pf_to", &format!("{LAN_CLIENT}:8080"));
    d.scroll_to("#vpn-settings-submit");
    d.screenshot("vpn-04-settings");
    d.click("#vpn-settings-submit");
    d.wait("#flash", "saved", |s| s.contains("VPN settings saved"));
    let v = vpn_get(api)["vpn"].clone();
    assert_eq!(v["devices"]["all"], false, "{v}");
    assert!(
        [
            json!([LAN_CLIENT.to_string()]),
            json!([format!("{LAN_CLIENT}/32")])
        ]
        .contains(&v["devices"]["hosts"]),
        "{v}"
    );
    assert_eq!(v["kill_switch"], true, "{v}");
    assert_eq!(v["port_forward"]["to"], LAN_CLIENT.to_string(), "{v}");
    assert_eq!(v["port_forward"]["to_port"], 8080, "{v}");
    assert_eq!(v["port_forward"]["gateway"], "10.2.0.1", "{v}");
    assert_eq!(
        v["peer"]["endpoint"], ENDPOINT,
        "the provider's part was kept: {v}"
    );
    d.wait("#vpn-devices-now", "devices now", |s| {
        s.contains(&LAN_CLIENT.to_string())
    });
    d.wait("#vpn-port", "port forward", |s| {
        s.contains(&format!("{LAN_CLIENT}:8080"))
    });
    d.scroll_to("#vpn-state");
    d.screenshot("vpn-05-saved");

    // Remove: confirm, then section and key are gone.
    d.click("#vpn-remove");
    d.wait("#vpn-remove", "confirm", |s| s.contains("Really"));
    d.click("#vpn-remove");
    d.wait("#flash", "removed", |s| s.contains("removed"));
    d.el("#vpn-none");
    d.gone("#vpn-settings-form");
    assert_eq!(vpn_get(api)["vpn"], Value::Null);
    assert_eq!(vpn_get(api)["state"], Value::Null);
    let gone = poll::until_true(Duration::from_secs(5), || !key_file.exists());
    assert!(gone, "vpn.key survived the removal");
    d.screenshot("vpn-06-removed");
}

/// Random keys for the provider's file (base64 of 32 bytes, as WireGuard writes them).
struct Keys {
    private: String,
    preshared: String,
    peer: String,
}

impl Keys {
    fn random() -> Keys {
        let mut raw = [0u8; 96];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .unwrap();
        Keys {
            private: base64(&raw[..32]),
            preshared: base64(&raw[32..64]),
            peer: base64(&raw[64..]),
        }
    }

    /// The provider's file with `private` on line 3 (an IPv6 address and a PostUp, which
    /// the import notes and ignores).
    fn file(&self, private: &str) -> String {
        format!(
            "[Interface]\n# Key for the test\nPrivateKey = {private}\n\
             Address = 10.2.0.2/32, fd00:2::2/128\nDNS = 10.2.0.1\nPostUp = echo hi\n\n\
             [Peer]\nPublicKey = {}\nPresharedKey = {}\nAllowedIPs = 0.0.0.0/0, ::/0\n\
             Endpoint = {ENDPOINT}\nPersistentKeepalive = 25\n",
            self.peer, self.preshared
        )
    }
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | u32::from(x) << (16 - 8 * i));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// GET /api/v1/vpn.
fn vpn_get(api: &Api) -> Value {
    let (status, body) = api.call("GET", "/api/v1/vpn", "");
    assert_eq!(status, 200, "GET /api/v1/vpn: {body}");
    json_of(&body)
}

/// One request from the page, with its session and CSRF token (and `If-Match` when
/// given): (status, the named response header, body).
fn fetch(
    d: &Driver,
    method: &str,
    path: &str,
    body: Option<&Value>,
    if_match: Option<&str>,
    header: &str,
) -> (u64, String, String) {
    let v = d.call(
        "POST",
        "/execute/async",
        Some(json!({
            "script": "var done = arguments[arguments.length - 1], a = arguments;\
                       fetch('/api/v1/session', {credentials: 'same-origin'}).then(function (r) { return r.json(); })\
                       .then(function (s) {\
                         var o = {method: a[0], credentials: 'same-origin', headers: {}};\
                         if (a[0] !== 'GET') { o.headers['Content-Type'] = 'application/json';\
                           o.headers['X-CSRF-Token'] = s.csrf; o.body = a[2] === null ? '{}' : JSON.stringify(a[2]); }\
                         if (a[3]) o.headers['If-Match'] = a[3];\
                         return fetch('/api/v1' + a[1], o); })\
                       .then(function (r) { return r.text().then(function (t) {\
                         done([r.status, r.headers.get(a[4]) || '', t]); }); })\
                       .catch(function (e) { done([0, '', String(e)]); });",
            "args": [method, path, body, if_match, header],
        })),
    );
    (
        v[0].as_u64().unwrap_or(0),
        v[1].as_str().unwrap_or_default().to_owned(),
        v[2].as_str().unwrap_or_default().to_owned(),
    )
}

/// The value of a form control (what the owner sees in it).
fn value_of(d: &Driver, css: &str) -> String {
    let v = d.call(
        "POST",
        "/execute/sync",
        Some(json!({
            "script": "var e = document.querySelector(arguments[0]); return e ? e.value : '';",
            "args": [css],
        })),
    );
    v.as_str().unwrap_or_default().to_owned()
}
