//! The `portcullis` command: check, plan, apply, status, serve.
//!
//! Arguments are parsed by hand: a CLI parser crate would cost more flash than this file.

use std::path::PathBuf;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, Signal};

use portcullis::config::{Config, ConfigError, Timestamp};
use portcullis::daemon::{self, chain, control};
use portcullis::engine::{Engine, EngineError};
use portcullis::{facts, plan, readback, render, status, store, web};

const DEFAULT_CONFIG: &str = "/etc/portcullis/config.json";

const USAGE: &str = "\
usage: portcullis [--config SAVED] [--listen ADDR:PORT]... [--trial-secs N] COMMAND

commands:
  check FILE     validate FILE; exit 1 with one line per problem
  plan FILE      print the nftables ruleset FILE would install (nft syntax)
  apply FILE     validate FILE, install it atomically, save it as SAVED
  status [--json] forwards and triggers: state, hits, time left
  serve          run the daemon: install SAVED, keep expiry and status current, and
                 serve the web UI on the LAN interface's addresses (management.http_port)
                 or on each --listen ADDR:PORT instead (never give a WAN address);
                 risky UI changes roll back unless confirmed within --trial-secs (60)
  set-password   read a new web UI admin password from standard input (console
                 recovery when web.json is lost or damaged)
  --version      print the version

SAVED defaults to /etc/portcullis/config.json. While `serve` runs, `apply` and `status`
go through it (the control socket next to SAVED); otherwise they act directly.
`portcullis COMMAND --help` prints this text.";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut saved = PathBuf::from(DEFAULT_CONFIG);
    if let Some(i) = args.iter().position(|a| a == "--config") {
        if i + 1 >= args.len() {
            return usage_error("--config needs a path");
        }
        saved = PathBuf::from(args.remove(i + 1));
        args.remove(i);
    }
    let mut listen: Vec<std::net::SocketAddr> = Vec::new();
    while let Some(i) = args.iter().position(|a| a == "--listen") {
        let Some(addr) = args.get(i + 1).and_then(|a| a.parse().ok()) else {
            return usage_error("--listen needs an address like 192.168.1.1:80");
        };
        listen.push(addr);
        args.drain(i..=i + 1);
    }
    let mut trial_secs = 60;
    if let Some(i) = args.iter().position(|a| a == "--trial-secs") {
        let Some(n) = args.get(i + 1).and_then(|a| a.parse().ok()) else {
            return usage_error("--trial-secs needs a number of seconds");
        };
        trial_secs = n;
        args.drain(i..=i + 1);
    }
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    if strs.iter().any(|a| *a == "-h" || *a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match strs.as_slice() {
        ["--version" | "version"] => {
            println!("portcullis {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["--help" | "-h" | "help"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        ["check", file] => check(file),
        ["plan", file] => plan_cmd(file),
        ["apply", file] => apply(file, &saved),
        ["status"] => status_cmd(&saved, false),
        ["status", "--json"] => status_cmd(&saved, true),
        ["serve"] => serve(&saved, listen, trial_secs),
        ["set-password"] => set_password(&saved),
        _ => usage_error("unknown command or wrong arguments"),
    }
}

/// Writes to stdout; a closed pipe (`portcullis plan | head`) is not an error worth a panic.
fn stdout(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn usage_error(why: &str) -> ExitCode {
    eprintln!("portcullis: {why}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Prints a config error: validation problems one per line, anything else with its chain.
fn report_config_error(file: &str, e: &ConfigError) -> ExitCode {
    match e {
        ConfigError::Invalid(report) => eprint!("{report}"),
        ConfigError::Parse { .. } | ConfigError::Version(_) => eprintln!("error: {e}"),
        other => eprintln!("error: {file}: {}", chain(other)),
    }
    ExitCode::FAILURE
}

/// Reads and validates a file at the current time.
fn load_valid(file: &str) -> Result<Config, ExitCode> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        eprintln!("error: {file}: {e}");
        ExitCode::FAILURE
    })?;
    match Config::parse_valid(&text, Timestamp::now()) {
        Ok((cfg, report)) => {
            eprint!("{report}");
            Ok(cfg)
        }
        Err(e) => Err(report_config_error(file, &e)),
    }
}

fn check(file: &str) -> ExitCode {
    match load_valid(file) {
        Ok(cfg) => {
            println!(
                "{file}: ok ({} forwards, {} triggers)",
                cfg.forwards.len(),
                cfg.triggers.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn plan_cmd(file: &str) -> ExitCode {
    let cfg = match load_valid(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let facts = match facts::gather(&cfg.wan.interface) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    stdout(&render::render(&plan::plan(&cfg, &facts, Timestamp::now())));
    ExitCode::SUCCESS
}

fn engine_error(e: &EngineError) -> ExitCode {
    match e {
        EngineError::Invalid(report) => eprint!("{report}"),
        other => eprintln!("error: {}", chain(other)),
    }
    ExitCode::FAILURE
}

fn apply(file: &str, saved: &std::path::Path) -> ExitCode {
    let cfg = match load_valid(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(dir) = saved.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    let request = control::Request::Apply {
        config: Box::new(cfg.clone()),
    };
    // While a daemon runs, it applies (it owns the config); otherwise we do, holding its lock.
    let _lock = match control::request(saved, &request) {
        Ok(Ok(reply)) => return daemon_reply(file, &cfg, saved, reply),
        Ok(Err(lock)) => lock,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let mut engine = match Engine::open(saved) {
        Ok(e) => e,
        Err(e) => return engine_error(&e),
    };
    if let Some(dir) = saved.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match engine.apply_and_save(&cfg, Timestamp::now()) {
        Ok(_) => {
            println!(
                "applied {file}: {} forwards, {} triggers; saved as {}",
                cfg.forwards.len(),
                cfg.triggers.len(),
                saved.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => engine_error(&e),
    }
}

/// Prints what the daemon said about an apply.
fn daemon_reply(
    file: &str,
    cfg: &Config,
    saved: &std::path::Path,
    reply: control::Reply,
) -> ExitCode {
    match reply {
        control::Reply::Ok(_) => {
            println!(
                "applied {file} through the running daemon: {} forwards, {} triggers; saved as {}",
                cfg.forwards.len(),
                cfg.triggers.len(),
                saved.display()
            );
            ExitCode::SUCCESS
        }
        control::Reply::Invalid(report) => {
            eprint!("{report}");
            ExitCode::FAILURE
        }
        control::Reply::Failed(why) => {
            eprintln!("error: the daemon refused: {why}");
            ExitCode::FAILURE
        }
    }
}

fn status_cmd(saved: &std::path::Path, json: bool) -> ExitCode {
    // A running daemon answers from its own state (config in force, health).
    let _lock = match control::request(saved, &control::Request::Status) {
        Ok(Ok(control::Reply::Ok(v))) => {
            if json {
                stdout(&format!(
                    "{}\n",
                    serde_json::to_string_pretty(&v["status"]).unwrap_or_default()
                ));
            } else {
                stdout(v["text"].as_str().unwrap_or_default());
            }
            return ExitCode::SUCCESS;
        }
        Ok(Ok(other)) => {
            eprintln!("error: the daemon: {}", other.why());
            return ExitCode::FAILURE;
        }
        Ok(Err(lock)) => lock,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    let cfg = match Config::load(saved) {
        Ok(c) => c,
        Err(e) => return report_config_error(&saved.display().to_string(), &e),
    };
    let mut engine = match Engine::open(saved) {
        Ok(e) => e,
        Err(e) => return engine_error(&e),
    };
    let view = match readback::kernel_view(engine.nft(), plan::TABLE) {
        Ok(v) => v,
        Err(e) => return engine_error(&EngineError::Read(e)),
    };
    let s = status::compute(&cfg, &view, Timestamp::now());
    if json {
        stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&s).unwrap_or_default()
        ));
    } else {
        stdout(&status::render_text(&s));
    }
    ExitCode::SUCCESS
}

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
    let port = cfg.management.http_port;
    let spawned = std::thread::Builder::new()
        .name("web-start".into())
        .spawn(move || {
            let fixed = !listen.is_empty();
            // The LAN addresses with the configured UI port, as the config says now.
            let wanted = |handle: &daemon::Handle| -> Vec<std::net::SocketAddr> {
                let (lan, port) = match handle.config() {
                    Ok(c) => (c.lan.interface, c.management.http_port),
                    Err(_) => (lan.clone(), port),
                };
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
fn start_state(saved: &std::path::Path) -> daemon::Start {
    let e = match Config::load(saved) {
        Ok(c) => return daemon::Start::Config(Box::new(c)),
        Err(e) => e,
    };
    let reason = format!(
        "the saved config {} is unusable: {}",
        saved.display(),
        chain(&e)
    );
    let raw: serde_json::Value = std::fs::read_to_string(saved)
        .ok()
        .map(|t| {
            let t: String = t
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            serde_json::from_str(&t).unwrap_or_default()
        })
        .unwrap_or_default();
    let text = |v: &serde_json::Value, default: &str| {
        v.as_str()
            .filter(|s| !s.is_empty() && s.len() <= 15)
            .unwrap_or(default)
            .to_string()
    };
    let fallback = Config {
        version: portcullis::config::VERSION,
        lan: portcullis::config::Lan {
            interface: text(&raw["lan"]["interface"], "lo"),
            subnets: raw["lan"]["subnets"]
                .as_array()
                .and_then(|a| a.iter().find_map(|s| s.as_str()?.parse().ok()))
                .into_iter()
                .collect(),
        },
        wan: portcullis::config::Wan {
            interface: text(&raw["wan"]["interface"], "-"),
        },
        management: portcullis::config::Management {
            http_port: raw["management"]["http_port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0)
                .unwrap_or(80),
        },
        forwards: Vec::new(),
        triggers: Vec::new(),
    };
    daemon::Start::Broken {
        fallback: Box::new(fallback),
        reason,
    }
}

fn serve(saved: &std::path::Path, listen: Vec<std::net::SocketAddr>, trial_secs: u64) -> ExitCode {
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
    let opts = daemon::OwnerOptions {
        trial_secs,
        state_dir: Some(dir.clone()),
        notify,
    };
    let (handle, join) = match daemon::spawn(engine, start, opts) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: starting the owner thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("portcullis: serving {}", saved.display());
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
    handle.shutdown();
    let _ = join.join();
    if let Ok(mut a) = audit.lock() {
        let _ = a.flush();
    }
    ExitCode::SUCCESS
}

/// Reads a new admin password from standard input and saves its hash as the web UI's
/// password (console recovery: a lost or damaged `web.json` never reopens setup).
fn set_password(saved: &std::path::Path) -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: reading the password from standard input: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    match web::set_password(&control::state_dir(saved), password) {
        Ok(()) => {
            println!("web UI password set; a running daemon picks it up at the next login");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
