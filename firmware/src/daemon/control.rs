//! The control socket: how the CLI reaches a running daemon, so that while a daemon runs
//! every change goes through its owner thread and nothing writes behind its back.
//!
//! A Unix stream socket next to the saved config (`control.sock`, mode 0600, and the peer
//! must be root or the daemon's own user). One request per connection: the client writes
//! one JSON object and shuts its side down, the daemon answers with one JSON object.
//! A daemon also holds an exclusive `flock` on `.portcullis.lock` for its lifetime; the
//! CLI applies directly only when it can take that lock itself (no daemon runs).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{chain, Edit, EditError, Handle};
use crate::config::{Config, Issue, Report, Severity};

/// File name of the control socket, next to the saved config.
pub const SOCKET: &str = "control.sock";
/// File name of the daemon's lock, next to the saved config.
pub const LOCK: &str = ".portcullis.lock";
/// Largest request accepted (a config with 10,000 forwards is about 2 MiB).
const MAX_REQUEST: u64 = 16 << 20;
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Why the control socket failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("opening the lock file {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another portcullis daemon holds {path}")]
    Busy { path: PathBuf },
    #[error("binding the control socket {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon over {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon's answer is not valid JSON")]
    Answer(#[source] serde_json::Error),
}

/// A request from the CLI.
#[derive(Debug, Serialize, Deserialize)]
// Externally tagged (`{"apply":{"config":…}}`, `"status"`): an internally tagged enum
// would make serde buffer the whole config first, ~15 KB more code on the router.
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Replace the whole config (`portcullis apply`).
    Apply { config: Value },
    /// Status and health (`portcullis status`).
    Status,
    /// Replace the `vpn` section (`portcullis vpn …`): `vpn` is the new section (null:
    /// remove the tunnel and its key); an import carries the provider's keys, base64.
    Vpn {
        vpn: Value,
        private_key: Option<String>,
        preshared_key: Option<String>,
    },
}

/// The directory holding the saved config (and the socket and lock).
pub fn state_dir(saved: &Path) -> PathBuf {
    match saved.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The daemon's exclusive lock, held for its lifetime (released by the kernel on exit).
#[derive(Debug)]
pub struct DaemonLock {
    _lock: nix::fcntl::Flock<std::fs::File>,
}

/// Takes the exclusive lock next to `saved`, without waiting.
pub fn lock(saved: &Path) -> Result<DaemonLock, ControlError> {
    let path = state_dir(saved).join(LOCK);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ControlError::Lock {
            path: path.clone(),
            source,
        })?;
    match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(DaemonLock { _lock: l }),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Err(ControlError::Busy { path }),
        Err((_, e)) => Err(ControlError::Lock {
            path,
            source: std::io::Error::from(e),
        }),
    }
}

/// Serves the control socket until the process ends; returns once it is listening.
pub fn serve(saved: &Path, handle: Handle) -> Result<PathBuf, ControlError> {
    let path = state_dir(saved).join(SOCKET);
    // We hold the daemon lock, so a socket file left here is a dead daemon's.
    let _ = std::fs::remove_file(&path);
    let listener = {
        // Created 0600 from the start: no moment where another user could connect.
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let l = UnixListener::bind(&path);
        nix::sys::stat::umask(old);
        l.map_err(|source| ControlError::Bind {
            path: path.clone(),
            source,
        })?
    };
    let me = nix::unistd::geteuid().as_raw();
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let allowed =
                    nix::sys::socket::getsockopt(&conn, nix::sys::socket::sockopt::PeerCredentials)
                        .map(|c| c.uid() == 0 || c.uid() == me)
                        .unwrap_or(false);
                if !allowed {
                    continue;
                }
                if let Err(e) = answer(conn, &handle) {
                    eprintln!("portcullis: control request: {}", chain(&e));
                }
            }
        })
        .map_err(|source| ControlError::Bind {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

fn answer(mut conn: UnixStream, handle: &Handle) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut body = Vec::new();
    (&mut conn).take(MAX_REQUEST).read_to_end(&mut body)?;
    let reply = match crate::store::json::<Request>(&body) {
        Err(e) => json!({"ok": false, "error": format!("bad request: {e}")}),
        Ok(Request::Status) => match handle.snapshot() {
            Ok(s) => match &s.status {
                Ok(st) => {
                    let mut v = serde_json::to_value(st).unwrap_or_default();
                    let mut text = crate::status::render_text(st);
                    text.push_str(&crate::status::render_mappings(
                        &s.portmap.mappings,
                        s.taken_at,
                    ));
                    if let super::Health::SafeMode { reason } = &s.health {
                        text = format!("SAFE MODE (nothing is forwarded): {reason}\n{text}");
                    }
                    if let Some(vpn) = &s.vpn {
                        text.push_str(&crate::vpn::view::render_text(vpn, s.taken_at.0));
                    }
                    if let Some(o) = v.as_object_mut() {
                        o.insert(
                            "vpn".into(),
                            serde_json::to_value(&s.vpn).unwrap_or_default(),
                        );
                        o.insert(
                            "health".into(),
                            serde_json::to_value(&s.health).unwrap_or_default(),
                        );
                        o.insert(
                            "mappings".into(),
                            serde_json::to_value(&s.portmap.mappings).unwrap_or_default(),
                        );
                    }
                    json!({"ok": true, "status": v, "text": text})
                }
                Err(e) => json!({"ok": false, "error": format!("reading the table: {e}")}),
            },
            Err(e) => json!({"ok": false, "error": e.to_string()}),
        },
        Ok(Request::Vpn {
            vpn,
            private_key,
            preshared_key,
        }) => match vpn_edit(&vpn, private_key.as_deref(), preshared_key.as_deref()) {
            Err(e) => json!({"ok": false, "error": e}),
            Ok(edit) => apply_reply(handle.edit(edit)),
        },
        Ok(Request::Apply { config }) => match Config::parse(&config.to_string()) {
            Err(e) => json!({"ok": false, "error": format!("bad config: {}", chain(&e))}),
            Ok(config) => apply_reply(handle.edit(Edit::Replace(Box::new(config)))),
        },
    };
    conn.write_all(serde_json::to_string(&reply).unwrap_or_default().as_bytes())
}

/// The edit a `vpn` request asks for.
fn vpn_edit(vpn: &Value, private: Option<&str>, psk: Option<&str>) -> Result<Edit, String> {
    use crate::vpn::{key::Key, secrets::Secrets};
    let key = |k: &str, what: &str| Key::from_base64(k).ok_or(format!("bad {what}"));
    let secrets = match private {
        Some(k) => Some(Secrets {
            private_key: key(k, "private key")?,
            preshared_key: psk.map(|p| key(p, "preshared key")).transpose()?,
        }),
        None => None,
    };
    let vpn = match vpn {
        Value::Null => None,
        v => Config::parse_section("vpn", &v.to_string())
            .map_err(|e| format!("bad vpn section: {}", chain(&e)))?
            .vpn
            .map(Box::new),
    };
    Ok(Edit::Vpn {
        if_match: None,
        vpn,
        secrets,
    })
}

/// The answer to an apply.
fn apply_reply(r: Result<Result<super::Applied, EditError>, super::CallError>) -> Value {
    match r {
        Ok(Ok(a)) => json!({"ok": true, "report": a.report}),
        Ok(Err(EditError::Invalid(r))) => {
            json!({"ok": false, "error": "config refused", "report": r})
        }
        Ok(Err(e)) => json!({"ok": false, "error": chain(&e)}),
        Err(e) => json!({"ok": false, "error": e.to_string()}),
    }
}

/// What the daemon answered.
#[derive(Debug)]
pub enum Reply {
    Ok(Value),
    /// Refused by validation; the report names the fields.
    Invalid(Report),
    Failed(String),
}

impl Reply {
    /// The failure text, empty for success.
    pub fn why(&self) -> String {
        match self {
            Reply::Ok(_) => String::new(),
            Reply::Invalid(r) => r.to_string(),
            Reply::Failed(w) => w.clone(),
        }
    }
}

/// Sends one request to the daemon serving `saved`. Returns None when no daemon runs
/// (nobody holds the lock), so the caller may act directly while holding the returned
/// lock.
pub fn request(saved: &Path, req: &Request) -> Result<Result<Reply, DaemonLock>, ControlError> {
    match lock(saved) {
        Ok(l) => return Ok(Err(l)),
        Err(ControlError::Busy { .. }) => {}
        Err(e) => return Err(e),
    }
    let path = state_dir(saved).join(SOCKET);
    let io = |source| ControlError::Io {
        path: path.clone(),
        source,
    };
    let mut conn = UnixStream::connect(&path).map_err(io)?;
    conn.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    conn.write_all(serde_json::to_string(req).unwrap_or_default().as_bytes())
        .map_err(io)?;
    conn.shutdown(std::net::Shutdown::Write).map_err(io)?;
    let mut body = Vec::new();
    conn.take(MAX_REQUEST).read_to_end(&mut body).map_err(io)?;
    let v: Value = crate::store::json(&body).map_err(ControlError::Answer)?;
    if v["ok"] == Value::Bool(true) {
        return Ok(Ok(Reply::Ok(v)));
    }
    if let Some(issues) = v
        .get("report")
        .and_then(|r| r.get("issues"))
        .and_then(Value::as_array)
    {
        let report = Report {
            issues: issues
                .iter()
                .map(|i| Issue {
                    severity: if i["severity"] == "warning" {
                        Severity::Warning
                    } else {
                        Severity::Error
                    },
                    field: i["field"].as_str().unwrap_or_default().to_string(),
                    message: i["message"].as_str().unwrap_or_default().to_string(),
                })
                .collect(),
        };
        return Ok(Ok(Reply::Invalid(report)));
    }
    Ok(Ok(Reply::Failed(
        v["error"]
            .as_str()
            .unwrap_or("the daemon gave no reason")
            .to_string(),
    )))
}
