//! The versioned JSON API (`/api/v1/...`): what every handler shares — the [`App`], the
//! dispatcher that enforces sessions and CSRF, one-edit transactions and the answer
//! helpers. The route table is [`routes`]; the handlers live by concern in `login`
//! (setup, login, sessions, password), `views` (exposure, log, system), `items` (forward
//! and trigger CRUD), `backup` (backup, restore, settings, trial) `upnp` (the `upnp`
//! section, live port mappings and the approval queue) and `vpn` (the WireGuard tunnel:
//! its section, the provider's file import and the live state), `devices` (LAN devices
//! and the `dhcp` section).
//!
//! Handlers change the router only through the daemon [`Handle`], one [`Edit`] per
//! request, and read it only through one [`Snapshot`] per request.

mod backup;
mod devices;
mod items;
mod login;
pub mod routes;
mod upnp;
mod views;
mod vpn;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use super::audit::{Audit, Entry, Hits};
use super::auth::{self, Cost};
use super::hasher::Hasher;
use super::http::{Request, Response};
use super::secrets::{Password, PasswordFile};
use super::sessions::{Session, Sessions};
use super::throttle::Throttle;
use crate::config::{Issue, Report, Severity, Timestamp};
use crate::daemon::{chain, Edit, EditError, Handle, Snapshot};

pub use items::parse_item;
pub use routes::{Access, Route, ROUTES};
pub use views::risk;

/// The session cookie.
pub const COOKIE: &str = "pc_session";
/// The header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// Password hashing jobs that may wait while one runs (see [`super::hasher`]).
const HASH_QUEUE: usize = 1;

/// Settings of the API layer.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// Directory for the UI's state (admin password hash, audit log); None keeps it in
    /// memory only (tests).
    pub state_dir: Option<PathBuf>,
    pub kdf: Cost,
    /// Seconds a risky change stays on trial before it is rolled back (shown to users;
    /// the daemon's owner enforces it).
    pub trial_secs: u64,
    /// The audit log shared with the daemon's owner (which records rollbacks and
    /// expiries in it); None opens `audit.json` in `state_dir`.
    pub audit: Option<Arc<Mutex<Audit>>>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            state_dir: None,
            kdf: Cost::DEFAULT,
            trial_secs: 60,
            audit: None,
        }
    }
}

#[derive(Debug)]
struct AuthState {
    password: PasswordFile,
    sessions: Sessions,
    throttle: Throttle,
}

/// Everything the handlers share.
#[derive(Debug)]
pub struct App {
    daemon: Handle,
    opts: AppOptions,
    auth: Mutex<AuthState>,
    audit: Arc<Mutex<Audit>>,
    hits: Mutex<Hits>,
    hasher: Hasher,
}

/// One call: the request, the time, the path parameter and the session.
#[derive(Debug)]
pub struct Call<'a> {
    pub req: &'a Request,
    pub now: Timestamp,
    param: String,
    token: Option<String>,
    session: Option<Session>,
}

impl App {
    /// Reads the password file and the audit log and starts the hashing thread.
    pub fn new(daemon: Handle, opts: AppOptions) -> std::io::Result<App> {
        let password = PasswordFile::open(opts.state_dir.as_deref());
        let audit = opts.audit.clone().unwrap_or_else(|| {
            Arc::new(Mutex::new(Audit::open(
                opts.state_dir.as_ref().map(|d| d.join("audit.json")),
            )))
        });
        Ok(App {
            daemon,
            opts,
            auth: Mutex::new(AuthState {
                password,
                sessions: Sessions::default(),
                throttle: Throttle::default(),
            }),
            audit,
            hits: Mutex::default(),
            hasher: Hasher::spawn(HASH_QUEUE)?,
        })
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn audit(&self, call: &Call<'_>, action: &str, target: &str, ok: bool, detail: &str) {
        let e = Entry {
            time: call.now,
            from: call.req.peer.to_string(),
            action: action.into(),
            target: target.into(),
            ok,
            detail: detail.into(),
        };
        let mut a = self
            .audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(err) = a.record(e) {
            eprintln!(
                "portcullis: web: saving the audit log failed: {}",
                chain(&err)
            );
        }
    }

    /// Answers an API request (anything under `/api/`).
    pub fn handle(&self, req: &Request, now: Timestamp) -> Response {
        let mut method_mismatch = false;
        for r in ROUTES {
            let Some(param) = matches(r.path, &req.path) else {
                continue;
            };
            if r.method != req.method {
                method_mismatch = true;
                continue;
            }
            let mut call = Call {
                req,
                now,
                param,
                token: None,
                session: None,
            };
            let changing = req.method != "GET" && req.method != "HEAD";
            if changing {
                if let Err(resp) = same_origin(req) {
                    return resp;
                }
            }
            if r.access == Access::Session {
                let mut a = self.auth();
                // The password file changed behind us (console recovery, damage): no
                // session of the old password survives it.
                if a.password.refresh() {
                    a.sessions.clear_except(None);
                }
                if *a.password.state() == Password::Missing {
                    return Response::error(401, "setup required: set the admin password first");
                }
                let token = req.cookie(COOKIE).unwrap_or("");
                let Some(s) = a.sessions.touch(token, now) else {
                    return Response::error(401, "not logged in (or the session expired)");
                };
                drop(a);
                if changing {
                    let sent = req.header(CSRF_HEADER).unwrap_or("");
                    if !auth::constant_time_eq(sent.as_bytes(), s.csrf.as_bytes()) {
                        return Response::error(403, "missing or wrong CSRF token");
                    }
                }
                call.token = Some(token.to_string());
                call.session = Some(s);
            }
            return (r.handler())(self, &call);
        }
        if method_mismatch {
            Response::error(405, "method not allowed")
        } else {
            Response::error(404, "no such API route")
        }
    }

    /// Reads status once so hit counters turn into "last hit" times and hit-log entries
    /// (the web server calls this every few seconds, UI open or not).
    pub fn observe_hits(&self, now: Timestamp) {
        if let Ok(snap) = self.daemon.snapshot() {
            self.observe(&snap, now);
        }
        self.flush_audit();
    }

    fn observe(&self, snap: &Snapshot, now: Timestamp) {
        if let Ok(s) = &snap.status {
            self.hits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(s, now);
        }
    }

    /// Saves audit entries not yet on disk.
    pub fn flush_audit(&self) {
        let mut a = self
            .audit
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(err) = a.flush() {
            eprintln!(
                "portcullis: web: saving the audit log failed: {}",
                chain(&err)
            );
        }
    }

    /// Config, status, trial and health at one moment: everything a view shows comes
    /// from one of these, so no view pairs two reads.
    fn snapshot(&self, now: Timestamp) -> Result<Snapshot, Response> {
        let snap = self.daemon.snapshot().map_err(|e| busy(&e.to_string()))?;
        self.observe(&snap, now);
        Ok(snap)
    }

    /// Sends one edit to the owner and answers with its outcome (and audits it).
    /// `name_field` says where a name clash is reported (`forwards[3].name`).
    fn edit(&self, call: &Call<'_>, edit: Edit, name_field: impl FnOnce() -> String) -> Response {
        let (action, target) = edit.describe();
        match self.daemon.edit(edit) {
            Err(e) => busy(&e.to_string()),
            Ok(Err(EditError::Invalid(report))) => {
                self.audit(call, &action, &target, false, "refused by validation");
                invalid(&report)
            }
            Ok(Err(e @ EditError::NotFound { .. })) => Response::error(404, &e.to_string()),
            Ok(Err(e @ EditError::Exists { .. })) => issue(&name_field(), &e.to_string()),
            Ok(Err(EditError::Conflict {
                what,
                current,
                etag,
            })) => {
                self.audit(call, &action, &target, false, "changed since read");
                let mut r = Response::json(
                    409,
                    &json!({
                        "error": format!("{what} was changed elsewhere since you read it; \
                                          here is what it is now"),
                        "current": current,
                        "etag": etag,
                    }),
                );
                if let Some(t) = etag {
                    r = r.header("ETag", &t);
                }
                r
            }
            Ok(Err(e)) => {
                let msg = chain(&e);
                self.audit(call, &action, &target, false, &msg);
                Response::error(500, &msg)
            }
            Ok(Ok(applied)) => {
                let trial = applied.trial_secs;
                self.audit(
                    call,
                    &action,
                    &target,
                    true,
                    if trial.is_some() { "on trial" } else { "" },
                );
                let mut r = Response::json(
                    200,
                    &json!({
                        "ok": true,
                        "trial_secs": trial,
                        "warnings": applied.report.issues,
                        "etag": applied.etag,
                    }),
                );
                if let Some(t) = &applied.etag {
                    r = r.header("ETag", t);
                }
                r
            }
        }
    }
}

/// The `If-Match` a PUT or DELETE must carry: the ETag of the object as the client last
/// read it, so a change made elsewhere in between is never silently overwritten.
fn if_match(call: &Call<'_>) -> Result<String, Response> {
    match call.req.header("If-Match").map(str::trim) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(Response::error(
            428,
            "If-Match required: send the ETag you got when you read this object \
             (it protects against overwriting a change made elsewhere)",
        )),
    }
}

/// 503 for a daemon or worker that cannot answer now.
fn busy(message: &str) -> Response {
    Response::error(503, message).header("Retry-After", "1")
}

/// Matches a route pattern; returns the `{param}` segment (empty when none; several are
/// joined with `/`, e.g. `tcp/50000` for `/mappings/{proto}/{port}`).
fn matches(pattern: &str, path: &str) -> Option<String> {
    let mut param = String::new();
    let mut pat = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (pat.next(), got.next()) {
            (None, None) => return Some(param),
            (Some(p), Some(g)) if p.starts_with('{') => {
                if g.is_empty() {
                    return None;
                }
                // Several parameters are joined with `/`, which no segment contains.
                if !param.is_empty() {
                    param.push('/');
                }
                param.push_str(g);
            }
            (Some(p), Some(g)) if p == g => {}
            _ => return None,
        }
    }
}

/// State-changing requests must come from our own pages: JSON bodies only (a cross-site
/// form cannot send them without a CORS preflight we never grant), and when the browser
/// says where the request comes from, it must be this origin.
fn same_origin(req: &Request) -> Result<(), Response> {
    let ct = req.header("Content-Type").unwrap_or("");
    if !ct
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("application/json")
    {
        return Err(Response::error(
            415,
            "state-changing requests must be application/json",
        ));
    }
    if let Some(site) = req.header("Sec-Fetch-Site") {
        if site != "same-origin" && site != "none" {
            return Err(Response::error(403, "cross-site request refused"));
        }
    }
    if let Some(origin) = req.header("Origin") {
        let host = req.header("Host").unwrap_or("");
        let expected = format!("http://{host}");
        if origin != expected {
            return Err(Response::error(403, "cross-origin request refused"));
        }
    }
    Ok(())
}

/// Names a browser may use for the router. Anything else is refused, so a web page whose
/// DNS name is rebound to the router's address cannot talk to the UI (for example to set
/// the first password before the owner does).
pub fn host_allowed(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') && port.chars().all(|c| c.is_ascii_digit()) => h,
        Some((h, port)) if h.ends_with(']') && port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    (!lower.is_empty()
        && !lower.contains('.')
        && lower.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        || [".lan", ".local", ".home.arpa", ".internal"]
            .iter()
            .any(|s| lower.ends_with(s))
}

fn invalid(report: &Report) -> Response {
    Response::json(422, &json!({ "error": "invalid", "issues": report.issues }))
}

fn issue(field: &str, message: &str) -> Response {
    Response::json(
        422,
        &json!({
            "error": "invalid",
            "issues": [Issue {
                severity: Severity::Error,
                field: field.to_string(),
                message: message.to_string(),
            }],
        }),
    )
}

fn body_object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    match crate::store::json::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Response::error(400, "the body must be a JSON object")),
        Err(e) => Err(Response::error(400, &format!("the body is not JSON: {e}"))),
    }
}

/// A section's body (`upnp`, `vpn`, `dhcp`: a JSON object; an `etag` field, as the GET
/// answers carry, is ignored) through the config file's own parser
/// (`Config::parse_section`): errors name the field as for the file
/// (`vpn.devices.hosts[0]`), and the binary keeps one copy of each section's deserializer.
/// Only `section` of the result is meaningful.
fn section_body(section: &str, body: &[u8]) -> Result<crate::config::Config, Response> {
    let mut m = body_object(body)?;
    m.remove("etag");
    crate::config::Config::parse_section(section, &Value::Object(m).to_string()).map_err(
        |e| match e {
            crate::config::ConfigError::Parse { field, message, .. } => issue(&field, &message),
            e => issue(section, &e.to_string()),
        },
    )
}

fn string_field(m: &Map<String, Value>, name: &str) -> Result<String, Response> {
    match m.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(issue(name, "required (a string)")),
    }
}

/// Runs every parser of request bodies over `data` (fuzzing entry point): none may
/// panic, whatever the bytes.
pub fn fuzz_bodies(data: &[u8]) {
    let _ = items::parse_item::<crate::config::Forward>(data, "forwards", 0);
    let _ = items::parse_item::<crate::config::Trigger>(data, "triggers", 0);
    let _ = backup::parse_settings(data);
    let _ = backup::parse_config(data);
    let _ = upnp::parse_upnp(data);
    let _ = upnp::parse_revoke(data);
    let _ = upnp::parse_decision(data);
    let _ = vpn::parse_vpn(data);
    let _ = vpn::parse_import(data);
    let _ = devices::parse_dhcp(data);
    if let Ok(m) = body_object(data) {
        let _ = string_field(&m, "password");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_segment_per_param() {
        assert_eq!(
            matches("/api/v1/forwards", "/api/v1/forwards"),
            Some(String::new())
        );
        assert_eq!(
            matches("/api/v1/forwards/{name}", "/api/v1/forwards/web"),
            Some("web".into())
        );
        assert_eq!(
            matches("/api/v1/forwards/{name}", "/api/v1/forwards/"),
            None
        );
        assert_eq!(
            matches("/api/v1/forwards/{name}", "/api/v1/forwards/a/b"),
            None
        );
        assert_eq!(
            matches(
                "/api/v1/upnp/mappings/{proto}/{port}",
                "/api/v1/upnp/mappings/tcp/80"
            ),
            Some("tcp/80".into())
        );
        assert_eq!(
            matches(
                "/api/v1/upnp/mappings/{proto}/{port}",
                "/api/v1/upnp/mappings/tcp"
            ),
            None
        );
    }

    #[test]
    fn hosts_that_could_be_rebound_are_refused() {
        for ok in [
            "192.168.1.1",
            "192.168.1.1:8080",
            "[fd00::1]:80",
            "router",
            "router.lan",
            "gw.home.arpa",
        ] {
            assert!(host_allowed(ok), "{ok}");
        }
        for bad in ["evil.example.com", "192.168.1.1.nip.io", "", "evil.com:80"] {
            assert!(!host_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn body_parsers_survive_garbage() {
        for data in [
            &b""[..],
            b"null",
            b"[]",
            b"{\"name\": 5}",
            b"{\"external_port\": \"99999999999999999999\"}",
            b"{\"lan\": {}}",
            b"\xff\xfe",
            b"{\"version\": 1, \"forwards\": [{}]}",
            b"{\"mode\": 5, \"allow\": [{\"macs\": [\"zz\"]}]}",
            b"{\"decision\": null, \"host\": 1, \"all\": \"yes\"}",
        ] {
            fuzz_bodies(data);
        }
    }
}
