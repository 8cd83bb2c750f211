//! A plain-HTTP client of the daemon's web API from inside a namespace: first-boot setup
//! gives a session cookie and CSRF token (docs/api.md), which every later call carries.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::Duration;

use crate::netns;
use crate::poll;

/// The password the tests set at first boot (meets the rules: long, varied, not common).
pub const PASSWORD: &str = "Portcullis-e2e-7qx!";

/// A logged-in API session.
#[derive(Debug, Clone)]
pub struct Api {
    /// Namespace the requests are sent from.
    pub ns: String,
    pub addr: SocketAddrV4,
    cookie: String,
    csrf: String,
}

/// Whether a TCP connection from namespace `ns` to `to` succeeds (one try, 1 s).
pub fn connects(ns: &str, to: SocketAddr) -> bool {
    netns::run_in(ns, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(1)).is_ok()
    })
}

/// Polls (up to 10 s) until something listens on `to` as seen from namespace `ns`: the
/// daemon's web UI after start-up.
pub fn wait_listening(ns: &str, to: SocketAddr) -> bool {
    poll::until_true(Duration::from_secs(10), || connects(ns, to))
}

/// One raw HTTP request from the current thread's namespace: (status, head, body).
fn request(
    to: SocketAddrV4,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
    body: &str,
) -> std::io::Result<(u16, String, String)> {
    raw_request(SocketAddr::V4(to), method, path, cookie, csrf, body, &[])
}

/// One raw HTTP/1.1 request with the session cookie, CSRF token and `extra` headers, from
/// the current thread's namespace: (status, head, body).
pub fn raw_request(
    to: SocketAddr,
    method: &str,
    path: &str,
    cookie: &str,
    csrf: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let extra: String = extra.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nCookie: pc_session={cookie}\r\n\
         Content-Type: application/json\r\nX-CSRF-Token: {csrf}\r\n{extra}Connection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        to.ip(),
        body.len()
    );
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_owned(), body.to_owned()))
}

fn csrf_of(body: &str) -> Option<String> {
    let at = body.find("\"csrf\"")?;
    let rest = &body[at + 6..];
    let start = rest.find('"')? + 1;
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_owned())
}

impl Api {
    /// Sets the first password on a fresh daemon (retrying until the UI answers, up to
    /// 10 s) and keeps the session it returns.
    pub fn setup(ns: &str, addr: SocketAddrV4) -> Api {
        let body = format!("{{\"password\":\"{PASSWORD}\"}}");
        let answer = poll::until(Duration::from_secs(10), || {
            netns::run_in(ns, || request(addr, "POST", "/api/v1/setup", "", "", &body)).ok()
        })
        .unwrap_or_else(|| panic!("the web UI at {addr} never answered setup"));
        let (status, head, body) = answer;
        assert_eq!(status, 200, "setup: {head}\n{body}");
        let cookie = head
            .split("pc_session=")
            .nth(1)
            .and_then(|c| c.split(';').next())
            .unwrap_or_else(|| panic!("no session cookie in {head}"))
            .to_owned();
        let csrf = csrf_of(&body).unwrap_or_else(|| panic!("no csrf in {body}"));
        Api {
            ns: ns.to_owned(),
            addr,
            cookie,
            csrf,
        }
    }

    /// `method path` with a JSON body; returns (status, body). Panics if the daemon does
    /// not answer at all.
    pub fn call(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let (addr, cookie, csrf) = (self.addr, &self.cookie, &self.csrf);
        let got = netns::run_in(&self.ns, || request(addr, method, path, cookie, csrf, body))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        (got.0, got.2)
    }
}
