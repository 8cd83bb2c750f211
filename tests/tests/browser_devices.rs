//! The owner sees LAN devices, reserves an address and forwards a port to a device in a
//! real browser (issue 10): headless Chromium over WebDriver ([`portcullis_e2e::browser`])
//! against the real `portcullis serve --run-dir RUN` in the router namespace of a
//! [`Topology`], from the LAN client.
//!
//! RUN/dnsmasq.leases is written by the test in dnsmasq's format (the real dnsmasq and
//! DHCP clients are `devices_api`'s business): the Devices page lists both leased devices;
//! Reserve (prefilled with the device's address and name) creates a reservation; the
//! forward form's device picker sets `device` for the reserved one ("follows …") and, for
//! the other, fills its address and reserves it when asked, so both saved forwards (read
//! back through the API) carry `device`. Screenshots go to `out/browser/devices-*.png`.
//!
//! Needs root, `make deps` (chromium, chromium-driver) and the `portcullis` binary.
//! Everything it starts lives in the topology's namespaces and dies with it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use portcullis_e2e::browser::{require, with_browser, Driver};
use portcullis_e2e::cli::binary;
use portcullis_e2e::servers::sa;
use portcullis_e2e::web::{self, Api, PASSWORD};
use portcullis_e2e::{netns, poll, Config, Topology, ROUTER_LAN};
use serde_json::{json, Value};

const CAMERA: &str = "02:00:5e:20:00:0c";
const PRINTER: &str = "02:00:5e:20:00:0d";

/// `portcullis serve`; killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `portcullis --run-dir RUN serve` on the saved config `text`; waits until its
/// control socket answers.
fn serve(t: &Topology, text: &str, run: &Path) -> Proc {
    let cli = t.cli();
    std::fs::write(&cli.saved, text).expect("write the saved config");
    let (bin, saved, run) = (
        binary().display().to_string(),
        cli.saved.display().to_string(),
        run.display().to_string(),
    );
    let mut cmd = netns::command(
        &t.router,
        &bin,
        &["--config", &saved, "--run-dir", &run, "serve"],
    );
    cmd.stderr(std::fs::File::create(t.path("serve.err")).expect("serve.err"));
    let p = Proc(cmd.spawn().expect("spawn portcullis serve"));
    let up = poll::until_true(Duration::from_secs(10), || {
        t.path("control.sock").exists() && cli.status(false).code == Some(0)
    });
    assert!(up, "serve did not start\n{}", serve_log(t));
    p
}

fn serve_log(t: &Topology) -> String {
    std::fs::read_to_string(t.path("serve.err")).unwrap_or_default()
}

#[test]
fn owner_reserves_and_forwards_to_a_device_in_the_browser() {
    require("chromium");
    require("chromedriver");
    let t = Topology::new();
    let run = t.path("run");
    std::fs::create_dir_all(&run).expect("mkdir run");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Two leases as dnsmasq writes them (lease.c): expiry, MAC, address, name, client id.
    std::fs::write(
        run.join("dnsmasq.leases"),
        format!(
            "{} {CAMERA} 192.168.1.120 camera 01:{CAMERA}\n{} {PRINTER} 192.168.1.121 printer *\n",
            now + 3000,
            now + 600
        ),
    )
    .expect("write the lease file");
    let dhcp = json!({ "start": "192.168.1.100", "end": "192.168.1.149", "lease_secs": 3600 });
    let cfg = Config::new().to_json().replacen(
        "  \"forwards\"",
        &format!("  \"dhcp\": {dhcp},\n  \"forwards\""),
        1,
    );
    let _daemon = serve(&t, &cfg, &run);
    let up = web::wait_listening(&t.lan_client, SocketAddr::from((ROUTER_LAN, 80)));
    assert!(up, "web UI not listening\n{}", serve_log(&t));
    let api = std::panic::catch_unwind(|| Api::setup(&t.lan_client, sa(ROUTER_LAN, 80)))
        .unwrap_or_else(|p| {
            eprintln!("{}", serve_log(&t));
            std::panic::resume_unwind(p)
        });
    let result = with_browser(&t, |d| drive(&api, d));
    if let Err(p) = result {
        eprintln!("{}", serve_log(&t));
        std::panic::resume_unwind(p);
    }
}

fn get(api: &Api, path: &str) -> Value {
    let (status, body) = api.call("GET", path, "");
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}

fn reservation(api: &Api, mac: &str) -> Value {
    get(api, "/api/v1/dhcp")["dhcp"]["reservations"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["mac"] == mac).cloned())
        .unwrap_or(Value::Null)
}

fn drive(api: &Api, d: &Driver) {
    d.goto(&format!("http://{ROUTER_LAN}/"));
    d.type_into("#login-password", PASSWORD);
    d.click("#login-submit");
    d.el("#summary");

    // Both leased devices are listed, with their names, addresses and lease time left.
    d.click("a[href='#/devices']");
    let cam = format!("tr[data-mac='{CAMERA}']");
    let (_, row) = d.wait(&cam, "the camera", |s| s.contains("camera"));
    assert!(
        row.contains("192.168.1.120") && row.contains(CAMERA),
        "{row}"
    );
    assert!(
        row.contains("49m") || row.contains("50m"),
        "lease left: {row}"
    );
    let (_, row) = d.wait(&format!("tr[data-mac='{PRINTER}']"), "the printer", |s| {
        s.contains("printer")
    });
    assert!(row.contains("192.168.1.121"), "{row}");
    d.screenshot("devices-01-list");

    // Reserve, prefilled with the device's address and name; the owner changes the address.
    d.click(&format!("button[data-reserve='{CAMERA}']"));
    assert_eq!(value_of(d, "#res-name"), "camera");
    assert_eq!(value_of(d, "#res-address"), "192.168.1.120");
    d.type_into("#res-address", "192.168.1.40");
    d.screenshot("devices-02-reserve");
    d.click("#reserve-submit");
    d.wait("#flash", "reserved", |s| {
        s.contains("Reserved 192.168.1.40 for camera")
    });
    d.wait(&cam, "the reserved address", |s| s.contains("192.168.1.40"));
    assert_eq!(reservation(api, CAMERA)["address"], "192.168.1.40");
    assert_eq!(reservation(api, CAMERA)["name"], "camera");

    // A forward to the reserved device: the picker sets `device`, the form says it follows.
    d.click("a[href='#/forwards']");
    d.el("#fwd-form");
    d.click(&format!("#fwd-device option[value='{CAMERA}']"));
    d.wait("#fwd-follows", "follows", |s| {
        s == "follows camera (192.168.1.40)"
    });
    d.type_into("#fwd-name", "cam");
    d.type_into("#fwd-external_port", "8554");
    d.screenshot("devices-03-picker");
    d.click("#fwd-form-submit");
    d.wait("#flash", "added", |s| s.contains("cam added"));
    let f = get(api, "/api/v1/forwards/cam");
    assert_eq!(f["device"], CAMERA, "{f}");
    assert!(f.get("internal_host").is_none(), "{f}");
    d.wait("tr[data-name='cam']", "the device's name", |s| {
        s.contains("camera (192.168.1.40):8554")
    });

    // A device without a reservation: its address is filled in, and reserving it on the
    // way makes the forward follow it too.
    d.click(&format!("#fwd-device option[value='{PRINTER}']"));
    assert_eq!(value_of(d, "#fwd-internal_host"), "192.168.1.121");
    d.wait("#fwd-reserve-offer label", "the offer", |s| {
        s.contains("Reserve this address")
    });
    d.click("#fwd-reserve");
    d.type_into("#fwd-name", "print");
    d.type_into("#fwd-external_port", "9100");
    d.click("#fwd-form-submit");
    d.wait("#flash", "added", |s| s.contains("print added"));
    let f = get(api, "/api/v1/forwards/print");
    assert_eq!(f["device"], PRINTER, "{f}");
    let r = reservation(api, PRINTER);
    assert_eq!(
        (&r["address"], &r["name"]),
        (&json!("192.168.1.121"), &json!("printer"))
    );
    d.wait("tr[data-name='print']", "the device's name", |s| {
        s.contains("printer (192.168.1.121):9100")
    });
    d.scroll_to("tr[data-name='print']");
    d.screenshot("devices-04-forwards");

    // The printer's reservation cannot go while a forward uses it: the refusal names it.
    d.click("a[href='#/devices']");
    let del = format!("button[data-unreserve='{PRINTER}']");
    d.click(&del);
    d.wait(&del, "armed", |s| s.starts_with("Really"));
    d.click(&del);
    d.wait("#flash", "refused", |s| s.contains("forwards[1].device"));
    assert_eq!(reservation(api, PRINTER)["address"], "192.168.1.121");
    d.screenshot("devices-05-refused");
}

fn value_of(d: &Driver, css: &str) -> String {
    d.el(css);
    let v = d.call(
        "POST",
        "/execute/sync",
        Some(json!({ "script": "return document.querySelector(arguments[0]).value;", "args": [css] })),
    );
    v.as_str().unwrap_or_default().to_owned()
}
