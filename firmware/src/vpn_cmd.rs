//! `portcullis vpn import FILE [options]`, `vpn on`, `vpn off`, `vpn remove`: the
//! WireGuard tunnel from the console. While a daemon runs it does the change (it owns the
//! config, the key file and the tunnel); otherwise this process does, holding its lock.

use std::net::SocketAddrV4;
use std::path::Path;
use std::process::ExitCode;

use portcullis::config::{Config, ProviderForward, Timestamp, Vpn, DEFAULT_GATEWAY};
use portcullis::daemon::{chain, control};
use portcullis::engine::Engine;
use portcullis::vpn::{conf, secrets, tunnel};

/// Runs `vpn …` (`args` after the word `vpn`).
pub fn vpn(saved: &Path, args: &[&str]) -> ExitCode {
    let old = match Config::load(saved) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: {}: {} (apply a config first)",
                saved.display(),
                chain(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    match args {
        ["import", file, opts @ ..] => import(saved, &old, file, opts),
        [w @ ("on" | "off")] => match old.vpn.clone() {
            Some(mut v) => {
                v.enabled = *w == "on";
                change(saved, old, Some(v), None)
            }
            None => {
                eprintln!("error: no tunnel configured; use `vpn import FILE`");
                ExitCode::FAILURE
            }
        },
        ["remove"] => change(saved, old, None, None),
        _ => crate::usage_error("vpn: import FILE, on, off or remove"),
    }
}

fn import(saved: &Path, old: &Config, file: &str, opts: &[&str]) -> ExitCode {
    let text = match std::fs::read(file) {
        Ok(b) if b.len() <= 64 * 1024 => String::from_utf8_lossy(&b).into_owned(),
        Ok(_) => {
            eprintln!("{file}: larger than 64 KiB: not a WireGuard file");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {file}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Host names are not resolved: see `conf::NO_RESOLVER`.
    let imported = match conf::parse(&text, &conf::NO_RESOLVER) {
        Ok(i) => i,
        Err(e) => {
            if e.line == 0 {
                eprintln!("{file}: {}: {}", e.key, e.reason);
            } else {
                eprintln!("{file}:{}: {}: {}", e.line, e.key, e.reason);
            }
            return ExitCode::FAILURE;
        }
    };
    for n in &imported.notes {
        println!("note: {n}");
    }
    let mut vpn = conf::merge(old.vpn.as_ref(), imported.vpn);
    if let Err(why) = options(&mut vpn, opts) {
        return crate::usage_error(&why);
    }
    change(saved, old.clone(), Some(vpn), Some(imported.secrets))
}

/// Applies `--devices`, `--forward-to`, `--gateway`, `--kill-switch`.
fn options(vpn: &mut Vpn, opts: &[&str]) -> Result<(), String> {
    for pair in opts.chunks(2) {
        let [opt, val] = pair else {
            return Err(format!("{} needs a value", pair.first().unwrap_or(&"")));
        };
        match *opt {
            "--devices" if *val == "all" => {
                vpn.devices.all = true;
                vpn.devices.hosts.clear();
                vpn.devices.macs.clear();
            }
            "--devices" => {
                vpn.devices.all = false;
                vpn.devices.hosts.clear();
                vpn.devices.macs.clear();
                for d in val.split(',').map(str::trim) {
                    if let Ok(m) = d.parse() {
                        vpn.devices.macs.push(m);
                    } else if let Ok(n) = d.parse() {
                        vpn.devices.hosts.push(n);
                    } else if let Ok(a) = d.parse::<std::net::Ipv4Addr>() {
                        vpn.devices
                            .hosts
                            .push(format!("{a}/32").parse().map_err(|_| d)?);
                    } else {
                        return Err(format!("--devices: {d:?} is not an address, subnet or MAC"));
                    }
                }
            }
            "--forward-to" if *val == "none" => vpn.port_forward = None,
            "--forward-to" => {
                let (to, to_port) = match val.parse::<SocketAddrV4>() {
                    Ok(s) => (*s.ip(), Some(s.port())),
                    Err(_) => (
                        val.parse()
                            .map_err(|_| format!("--forward-to: {val:?} is not ADDR[:PORT]"))?,
                        None,
                    ),
                };
                let gateway = vpn
                    .port_forward
                    .as_ref()
                    .map_or(DEFAULT_GATEWAY, |p| p.gateway);
                vpn.port_forward = Some(ProviderForward {
                    gateway,
                    to,
                    to_port,
                });
            }
            "--gateway" => {
                let g = val
                    .parse()
                    .map_err(|_| format!("--gateway: {val:?} is not an address"))?;
                match &mut vpn.port_forward {
                    Some(p) => p.gateway = g,
                    None => return Err("--gateway needs --forward-to first".into()),
                }
            }
            "--kill-switch" => {
                vpn.kill_switch = match *val {
                    "on" => true,
                    "off" => false,
                    _ => return Err("--kill-switch: on or off".into()),
                }
            }
            _ => return Err(format!("vpn import: unknown option {opt}")),
        }
    }
    Ok(())
}

/// Makes the change through the daemon, or directly when none runs.
fn change(
    saved: &Path,
    mut cfg: Config,
    vpn: Option<Vpn>,
    keys: Option<secrets::Secrets>,
) -> ExitCode {
    let request = control::Request::Vpn {
        vpn: serde_json::to_value(&vpn).unwrap_or_default(),
        private_key: keys.as_ref().map(|k| k.private_key.to_base64()),
        preshared_key: keys
            .as_ref()
            .and_then(|k| k.preshared_key)
            .map(|k| k.to_base64()),
    };
    let what = match &vpn {
        Some(v) if keys.is_some() => format!("imported ({} to {})", v.interface, v.peer.endpoint),
        Some(v) if v.enabled => format!("{} on", v.interface),
        Some(v) => format!("{} off", v.interface),
        None => "removed".to_string(),
    };
    let _lock = match control::request(saved, &request) {
        Ok(Ok(control::Reply::Ok(_))) => {
            println!("vpn: {what} through the running daemon");
            return ExitCode::SUCCESS;
        }
        Ok(Ok(control::Reply::Invalid(report))) => {
            eprint!("{report}");
            return ExitCode::FAILURE;
        }
        Ok(Ok(control::Reply::Failed(why))) => {
            eprintln!("error: the daemon refused: {why}");
            return ExitCode::FAILURE;
        }
        Ok(Err(lock)) => lock,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            return ExitCode::FAILURE;
        }
    };
    // No daemon: the ruleset first (the kill switch holds before the tunnel exists), then
    // the key, then the tunnel. The provider's port needs the daemon.
    let old = cfg.vpn.take();
    cfg.vpn = vpn.clone();
    let mut engine = match Engine::open(saved) {
        Ok(e) => e,
        Err(e) => return crate::engine_error(&e),
    };
    if let Err(e) = engine.apply_and_save(&cfg, Timestamp::now()) {
        return crate::engine_error(&e);
    }
    let key_path = secrets::path(saved);
    match (&vpn, &keys) {
        (_, Some(k)) => {
            if let Err(e) = secrets::save(&key_path, k) {
                eprintln!("error: {}", chain(&e));
                return ExitCode::FAILURE;
            }
        }
        (None, None) => {
            if let Err(e) = secrets::remove(&key_path) {
                eprintln!("warning: {}", chain(&e));
            }
        }
        _ => {}
    }
    if !converge(saved, old.as_ref(), vpn.as_ref()) {
        return ExitCode::FAILURE;
    }
    println!("vpn: {what}; saved as {}", saved.display());
    ExitCode::SUCCESS
}

/// With no daemon running, after a new config is in force: the kernel's tunnel follows it
/// (the old one removed, the new one installed from the stored key). False when the new
/// tunnel could not be installed (said on stderr; the ruleset's kill switch holds).
pub fn converge(saved: &Path, old: Option<&Vpn>, new: Option<&Vpn>) -> bool {
    let new = new.filter(|v| v.enabled);
    let moved = |o: &&Vpn| new.is_none_or(|n| n.interface != o.interface || n.table != o.table);
    if let Some(o) = old.filter(moved) {
        if let Err(e) = tunnel::remove(&o.interface, o.table) {
            eprintln!("warning: removing the old tunnel: {}", chain(&e));
        }
    }
    let Some(v) = new else { return true };
    let installed = secrets::load(&secrets::path(saved))
        .map_err(|e| chain(&e))
        .and_then(|k| k.ok_or_else(|| "no private key stored (vpn.key)".to_string()))
        .and_then(|k| tunnel::plan(v, &k).map_err(|e| chain(&e)))
        .and_then(|p| tunnel::install(&p).map_err(|e| chain(&e)));
    match installed {
        Ok(()) => true,
        Err(why) => {
            eprintln!(
                "error: the ruleset is in force (its kill switch too), but the tunnel is not: {why}"
            );
            false
        }
    }
}

/// The tunnel for `portcullis status` when no daemon runs: no provider port is held then.
pub fn status_view(
    saved: &Path,
    cfg: &Config,
    counters: &std::collections::HashMap<String, (u64, u64)>,
    now: Timestamp,
) -> Option<portcullis::vpn::view::VpnView> {
    use portcullis::vpn::view::{self, PortForwardView};
    let v = cfg.vpn.as_ref()?;
    let kernel = tunnel::read(&v.interface);
    let pf = v.port_forward.as_ref().map(|pf| PortForwardView {
        port: None,
        to: view::target(pf, None),
        health: "the daemon is not running: no port is held".into(),
        expires_in_secs: None,
    });
    let has_key = matches!(secrets::load(&secrets::path(saved)), Ok(Some(_)));
    let error = kernel.as_ref().err().map(|e| chain(e));
    Some(view::view(
        v,
        kernel.ok().flatten().as_ref(),
        pf,
        counters,
        has_key,
        error,
        now.0,
    ))
}
