//! The web UI in a real browser: headless Chromium driven over WebDriver (Debian
//! `chromium` + `chromium-driver`), against the real `portcullis serve` in the router
//! namespace of a [`Topology`], from the LAN client's namespace at http://192.168.1.1/.
//!
//! First-boot setup, log out, log in, add a forward with an allow-list, see it on the
//! Exposure page (and a real connection through it counted as a hit), get a validation
//! error for a bad port, delete the forward, move the UI to port 8080 on trial and keep
//! it from the countdown banner, log out. Screenshots go to
//! `out/browser/*.png`. Needs root (namespaces); Chromium runs as root with --no-sandbox
//! and a fresh profile. Everything it starts lives in the topology's namespaces and is
//! killed when the topology is dropped, pass or fail.

use std::net::SocketAddr;
use std::time::Duration;

use portcullis_e2e::browser::{require, with_browser, Driver};
use portcullis_e2e::servers::{sa, Server};
use portcullis_e2e::{clients, Config, Topology, LAN_HOST, ROUTER_LAN, ROUTER_WAN, WAN_HOST};
use portcullis_e2e::{netns, web};
use serde_json::{json, Value};

const PASSWORD: &str = "quiet-lantern-58";
#[test]
fn setup_login_add_forward_see_exposure_validation_delete_logout() {
    require("chromium");
    require("chromedriver");
    let t = Topology::new();
    let cli = t.cli();
    std::fs::write(&cli.saved, Config::new().to_json()).unwrap();
    let mut daemon = cli.serve();
    let _lan_web = Server::tcp(&t.lan, sa(LAN_HOST, 80), "lan:80");

    // The UI answers on the LAN address (and only there: not on the WAN address).
    let connects = web::connects;
    let up = web::wait_listening(&t.lan_client, SocketAddr::from((ROUTER_LAN, 80)));
    assert!(
        up,
        "web UI not listening on 192.168.1.1:80\n{}",
        daemon.logs()
    );
    assert!(
        !connects(&t.wan, SocketAddr::from((ROUTER_WAN, 80))),
        "the web UI must not be reachable from the WAN"
    );

    let result = with_browser(&t, |d| drive(&t, d));
    let stopped = daemon.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    if let Err(p) = result {
        eprintln!("{}", daemon.logs());
        std::panic::resume_unwind(p);
    }
    stopped.unwrap();
    // The daemon removed its web handler socket on the way out.
    let left: Vec<String> = std::fs::read_dir(&cli.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".portcullis-web-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn drive(t: &Topology, d: &Driver) {
    let ui = format!("http://{ROUTER_LAN}/");

    // First boot: only the setup page, with the password rules stated.
    d.goto(&ui);
    d.wait("#setup-form", "setup page", |t| t.contains("10 characters"));
    d.type_into("#setup-password", "short");
    d.type_into("#setup-confirm", "short");
    d.click("#setup-submit");
    d.wait("#setup-password-err", "weak password refused", |t| {
        t.contains("at least 10")
    });
    d.type_into("#setup-password", PASSWORD);
    d.type_into("#setup-confirm", PASSWORD);
    d.screenshot("01-setup");
    d.click("#setup-submit");
    d.wait("#summary", "exposure after setup", |t| {
        t.contains("Nothing is open")
    });

    // Log out and in again.
    d.click("#logout");
    d.el("#login-password");
    d.type_into("#login-password", "wrong-password-1");
    d.click("#login-submit");
    d.wait("#login-password-err", "wrong password", |t| {
        t.contains("wrong password")
    });
    d.type_into("#login-password", PASSWORD);
    d.screenshot("02-login");
    d.click("#login-submit");
    d.wait("#summary", "exposure after login", |t| {
        t.contains("Nothing is open")
    });

    // Add a forward with an allow-list.
    d.click("a[href='#/forwards']");
    d.type_into("#fwd-name", "web");
    d.type_into("#fwd-external_port", "8080");
    d.type_into("#fwd-internal_host", &LAN_HOST.to_string());
    d.type_into("#fwd-internal_port", "80");
    d.type_into("#fwd-allow_from", &WAN_HOST.to_string());
    d.screenshot("03-add-forward");
    d.click("#fwd-form-submit");
    d.wait("#flash", "added", |t| t.contains("web added"));
    d.wait("tr[data-name='web']", "listed", |t| t.contains("8080"));

    // It works for real: the allowed internet host reaches the LAN server.
    let probe = clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).expect("forward works");
    assert_eq!(probe.label, "lan:80");

    // The Exposure page shows it: who may reach it, and the hit.
    d.click("a[href='#/exposure']");
    d.wait("#summary", "summary", |t| {
        t == "1 port open to the internet, 0 to anyone"
    });
    let (_, row) = d.wait("#exposure-rows tr[data-name='web']", "row with hit", |t| {
        t.contains(&WAN_HOST.to_string()) && t.contains("192.168.1.10:80")
    });
    assert!(!row.contains("anyone"), "{row}");
    d.goto(&format!("{ui}#/exposure"));
    d.wait(
        "#exposure-rows tr[data-name='web'] td[data-label='Hits']",
        "1 hit",
        |t| t == "1",
    );
    d.screenshot("04-exposure");

    // A bad port gets a validation error next to the field; nothing is added.
    d.click("a[href='#/forwards']");
    d.type_into("#fwd-name", "bad");
    d.type_into("#fwd-external_port", "70000");
    d.type_into("#fwd-internal_host", &LAN_HOST.to_string());
    d.click("#fwd-form-submit");
    d.wait("#fwd-external_port-err", "port error", |t| {
        t.contains("65535")
    });
    d.screenshot("05-validation-error");
    assert!(d.find_all("tr[data-name='bad']").is_empty());

    // Someone else changes the forward while this page shows it: the page's next change
    // is refused (409), says so, and shows the forward as it is now.
    let port80 = SocketAddr::from((ROUTER_LAN, 80));
    let (cookie, csrf) = login_http(port80);
    let (st, head, body) = http(port80, "GET", "/api/v1/forwards/web", &cookie, &csrf, "").unwrap();
    assert_eq!(st, 200, "{body}");
    let tag = etag_in(&head);
    let mut other: Value = serde_json::from_str(&body).unwrap();
    other["comment"] = json!("changed from another browser");
    let (st, _, body) = http_with(
        port80,
        "PUT",
        "/api/v1/forwards/web",
        &cookie,
        &csrf,
        &other.to_string(),
        &[("If-Match", &tag)],
    )
    .unwrap();
    assert_eq!(st, 200, "{body}");
    d.click("button[data-toggle='web']");
    d.wait("#flash", "conflict", |t| {
        t.contains("changed elsewhere — reloaded")
    });
    d.screenshot("05b-conflict");
    d.wait("tr[data-name='web']", "still enabled", |t| {
        t.contains("Disable")
    });

    // Delete it (two clicks: the first asks to confirm).
    d.click("button[data-del='web']");
    d.wait("button[data-del='web']", "confirm", |t| {
        t.starts_with("Really")
    });
    d.click("button[data-del='web']");
    d.wait("#flash", "deleted", |t| t.contains("web deleted"));
    d.gone("tr[data-name='web']");
    assert!(
        clients::tcp(&t.wan, WAN_HOST, sa(ROUTER_WAN, 8080)).is_err(),
        "forward still open"
    );

    // The other pages render (screenshots for review).
    d.click("a[href='#/triggers']");
    d.wait("#trg-form", "trigger form", |t| t.contains("Timeout"));
    d.screenshot("06-triggers");
    d.click("a[href='#/system']");
    d.wait("#version", "version", |t| t == env!("CARGO_PKG_VERSION"));
    d.screenshot("07-system");

    // A UI port change is applied on trial: the page moves to the new port and shows a
    // countdown; "Keep these settings" confirms it.
    d.type_into("#net-http_port", "8080");
    d.click("#net-form button[type='submit']");
    d.wait("#flash", "moving", |t| t.contains("moves to"));
    d.wait("#trial-text", "countdown on the new port", |t| {
        t.contains("undone in")
    });
    let url = d.call("GET", "/url", None);
    assert!(url.as_str().unwrap_or_default().contains(":8080/"), "{url}");
    d.screenshot("08-trial");
    d.click("#trial-confirm");
    d.wait("#flash", "kept", |t| t.contains("Settings kept"));
    d.gone("#trial:not([hidden])");
    let ui = format!("http://{ROUTER_LAN}:8080/");

    // The same page on a phone-sized screen.
    d.call(
        "POST",
        "/window/rect",
        Some(json!({ "width": 390, "height": 844 })),
    );
    d.click("a[href='#/log']");
    d.wait("#audit", "audit log", |t| t.contains("forward.delete"));
    d.screenshot("09-log-phone");

    // Log out: back to the login page, and the old session is gone.
    d.click("#logout");
    d.el("#login-password");
    d.goto(&format!("{ui}#/forwards"));
    d.el("#login-password");
    d.screenshot("10-logged-out");
}

/// One HTTP request from the current thread's namespace; returns (status, headers, body).
fn http(
    to: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    http_with(to, method, path, cookie, csrf, body, &[])
}

/// [`http`] with extra headers.
fn http_with(
    to: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    portcullis_e2e::web::raw_request(to, method, path, cookie, csrf, body, extra)
}

/// The ETag header of an answer's head.
fn etag_in(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("etag").then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no ETag in {head}"))
}

/// Logs in over plain HTTP; returns (session cookie, CSRF token).
fn login_http(to: SocketAddr) -> (String, String) {
    let (st, head, body) = http(
        to,
        "POST",
        "/api/v1/login",
        "",
        "",
        &format!("{{\"password\":\"{PASSWORD}\"}}"),
    )
    .unwrap();
    assert_eq!(st, 200, "{body}");
    session_of(&head, &body)
}

/// The session cookie and CSRF token of a setup or login answer.
fn session_of(head: &str, body: &str) -> (String, String) {
    let cookie = head
        .split("pc_session=")
        .nth(1)
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let v: Value = serde_json::from_str(body).unwrap();
    (cookie, v["csrf"].as_str().unwrap().to_owned())
}

/// PUTs router settings with the If-Match of a fresh GET.
fn put_settings(
    to: SocketAddr,
    cookie: &str,
    csrf: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    let (st, head, got) = http(to, "GET", "/api/v1/settings", cookie, csrf, "")?;
    assert_eq!(st, 200, "{got}");
    let tag = etag_in(&head);
    http_with(
        to,
        "PUT",
        "/api/v1/settings",
        cookie,
        csrf,
        body,
        &[("If-Match", &tag)],
    )
}

/// The real daemon: a UI port change goes on trial, the UI moves to the new port, and
/// without a confirmation the old config (and port) come back by themselves; confirmed,
/// the change stays. Plain HTTP from the LAN client, no browser.
#[test]
fn ui_port_change_on_trial_moves_the_ui_and_rolls_back_unless_confirmed() {
    let t = Topology::new();
    let cli = t.cli();
    std::fs::write(&cli.saved, Config::new().to_json()).unwrap();
    let bin = cli.bin.to_string_lossy().into_owned();
    let saved = cli.saved.to_string_lossy().into_owned();
    let log = std::fs::File::create(t.path("serve.err")).unwrap();
    let mut daemon = netns::command(
        &t.router,
        &bin,
        &["--config", &saved, "--trial-secs", "3", "serve"],
    )
    .stderr(log)
    .spawn()
    .expect("start portcullis serve");
    let logs = || std::fs::read_to_string(t.path("serve.err")).unwrap_or_default();
    let port80 = SocketAddr::from((ROUTER_LAN, 80));
    let port8080 = SocketAddr::from((ROUTER_LAN, 8080));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        netns::run_in(&t.lan_client, || {
            let wait_for = |addr: SocketAddr, what: &str, within: u64| {
                let ok = portcullis_e2e::poll::until_true(Duration::from_secs(within), || {
                    http(addr, "GET", "/api/v1/setup", "", "", "").is_ok_and(|r| r.0 == 200)
                });
                assert!(ok, "{what}");
            };
            wait_for(port80, "UI on port 80", 10);
            let (st, head, body) = http(
                port80,
                "POST",
                "/api/v1/setup",
                "",
                "",
                &format!("{{\"password\":\"{PASSWORD}\"}}"),
            )
            .unwrap();
            assert_eq!(st, 200, "{body}");
            let (cookie, csrf) = session_of(&head, &body);
            let settings = |port: u16| {
                json!({
                    "lan": { "interface": "lan0", "subnets": ["192.168.1.0/24"] },
                    "wan": { "interface": "wan0" },
                    "management": { "http_port": port }
                })
                .to_string()
            };

            // Unconfirmed: the UI moves to 8080, then comes back to 80 by itself.
            let (st, _, body) = put_settings(port80, &cookie, &csrf, &settings(8080)).unwrap();
            assert_eq!(st, 200, "{body}");
            wait_for(port8080, "UI moved to 8080", 5);
            assert!(
                http(port80, "GET", "/api/v1/setup", "", "", "").is_err(),
                "80 still open"
            );
            wait_for(port80, "UI back on 80 after the rollback", 10);
            let (_, _, trial) = http(port80, "GET", "/api/v1/trial", &cookie, &csrf, "").unwrap();
            let trial: Value = serde_json::from_str(&trial).unwrap();
            assert!(trial["rolled_back_at"].is_string(), "{trial}");
            let on_disk = std::fs::read_to_string(&saved).unwrap();
            assert!(on_disk.contains("\"http_port\": 80"), "{on_disk}");

            // Confirmed from the new port: it stays.
            let (st, _, _) = put_settings(port80, &cookie, &csrf, &settings(8080)).unwrap();
            assert_eq!(st, 200);
            wait_for(port8080, "UI moved to 8080 again", 5);
            let (st, _, body) = http(
                port8080,
                "POST",
                "/api/v1/trial/confirm",
                &cookie,
                &csrf,
                "{}",
            )
            .unwrap();
            assert_eq!((st, body.contains("true")), (200, true), "{body}");
            std::thread::sleep(Duration::from_secs(4));
            assert_eq!(
                http(port8080, "GET", "/api/v1/setup", "", "", "")
                    .unwrap()
                    .0,
                200
            );
            let on_disk = std::fs::read_to_string(&saved).unwrap();
            assert!(on_disk.contains("\"http_port\": 8080"), "{on_disk}");
        })
    }));
    let _ = daemon.kill();
    let _ = daemon.wait();
    if let Err(p) = result {
        eprintln!("{}", logs());
        std::panic::resume_unwind(p);
    }
}

/// A saved config the daemon cannot use puts the router in safe mode; the UI says so on
/// every page in a banner, with the reason.
#[test]
fn safe_mode_shows_a_banner_with_the_reason() {
    require("chromium");
    require("chromedriver");
    let t = Topology::new();
    let cli = t.cli();
    // An unknown field: the daemon refuses the file but salvages the LAN for the UI.
    let text: String = Config::new()
        .to_json()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut cfg: Value = serde_json::from_str(&text).unwrap();
    cfg["no_such_field"] = json!(1);
    std::fs::write(&cli.saved, cfg.to_string()).unwrap();
    let mut daemon = cli.serve();
    let up = web::wait_listening(&t.lan_client, SocketAddr::from((ROUTER_LAN, 80)));
    assert!(up, "web UI not listening\n{}", daemon.logs());
    let result = with_browser(&t, |d| {
        d.goto(&format!("http://{ROUTER_LAN}/"));
        d.type_into("#setup-password", PASSWORD);
        d.type_into("#setup-confirm", PASSWORD);
        d.click("#setup-submit");
        d.wait("#health", "safe mode banner", |t| {
            t.contains("SAFE MODE") && t.contains("no_such_field")
        });
        d.click("a[href='#/forwards']");
        d.wait("#health", "banner on other pages", |t| {
            t.contains("SAFE MODE")
        });
        d.screenshot("11-safe-mode");
    });
    let _ = daemon.stop(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(5));
    if let Err(p) = result {
        eprintln!("{}", daemon.logs());
        std::panic::resume_unwind(p);
    }
}
