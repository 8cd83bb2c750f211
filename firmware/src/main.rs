//! The `portcullis` command: check, plan, apply, status, serve.
//!
//! Arguments are parsed by hand: a CLI parser crate would cost more flash than this file.

use std::path::PathBuf;
use std::process::ExitCode;

use portcullis::config::{Config, ConfigError, Timestamp};
use portcullis::daemon::{self, chain, control};
use portcullis::engine::{Engine, EngineError};
use portcullis::portmap::table::Policy;
use portcullis::{facts, plan, readback, render, status, web};

mod dhcp_cmd;
mod serve;
mod vpn_cmd;
use serve::serve;

const DEFAULT_CONFIG: &str = "/etc/portcullis/config.json";
/// Runtime files shared with dnsmasq (its lease and pid files); see `--run-dir`.
const DEFAULT_RUN_DIR: &str = "/var/run/portcullis";

const USAGE: &str = "\
usage: portcullis [--config SAVED] [--run-dir DIR] [--listen ADDR:PORT]... [--trial-secs N]
                  COMMAND

commands:
  check FILE     validate FILE; exit 1 with one line per problem
  plan FILE      print the nftables ruleset FILE would install (nft syntax)
  apply FILE     validate FILE, install it atomically, save it as SAVED
  status [--json] forwards, triggers, mappings, the VPN tunnel: state, hits, time left
  serve          run the daemon: install SAVED, keep expiry and status current, and
                 serve the web UI on the LAN interface's addresses (management.http_port)
                 or on each --listen ADDR:PORT instead (never give a WAN address);
                 risky UI changes roll back unless confirmed within --trial-secs (60)
  vpn import FILE [--devices all|LIST] [--forward-to ADDR[:PORT]|none]
                 [--gateway ADDR] [--kill-switch on|off]
                 import the provider's WireGuard file (wg-quick format) and
                 bring the tunnel up; LIST is addresses/subnets and MACs,
                 comma-separated; the private key is stored in vpn.key (0600)
  vpn on|off     switch the imported tunnel on or off
  vpn remove     remove the tunnel and forget its key
  dhcp-config    print the dnsmasq config file for SAVED (DHCP pool, reservations,
                 local DNS); a broken SAVED gives what safe mode salvages of it
  set-password   read a new web UI admin password from standard input (console
                 recovery when web.json is lost or damaged)
  --version      print the version

SAVED defaults to /etc/portcullis/config.json; DIR (/var/run/portcullis) holds the files
shared with dnsmasq. While `serve` runs, `apply` and `status`
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
    let mut run_dir = PathBuf::from(DEFAULT_RUN_DIR);
    if let Some(i) = args.iter().position(|a| a == "--run-dir") {
        if i + 1 >= args.len() {
            return usage_error("--run-dir needs a path");
        }
        run_dir = PathBuf::from(args.remove(i + 1));
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
        let Some(n) = args
            .get(i + 1)
            .and_then(|a| a.parse().ok())
            .filter(|n| (1..=3600).contains(n))
        else {
            return usage_error("--trial-secs needs a number of seconds from 1 to 3600");
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
        ["serve"] => serve(&saved, &run_dir, listen, trial_secs),
        ["set-password"] => set_password(&saved),
        ["dhcp-config"] => dhcp_cmd::dhcp_config(&saved, &run_dir),
        ["vpn", rest @ ..] => vpn_cmd::vpn(&saved, rest),
        _ => usage_error("unknown command or wrong arguments"),
    }
}

/// `1 forward`, `2 forwards`.
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Writes to stdout; a closed pipe (`portcullis plan | head`) is not an error worth a panic.
pub(crate) fn stdout(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

pub(crate) fn usage_error(why: &str) -> ExitCode {
    eprintln!("portcullis: {why}\n\n{USAGE}");
    ExitCode::from(2)
}

/// Prints a config error: validation problems one per line, anything else with its chain.
pub(crate) fn report_config_error(file: &str, e: &ConfigError) -> ExitCode {
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
                "{file}: ok ({}, {})",
                count(cfg.forwards.len(), "forward"),
                count(cfg.triggers.len(), "trigger")
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

pub(crate) fn engine_error(e: &EngineError) -> ExitCode {
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
        config: serde_json::from_str(&cfg.to_json()).unwrap_or_default(),
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
    // Port mappings LAN devices hold stay open (no daemon serves them now, but their
    // leases run on in the kernel), unless the new config no longer allows them.
    let now = Timestamp::now();
    let dir = control::state_dir(saved);
    let mut leases = daemon::leases::load(&dir, now);
    let router = facts::interface_addrs(&cfg.lan.interface).unwrap_or_default();
    let closed = leases.reconcile(&Policy::of(&cfg).with_router(router), now);
    engine.set_leases(leases.mappings());
    let old_vpn = Config::load(saved).ok().and_then(|c| c.vpn);
    match engine.apply_and_save(&cfg, now) {
        Ok(_) => {
            if old_vpn.is_some() || cfg.vpn.is_some() {
                vpn_cmd::converge(saved, old_vpn.as_ref(), cfg.vpn.as_ref());
            }
            daemon::leases::save(&dir, &leases);
            for (m, why) in closed {
                println!(
                    "closed port mapping {}: {why}",
                    daemon::leases::describe(&m)
                );
            }
            // A whole config states the whole intent: a settings trial left by a daemon
            // that died must not roll these settings back at the next start.
            let trial = control::state_dir(saved).join(daemon::TRIAL_FILE);
            if let Err(e) = std::fs::remove_file(&trial) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    eprintln!("warning: removing {}: {e}", trial.display());
                }
            }
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
    let now = Timestamp::now();
    let s = status::compute(&cfg, &view, now);
    let vpn = vpn_cmd::status_view(saved, &cfg, &view.counters, now);
    // No daemon: the mappings its last run saved (their leases run on in the kernel).
    let mappings = daemon::leases::read(&control::state_dir(saved), now)
        .map(|t| t.mappings())
        .unwrap_or_default();
    if json {
        let mut v = serde_json::to_value(&s).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "mappings".into(),
                serde_json::to_value(&mappings).unwrap_or_default(),
            );
            o.insert("vpn".into(), serde_json::to_value(&vpn).unwrap_or_default());
        }
        stdout(&format!(
            "{}\n",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        ));
    } else {
        stdout(&status::render_text(&s));
        stdout(&status::render_mappings(&mappings, now));
        if let Some(v) = &vpn {
            stdout(&portcullis::vpn::view::render_text(v, now.0));
        }
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
