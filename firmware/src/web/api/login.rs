//! First-boot setup, login, logout, sessions and the password change. Hashing runs on
//! the hashing thread ([`crate::web::hasher`]); a damaged password file refuses setup and
//! logins ([`crate::web::secrets`]).

use serde_json::{json, Value};

use super::{body_object, busy, issue, string_field, App, Call, COOKIE};
use crate::daemon::chain;
use crate::web::auth;
use crate::web::hasher::Busy;
use crate::web::http::Response;
use crate::web::secrets::Password;
use crate::web::sessions::IDLE_SECS;

/// The password state, read again if the file changed on disk.
fn password_state(app: &App) -> Password {
    let mut a = app.auth();
    if a.password.refresh() {
        a.sessions.clear_except(None);
    }
    a.password.state().clone()
}

fn hash_busy(e: Busy) -> Response {
    busy(&e.to_string())
}

pub(super) fn setup_status(app: &App, _call: &Call<'_>) -> Response {
    let state = password_state(app);
    Response::json(
        200,
        &json!({
            "needed": state == Password::Missing,
            "broken": match &state {
                Password::Broken(m) => Some(m.as_str()),
                _ => None,
            },
            "rules": auth::PASSWORD_RULES,
        }),
    )
}

pub(super) fn setup(app: &App, call: &Call<'_>) -> Response {
    match password_state(app) {
        Password::Missing => {}
        Password::Set(_) => {
            app.audit(call, "setup", "", false, "already set up");
            return Response::error(409, "the admin password is already set; log in instead");
        }
        Password::Broken(m) => {
            app.audit(call, "setup", "", false, "password file unusable");
            return Response::error(503, &m);
        }
    }
    let m = match body_object(&call.req.body) {
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
    let kdf = app.opts.kdf;
    let hash = match app.hasher.run(move || auth::hash_password(&pw, kdf)) {
        Err(e) => return hash_busy(e),
        Ok(Err(e)) => return Response::error(500, &chain(&e)),
        Ok(Ok(h)) => h,
    };
    {
        let mut a = app.auth();
        if a.password.refresh() {
            a.sessions.clear_except(None);
        }
        if *a.password.state() != Password::Missing {
            return Response::error(409, "the admin password is already set; log in instead");
        }
        if let Err(e) = a.password.save(&hash) {
            return Response::error(500, &format!("saving the password: {}", chain(&e)));
        }
    }
    app.audit(call, "setup", "", true, "admin password set");
    start_session(app, call)
}

/// Starts a session and answers with its cookie and CSRF token.
fn start_session(app: &App, call: &Call<'_>) -> Response {
    let mut a = app.auth();
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

pub(super) fn login(app: &App, call: &Call<'_>) -> Response {
    let ip = call.req.peer;
    let wait = app.auth().throttle.check(ip, call.now);
    if let Err(wait) = wait {
        app.audit(call, "login", "", false, "throttled");
        return Response::error(429, &format!("too many failed logins; wait {wait} s"))
            .header("Retry-After", &wait.to_string());
    }
    let stored = match password_state(app) {
        Password::Set(h) => h,
        Password::Missing => {
            return Response::error(409, "no admin password yet: complete setup first")
        }
        Password::Broken(m) => {
            app.audit(call, "login", "", false, "password file unusable");
            return Response::error(503, &m);
        }
    };
    let pw = body_object(&call.req.body)
        .ok()
        .and_then(|m| m.get("password").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    match app.hasher.run(move || auth::verify_password(&pw, &stored)) {
        Err(e) => hash_busy(e),
        Ok(Ok(true)) => {
            app.auth().throttle.succeed(ip);
            app.audit(call, "login", "", true, "");
            start_session(app, call)
        }
        Ok(Ok(false)) => {
            app.auth().throttle.fail(ip, call.now);
            app.audit(call, "login", "", false, "wrong password");
            Response::error(401, "wrong password")
        }
        Ok(Err(e)) => Response::error(500, &chain(&e)),
    }
}

pub(super) fn logout(app: &App, call: &Call<'_>) -> Response {
    if let Some(t) = &call.token {
        app.auth().sessions.remove(t);
    }
    app.audit(call, "logout", "", true, "");
    Response::json(200, &json!({ "ok": true })).header(
        "Set-Cookie",
        &format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    )
}

pub(super) fn session(_app: &App, call: &Call<'_>) -> Response {
    let csrf = call
        .session
        .as_ref()
        .map(|s| s.csrf.clone())
        .unwrap_or_default();
    Response::json(200, &json!({ "csrf": csrf, "idle_secs": IDLE_SECS }))
}

pub(super) fn password(app: &App, call: &Call<'_>) -> Response {
    let m = match body_object(&call.req.body) {
        Ok(m) => m,
        Err(r) => return r,
    };
    let (cur, new) = match (string_field(&m, "current"), string_field(&m, "new")) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let wait = app.auth().throttle.check(call.req.peer, call.now);
    if let Err(wait) = wait {
        return Response::error(429, &format!("too many failed attempts; wait {wait} s"))
            .header("Retry-After", &wait.to_string());
    }
    let stored = match password_state(app) {
        Password::Set(h) => h,
        Password::Broken(m) => return Response::error(503, &m),
        Password::Missing => return Response::error(409, "no admin password is set"),
    };
    match app.hasher.run(move || auth::verify_password(&cur, &stored)) {
        Err(e) => return hash_busy(e),
        Ok(Ok(true)) => {}
        Ok(_) => {
            app.auth().throttle.fail(call.req.peer, call.now);
            app.audit(call, "password.change", "", false, "wrong current password");
            return issue("current", "the current password is wrong");
        }
    }
    if let Some(why) = auth::password_problem(&new) {
        return issue("new", why);
    }
    let kdf = app.opts.kdf;
    let hash = match app.hasher.run(move || auth::hash_password(&new, kdf)) {
        Err(e) => return hash_busy(e),
        Ok(Err(e)) => return Response::error(500, &chain(&e)),
        Ok(Ok(h)) => h,
    };
    {
        let mut a = app.auth();
        if let Err(e) = a.password.save(&hash) {
            return Response::error(500, &format!("saving the password: {}", chain(&e)));
        }
        a.sessions.clear_except(call.token.as_deref());
    }
    app.audit(call, "password.change", "", true, "other sessions ended");
    Response::json(200, &json!({ "ok": true }))
}
