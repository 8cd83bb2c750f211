//! Forwards and triggers: list, read, add, replace, delete. Each change is one
//! [`Edit`] applied inside the owner; replace and delete carry the client's `If-Match`, so
//! a change made elsewhere since the client read the object is answered 409 with what it
//! is now, never overwritten.

use std::net::Ipv4Addr;

use serde_json::{json, Map, Value};

use super::{body_object, if_match, issue, App, Call};
use crate::config::{self, Ipv4Net, PortRange, Protocol, Timestamp};
use crate::daemon::{etag, Edit, Kind};
use crate::web::http::Response;

fn list_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Forward => "forwards",
        Kind::Trigger => "triggers",
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
            "device" => v::<config::MacAddr>(val).map(drop),
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

/// Why an item body did not parse.
enum ParseError {
    /// Not a JSON object at all.
    Body(Response),
    /// `field` (None: the item as a whole) is wrong.
    Field(Option<String>, String),
}

/// A forward or a trigger, as an item of its list in a config file.
pub trait ConfigItem: Sized {
    /// The config's list holding it.
    const LIST: &'static str;
    /// The first item of that list.
    fn take(cfg: config::Config) -> Option<Self>;
}

impl ConfigItem for config::Forward {
    const LIST: &'static str = "forwards";
    fn take(cfg: config::Config) -> Option<Self> {
        cfg.forwards.into_iter().next()
    }
}

impl ConfigItem for config::Trigger {
    const LIST: &'static str = "triggers";
    fn take(cfg: config::Config) -> Option<Self> {
        cfg.triggers.into_iter().next()
    }
}

/// Parses an item through the config file's own parser (as the only item of its list in
/// an otherwise empty config): one copy of the deserializers in the router's binary, and
/// the same messages as for the file.
fn parse_fields<T: ConfigItem>(body: &[u8]) -> Result<T, ParseError> {
    let mut m = body_object(body).map_err(ParseError::Body)?;
    m.retain(|k, v| !v.is_null() && k != "etag");
    let list = format!("[{}]", Value::Object(m.clone()));
    let e = match config::Config::parse_section(T::LIST, &list) {
        Ok(cfg) => {
            return T::take(cfg).ok_or_else(|| ParseError::Field(None, "no item".into()));
        }
        Err(e) => e,
    };
    if let Some((field, msg)) = field_problem(&m) {
        return Err(ParseError::Field(Some(field), msg));
    }
    let (path, msg) = match e {
        config::ConfigError::Parse { field, message, .. } => (field, message),
        other => (String::new(), other.to_string()),
    };
    let own = path
        .strip_prefix(&format!("{}[0]", T::LIST))
        .map(|p| p.trim_start_matches('.').to_string())
        .filter(|p| !p.is_empty());
    let named = own.or_else(|| {
        msg.split('`')
            .nth(1)
            .filter(|f| !f.is_empty())
            .map(str::to_string)
    });
    Err(ParseError::Field(named, msg))
}

fn field_error(e: ParseError, list: &str, index: impl FnOnce() -> usize) -> Response {
    match e {
        ParseError::Body(r) => r,
        ParseError::Field(field, msg) => {
            let prefix = format!("{list}[{}]", index());
            match field {
                Some(f) => issue(&format!("{prefix}.{f}"), &msg),
                None => issue(&prefix, &msg),
            }
        }
    }
}

/// Parses a body as a forward or trigger of the list `list` at `index`; errors name the
/// field (`forwards[3].external_port`). `null` fields count as absent, and an `etag`
/// field (as the list answers carry) is ignored.
pub fn parse_item<T: ConfigItem>(body: &[u8], list: &str, index: usize) -> Result<T, Response> {
    parse_fields(body).map_err(|e| field_error(e, list, || index))
}

/// The items of a list, each with its `etag`.
fn with_etags<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|it| {
            let mut v = serde_json::to_value(it).unwrap_or(Value::Null);
            if let Value::Object(m) = &mut v {
                m.insert("etag".into(), Value::String(etag(it)));
            }
            v
        })
        .collect()
}

pub(super) fn forwards_list(app: &App, call: &Call<'_>) -> Response {
    let snap = match app.snapshot(call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    Response::json(
        200,
        &json!({
            "forwards": with_etags(&snap.config.forwards),
            "status": snap.status.ok().map(|s| s.forwards),
        }),
    )
}

pub(super) fn triggers_list(app: &App, call: &Call<'_>) -> Response {
    let snap = match app.snapshot(call.now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    Response::json(
        200,
        &json!({
            "triggers": with_etags(&snap.config.triggers),
            "status": snap.status.ok().map(|s| s.triggers),
        }),
    )
}

/// One object with its `ETag` header.
fn one<T: serde::Serialize>(kind: Kind, name: &str, found: Option<&T>) -> Response {
    match found {
        Some(it) => Response::json(200, it).header("ETag", &etag(it)),
        None => Response::error(404, &format!("no {} named {name}", kind.noun())),
    }
}

pub(super) fn forward_get(app: &App, call: &Call<'_>) -> Response {
    match app.snapshot(call.now) {
        Ok(s) => one(
            Kind::Forward,
            &call.param,
            s.config.forwards.iter().find(|f| f.name == call.param),
        ),
        Err(r) => r,
    }
}

pub(super) fn trigger_get(app: &App, call: &Call<'_>) -> Response {
    match app.snapshot(call.now) {
        Ok(s) => one(
            Kind::Trigger,
            &call.param,
            s.config.triggers.iter().find(|t| t.name == call.param),
        ),
        Err(r) => r,
    }
}

/// Where an item is (or would go) in its list, only to name fields in error messages: no
/// decision depends on it (the owner decides against the config in force when the edit
/// arrives). Read only when there is an error to name.
fn index_of(app: &App, kind: Kind, replace: Option<&str>) -> usize {
    app.daemon.config().ok().map_or(0, |cfg| {
        let names: Vec<&str> = match kind {
            Kind::Forward => cfg.forwards.iter().map(|f| f.name.as_str()).collect(),
            Kind::Trigger => cfg.triggers.iter().map(|t| t.name.as_str()).collect(),
        };
        replace
            .and_then(|n| names.iter().position(|x| *x == n))
            .unwrap_or(names.len())
    })
}

/// Parses the body of an add or replace; an error names the field at the item's index.
fn parse_for<T: ConfigItem>(
    app: &App,
    call: &Call<'_>,
    kind: Kind,
    replace: Option<&str>,
) -> Result<T, Response> {
    parse_fields(&call.req.body)
        .map_err(|e| field_error(e, list_name(kind), || index_of(app, kind, replace)))
}

/// Adds (`replace` None) or replaces an item, as one edit inside the owner.
fn upsert(app: &App, call: &Call<'_>, kind: Kind, replace: Option<&str>) -> Response {
    let tag = match replace.map(|_| if_match(call)).transpose() {
        Ok(t) => t,
        Err(r) => return r,
    };
    let edit = match (kind, replace) {
        (Kind::Forward, None) => parse_for(app, call, kind, replace).map(Edit::AddForward),
        (Kind::Forward, Some(name)) => {
            parse_for(app, call, kind, replace).map(|forward| Edit::ReplaceForward {
                name: name.to_string(),
                if_match: tag,
                forward,
            })
        }
        (Kind::Trigger, None) => parse_for(app, call, kind, replace).map(Edit::AddTrigger),
        (Kind::Trigger, Some(name)) => {
            parse_for(app, call, kind, replace).map(|trigger| Edit::ReplaceTrigger {
                name: name.to_string(),
                if_match: tag,
                trigger,
            })
        }
    };
    match edit {
        Ok(e) => app.edit(call, e, || {
            format!("{}[{}].name", list_name(kind), index_of(app, kind, replace))
        }),
        Err(r) => r,
    }
}

fn remove(app: &App, call: &Call<'_>, kind: Kind) -> Response {
    let tag = match if_match(call) {
        Ok(t) => Some(t),
        Err(r) => return r,
    };
    let name = call.param.clone();
    let edit = match kind {
        Kind::Forward => Edit::DeleteForward {
            name,
            if_match: tag,
        },
        Kind::Trigger => Edit::DeleteTrigger {
            name,
            if_match: tag,
        },
    };
    app.edit(call, edit, String::new)
}

pub(super) fn forward_add(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Forward, None)
}
pub(super) fn forward_put(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Forward, Some(&call.param))
}
pub(super) fn forward_delete(app: &App, call: &Call<'_>) -> Response {
    remove(app, call, Kind::Forward)
}
pub(super) fn trigger_add(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Trigger, None)
}
pub(super) fn trigger_put(app: &App, call: &Call<'_>) -> Response {
    upsert(app, call, Kind::Trigger, Some(&call.param))
}
pub(super) fn trigger_delete(app: &App, call: &Call<'_>) -> Response {
    remove(app, call, Kind::Trigger)
}

#[cfg(test)]
mod tests {
    use super::field_problem;

    fn problem(json: &str) -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        field_problem(v.as_object().unwrap()).map(|(f, _)| f)
    }

    #[test]
    fn a_forwards_device_is_a_mac() {
        assert_eq!(problem(r#"{"device": "aa:bb:cc:dd:ee:ff"}"#), None);
        assert_eq!(
            problem(r#"{"device": "not-a-mac"}"#).as_deref(),
            Some("device")
        );
        assert_eq!(problem(r#"{"device": 5}"#).as_deref(), Some("device"));
    }
}
