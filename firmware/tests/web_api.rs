//! The web UI's HTTP API, end to end over TCP: every route, sessions, CSRF, throttling,
//! validation, apply-with-rollback, assets and the gate's limits (incl. 200 idle sockets).
//!
//! Needs root: each test runs the daemon's owner thread in a network namespace of its own
//! (`pcxweb-<pid>-<n>`, with dummy `lan0`/`wan0`), removed when the test ends, pass or
//! fail. The web server itself listens on 127.0.0.1 in the test's namespace; it never
//! touches kernel state, only the owner thread does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use portcullis::config::{Config, Timestamp};
use portcullis::daemon::{self, Handle};
use portcullis::engine::Engine;
use portcullis::web::{self, api, auth::Cost, AppOptions, Limits, Web, WebOptions};
use serde_json::{json, Value};

static N: AtomicU32 = AtomicU32::new(0);

const PASSWORD: &str = "mellow-otter-93";

const CONFIG: &str = r#"{
  "version": 1,
  "lan": { "interface": "lan0", "subnets": ["192.168.1.0/24"] },
  "wan": { "interface": "wan0" },
  "management": { "http_port": 80 }
}"#;

/// A namespace with the daemon in it and the web server on loopback; all removed on drop.
struct Fixture {
    ns: String,
    dir: std::path::PathBuf,
    web: Option<Web>,
    handle: Handle,
    owner: Option<std::thread::JoinHandle<()>>,
    addr: SocketAddr,
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?}");
}

/// How a fixture starts.
struct Setup {
    trial_secs: u64,
    limits: Limits,
    kdf: Cost,
    /// Start the owner in safe mode with this reason (as with a broken saved config).
    broken: Option<String>,
    /// Files written into the state directory before the web server starts.
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            trial_secs: AppOptions::default().trial_secs,
            limits: Limits::default(),
            kdf: Cost {
                log_n: 8,
                r: 8,
                p: 1,
            },
            broken: None,
            files: Vec::new(),
        }
    }
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::build(Setup::default())
    }

    fn with(trial_secs: u64, limits: Limits) -> Fixture {
        Fixture::build(Setup {
            trial_secs,
            limits,
            ..Setup::default()
        })
    }

    fn build(setup: Setup) -> Fixture {
        let Setup {
            trial_secs,
            limits,
            kdf,
            broken,
            files,
        } = setup;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0")),
            "web API tests need root (network namespaces, nftables)"
        );
        let ns = format!(
            "pcxweb-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let dir = std::env::temp_dir().join(&ns);
        std::fs::create_dir_all(&dir).unwrap();
        ip(&["netns", "add", &ns]);
        // From here on, a panic drops `guard`, which removes the namespace and directory.
        let guard = NsGuard(ns.clone(), dir.clone());
        // A veth pair stands for the two ports (the host kernel has no dummy module).
        ip(&[
            "-n", &ns, "link", "add", "lan0", "type", "veth", "peer", "name", "wan0",
        ]);
        for (dev, cidr) in [("lan0", "192.168.1.1/24"), ("wan0", "203.0.113.2/24")] {
            ip(&["-n", &ns, "addr", "add", cidr, "dev", dev]);
            ip(&["-n", &ns, "link", "set", dev, "up"]);
        }
        let saved = dir.join("config.json");
        std::fs::write(&saved, CONFIG).unwrap();
        let cfg = Config::parse(CONFIG).unwrap();
        let path = format!("/run/netns/{ns}");
        let (handle, owner) = std::thread::scope(|s| {
            s.spawn(|| {
                let f = std::fs::File::open(&path).unwrap();
                nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                // The owner thread inherits this thread's namespace.
                let start = match broken {
                    None => daemon::Start::Config(Box::new(cfg)),
                    Some(reason) => daemon::Start::Broken {
                        fallback: Box::new(cfg),
                        reason,
                    },
                };
                daemon::spawn(
                    Engine::open(&saved).expect("engine"),
                    start,
                    daemon::OwnerOptions {
                        trial_secs,
                        state_dir: Some(saved.parent().unwrap().to_path_buf()),
                        notify: Box::new(|_| {}),
                        services: Default::default(),
                        run_dir: None,
                    },
                )
                .expect("owner thread")
            })
            .join()
            .unwrap()
        });
        for (name, bytes) in &files {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        let web = web::start(
            handle.clone(),
            WebOptions {
                listen: vec!["127.0.0.1:0".parse().unwrap()],
                run_dir: dir.clone(),
                limits,
                app: AppOptions {
                    state_dir: Some(dir.clone()),
                    kdf,
                    trial_secs,
                    audit: None,
                },
            },
        )
        .expect("web server starts");
        let addr = web.addrs()[0];
        std::mem::forget(guard);
        Fixture {
            ns,
            dir,
            web: Some(web),
            handle,
            owner: Some(owner),
            addr,
        }
    }

    fn client(&self) -> Client {
        Client {
            addr: self.addr,
            cookie: None,
            csrf: None,
        }
    }

    /// A client that completed first-boot setup and holds a session.
    fn admin(&self) -> Client {
        let mut c = self.client();
        let r = c.post("/api/v1/setup", &json!({ "password": PASSWORD }));
        assert_eq!(r.status, 200, "{}", r.text());
        c
    }
}

struct NsGuard(String, std::path::PathBuf);

impl Drop for NsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(w) = self.web.take() {
            w.stop();
        }
        self.handle.shutdown();
        if let Some(o) = self.owner.take() {
            let _ = o.join();
        }
        drop(NsGuard(self.ns.clone(), self.dir.clone()));
    }
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    /// Fields named by a 422's issues.
    fn fields(&self) -> Vec<String> {
        self.json()["issues"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|i| i["severity"] == "error")
                    .map(|i| i["field"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sends raw bytes, reads until the server closes.
fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse(&out)
}

fn parse(out: &[u8]) -> Resp {
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(out)));
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: out[end + 4..].to_vec(),
    }
}

struct Client {
    addr: SocketAddr,
    cookie: Option<String>,
    csrf: Option<String>,
}

impl Client {
    fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        extra: &[(&str, &str)],
    ) -> Resp {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        if let Some(c) = &self.cookie {
            head.push_str(&format!("Cookie: {}={c}\r\n", api::COOKIE));
        }
        let has_ct = extra
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
        if method != "GET" {
            if !has_ct {
                head.push_str("Content-Type: application/json\r\n");
            }
            if let Some(t) = &self.csrf {
                if !extra.iter().any(|(n, _)| *n == api::CSRF_HEADER) {
                    head.push_str(&format!("{}: {t}\r\n", api::CSRF_HEADER));
                }
            }
        }
        for (n, v) in extra {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        let body = body.unwrap_or(b"");
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        let r = raw(self.addr, &bytes);
        if let Some(sc) = r.header("Set-Cookie") {
            let v = sc
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_string();
            self.cookie = (!v.is_empty()).then_some(v);
        }
        if r.status == 200 {
            if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&r.body) {
                if let Some(Value::String(t)) = m.get("csrf") {
                    self.csrf = Some(t.clone());
                }
            }
        }
        r
    }
    fn get(&mut self, path: &str) -> Resp {
        self.request("GET", path, None, &[])
    }
    fn post(&mut self, path: &str, v: &Value) -> Resp {
        self.request("POST", path, Some(v.to_string().as_bytes()), &[])
    }
    /// The ETag a GET of `path` answers (a made-up one if there is none).
    fn etag(&mut self, path: &str) -> String {
        let r = self.get(path);
        r.header("ETag").unwrap_or("\"none\"").to_string()
    }
    /// PUT with the If-Match of a fresh GET of the same path.
    fn put(&mut self, path: &str, v: &Value) -> Resp {
        let tag = self.etag(path);
        self.put_if(path, v, Some(&tag))
    }
    fn put_if(&mut self, path: &str, v: &Value, if_match: Option<&str>) -> Resp {
        let extra: Vec<(&str, &str)> = if_match.map(|t| ("If-Match", t)).into_iter().collect();
        self.request("PUT", path, Some(v.to_string().as_bytes()), &extra)
    }
    /// DELETE with the If-Match of a fresh GET of the same path.
    fn delete(&mut self, path: &str) -> Resp {
        let tag = self.etag(path);
        self.delete_if(path, Some(&tag))
    }
    fn delete_if(&mut self, path: &str, if_match: Option<&str>) -> Resp {
        let extra: Vec<(&str, &str)> = if_match.map(|t| ("If-Match", t)).into_iter().collect();
        self.request("DELETE", path, None, &extra)
    }
}

fn concrete(path: &str) -> String {
    if path.starts_with("/api/v1/triggers") {
        path.replace("{name}", "irc")
    } else {
        path.replace("{name}", "web")
    }
}

#[test]
fn every_route_except_setup_and_login_requires_a_session() {
    let f = Fixture::new();
    let public: Vec<(&str, &str)> = api::ROUTES
        .iter()
        .filter(|r| r.access == api::Access::Public)
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(
        public,
        [
            ("GET", "/api/v1/setup"),
            ("POST", "/api/v1/setup"),
            ("POST", "/api/v1/login")
        ]
    );
    let session_routes: Vec<_> = api::ROUTES
        .iter()
        .filter(|r| r.access == api::Access::Session)
        .collect();
    assert!(session_routes.len() >= 20);
    // Before setup, and after it without a cookie (or with a made-up one): 401 everywhere.
    let mut anon = f.client();
    for r in &session_routes {
        let resp = anon.request(r.method, &concrete(r.path), Some(b"{}"), &[]);
        assert_eq!(resp.status, 401, "{} {} before setup", r.method, r.path);
    }
    let mut admin = f.admin();
    let mut forged = f.client();
    forged.cookie = Some("00112233445566778899aabbccddeeff".into());
    for c in [&mut anon, &mut forged] {
        for r in &session_routes {
            let resp = c.request(r.method, &concrete(r.path), Some(b"{}"), &[]);
            assert_eq!(
                resp.status, 401,
                "{} {} without a session",
                r.method, r.path
            );
            assert!(resp.json()["error"].is_string());
        }
    }
    // With a session but without the CSRF token, nothing that changes state goes through.
    let token = admin.csrf.take();
    for r in session_routes.iter().filter(|r| r.method != "GET") {
        let resp = admin.request(r.method, &concrete(r.path), Some(b"{}"), &[]);
        assert_eq!(
            resp.status, 403,
            "{} {} without CSRF token",
            r.method, r.path
        );
    }
    admin.csrf = token;
    // And with both, every GET answers.
    let fwd = json!({ "name": "web", "protocol": "tcp", "external_port": 8080, "internal_host": "192.168.1.10" });
    assert_eq!(admin.post("/api/v1/forwards", &fwd).status, 200);
    let trg = json!({ "name": "irc", "trigger_protocol": "tcp", "trigger_port": 6667, "open_protocol": "tcp", "open_port": 113 });
    assert_eq!(admin.post("/api/v1/triggers", &trg).status, 200);
    for r in session_routes.iter().filter(|r| r.method == "GET") {
        let resp = admin.get(&concrete(r.path));
        assert_eq!(resp.status, 200, "{} {}: {}", r.method, r.path, resp.text());
    }
    assert_eq!(admin.get("/api/v1/nope").status, 404);
    assert_eq!(
        admin
            .request("PATCH", "/api/v1/forwards", Some(b"{}"), &[])
            .status,
        405
    );
}

#[test]
fn setup_login_session_cookie_and_logout() {
    let f = Fixture::new();
    let mut c = f.client();
    assert_eq!(c.get("/api/v1/setup").json()["needed"], true);
    let weak = c.post("/api/v1/setup", &json!({ "password": "password1" }));
    assert_eq!(weak.status, 422);
    assert_eq!(weak.fields(), ["password"]);
    let r = c.post("/api/v1/setup", &json!({ "password": PASSWORD }));
    assert_eq!(r.status, 200);
    let cookie = r.header("Set-Cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(c.cookie.as_ref().unwrap().len(), 32, "128-bit token in hex");
    assert_eq!(c.get("/api/v1/setup").json()["needed"], false);
    // The password is stored hashed with scrypt, next to the config, private.
    let stored = std::fs::read_to_string(f.dir.join("web.json")).unwrap();
    assert!(stored.contains("scrypt$") && !stored.contains(PASSWORD));
    // No second setup.
    let mut other = f.client();
    assert_eq!(
        other
            .post("/api/v1/setup", &json!({ "password": "another-pass-42" }))
            .status,
        409
    );
    assert_eq!(
        other
            .post("/api/v1/login", &json!({ "password": "wrong-one-123" }))
            .status,
        401
    );
    assert_eq!(
        other
            .post("/api/v1/login", &json!({ "password": PASSWORD }))
            .status,
        200
    );
    assert_eq!(other.get("/api/v1/session").status, 200);
    // Logout ends that session only.
    let old = other.cookie.clone();
    assert_eq!(other.post("/api/v1/logout", &json!({})).status, 200);
    assert!(other.cookie.is_none());
    other.cookie = old;
    assert_eq!(other.get("/api/v1/session").status, 401);
    assert_eq!(c.get("/api/v1/session").status, 200);
}

#[test]
fn csrf_origin_and_host_checks() {
    let f = Fixture::new();
    let mut c = f.admin();
    let body =
        br#"{"name":"x","protocol":"tcp","external_port":8080,"internal_host":"192.168.1.10"}"#;
    let wrong = c.request(
        "POST",
        "/api/v1/forwards",
        Some(body),
        &[(api::CSRF_HEADER, "00")],
    );
    assert_eq!(wrong.status, 403);
    let cross = c.request(
        "POST",
        "/api/v1/forwards",
        Some(body),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(cross.status, 403);
    let site = c.request(
        "POST",
        "/api/v1/forwards",
        Some(body),
        &[("Sec-Fetch-Site", "cross-site")],
    );
    assert_eq!(site.status, 403);
    let form = c.request(
        "POST",
        "/api/v1/forwards",
        Some(body),
        &[("Content-Type", "text/plain")],
    );
    assert_eq!(form.status, 415);
    // Login is protected the same way (a cross-site page cannot log the browser in).
    let mut anon = f.client();
    let r = anon.request(
        "POST",
        "/api/v1/login",
        Some(br#"{"password":"x"}"#),
        &[("Origin", "http://evil.example")],
    );
    assert_eq!(r.status, 403);
    // DNS rebinding: a foreign host name is refused on every path.
    for path in ["/", "/api/v1/setup"] {
        let r = raw(
            f.addr,
            format!("GET {path} HTTP/1.1\r\nHost: evil.example.com\r\n\r\n").as_bytes(),
        );
        assert_eq!(r.status, 421, "{path}");
    }
    // Nothing above changed the config.
    assert_eq!(c.get("/api/v1/forwards").json()["forwards"], json!([]));
    let same = c.request(
        "POST",
        "/api/v1/forwards",
        Some(body),
        &[
            ("Origin", "http://127.0.0.1"),
            ("Sec-Fetch-Site", "same-origin"),
        ],
    );
    assert_eq!(same.status, 200, "{}", same.text());
}

#[test]
fn login_throttling_grows_per_address() {
    let f = Fixture::new();
    let mut admin = f.admin();
    let mut c = f.client();
    for _ in 0..3 {
        assert_eq!(
            c.post("/api/v1/login", &json!({ "password": "not-it-at-all" }))
                .status,
            401
        );
    }
    let r = c.post("/api/v1/login", &json!({ "password": PASSWORD }));
    assert_eq!(r.status, 429, "the right password must wait too");
    let wait: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        c.post("/api/v1/login", &json!({ "password": "not-it-at-all" }))
            .status,
        401
    );
    let r = c.post("/api/v1/login", &json!({ "password": PASSWORD }));
    assert_eq!(r.status, 429);
    let wait: u64 = r.header("Retry-After").unwrap().parse().unwrap();
    assert!((3..=4).contains(&wait), "the delay doubles: {wait}");
    // Every attempt is in the audit log, as one line for the address.
    let log = admin.get("/api/v1/log").json();
    let logins: Vec<&Value> = log["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login")
        .collect();
    assert_eq!(logins.len(), 1, "{log}");
    let detail = logins[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("6 failed logins between") && detail.contains("(2 while throttled)"),
        "{detail}"
    );
}

#[test]
fn forwards_and_triggers_crud_with_field_named_errors() {
    let f = Fixture::new();
    let mut c = f.admin();
    let fwd = json!({
        "name": "web", "protocol": "tcp", "external_port": 8080,
        "internal_host": "192.168.1.10", "internal_port": 80,
        "allow_from": ["198.51.100.0/24"]
    });
    let r = c.post("/api/v1/forwards", &fwd);
    assert_eq!(r.status, 200, "{}", r.text());
    let open = json!({ "name": "game", "protocol": "both", "external_port": "27015-27016", "internal_host": "192.168.1.20" });
    let r = c.post("/api/v1/forwards", &open);
    assert_eq!(r.status, 200);
    assert!(r.json()["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| w["field"] == "forwards[1].allow_from"));
    let ssh = json!({ "name": "ssh", "protocol": "tcp", "external_port": 2222, "internal_host": "192.168.1.10", "internal_port": 22 });
    assert_eq!(c.post("/api/v1/forwards", &ssh).status, 200);

    // Exposure: from the kernel's read-back, with the summary line and risk warnings.
    let e = c.get("/api/v1/exposure").json();
    assert_eq!(
        e["summary"], "4 ports open to the internet, 3 to anyone",
        "{e}"
    );
    let rows = e["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["state"], "active");
    assert_eq!(rows[0]["allow_from"], json!(["198.51.100.0/24"]));
    assert_eq!(rows[0]["anyone"], false);
    assert_eq!(rows[1]["anyone"], true);
    assert!(rows[2]["risk"].as_str().unwrap().contains("SSH"), "{e}");

    // Validation: the same rules as the CLI, errors naming the field.
    let bad = |v: Value| v;
    for (body, field) in [
        (
            bad(
                json!({ "name": "x", "protocol": "tcp", "external_port": 70000, "internal_host": "192.168.1.10" }),
            ),
            "forwards[3].external_port",
        ),
        (
            bad(
                json!({ "name": "x", "protocol": "tcp", "external_port": "http", "internal_host": "192.168.1.10" }),
            ),
            "forwards[3].external_port",
        ),
        (
            bad(
                json!({ "name": "x", "protocol": "tcp", "external_port": 80, "internal_host": "192.168.1.10" }),
            ),
            "forwards[3].external_port",
        ),
        (
            bad(
                json!({ "name": "x", "protocol": "tcp", "external_port": 8080, "internal_host": "192.168.1.10" }),
            ),
            "forwards[3].external_port",
        ),
        (
            bad(
                json!({ "name": "x", "protocol": "tcp", "external_port": 81, "internal_host": "10.0.0.1" }),
            ),
            "forwards[3].internal_host",
        ),
        (
            bad(
                json!({ "name": "x", "protocol": "tcp", "external_port": 81, "internal_host": "192.168.1.10", "allow_from": ["1.2.3.4/8"] }),
            ),
            "forwards[3].allow_from",
        ),
        (
            bad(
                json!({ "name": "x", "protocol": "sctp", "external_port": 81, "internal_host": "192.168.1.10" }),
            ),
            "forwards[3].protocol",
        ),
        (
            bad(json!({ "protocol": "tcp", "external_port": 81, "internal_host": "192.168.1.10" })),
            "forwards[3].name",
        ),
        (
            bad(
                json!({ "name": "web", "protocol": "tcp", "external_port": 81, "internal_host": "192.168.1.10" }),
            ),
            "forwards[3].name",
        ),
    ] {
        let r = c.post("/api/v1/forwards", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text());
        let fields = r.fields();
        assert!(
            fields.iter().any(|x| x.starts_with(field)),
            "{body}: {fields:?} lacks {field}"
        );
    }
    // A refused change changed nothing.
    assert_eq!(
        c.get("/api/v1/forwards").json()["forwards"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    // Edit: disable, then rename; 404 for a missing one.
    let mut edited = fwd.clone();
    edited["enabled"] = json!(false);
    assert_eq!(c.put("/api/v1/forwards/web", &edited).status, 200);
    let st = c.get("/api/v1/forwards").json();
    assert_eq!(st["status"][0]["state"], "disabled");
    edited["name"] = json!("web2");
    edited["enabled"] = json!(true);
    assert_eq!(c.put("/api/v1/forwards/web", &edited).status, 200);
    assert_eq!(c.put("/api/v1/forwards/nope", &edited).status, 404);
    let bad_edit = json!({ "name": "web2", "protocol": "tcp", "external_port": 0, "internal_host": "192.168.1.10" });
    assert_eq!(
        c.put("/api/v1/forwards/web2", &bad_edit).fields(),
        ["forwards[0].external_port"]
    );
    // Delete.
    for n in ["web2", "game", "ssh"] {
        assert_eq!(c.delete(&format!("/api/v1/forwards/{n}")).status, 200);
    }
    assert_eq!(c.delete("/api/v1/forwards/web2").status, 404);
    assert_eq!(
        c.get("/api/v1/exposure").json()["summary"],
        "Nothing is open to the internet."
    );

    // Triggers.
    let trg = json!({ "name": "irc", "trigger_protocol": "tcp", "trigger_port": "6660-6669", "open_protocol": "tcp", "open_port": 113 });
    assert_eq!(c.post("/api/v1/triggers", &trg).status, 200);
    let list = c.get("/api/v1/triggers").json();
    assert_eq!(list["triggers"][0]["timeout_secs"], 600);
    assert_eq!(list["status"][0]["state"], "armed");
    assert_eq!(c.get("/api/v1/exposure").json()["armed_triggers"], 1);
    let mut t2 = trg.clone();
    t2["timeout_secs"] = json!(0);
    assert_eq!(
        c.put("/api/v1/triggers/irc", &t2).fields(),
        ["triggers[0].timeout_secs"]
    );
    t2["timeout_secs"] = json!(30);
    assert_eq!(c.put("/api/v1/triggers/irc", &t2).status, 200);
    assert_eq!(c.delete("/api/v1/triggers/irc").status, 200);
    assert_eq!(c.get("/api/v1/triggers").json()["triggers"], json!([]));

    // Every change is audited with who did it.
    let log = c.get("/api/v1/log").json();
    let actions: Vec<&str> = log["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "setup",
        "forward.add",
        "forward.edit",
        "forward.delete",
        "trigger.add",
        "trigger.edit",
        "trigger.delete",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert_eq!(log["audit"][0]["from"], "127.0.0.1");
}

#[test]
fn backup_restore_settings_and_rollback() {
    let f = Fixture::with(2, Limits::default());
    let mut c = f.admin();
    let backup = c.get("/api/v1/config");
    assert_eq!(backup.status, 200);
    assert!(backup
        .header("Content-Disposition")
        .unwrap()
        .contains("attachment"));
    let mut cfg: Value = backup.json();
    // A restore that fails validation replaces nothing.
    cfg["forwards"] = json!([{ "name": "a", "protocol": "tcp", "external_port": 99999, "internal_host": "192.168.1.10" }]);
    let r = c.request(
        "POST",
        "/api/v1/config",
        Some(cfg.to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.fields(), ["forwards[0].external_port"]);
    let r = c.request("POST", "/api/v1/config", Some(b"{\"version\": 7}"), &[]);
    assert_eq!(r.fields(), ["version"]);
    assert_eq!(c.get("/api/v1/forwards").json()["forwards"], json!([]));
    // A restore that keeps LAN and management applies at once.
    cfg["forwards"][0]["external_port"] = json!(8081);
    let r = c.request(
        "POST",
        "/api/v1/config",
        Some(cfg.to_string().as_bytes()),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["trial_secs"], Value::Null);
    assert_eq!(
        c.get("/api/v1/forwards").json()["forwards"][0]["external_port"],
        8081
    );
    // Management changes go on trial; confirmed, they stay.
    let mut s = c.get("/api/v1/settings").json();
    s["management"]["http_port"] = json!(8088);
    let r = c.put("/api/v1/settings", &s);
    assert_eq!(r.json()["trial_secs"], 2);
    assert!(c.get("/api/v1/trial").json()["remaining_secs"].is_u64());
    assert_eq!(
        c.post("/api/v1/trial/confirm", &json!({})).json()["confirmed"],
        true
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        c.get("/api/v1/settings").json()["management"]["http_port"],
        8088
    );
    // Unconfirmed, the previous config comes back by itself (installed and saved).
    s["management"]["http_port"] = json!(8099);
    assert_eq!(c.put("/api/v1/settings", &s).status, 200);
    assert_eq!(
        c.get("/api/v1/settings").json()["management"]["http_port"],
        8099
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.get("/api/v1/trial").json()["rolled_back_at"].is_null() {
        assert!(Instant::now() < deadline, "no rollback");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        c.get("/api/v1/settings").json()["management"]["http_port"],
        8088
    );
    let saved = Config::load(&f.dir.join("config.json")).unwrap();
    assert_eq!(saved.management.http_port, 8088);
    let bad = json!({ "lan": { "interface": "lan0", "subnets": ["192.168.1.0/24"] }, "wan": { "interface": "lan0" }, "management": { "http_port": 80 } });
    assert_eq!(c.put("/api/v1/settings", &bad).status, 422);
}

#[test]
fn password_change_ends_other_sessions() {
    let f = Fixture::new();
    let mut a = f.admin();
    let mut b = f.client();
    assert_eq!(
        b.post("/api/v1/login", &json!({ "password": PASSWORD }))
            .status,
        200
    );
    let r = a.post(
        "/api/v1/password",
        &json!({ "current": "nope-nope-nope", "new": "fresh-heron-71" }),
    );
    assert_eq!(r.fields(), ["current"]);
    let r = a.post(
        "/api/v1/password",
        &json!({ "current": PASSWORD, "new": "short" }),
    );
    assert_eq!(r.fields(), ["new"]);
    let r = a.post(
        "/api/v1/password",
        &json!({ "current": PASSWORD, "new": "fresh-heron-71" }),
    );
    assert_eq!(r.status, 200);
    assert_eq!(a.get("/api/v1/session").status, 200);
    assert_eq!(b.get("/api/v1/session").status, 401);
    let mut c = f.client();
    assert_eq!(
        c.post("/api/v1/login", &json!({ "password": PASSWORD }))
            .status,
        401
    );
    assert_eq!(
        c.post("/api/v1/login", &json!({ "password": "fresh-heron-71" }))
            .status,
        200
    );
    assert_eq!(
        a.get("/api/v1/system").json()["version"],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn assets_are_embedded_compressed_and_locked_down() {
    let f = Fixture::new();
    let mut total = 0;
    for path in ["/", "/app.js", "/app.css"] {
        let r = raw(
            f.addr,
            format!(
                "GET {path} HTTP/1.1\r\nHost: 192.168.1.1\r\nAccept-Encoding: gzip, br\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("Content-Security-Policy").unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
        assert_eq!(r.header("Referrer-Policy"), Some("no-referrer"));
        assert_eq!(r.header("Content-Encoding"), Some("gzip"), "{path}");
        total += r.body.len();
        let etag = r.header("ETag").unwrap().to_string();
        let again = raw(
            f.addr,
            format!("GET {path} HTTP/1.1\r\nHost: 192.168.1.1\r\nIf-None-Match: {etag}\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(again.status, 304);
        let plain = raw(
            f.addr,
            format!("GET {path} HTTP/1.1\r\nHost: 192.168.1.1\r\n\r\n").as_bytes(),
        );
        assert!(plain.header("Content-Encoding").is_none());
        assert!(plain.body.len() > r.body.len());
    }
    assert!(total <= 60 * 1024, "first load is {total} bytes compressed");
    eprintln!("UI first load: {total} bytes compressed");
    // No inline script anywhere in the page.
    let index = raw(f.addr, b"GET / HTTP/1.1\r\nHost: r\r\n\r\n").text();
    assert!(!index.contains("<script>"), "inline script in index.html");
    let attrs = index
        .split(|c: char| c.is_whitespace())
        .filter(|w| w.starts_with("on") && w.contains('='));
    assert_eq!(attrs.count(), 0, "inline event handlers in index.html");
    assert_eq!(
        raw(f.addr, b"GET /nope HTTP/1.1\r\nHost: r\r\n\r\n").status,
        404
    );
}

#[test]
fn gate_refuses_oversized_slow_and_chunked_requests() {
    let limits = Limits {
        max_pending: 8,
        head_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let f = Fixture::with(60, limits);
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: r\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(9000)
    );
    assert_eq!(raw(f.addr, huge.as_bytes()).status, 431);
    assert_eq!(
        raw(
            f.addr,
            b"POST /api/v1/login HTTP/1.1\r\nHost: r\r\nContent-Length: 999999999\r\n\r\n"
        )
        .status,
        413
    );
    assert_eq!(
        raw(
            f.addr,
            b"POST /api/v1/login HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .status,
        411
    );
    // A client that never finishes its request gets a 408 after the head timeout.
    let mut slow = TcpStream::connect(f.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let mut out = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow.read_to_end(&mut out);
    assert_eq!(parse(&out).status, 408);
    // Beyond the connection cap the oldest waiting connection is told 503 and closed.
    let mut idle: Vec<TcpStream> = (0..9)
        .map(|_| TcpStream::connect(f.addr).unwrap())
        .collect();
    let mut first = idle.remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut out = Vec::new();
    let _ = first.read_to_end(&mut out);
    assert_eq!(parse(&out).status, 503);
    assert!(String::from_utf8_lossy(&out).contains("too many connections"));
    // A client cannot forge its address for throttling or the audit log.
    let r = raw(
        f.addr,
        b"GET /api/v1/setup HTTP/1.1\r\nHost: r\r\nX-Portcullis-Peer: 10.9.9.9\r\n\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn two_hundred_idle_sockets_do_not_stop_the_ui() {
    let f = Fixture::new();
    // 100 silent sockets and 100 trickling one byte of a request line now and then.
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(f.addr).unwrap())
        .collect();
    for s in idle.iter_mut().skip(100) {
        s.write_all(b"GE").unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..3 {
        for s in idle.iter_mut().skip(100) {
            let _ = s.write_all(b"T");
        }
        let t0 = Instant::now();
        let r = raw(
            f.addr,
            b"GET /api/v1/setup HTTP/1.1\r\nHost: 192.168.1.1\r\n\r\n",
        );
        let took = t0.elapsed();
        assert_eq!(r.status, 200);
        assert!(
            took < Duration::from_secs(1),
            "round {round}: answered in {took:?}"
        );
        eprintln!("with 200 idle/trickling sockets: answered in {took:?}");
        let t0 = Instant::now();
        assert_eq!(
            raw(f.addr, b"GET / HTTP/1.1\r\nHost: 192.168.1.1\r\n\r\n").status,
            200
        );
        assert!(t0.elapsed() < Duration::from_secs(1));
    }
    drop(idle);
    let _ = Timestamp::now();
}

#[test]
fn slow_uploads_cannot_hold_more_than_the_memory_cap() {
    let limits = Limits {
        max_buffered: 64 * 1024,
        ..Limits::default()
    };
    let f = Fixture::with(60, limits);
    let head = |n: usize| {
        format!("POST /api/v1/login HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\nContent-Length: {n}\r\n\r\n")
    };
    let mut small = TcpStream::connect(f.addr).unwrap();
    small.write_all(head(100_000).as_bytes()).unwrap();
    small.write_all(&[b' '; 20_000]).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut big = TcpStream::connect(f.addr).unwrap();
    big.write_all(head(200_000).as_bytes()).unwrap();
    let _ = big.write_all(&[b' '; 50_000]);
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = big.read_to_end(&mut out);
    assert_eq!(parse(&out).status, 503, "the biggest upload is refused");
    // The smaller one is still waiting for the rest of its body, and the UI answers.
    small
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert!(small.read(&mut buf).is_err(), "small upload was dropped");
    assert_eq!(
        raw(f.addr, b"GET /api/v1/setup HTTP/1.1\r\nHost: r\r\n\r\n").status,
        200
    );
}

#[test]
fn the_server_moves_to_new_addresses() {
    let f = Fixture::new();
    let old = f.addr;
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let new = free.local_addr().unwrap();
    drop(free);
    f.web.as_ref().unwrap().rebind(vec![new]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while f.web.as_ref().unwrap().addrs() != vec![new] {
        assert!(Instant::now() < deadline, "did not move");
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = raw(
        new,
        b"GET /api/v1/setup HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(
        TcpStream::connect(old).is_err(),
        "old address still listening"
    );
    // An address that cannot be bound leaves the server where it is.
    f.web
        .as_ref()
        .unwrap()
        .rebind(vec!["192.0.2.1:80".parse().unwrap()]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(f.web.as_ref().unwrap().addrs(), vec![new]);
    assert_eq!(raw(new, b"GET / HTTP/1.1\r\nHost: r\r\n\r\n").status, 200);
}

/// A TCP connection from a chosen loopback source address (127.0.0.0/8 is all local).
fn connect_from(src: std::net::Ipv4Addr, dst: SocketAddr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .expect("socket");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(std::net::SocketAddrV4::new(src, 0)),
    )
    .expect("bind source address");
    let SocketAddr::V4(dst) = dst else {
        panic!("IPv4 fixture address expected")
    };
    connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(dst)).expect("connect");
    TcpStream::from(fd)
}

#[test]
fn one_host_flooding_the_ui_evicts_its_own_sockets_not_others() {
    let limits = Limits {
        max_pending: 16,
        ..Limits::default()
    };
    let f = Fixture::with(60, limits);
    let flooder = std::net::Ipv4Addr::new(127, 0, 0, 1);
    let other = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut first: Vec<TcpStream> = (0..16).map(|_| connect_from(flooder, f.addr)).collect();
    std::thread::sleep(Duration::from_millis(200));
    // Another LAN client starts a request and is slow to finish it.
    let mut slow = connect_from(other, f.addr);
    slow.write_all(b"GET /api/v1/setup HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // The flooder keeps opening sockets: each one pushes out one of its own, oldest first.
    let mut more: Vec<TcpStream> = (0..32).map(|_| connect_from(flooder, f.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    slow.write_all(b"Host: 192.168.1.1\r\n\r\n").unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    assert_eq!(
        parse(&out).status,
        200,
        "the other client's request survived the flood"
    );
    // The flooder's oldest sockets were the ones closed, with a 503.
    first[0]
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut evicted = Vec::new();
    let _ = first[0].read_to_end(&mut evicted);
    assert_eq!(parse(&evicted).status, 503);
    first.clear();
    more.clear();
}

/// Sends raw bytes from a chosen loopback source address, reads until the server closes.
fn raw_from(src: std::net::Ipv4Addr, addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut s = connect_from(src, addr);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse(&out)
}

/// Forward names the kernel holds in the fixture's namespace (read back over netlink).
fn kernel_forwards(f: &Fixture) -> std::collections::BTreeSet<String> {
    let path = format!("/run/netns/{}", f.ns);
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = std::fs::File::open(&path).unwrap();
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let mut nft = portcullis::nft::Nft::open().expect("netlink");
            let view =
                portcullis::readback::kernel_view(&mut nft, portcullis::plan::TABLE).unwrap();
            view.installed
                .keys()
                .filter_map(|k| k.strip_prefix("fwd_").map(str::to_string))
                .collect()
        })
        .join()
        .unwrap()
    })
}

fn forward(name: &str, port: u16) -> Value {
    json!({ "name": name, "protocol": "tcp", "external_port": port, "internal_host": "192.168.1.10", "allow_from": ["198.51.100.0/24"] })
}

#[test]
fn twenty_concurrent_adds_all_land_and_deletes_really_close() {
    let f = Fixture::new();
    let admin = f.admin();
    let (cookie, csrf) = (admin.cookie.clone(), admin.csrf.clone());
    let barrier = std::sync::Barrier::new(5);
    let answers: Vec<(String, u16, String)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..5)
            .map(|t| {
                let (cookie, csrf, barrier) = (cookie.clone(), csrf.clone(), &barrier);
                s.spawn(move || {
                    let mut c = Client {
                        addr: f.addr,
                        cookie,
                        csrf,
                    };
                    barrier.wait();
                    (0..4)
                        .map(|i| {
                            let n = t * 4 + i;
                            let name = format!("f{n}");
                            let r = c.post("/api/v1/forwards", &forward(&name, 9000 + n));
                            (name, r.status, r.text())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    for (name, status, text) in &answers {
        assert_eq!(*status, 200, "{name}: {text}");
    }
    let mut c = admin;
    let list = c.get("/api/v1/forwards").json();
    let mut names: Vec<String> = list["forwards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..20).map(|n| format!("f{n}")).collect();
    want.sort();
    assert_eq!(names, want);
    // Each list item carries its ETag, the same one a GET of the item answers.
    for item in list["forwards"].as_array().unwrap() {
        let name = item["name"].as_str().unwrap();
        assert_eq!(
            item["etag"].as_str(),
            Some(c.etag(&format!("/api/v1/forwards/{name}")).as_str())
        );
    }
    let active = list["status"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "active")
        .count();
    assert_eq!(active, 20, "{list}");
    assert_eq!(kernel_forwards(&f), want.iter().cloned().collect());
    // A DELETE that answered 200 closed the forward in the kernel.
    for n in ["f3", "f17"] {
        assert_eq!(c.delete(&format!("/api/v1/forwards/{n}")).status, 200);
        assert!(!kernel_forwards(&f).contains(n), "{n} still in the kernel");
    }
    assert_eq!(kernel_forwards(&f).len(), 18);
}

#[test]
fn a_stale_or_missing_if_match_never_overwrites() {
    let f = Fixture::new();
    let mut a = f.admin();
    let mut b = f.client();
    assert_eq!(
        b.post("/api/v1/login", &json!({ "password": PASSWORD }))
            .status,
        200
    );
    assert_eq!(
        a.post("/api/v1/forwards", &forward("web", 8080)).status,
        200
    );
    // Both read it.
    let seen_a = a.etag("/api/v1/forwards/web");
    let seen_b = b.etag("/api/v1/forwards/web");
    assert_eq!(seen_a, seen_b);
    // Without If-Match: 428, nothing changed.
    let mut mine = forward("web", 8081);
    let r = b.put_if("/api/v1/forwards/web", &mine, None);
    assert_eq!(r.status, 428, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("If-Match"));
    assert_eq!(b.delete_if("/api/v1/forwards/web", None).status, 428);
    assert_eq!(b.put_if("/api/v1/settings", &json!({}), None).status, 428);
    // A changes it first.
    let theirs = forward("web", 8082);
    let r = a.put_if("/api/v1/forwards/web", &theirs, Some(&seen_a));
    assert_eq!(r.status, 200, "{}", r.text());
    let new_tag = r.header("ETag").unwrap().to_string();
    assert_ne!(new_tag, seen_a);
    // B's edit, based on what B read, is refused with A's version and its ETag.
    mine["comment"] = json!("mine");
    let r = b.put_if("/api/v1/forwards/web", &mine, Some(&seen_b));
    assert_eq!(r.status, 409, "{}", r.text());
    let body = r.json();
    assert_eq!(body["current"]["external_port"], 8082);
    assert_eq!(body["etag"], new_tag.as_str());
    assert_eq!(r.header("ETag"), Some(new_tag.as_str()));
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("changed elsewhere"));
    // So is B's stale delete.
    assert_eq!(
        b.delete_if("/api/v1/forwards/web", Some(&seen_b)).status,
        409
    );
    let now = b.get("/api/v1/forwards/web");
    assert_eq!(now.json()["external_port"], 8082);
    // With the fresh ETag B's edit goes through.
    assert_eq!(
        b.put_if("/api/v1/forwards/web", &mine, Some(&new_tag))
            .status,
        200
    );
    // Settings are guarded the same way.
    let s = a.get("/api/v1/settings");
    let tag = s.header("ETag").unwrap().to_string();
    let mut settings = s.json();
    settings["management"]["http_port"] = json!(8088);
    assert_eq!(
        a.put_if("/api/v1/settings", &settings, Some("\"0000000000000000\""))
            .status,
        409
    );
    assert_eq!(
        a.put_if("/api/v1/settings", &settings, Some(&tag)).status,
        200
    );
    let audit = a.get("/api/v1/log").json();
    assert!(audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["action"] == "forward.edit" && e["detail"] == "changed since read"));
}

#[test]
fn exposure_pairs_by_name_and_counts_covering_allow_lists_as_anyone() {
    let f = Fixture::new();
    let mut c = f.admin();
    let soon = Timestamp(Timestamp::now().0 + 3);
    let items = [
        json!({ "name": "brief", "protocol": "tcp", "external_port": 7001, "internal_host": "192.168.1.11", "allow_from": ["198.51.100.7"], "expires_at": soon.to_string() }),
        json!({ "name": "all", "protocol": "tcp", "external_port": 7002, "internal_host": "192.168.1.12", "allow_from": ["0.0.0.0/0"] }),
        json!({ "name": "halves", "protocol": "tcp", "external_port": 7003, "internal_host": "192.168.1.13", "allow_from": ["128.0.0.0/1", "0.0.0.0/1"] }),
        json!({ "name": "half", "protocol": "tcp", "external_port": 7004, "internal_host": "192.168.1.14", "allow_from": ["0.0.0.0/1"] }),
        json!({ "name": "ssh", "protocol": "tcp", "external_port": 2222, "internal_host": "192.168.1.15", "internal_port": 22, "allow_from": ["0.0.0.0/1", "128.0.0.0/1"] }),
    ];
    for it in &items {
        let r = c.post("/api/v1/forwards", it);
        assert_eq!(r.status, 200, "{it}: {}", r.text());
    }
    let e = c.get("/api/v1/exposure").json();
    assert_eq!(
        e["summary"], "5 ports open to the internet, 3 to anyone",
        "{e}"
    );
    assert_eq!(e["health"]["state"], "ok");
    let row = |e: &Value, name: &str| -> Value {
        e["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    for (name, anyone) in [
        ("brief", false),
        ("all", true),
        ("halves", true),
        ("half", false),
        ("ssh", true),
    ] {
        assert_eq!(row(&e, name)["anyone"], anyone, "{name}: {e}");
    }
    assert!(row(&e, "ssh")["risk"].as_str().unwrap().contains("SSH"));
    // Across the first forward's expiry every row keeps its own port and destination.
    let port_of = |name: &str| {
        items
            .iter()
            .find(|i| i["name"] == name)
            .map(|i| i["external_port"].to_string())
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let e = c.get("/api/v1/exposure").json();
        for r in e["rows"].as_array().unwrap() {
            let name = r["name"].as_str().unwrap();
            assert_eq!(
                r["external_port"].to_string(),
                format!("\"{}\"", port_of(name).trim_matches('"')),
                "{e}"
            );
            let host = items.iter().find(|i| i["name"] == name).unwrap()["internal_host"]
                .as_str()
                .unwrap();
            assert!(r["destination"].as_str().unwrap().starts_with(host), "{e}");
        }
        if row(&e, "brief").is_null() {
            assert_eq!(e["rows"].as_array().unwrap().len(), 4);
            break;
        }
        assert!(Instant::now() < deadline, "brief never expired: {e}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn safe_mode_is_shown_in_system_and_exposure() {
    let f = Fixture::build(Setup {
        broken: Some("the saved config is unusable: test".into()),
        ..Setup::default()
    });
    let mut c = f.admin();
    let sys = c.get("/api/v1/system").json();
    assert_eq!(sys["health"]["state"], "safe_mode", "{sys}");
    assert!(sys["health"]["reason"]
        .as_str()
        .unwrap()
        .contains("unusable: test"));
    let e = c.get("/api/v1/exposure").json();
    assert_eq!(e["health"]["state"], "safe_mode", "{e}");
}

#[test]
fn a_damaged_password_file_refuses_setup_and_login_until_console_recovery() {
    let f = Fixture::build(Setup {
        files: vec![
            ("web.json", b"{\"password\": \"scrypt$14$8$1$00".to_vec()),
            ("audit.json", b"[{\"time\": \"not".to_vec()),
        ],
        ..Setup::default()
    });
    let mut c = f.client();
    let s = c.get("/api/v1/setup").json();
    assert_eq!(
        s["needed"], false,
        "a damaged file must not reopen setup: {s}"
    );
    let broken = s["broken"].as_str().unwrap();
    assert!(
        broken.contains("web.json") && broken.contains("portcullis set-password"),
        "{broken}"
    );
    let r = c.post("/api/v1/setup", &json!({ "password": PASSWORD }));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("portcullis set-password"));
    let r = c.post("/api/v1/login", &json!({ "password": PASSWORD }));
    assert_eq!(r.status, 503);
    assert_eq!(c.get("/api/v1/exposure").status, 401);
    // The damaged file is still there, untouched.
    assert_eq!(
        std::fs::read(f.dir.join("web.json")).unwrap(),
        b"{\"password\": \"scrypt$14$8$1$00"
    );
    // The console recovery command writes a new file; the running server takes it.
    web::set_password(&f.dir, "console-reset-77").unwrap();
    let s = c.get("/api/v1/setup").json();
    assert_eq!(
        (s["needed"].clone(), s["broken"].clone()),
        (json!(false), Value::Null)
    );
    let r = c.post("/api/v1/login", &json!({ "password": "console-reset-77" }));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.get("/api/v1/exposure").status, 200);
    // A second console recovery ends the sessions of the password it replaces.
    web::set_password(&f.dir, "console-reset-78").unwrap();
    assert_eq!(
        c.get("/api/v1/exposure").status,
        401,
        "an old session survived set-password"
    );
    let r = c.post("/api/v1/login", &json!({ "password": "console-reset-78" }));
    assert_eq!(r.status, 200, "{}", r.text());
    // The damaged audit log was kept aside, and the new log says so.
    let aside: Vec<String> = std::fs::read_dir(&f.dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("audit.json.bad-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(f.dir.join(&aside[0])).unwrap(),
        b"[{\"time\": \"not"
    );
    let log = c.get("/api/v1/log").json();
    let damaged = log["audit"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "audit.damaged")
        .cloned()
        .unwrap_or_else(|| panic!("{log}"));
    assert!(damaged["detail"].as_str().unwrap().contains(&aside[0]));
}

#[test]
fn failed_logins_cannot_push_changes_out_of_the_audit_log() {
    let f = Fixture::new();
    let mut admin = f.admin();
    assert_eq!(
        admin.post("/api/v1/forwards", &forward("web", 8080)).status,
        200
    );
    let guesser = std::net::Ipv4Addr::new(127, 0, 0, 9);
    let body = r#"{"password":"guess-guess-1"}"#;
    let req = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    for _ in 0..310 {
        let r = raw_from(guesser, f.addr, req.as_bytes());
        assert!([401, 429].contains(&r.status), "{}", r.text());
    }
    let log = admin.get("/api/v1/log").json();
    let audit = log["audit"].as_array().unwrap();
    for a in ["setup", "forward.add"] {
        assert!(
            audit.iter().any(|e| e["action"] == a),
            "{a} pushed out: {log}"
        );
    }
    let guesses: Vec<&Value> = audit.iter().filter(|e| e["from"] == "127.0.0.9").collect();
    assert_eq!(guesses.len(), 1, "{log}");
    let detail = guesses[0]["detail"].as_str().unwrap();
    assert!(detail.starts_with("310 failed logins "), "{detail}");
}

#[test]
fn fifty_simultaneous_requests_from_one_host_are_all_answered() {
    let f = Fixture::new();
    let admin = f.admin();
    let paths = [
        "/",
        "/app.js",
        "/app.css",
        "/api/v1/exposure",
        "/api/v1/session",
    ];
    let barrier = std::sync::Barrier::new(50);
    let statuses: Vec<(String, u16)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..50)
            .map(|i| {
                let mut c = Client {
                    addr: f.addr,
                    cookie: admin.cookie.clone(),
                    csrf: admin.csrf.clone(),
                };
                let barrier = &barrier;
                let path = paths[i % paths.len()];
                s.spawn(move || {
                    barrier.wait();
                    (path.to_string(), c.get(path).status)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let failed: Vec<_> = statuses.iter().filter(|(_, st)| *st != 200).collect();
    assert!(failed.is_empty(), "{failed:?}");
}

#[test]
fn logins_hash_on_their_own_thread_and_do_not_stall_the_ui() {
    // A real scrypt cost, so a hash takes long enough to be in flight while we look.
    let f = Fixture::build(Setup {
        kdf: Cost {
            log_n: 14,
            r: 8,
            p: 1,
        },
        ..Setup::default()
    });
    let mut admin = f.admin();
    let body = r#"{"password":"not-the-password-1"}"#;
    let req = format!(
        "POST /api/v1/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (tx, rx) = std::sync::mpsc::channel::<Resp>();
    let barrier = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for i in 0..4u8 {
            let (tx, barrier, req) = (tx.clone(), &barrier, &req);
            s.spawn(move || {
                barrier.wait();
                let r = raw_from(
                    std::net::Ipv4Addr::new(127, 0, 0, 20 + i),
                    f.addr,
                    req.as_bytes(),
                );
                let _ = tx.send(r);
            });
        }
        // The first answer is a refusal from the full hashing queue (one login hashing,
        // one waiting), not a login that had to wait for its hash.
        let first = rx.recv().unwrap();
        assert_eq!(first.status, 503, "{}", first.text());
        assert_eq!(first.header("Retry-After"), Some("1"));
        // While the hashes run, the UI answers everyone else.
        for path in ["/api/v1/session", "/", "/api/v1/exposure", "/api/v1/system"] {
            assert_eq!(admin.get(path).status, 200, "{path}");
        }
        // ...before any hash finished: what has arrived so far are refusals only.
        let early: Vec<u16> = rx.try_iter().map(|r| r.status).collect();
        assert!(early.iter().all(|s| *s == 503), "{early:?}");
        let mut rest: Vec<u16> = early;
        while rest.len() < 3 {
            rest.push(rx.recv().unwrap().status);
        }
        rest.sort_unstable();
        assert!(rest.iter().filter(|s| **s == 401).count() >= 1, "{rest:?}");
        assert!(rest.iter().all(|s| [401, 503].contains(s)), "{rest:?}");
    });
}

#[test]
fn the_handler_socket_is_removed_on_stop_and_stale_ones_at_start() {
    let dir = std::env::temp_dir().join(format!("pcxweb-sock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stale = dir.join(".portcullis-web-999999.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let f = Fixture::new();
    let socks = |d: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".sock"))
            .collect()
    };
    // A second server in the same run directory: the stale socket goes, its own appears.
    let w = web::start(
        f.handle.clone(),
        WebOptions {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            run_dir: dir.clone(),
            limits: Limits::default(),
            app: AppOptions::default(),
        },
    )
    .unwrap();
    assert_eq!(
        socks(&dir),
        [format!(".portcullis-web-{}.sock", std::process::id())]
    );
    assert_eq!(
        raw(w.addrs()[0], b"GET / HTTP/1.1\r\nHost: r\r\n\r\n").status,
        200
    );
    w.stop();
    assert!(socks(&dir).is_empty(), "{:?}", socks(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A LAN host's mapping request, as the protocol servers hand it to the owner.
fn map_req(port: u16) -> portcullis::portmap::MapRequest {
    use portcullis::portmap::{MapRequest, Proto, Via};
    let host = std::net::Ipv4Addr::new(192, 168, 1, 10);
    MapRequest {
        via: Via::Upnp,
        client: host,
        mac: None,
        internal_client: host,
        proto: Proto::Tcp,
        external_port: port,
        exact: true,
        internal_port: port,
        lifetime_secs: 600,
        description: "game <b>".into(),
        remote_host: None,
        nonce: None,
    }
}

#[test]
fn upnp_section_mappings_revoke_and_approval_queue() {
    use portcullis::daemon::DaemonMapper;
    use portcullis::portmap::{Mapper, Refusal};
    let f = Fixture::new();
    let mut a = f.admin();
    let r = a.get("/api/v1/upnp");
    assert_eq!(r.status, 200, "{}", r.text());
    let tag = r.header("ETag").unwrap().to_string();
    let mut section = r.json()["upnp"].clone();
    assert_eq!(section["mode"], "off");
    // Guarded like the settings: no If-Match 428, a stale one 409, a bad field 422.
    section["mode"] = json!("ask");
    section["allow"] = json!([{ "hosts": ["192.168.1.10"], "external_ports": "50000-50100" }]);
    assert_eq!(a.put_if("/api/v1/upnp", &section, None).status, 428);
    let stale = a.put_if("/api/v1/upnp", &section, Some("\"0000000000000000\""));
    assert_eq!(stale.status, 409, "{}", stale.text());
    let mut bad = section.clone();
    bad["allow"][0]["hosts"] = json!(["nope"]);
    let r = a.put_if("/api/v1/upnp", &bad, Some(&tag));
    assert_eq!(r.status, 422);
    assert_eq!(r.fields(), ["upnp.allow[0].hosts[0]"]);
    let r = a.put_if("/api/v1/upnp", &section, Some(&tag));
    assert_eq!(r.status, 200, "{}", r.text());
    // A rule allows 50000; 60000 waits for the owner.
    let m = DaemonMapper::new(f.handle.clone());
    m.map(map_req(50000)).expect("allowed by the rule");
    assert_eq!(m.map(map_req(60000)), Err(Refusal::Pending));
    let v = a.get("/api/v1/upnp").json();
    assert_eq!(v["mappings"][0]["external_port"], 50000);
    assert!(v["mappings"][0]["secs_left"].as_u64().unwrap() > 590);
    assert_eq!(v["pending"][0]["external_port"], 60000);
    assert_eq!(v["external"]["not_public"], false);
    let id = v["pending"][0]["id"].as_u64().unwrap();
    let e = a.get("/api/v1/exposure").json();
    assert_eq!(e["mapped_ports"], 1, "{e}");
    let row = e["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "mapping")
        .expect("mapping row");
    assert_eq!(row["provenance"], "UPnP");
    assert_eq!(row["name"], "game <b>");
    // "Always" adds a rule; the retry is granted.
    let r = a.post(
        &format!("/api/v1/upnp/pending/{id}"),
        &json!({ "decision": "always" }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["rule"]["hosts"][0], "192.168.1.10", "{}", r.text());
    assert_eq!(
        a.post(
            &format!("/api/v1/upnp/pending/{id}"),
            &json!({ "decision": "deny" })
        )
        .status,
        404
    );
    assert_eq!(
        a.get("/api/v1/upnp").json()["upnp"]["allow"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    m.map(map_req(60000)).expect("allowed by the new rule");
    // Revoke one, then the rest of the host.
    assert_eq!(a.delete("/api/v1/upnp/mappings/tcp/50001").status, 404);
    let r = a.delete("/api/v1/upnp/mappings/tcp/50000");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = a.post("/api/v1/upnp/revoke", &json!({ "host": "192.168.1.10" }));
    assert_eq!(r.json()["revoked"], 1, "{}", r.text());
    assert_eq!(
        a.post("/api/v1/upnp/revoke", &json!({ "all": true }))
            .json()["revoked"],
        0
    );
    assert!(a.get("/api/v1/upnp").json()["mappings"]
        .as_array()
        .unwrap()
        .is_empty());
    let audit = a.get("/api/v1/log").json();
    let actions: Vec<&str> = audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"] != "")
        .filter_map(|e| e["action"].as_str())
        .collect();
    for want in ["upnp.settings", "upnp.revoke", "upnp.approve_always"] {
        assert!(actions.contains(&want), "{want} not in {actions:?}");
    }
}
