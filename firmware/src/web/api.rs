//! The versioned JSON API (`/api/v1/...`) and its route table. Handlers validate with
//! [`config::validate`] and change the router only through the daemon [`Handle`].
//!
//! [`config::validate`]: crate::config::validate

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::audit::{Audit, Entry, Hits};
use super::auth::{self, Cost};
use super::http::{Request, Response};
use super::sessions::{Session, Sessions, IDLE_SECS};
use super::throttle::Throttle;
use crate::config::{
    self, Config, Forward, Ipv4Net, Issue, PortRange, Protocol, Report, Severity, Timestamp,
    Trigger,
};
use crate::daemon::{chain, Edit, EditError, Handle};
use crate::store;

/// The session cookie.
pub const COOKIE: &str = "pc_session";
/// The header carrying the CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Setup and login: no session needed (still same-origin checked).
    Public,
    /// A live session, and the CSRF token for anything but GET.
    Session,
}

type Handler = fn(&App, &Call<'_>) -> Response;

/// One API route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    /// Segments in braces match one path segment, e.g. `/api/v1/forwards/{name}`.
    pub path: &'static str,
    pub access: Access,
    handler: Handler,
}

macro_rules! route {
    ($m:literal, $p:literal, $a:ident, $h:ident) => {
        Route {
            method: $m,
            path: $p,
            access: Access::$a,
            handler: $h,
        }
    };
}

/// Every API route. Tests walk this table to prove that only setup and login are public.
pub static ROUTES: &[Route] = &[
    route!("GET", "/api/v1/setup", Public, setup_status),
    route!("POST", "/api/v1/setup", Public, setup),
    route!("POST", "/api/v1/login", Public, login),
    route!("POST", "/api/v1/logout", Session, logout),
    route!("GET", "/api/v1/session", Session, session),
    route!("GET", "/api/v1/exposure", Session, exposure),
    route!("GET", "/api/v1/forwards", Session, forwards_list),
    route!("POST", "/api/v1/forwards", Session, forward_add),
    route!("PUT", "/api/v1/forwards/{name}", Session, forward_put),
    route!("DELETE", "/api/v1/forwards/{name}", Session, forward_delete),
    route!("GET", "/api/v1/triggers", Session, triggers_list),
    route!("POST", "/api/v1/triggers", Session, trigger_add),
    route!("PUT", "/api/v1/triggers/{name}", Session, trigger_put),
    route!("DELETE", "/api/v1/triggers/{name}", Session, trigger_delete),
    route!("GET", "/api/v1/log", Session, log),
    route!("GET", "/api/v1/system", Session, system),
    route!("POST", "/api/v1/password", Session, password),
    route!("GET", "/api/v1/config", Session, config_backup),
    route!("POST", "/api/v1/config", Session, config_restore),
    route!("GET", "/api/v1/settings", Session, settings_get),
    route!("PUT", "/api/v1/settings", Session, settings_put),
    route!("GET", "/api/v1/trial", Session, trial_get),
    route!("POST", "/api/v1/trial/confirm", Session, trial_confirm),
];

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

/// The file holding the admin password hash.
#[derive(Debug, Default, serde::Serialize, Deserialize)]
struct Secrets {
    password: Option<String>,
}

#[derive(Debug, Default)]
struct AuthState {
    password: Option<String>,
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
    pub fn new(daemon: Handle, opts: AppOptions) -> App {
        let secrets: Secrets = opts
            .state_dir
            .as_ref()
            .and_then(|d| std::fs::read(d.join("web.json")).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let audit = opts.audit.clone().unwrap_or_else(|| {
            Arc::new(Mutex::new(Audit::open(
                opts.state_dir.as_ref().map(|d| d.join("audit.json")),
            )))
        });
        App {
            daemon,
            opts,
            auth: Mutex::new(AuthState {
                password: secrets.password,
                ..AuthState::default()
            }),
            audit,
            hits: Mutex::default(),
        }
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
                if self.auth().password.is_none() {
                    return Response::error(401, "setup required: set the admin password first");
                }
                let token = req.cookie(COOKIE).unwrap_or("");
                let Some(s) = self.auth().sessions.touch(token, now) else {
                    return Response::error(401, "not logged in (or the session expired)");
                };
                if changing {
                    let sent = req.header(CSRF_HEADER).unwrap_or("");
                    if !auth::constant_time_eq(sent.as_bytes(), s.csrf.as_bytes()) {
                        return Response::error(403, "missing or wrong CSRF token");
                    }
                }
                call.token = Some(token.to_string());
                call.session = Some(s);
            }
            return (r.handler)(self, &call);
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
        let _ = status_or_error(self, now);
        self.flush_audit();
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

    fn save_password(&self, hash: &str) -> Result<(), Response> {
        if let Some(dir) = &self.opts.state_dir {
            let path = dir.join("web.json");
            let body = serde_json::to_vec_pretty(&Secrets {
                password: Some(hash.to_string()),
            })
            .unwrap_or_default();
            store::save_atomic_private(&path, &body).map_err(|e| {
                Response::error(500, &format!("saving the password: {}", chain(&e)))
            })?;
        }
        Ok(())
    }

    /// Starts a session and answers with its cookie and CSRF token.
    fn start_session(&self, call: &Call<'_>) -> Response {
        let mut a = self.auth();
        let token = match a.sessions.create(call.now) {
            Ok(t) => t,
            Err(e) => return Response::error(500, &chain(&e)),
        };
        let csrf = a
            .sessions
            .touch(&token, call.now)
            .map(|s| s.csrf)
            .unwrap_or_default();
        Response::json(200, &json!({ "csrf": csrf })).header(
            "Set-Cookie",
            // No Max-Age: a browser-session cookie; the server enforces idle and absolute expiry.
            &format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"),
        )
    }

    fn current(&self) -> Result<Config, Response> {
        self.daemon
            .config()
            .map_err(|e| Response::error(503, &e.to_string()))
    }

    /// Sends one edit to the owner and answers with its outcome (and audits it).
    fn edit(&self, call: &Call<'_>, edit: Edit) -> Response {
        let (action, target) = edit.describe();
        match self.daemon.edit(edit) {
            Err(e) => Response::error(503, &e.to_string()),
            Ok(Err(EditError::Invalid(report))) => {
                self.audit(call, &action, &target, false, "refused by validation");
                invalid(&report)
            }
            Ok(Err(EditError::NotFound { .. })) => {
                Response::error(404, &format!("no such object: {target}"))
            }
            Ok(Err(e @ EditError::Exists { .. })) => {
                // Named like a validation error of the new item's `name` field.
                let list = if action.starts_with("trigger") {
                    "triggers"
                } else {
                    "forwards"
                };
                let len = self.current().map_or(0, |c| {
                    if list == "triggers" {
                        c.triggers.len()
                    } else {
                        c.forwards.len()
                    }
                });
                issue(&format!("{list}[{len}].name"), &e.to_string())
            }
            Ok(Err(EditError::Conflict {
                what,
                current,
                etag,
            })) => {
                self.audit(call, &action, &target, false, "changed since read");
                let mut r = Response::json(
                    409,
                    &json!({
                        "error": format!("{what} changed since it was read; reload and try again"),
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

/// Matches a route pattern; returns the `{param}` segment (empty when none).
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
                param = g.to_string();
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

fn body_object(call: &Call<'_>) -> Result<Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(&call.req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Response::error(400, "the body must be a JSON object")),
        Err(e) => Err(Response::error(400, &format!("the body is not JSON: {e}"))),
    }
}

fn string_field(m: &Map<String, Value>, name: &str) -> Result<String, Response> {
    match m.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(issue(name, "required (a string)")),
    }
}

// ---- setup, login, sessions ---------------------------------------------------------

fn setup_status(app: &App, _call: &Call<'_>) -> Response {
    Response::json(
        200,
        &json!({
            "needed": app.auth().password.is_none(),
            "rules": auth::PASSWORD_RULES,
        }),
    )
}

fn setup(app: &App, call: &Call<'_>) -> Response {
    if app.auth().password.is_some() {
        app.audit(call, "setup", "", false, "already set up");
        return Response::error(409, "the admin password is already set; log in instead");
    }
    let m = match body_object(call) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let pw = match string_field(&m, "password") {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Some(why) = auth::password_problem(&pw) {
        return issue("password", why);
    }
    let hash = match auth::hash_password(&pw, app.opts.kdf) {
        Ok(h) => h,
        Err(e) => return Response::error(500, &chain(&e)),
    };
    {
        let mut a = app.auth();
        if a.password.is_some() {
            return Response::error(409, "the admin password is already set; log in instead");
        }
        if let Err(r) = app.save_password(&hash) {
            return r;
        }
        a.password = Some(hash);
    }
    app.audit(call, "setup", "", true, "admin password set");
    app.start_session(call)
}

fn login(app: &App, call: &Call<'_>) -> Response {
    let ip = call.req.peer;
    let stored = {
        let a = app.auth();
        if let Err(wait) = a.throttle.check(ip, call.now) {
            drop(a);
            app.audit(call, "login", "", false, "throttled");
            return Response::error(429, &format!("too many failed logins; wait {wait} s"))
                .header("Retry-After", &wait.to_string());
        }
        a.password.clone()
    };
    let Some(stored) = stored else {
        return Response::error(409, "no admin password yet: complete setup first");
    };
    let pw = body_object(call)
        .ok()
        .and_then(|m| m.get("password").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    match auth::verify_password(&pw, &stored) {
        Ok(true) => {
            app.auth().throttle.succeed(ip);
            app.audit(call, "login", "", true, "");
            app.start_session(call)
        }
        Ok(false) => {
            app.auth().throttle.fail(ip, call.now);
            app.audit(call, "login", "", false, "wrong password");
            Response::error(401, "wrong password")
        }
        Err(e) => Response::error(500, &chain(&e)),
    }
}

fn logout(app: &App, call: &Call<'_>) -> Response {
    if let Some(t) = &call.token {
        app.auth().sessions.remove(t);
    }
    app.audit(call, "logout", "", true, "");
    Response::json(200, &json!({ "ok": true })).header(
        "Set-Cookie",
        &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    )
}

fn session(_app: &App, call: &Call<'_>) -> Response {
    let csrf = call
        .session
        .as_ref()
        .map(|s| s.csrf.clone())
        .unwrap_or_default();
    Response::json(200, &json!({ "csrf": csrf, "idle_secs": IDLE_SECS }))
}

fn password(app: &App, call: &Call<'_>) -> Response {
    let m = match body_object(call) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (cur, new) = match (string_field(&m, "current"), string_field(&m, "new")) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let stored = {
        let a = app.auth();
        if let Err(wait) = a.throttle.check(call.req.peer, call.now) {
            return Response::error(429, &format!("too many failed attempts; wait {wait} s"))
                .header("Retry-After", &wait.to_string());
        }
        a.password.clone().unwrap_or_default()
    };
    if !auth::verify_password(&cur, &stored).unwrap_or(false) {
        app.auth().throttle.fail(call.req.peer, call.now);
        app.audit(call, "password.change", "", false, "wrong current password");
        return issue("current", "the current password is wrong");
    }
    if let Some(why) = auth::password_problem(&new) {
        return issue("new", why);
    }
    let hash = match auth::hash_password(&new, app.opts.kdf) {
        Ok(h) => h,
        Err(e) => return Response::error(500, &chain(&e)),
    };
    if let Err(r) = app.save_password(&hash) {
        return r;
    }
    {
        let mut a = app.auth();
        a.password = Some(hash);
        a.sessions.clear_except(call.token.as_deref());
    }
    app.audit(call, "password.change", "", true, "other sessions ended");
    Response::json(200, &json!({ "ok": true }))
}

// ---- exposure and log ---------------------------------------------------------------

/// Services that are attacked constantly when open to anyone.
const RISKY: &[(u32, &str)] = &[
    (21, "FTP"),
    (22, "SSH"),
    (23, "Telnet"),
    (135, "Windows RPC"),
    (139, "NetBIOS"),
    (445, "SMB file sharing"),
    (1433, "SQL Server"),
    (3306, "MySQL"),
    (3389, "Remote Desktop"),
    (5900, "VNC"),
    (6379, "Redis"),
];

/// A warning for a port range reachable by `anyone` (or always, for clear-text logins).
pub fn risk(ranges: &[PortRange], anyone: bool) -> Option<String> {
    for &(port, what) in RISKY {
        if !ranges.iter().any(|r| r.first <= port && port <= r.last) {
            continue;
        }
        if port == 21 || port == 23 {
            return Some(format!("{what} ({port}) sends passwords in clear text"));
        }
        if anyone {
            return Some(format!(
                "{what} ({port}) open to anyone: a constant target of attacks; add an allow-list"
            ));
        }
    }
    None
}

fn status_or_error(app: &App, now: Timestamp) -> Result<crate::status::Status, Response> {
    match app.daemon.status() {
        Err(e) => Err(Response::error(503, &e.to_string())),
        Ok(Err(e)) => Err(Response::error(500, &e)),
        Ok(Ok(s)) => {
            app.hits
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .observe(&s, now);
            Ok(s)
        }
    }
}

fn exposure(app: &App, call: &Call<'_>) -> Response {
    let cfg = match app.current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = match status_or_error(app, call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let hits = app
        .hits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut rows = Vec::new();
    let (mut ports, mut anyone_ports) = (0u32, 0u32);
    for (f, s) in cfg.forwards.iter().zip(&st.forwards) {
        use crate::status::ForwardState as S;
        if !matches!(s.state, S::Active | S::NotInstalled) {
            continue;
        }
        let anyone = f.allow_from.is_empty();
        if s.state == S::Active {
            ports += f.external_port.count();
            if anyone {
                anyone_ports += f.external_port.count();
            }
        }
        rows.push(json!({
            "kind": "forward",
            "name": f.name,
            "state": s.state,
            "protocol": f.protocol,
            "external_port": f.external_port.to_string(),
            "destination": s.destination,
            "allow_from": s.allow_from,
            "anyone": anyone,
            "hits": s.hits_packets,
            "last_hit": hits.last_hit("forward", &f.name),
            "remaining_secs": s.remaining_secs,
            "risk": risk(&[f.external_port, f.internal_range()], anyone),
            "comment": f.comment,
        }));
    }
    let mut armed = 0;
    for (t, s) in cfg.triggers.iter().zip(&st.triggers) {
        use crate::status::TriggerState as S;
        match s.state {
            S::Open => {}
            S::Armed => {
                armed += 1;
                continue;
            }
            _ => continue,
        }
        ports += t.open_port.count();
        anyone_ports += t.open_port.count();
        rows.push(json!({
            "kind": "trigger",
            "name": t.name,
            "state": s.state,
            "protocol": t.open_protocol,
            "external_port": t.open_port.to_string(),
            "destination": s.host.map(|h| h.to_string()).unwrap_or_default(),
            "allow_from": [],
            "anyone": true,
            "hits": s.hits_packets,
            "last_hit": hits.last_hit("trigger", &t.name),
            "remaining_secs": s.remaining_secs,
            "risk": risk(&[t.open_port], true),
            "comment": t.comment,
        }));
    }
    let plural = |n: u32| if n == 1 { "port" } else { "ports" };
    let summary = if ports == 0 {
        "Nothing is open to the internet.".to_string()
    } else {
        format!(
            "{ports} {} open to the internet, {anyone_ports} to anyone",
            plural(ports)
        )
    };
    Response::json(
        200,
        &json!({
            "summary": summary,
            "open_ports": ports,
            "open_to_anyone": anyone_ports,
            "armed_triggers": armed,
            "table_present": st.table_present,
            "rows": rows,
        }),
    )
}

fn log(app: &App, call: &Call<'_>) -> Response {
    // Reading status refreshes the hit log.
    let _ = status_or_error(app, call.now);
    let hits = app
        .hits
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .newest_first();
    let audit = app
        .audit
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .newest_first();
    Response::json(200, &json!({ "hits": hits, "audit": audit }))
}

fn system(app: &App, _call: &Call<'_>) -> Response {
    let trial = app.daemon.trial().ok();
    Response::json(
        200,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "trial": trial,
            "password_rules": auth::PASSWORD_RULES,
        }),
    )
}

// ---- forwards and triggers ----------------------------------------------------------

/// Which list an item lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Forward,
    Trigger,
}

impl Kind {
    fn list(self) -> &'static str {
        match self {
            Kind::Forward => "forwards",
            Kind::Trigger => "triggers",
        }
    }
}

/// When an item does not even parse, finds the field at fault so the UI can mark it.
fn field_problem(m: &Map<String, Value>) -> Option<(String, String)> {
    use serde_json::from_value as v;
    for (k, val) in m {
        if val.is_null() {
            continue;
        }
        let val = val.clone();
        let r = match k.as_str() {
            "name" | "comment" => v::<String>(val).map(drop),
            "enabled" | "log" => v::<bool>(val).map(drop),
            "protocol" | "trigger_protocol" | "open_protocol" => v::<Protocol>(val).map(drop),
            "external_port" | "internal_port" | "trigger_port" | "open_port" => {
                v::<PortRange>(val).map(drop)
            }
            "internal_host" => v::<Ipv4Addr>(val).map(drop),
            "allow_from" => v::<Vec<Ipv4Net>>(val).map(drop),
            "rate_limit" => v::<config::RateLimit>(val).map(drop),
            "expires_at" => v::<Timestamp>(val).map(drop),
            "timeout_secs" => v::<u32>(val).map(drop),
            _ => continue,
        };
        if let Err(e) = r {
            return Some((k.clone(), e.to_string()));
        }
    }
    None
}

/// Replaces the item at `index`, or appends it when `index` is one past the end (an
/// add); returns its name.
/// Parses the body as a forward or trigger; errors name `forwards[i].FIELD`.
fn parse_item<T: serde::de::DeserializeOwned>(
    call: &Call<'_>,
    kind: Kind,
    index: usize,
) -> Result<T, Response> {
    let mut m = body_object(call)?;
    m.retain(|_, v| !v.is_null());
    let prefix = format!("{}[{index}]", kind.list());
    match serde_json::from_value::<T>(Value::Object(m.clone())) {
        Ok(t) => Ok(t),
        Err(e) => {
            if let Some((field, msg)) = field_problem(&m) {
                return Err(issue(&format!("{prefix}.{field}"), &msg));
            }
            let msg = e.to_string();
            let named = msg.split('`').nth(1).filter(|f| !f.is_empty());
            match named {
                Some(f) => Err(issue(&format!("{prefix}.{f}"), &msg)),
                None => Err(issue(&prefix, &msg)),
            }
        }
    }
}

fn forwards_list(app: &App, call: &Call<'_>) -> Response {
    let cfg = match app.current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = status_or_error(app, call.now).ok();
    Response::json(
        200,
        &json!({ "forwards": cfg.forwards, "status": st.map(|s| s.forwards) }),
    )
}

fn triggers_list(app: &App, call: &Call<'_>) -> Response {
    let cfg = match app.current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    let st = status_or_error(app, call.now).ok();
    Response::json(
        200,
        &json!({ "triggers": cfg.triggers, "status": st.map(|s| s.triggers) }),
    )
}

fn position(cfg: &Config, kind: Kind, name: &str) -> Option<usize> {
    match kind {
        Kind::Forward => cfg.forwards.iter().position(|f| f.name == name),
        Kind::Trigger => cfg.triggers.iter().position(|t| t.name == name),
    }
}

/// The `If-Match` header, if sent.
fn if_match(call: &Call<'_>) -> Option<String> {
    call.req.header("If-Match").map(str::to_string)
}

/// Adds (`replace` None) or replaces an item, as one edit inside the owner.
fn upsert(app: &App, call: &Call<'_>, kind: Kind, replace: Option<&str>) -> Response {
    let cfg = match app.current() {
        Ok(c) => c,
        Err(r) => return r,
    };
    // The index only names the field in error messages.
    let index = match replace {
        None => match kind {
            Kind::Forward => cfg.forwards.len(),
            Kind::Trigger => cfg.triggers.len(),
        },
        Some(name) => position(&cfg, kind, name).unwrap_or(0),
    };
    let edit = match (kind, replace) {
        (Kind::Forward, r) => match parse_item::<Forward>(call, kind, index) {
            Ok(f) => match r {
                None => Edit::AddForward(f),
                Some(name) => Edit::ReplaceForward {
                    name: name.to_string(),
                    if_match: if_match(call),
                    forward: f,
                },
            },
            Err(r) => return r,
        },
        (Kind::Trigger, r) => match parse_item::<Trigger>(call, kind, index) {
            Ok(t) => match r {
                None => Edit::AddTrigger(t),
                Some(name) => Edit::ReplaceTrigger {
                    name: name.to_string(),
                    if_match: if_match(call),
                    trigger: t,
                },
            },
            Err(r) => return r,
        },
    };
    app.edit(call, edit)
}

fn remove(app: &App, call: &Call<'_>, kind: Kind) -> Response {
    let name = call.param.clone();
    let edit = match kind {
        Kind::Forward => Edit::DeleteForward {
            name,
            if_match: if_match(call),
        },
        Kind::Trigger => Edit::DeleteTrigger {
            name,
            if_match: if_match(call),
        },
    };
    app.edit(call, edit)
}

fn forward_add(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Forward, None)
}
fn forward_put(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Forward, Some(&call.param))
}
fn forward_delete(app: &App, call: &Call<'_>) -> Response {
    remove(app, call, Kind::Forward)
}
fn trigger_add(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Trigger, None)
}
fn trigger_put(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Trigger, Some(&call.param))
}
fn trigger_delete(app: &App, call: &Call<'_>) -> Response {
    remove(app, call, Kind::Trigger)
}

// ---- config backup/restore, settings, trial -----------------------------------------

fn config_backup(app: &App, _call: &Call<'_>) -> Response {
    match app.current() {
        Ok(cfg) => Response::bytes(200, "application/json", cfg.to_json().into_bytes())
            .header("Cache-Control", "no-store")
            .header(
                "Content-Disposition",
                "attachment; filename=\"portcullis-config.json\"",
            ),
        Err(r) => r,
    }
}

fn config_restore(app: &App, call: &Call<'_>) -> Response {
    let text = String::from_utf8_lossy(&call.req.body);
    let cfg = match Config::parse(&text) {
        Ok(c) => c,
        Err(config::ConfigError::Version(v)) => {
            return issue(
                "version",
                &format!(
                    "this firmware reads version {}, the file says {v}",
                    config::VERSION
                ),
            )
        }
        Err(e) => return issue("", &chain(&e)),
    };
    app.edit(call, Edit::Restore(Box::new(cfg)))
}

fn settings_get(app: &App, _call: &Call<'_>) -> Response {
    match app.current() {
        Ok(c) => Response::json(
            200,
            &json!({ "lan": c.lan, "wan": c.wan, "management": c.management }),
        ),
        Err(r) => r,
    }
}

fn settings_put(app: &App, call: &Call<'_>) -> Response {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        lan: config::Lan,
        wan: config::Wan,
        management: config::Management,
    }
    let s: Settings = match serde_json::from_slice(&call.req.body) {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            let f = msg.split('`').nth(1).unwrap_or("").to_string();
            return issue(&f, &msg);
        }
    };
    app.edit(
        call,
        Edit::Settings {
            if_match: if_match(call),
            settings: crate::daemon::Settings {
                lan: s.lan,
                wan: s.wan,
                management: s.management,
            },
        },
    )
}

fn trial_get(app: &App, _call: &Call<'_>) -> Response {
    match app.daemon.trial() {
        Ok(t) => Response::json(200, &t),
        Err(e) => Response::error(503, &e.to_string()),
    }
}

fn trial_confirm(app: &App, call: &Call<'_>) -> Response {
    match app.daemon.confirm() {
        Ok(had) => {
            app.audit(
                call,
                "trial.confirm",
                "",
                had,
                if had { "" } else { "no trial running" },
            );
            Response::json(200, &json!({ "confirmed": had }))
        }
        Err(e) => Response::error(503, &e.to_string()),
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
    fn risky_ports_warn_without_allow_list() {
        let r = |s: &str| s.parse::<PortRange>().unwrap();
        assert!(risk(&[r("2222"), r("22")], true).unwrap().contains("SSH"));
        assert!(risk(&[r("2222"), r("22")], false).is_none());
        assert!(risk(&[r("20-25")], false).unwrap().contains("clear text"));
        assert!(risk(&[r("3389")], true).unwrap().contains("Remote Desktop"));
        assert!(risk(&[r("8080")], true).is_none());
    }
}
