//! Config backup and restore, router settings, and the settings trial. A restore is one
//! [`Edit::Restore`]; a settings change is one [`Edit::Settings`] carrying the client's
//! `If-Match` (the ETag `GET /api/v1/settings` answered).

use serde_json::json;

use super::{if_match, issue, App, Call};
use crate::config::{self, Config};
use crate::daemon::{chain, etag, Edit, Settings};
use crate::web::http::Response;

/// `GET /api/v1/config`: the config file. It never holds the VPN's private or preshared
/// key (they live in `vpn.key`, outside the config); `X-Portcullis-Backup-Secrets: none`
/// says so, so a restore on another router needs the provider's file imported again.
pub(super) fn config_backup(app: &App, call: &Call<'_>) -> Response {
    match app.snapshot(call.now) {
        Ok(s) => Response::bytes(200, "application/json", s.config.to_json().into_bytes())
            .header("Cache-Control", "no-store")
            .header("X-Portcullis-Backup-Secrets", "none")
            .header(
                "Content-Disposition",
                "attachment; filename=\"portcullis-config.json\"",
            ),
        Err(r) => r,
    }
}

/// A config file as uploaded; errors name the field (`version`, or the JSON path).
pub(super) fn parse_config(body: &[u8]) -> Result<Config, Response> {
    let text = String::from_utf8_lossy(body);
    match Config::parse(&text) {
        Ok(c) => Ok(c),
        Err(config::ConfigError::Version(v)) => Err(issue(
            "version",
            &format!(
                "this firmware reads version {}, the file says {v}",
                config::VERSION
            ),
        )),
        Err(config::ConfigError::Parse { field, message, .. }) => Err(issue(&field, &message)),
        Err(e) => Err(issue("", &chain(&e))),
    }
}

pub(super) fn config_restore(app: &App, call: &Call<'_>) -> Response {
    match parse_config(&call.req.body) {
        Ok(cfg) => app.edit(call, Edit::Restore(Box::new(cfg)), String::new),
        Err(r) => r,
    }
}

pub(super) fn settings_get(app: &App, call: &Call<'_>) -> Response {
    match app.snapshot(call.now) {
        Ok(s) => {
            let settings = Settings::of(&s.config);
            Response::json(200, &settings).header("ETag", &etag(&settings))
        }
        Err(r) => r,
    }
}

/// The settings body; errors name the field.
pub(super) fn parse_settings(body: &[u8]) -> Result<Settings, Response> {
    crate::store::json(body).map_err(|e| {
        let msg = e.to_string();
        let f = msg.split('`').nth(1).unwrap_or("").to_string();
        issue(&f, &msg)
    })
}

pub(super) fn settings_put(app: &App, call: &Call<'_>) -> Response {
    let tag = match if_match(call) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match parse_settings(&call.req.body) {
        Ok(settings) => app.edit(
            call,
            Edit::Settings {
                if_match: Some(tag),
                settings,
            },
            String::new,
        ),
        Err(r) => r,
    }
}

pub(super) fn trial_get(app: &App, call: &Call<'_>) -> Response {
    match app.snapshot(call.now) {
        Ok(s) => Response::json(200, &s.trial),
        Err(r) => r,
    }
}

pub(super) fn trial_confirm(app: &App, call: &Call<'_>) -> Response {
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
        Err(e) => super::busy(&e.to_string()),
    }
}
