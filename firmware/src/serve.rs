//! `portcullis serve`: the daemon's process — the lock, the start state (or what can be
//! salvaged of a broken config), the owner thread, the control socket, the web UI, and
//! signals until the end; on exit the sockets go and the ruleset stays.

use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};

use portcullis::config::{Config, Timestamp};
use portcullis::daemon::{self, chain, control};
use portcullis::engine::Engine;
use portcullis::portmap::igd_serve::{self, IgdOptions};
use portcullis::portmap::pmp_serve::PmpService;
use portcullis::portmap::services::{self, Link, Supervisor};
use portcullis::portmap::{LanSide, Mapper};
use portcullis::{facts, store, web};
use std::sync::Arc;

use crate::engine_error;

/// The web server once it runs, so `serve` can stop it (and remove its socket) on exit.
type WebSlot = std::sync::Arc<std::sync::Mutex<Option<web::Web>>>;

/// Starts the web UI on `listen`, or on the LAN interface's addresses; if the LAN has no
/// address yet, keeps trying in the background. The server lives until `serve` stops it.
fn start_web(
    handle: &daemon::Handle,
    cfg: &Config,
    saved: &std::path::Path,
    listen: Vec<std::net::SocketAddr>,
    trial_secs: u64,
    audit: std::sync::Arc<std::sync::Mutex<web::audit::Audit>>,
    slot: WebSlot,
) {
    let dir = control::state_dir(saved);
    let handle = handle.clone();
    let lan = cfg.lan.interface.clone();
    let spawned = std::thread::Builder::new()
        .name("web-start".into())
        .spawn(move || {
            let fixed = !listen.is_empty();
            // The LAN addresses with the configured UI port, as the config says now.
            let wanted = |handle: &daemon::Handle| -> Vec<std::net::SocketAddr> {
                // If the owner does not answer (busy), nothing moves: no addresses wanted.
                let Ok(c) = handle.config() else {
                    return Vec::new();
                };
                let (lan, port) = (c.lan.interface, c.management.http_port);
                let mut v: Vec<std::net::SocketAddr> = facts::interface_addrs(&lan)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| std::net::SocketAddr::from((a, port)))
                    .collect();
                v.sort_unstable();
                v
            };
            let mut warned = false;
            let addrs = loop {
                if fixed {
                    break listen.clone();
                }
                let found = wanted(&handle);
                if !found.is_empty() {
                    break found;
                }
                if !warned {
                    eprintln!("portcullis: web UI waits for an IPv4 address on {lan}");
                    warned = true;
                }
                std::thread::sleep(std::time::Duration::from_secs(5));
            };
            let opts = web::WebOptions {
                listen: addrs,
                run_dir: dir.clone(),
                limits: web::Limits::default(),
                app: web::AppOptions {
                    state_dir: Some(dir),
                    trial_secs,
                    audit: Some(audit),
                    ..web::AppOptions::default()
                },
            };
            let w = match web::start(handle.clone(), opts) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("portcullis: web UI not started: {}", chain(&e));
                    return;
                }
            };
            for a in w.addrs() {
                eprintln!("portcullis: web UI on http://{a}/");
            }
            if let Ok(mut s) = slot.lock() {
                *s = Some(w);
            }
            // Follow the LAN address and the UI port (a changed port on trial moves the
            // UI, a rollback moves it back) until `serve` takes the server away.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(2));
                if fixed {
                    continue;
                }
                let want = wanted(&handle);
                let Ok(s) = slot.lock() else { return };
                let Some(w) = s.as_ref() else { return };
                let mut have = w.addrs();
                have.sort_unstable();
                if !want.is_empty() && want != have {
                    w.rebind(want);
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("portcullis: web UI not started: {e}");
    }
}

/// What `serve` starts from: the saved config, or what can be salvaged of a broken one
/// (interface names and the UI port, so the safe ruleset and the UI have a LAN).
pub(crate) fn start_state(saved: &std::path::Path) -> daemon::Start {
    let e = match Config::load(saved) {
        Ok(c) => return daemon::Start::Config(Box::new(c)),
        Err(e) => e,
    };
    let mut reason = format!(
        "the saved config {} is unusable: {}",
        saved.display(),
        chain(&e)
    );
    let body = std::fs::read_to_string(saved).unwrap_or_default();
    // The first edit through the daemon saves over the broken file: keep it for the owner.
    let copy = saved.with_extension("json.bad");
    if !body.is_empty() && std::fs::read_to_string(&copy).ok().as_deref() != Some(body.as_str()) {
        match store::save_atomic(&copy, body.as_bytes()) {
            Ok(()) => reason.push_str(&format!(" (a copy is kept as {})", copy.display())),
            Err(e) => eprintln!(
                "portcullis: keeping a copy of the broken config: {}",
                chain(&e)
            ),
        }
    }
    let t: String = body
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let raw: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
    // From the parsed JSON, or, when it does not even parse, from a scan of the text.
    let text = |section: &str, key: &str, default: &str| {
        raw[section][key]
            .as_str()
            .map(str::to_string)
            .or_else(|| scan(&t, section, key))
            .filter(|s| !s.is_empty() && s.len() <= 15)
            .unwrap_or_else(|| default.to_string())
    };
    let fallback = Config {
        version: portcullis::config::VERSION,
        lan: portcullis::config::Lan {
            interface: text("lan", "interface", "lo"),
            subnets: raw["lan"]["subnets"]
                .as_array()
                .and_then(|a| a.iter().find_map(|s| s.as_str()?.parse().ok()))
                .into_iter()
                .collect(),
        },
        wan: portcullis::config::Wan {
            interface: text("wan", "interface", "-"),
        },
        management: portcullis::config::Management {
            http_port: raw["management"]["http_port"]
                .as_u64()
                .or_else(|| scan(&t, "management", "http_port")?.parse().ok())
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .unwrap_or(80),
        },
        forwards: Vec::new(),
        triggers: Vec::new(),
        upnp: Default::default(),
        // Fail closed: a tunnel (with its kill switch) that can be read from the broken
        // file stays, so its devices do not fall back to the WAN in clear; one that is
        // mentioned but cannot be read becomes a kill switch for every LAN device.
        vpn: Config::parse_section("vpn", &raw["vpn"].to_string())
            .ok()
            .and_then(|c| c.vpn)
            .or_else(|| {
                t.contains("\"vpn\"")
                    .then(|| portcullis::config::Vpn::stand_in(text("vpn", "interface", "wg0")))
            }),
        // DHCP keeps serving when its section reads: the owner's computer needs an
        // address to reach the UI and repair the config.
        // When the file does not even parse, the pool scanned from the text (without
        // its reservations) still gives the owner's computer an address.
        dhcp: Config::parse_section("dhcp", &raw["dhcp"].to_string())
            .ok()
            .and_then(|c| c.dhcp)
            .or_else(|| {
                // `enabled` is the section's only boolean: an owner who turned DHCP
                // off (another server on the LAN) is obeyed.
                let sec = t.split("\"dhcp\"").nth(1)?;
                if sec.split(['}', '[']).next()?.contains("false") {
                    return None;
                }
                let ip = |key| scan(&t, "dhcp", key)?.parse::<std::net::Ipv4Addr>().ok();
                let pool = format!(r#"{{"start":"{}","end":"{}"}}"#, ip("start")?, ip("end")?);
                Config::parse_section("dhcp", &pool).ok()?.dhcp
            }),
    };
    daemon::Start::Broken {
        fallback: Box::new(fallback),
        reason,
    }
}

/// The value after `"key":` following `"section"` in text that may not parse as JSON: a
/// quoted string (without escapes) or a bare number. Salvage only; never trusted further
/// than an interface name or a port.
fn scan(text: &str, section: &str, key: &str) -> Option<String> {
    let from = text.find(&format!("\"{section}\""))?;
    let rest = &text[from..];
    let at = rest.find(&format!("\"{key}\""))? + key.len() + 2;
    let rest = rest.get(at..)?.trim_start().strip_prefix(':')?.trim_start();
    if let Some(q) = rest.strip_prefix('"') {
        return q.split('"').next().map(str::to_string);
    }
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (!n.is_empty()).then_some(n)
}

pub(crate) fn serve(
    saved: &std::path::Path,
    run_dir: &std::path::Path,
    listen: Vec<std::net::SocketAddr>,
    trial_secs: u64,
) -> ExitCode {
    if let Some(dir) = saved.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    // One daemon per config: the lock is held until the process ends.
    let _lock = match control::lock(saved) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let dir = control::state_dir(saved);
    store::remove_stale_temporaries(&dir);
    let start = start_state(saved);
    let cfg = match &start {
        daemon::Start::Config(c) => (**c).clone(),
        daemon::Start::Broken { fallback, .. } => (**fallback).clone(),
    };
    // Block the signals we handle before any thread starts, so every thread inherits the
    // mask and only `wait` below receives them.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("error: blocking signals: {e}");
        return ExitCode::FAILURE;
    }
    let engine = match Engine::open(saved) {
        Ok(e) => e,
        Err(e) => return engine_error(&e),
    };
    let audit = std::sync::Arc::new(std::sync::Mutex::new(web::audit::Audit::open(Some(
        dir.join("audit.json"),
    ))));
    let notify: daemon::Notify = {
        let audit = std::sync::Arc::clone(&audit);
        Box::new(move |ev: &daemon::core::Event| {
            let mut a = audit
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = a.record(web::audit::Entry {
                time: Timestamp::now(),
                from: "router".into(),
                action: ev.action.clone(),
                target: ev.target.clone(),
                ok: ev.ok,
                detail: ev.detail.clone(),
            });
        })
    };
    let (link, receiving) = Link::pair();
    let opts = daemon::OwnerOptions {
        trial_secs,
        state_dir: Some(dir.clone()),
        notify,
        services: link,
        run_dir: Some(run_dir.to_path_buf()),
    };
    let (handle, join) = match daemon::spawn(engine, start, opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: starting the owner thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("portcullis: serving {}", saved.display());
    let mapper: Arc<dyn Mapper> = Arc::new(daemon::DaemonMapper::new(handle.clone()));
    let portmap = match Supervisor::spawn(receiving, mapper, portmap_servers(dir.clone())) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("portcullis: port-mapping supervisor not started: {e}");
            None
        }
    };
    let control_socket = match control::serve(saved, handle.clone()) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("portcullis: control socket not started: {}", chain(&e));
            None
        }
    };
    let slot: WebSlot = WebSlot::default();
    start_web(
        &handle,
        &cfg,
        saved,
        listen,
        trial_secs,
        std::sync::Arc::clone(&audit),
        std::sync::Arc::clone(&slot),
    );
    loop {
        match signals.wait() {
            Ok(Signal::SIGHUP) => match handle.reload() {
                Ok(Ok(_)) => eprintln!("portcullis: reloaded {}", saved.display()),
                Ok(Err(e)) => eprintln!("portcullis: reload refused: {}", chain(&e)),
                Err(e) => eprintln!("portcullis: {e}"),
            },
            Ok(sig) => {
                eprintln!("portcullis: {sig}, stopping (the ruleset stays installed)");
                break;
            }
            Err(e) => {
                eprintln!("portcullis: waiting for signals: {e}");
                break;
            }
        }
    }
    if let Some(p) = control_socket {
        let _ = std::fs::remove_file(p);
    }
    let web = slot.lock().ok().and_then(|mut s| s.take());
    if let Some(w) = web {
        w.stop();
    }
    // Servers first (UPnP says goodbye while the owner still answers).
    if let Some(p) = portmap {
        p.stop();
    }
    handle.shutdown();
    let _ = join.join();
    if let Ok(mut a) = audit.lock() {
        let _ = a.flush();
    }
    ExitCode::SUCCESS
}

/// The port-mapping servers the supervisor runs while the `upnp` mode is not off; the UPnP
/// gate's private socket lives in `run_dir` (the config's directory).
fn portmap_servers(run_dir: std::path::PathBuf) -> Vec<(&'static str, services::Start)> {
    let igd: services::Start = Box::new(move |lan: &LanSide, mapper: Arc<dyn Mapper>| {
        let opts = IgdOptions {
            run_dir: run_dir.clone(),
            web_port: lan.web_port,
        };
        let s = igd_serve::start_with(lan, mapper, &opts).map_err(|e| chain(&e))?;
        Ok(Box::new(move || s.stop()) as services::Stop)
    });
    let pmp: services::Start = Box::new(|lan: &LanSide, mapper: Arc<dyn Mapper>| {
        let s = PmpService::start(lan, mapper).map_err(|e| chain(&e))?;
        Ok(Box::new(move || s.stop()) as services::Stop)
    });
    vec![("UPnP IGD", igd), ("NAT-PMP/PCP", pmp)]
}

#[cfg(test)]
mod safe_mode_vpn_tests {
    //! The safe-mode salvage fails closed for the tunnel's devices (found by the issue 9
    //! review: both cases below dropped the kill switch).
    use super::*;

    const VPN: &str = r#"{"enabled":true,"addresses":["10.2.0.2/32"],"dns":["10.2.0.1"],
        "peer":{"public_key":"3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=",
                "endpoint":"203.0.113.5:51820","allowed_ips":["0.0.0.0/0"]}}"#;

    fn salvaged(body: &str, tag: &str) -> Option<portcullis::config::Vpn> {
        let dir = std::env::temp_dir().join(format!("pcx-salvage-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let saved = dir.join("config.json");
        std::fs::write(&saved, body).unwrap();
        let start = start_state(&saved);
        let _ = std::fs::remove_dir_all(&dir);
        match start {
            daemon::Start::Broken { fallback, .. } => fallback.vpn,
            daemon::Start::Config(_) => panic!("the file was meant to be broken"),
        }
    }

    /// A JSON syntax slip anywhere in the file (here a trailing comma in `forwards`)
    /// makes the whole file unparseable: the salvage then reads the `vpn` section from
    /// `serde_json::Value::Null`, gets none, and safe mode runs without the kill switch —
    /// the tunnel's devices go out by the WAN in clear.
    #[test]
    fn a_syntax_error_elsewhere_keeps_the_vpn_section_in_safe_mode() {
        let body = format!(
            r#"{{"version":1,"lan":{{"interface":"br0","subnets":["192.168.1.0/24"]}},
            "wan":{{"interface":"eth0"}},"forwards":[],,"vpn":{VPN}}}"#
        );
        let vpn = salvaged(&body, "syntax");
        assert!(
            vpn.is_some_and(|v| v.enabled && v.kill_switch),
            "safe mode dropped the VPN section: the kill switch is gone"
        );
    }

    /// A `vpn` section that does not deserialize (a field a newer version wrote, or a
    /// typo) is dropped whole by the salvage: the kill switch goes with it.
    #[test]
    fn a_broken_vpn_section_still_fails_closed_in_safe_mode() {
        let vpn_bad = VPN.replacen("\"enabled\":true", "\"enabled\":true,\"mtu\":\"1420\"", 1);
        let body = format!(
            r#"{{"version":1,"lan":{{"interface":"br0","subnets":["192.168.1.0/24"]}},
            "wan":{{"interface":"eth0"}},"vpn":{vpn_bad}}}"#
        );
        let vpn = salvaged(&body, "section");
        assert!(
            vpn.is_some_and(|v| v.enabled && v.kill_switch),
            "safe mode dropped the VPN section: the kill switch is gone"
        );
    }
}

#[cfg(test)]
mod safe_mode_dhcp_tests {
    //! Safe mode must keep the LAN's DHCP server: the owner's computer needs an address
    //! to reach the UI and repair the config (dhcp_cmd.rs, S40dnsmasq).
    use super::*;

    /// A JSON syntax slip anywhere (here a trailing comma in `forwards`, the commonest
    /// hand-edit mistake) makes the whole file unparseable: the salvage reads `dhcp` from
    /// `Value::Null`, gets none, and `dhcp-config` renders DNS only: no DHCP on the LAN.
    #[test]
    fn a_syntax_error_elsewhere_keeps_dhcp_serving_in_safe_mode() {
        let dir = std::env::temp_dir().join(format!("pcx-salvage-dhcp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let saved = dir.join("config.json");
        std::fs::write(
            &saved,
            r#"{"version":1,"lan":{"interface":"br0","subnets":["192.168.1.0/24"]},
            "wan":{"interface":"eth0"},"forwards":[{"name":"a"},],
            "dhcp":{"start":"192.168.1.100","end":"192.168.1.249"}}"#,
        )
        .unwrap();
        let text = || {
            let start = start_state(&saved);
            let daemon::Start::Broken { fallback, .. } = start else {
                panic!("the file was meant to be broken");
            };
            portcullis::dhcp::render(&fallback, std::path::Path::new("/run/x"))
        };
        let on = text();
        // DHCP turned off by the owner (another server on the LAN) stays off.
        let body = std::fs::read_to_string(&saved).unwrap();
        std::fs::write(
            &saved,
            body.replace("\"dhcp\":{", "\"dhcp\":{\"enabled\": false,"),
        )
        .unwrap();
        let off = text();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            on.lines()
                .any(|l| l.starts_with("dhcp-range=192.168.1.100,192.168.1.249,")),
            "safe mode serves no addresses:\n{on}"
        );
        assert!(!off.contains("dhcp-range"), "{off}");
    }
}
