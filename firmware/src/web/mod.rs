//! The web UI at the router's LAN address: static pages embedded from `webui/` and the
//! JSON API they use (`/api/v1`, see `docs/api.md`).
//!
//! ```text
//!  LAN client ──TCP──► gate (poll thread: timeouts, size caps, connection cap)
//!                        │ complete requests only
//!                        ▼
//!                      workers ──Unix socket──► tiny_http ──► handler threads
//!                                                              │ api::App
//!                                                              ▼
//!                                                   daemon::Handle (commands) ──► owner thread
//! ```
//!
//! Handlers never touch kernel state: every change is one `daemon::Edit`, every view is
//! built from one `daemon::Snapshot`.

pub mod api;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod gate;
pub mod hasher;
pub mod http;
pub mod request;
pub mod secrets;
pub mod sessions;
pub mod throttle;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::Timestamp;
use crate::daemon::Handle;

pub use api::{App, AppOptions};
pub use gate::Limits;
use http::{Request, Response};

/// The Content-Security-Policy of every response: nothing inline, nothing from elsewhere.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
base-uri 'none'";

/// Handler threads behind tiny_http: at most two wait for the hashing thread (one job
/// running, one queued), so two are always free for everyone else.
const HANDLERS: usize = 4;

/// The private socket between the gate and tiny_http is `run_dir/SOCKET_PREFIX<pid>.sock`.
const SOCKET_PREFIX: &str = ".portcullis-web-";

/// How often hit counters are read for "last hit" and the hit log.
const HIT_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the web server could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("listening on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up the web handlers")]
    Backend(#[source] backend::BackendError),
    #[error("starting web server threads")]
    Threads(#[source] std::io::Error),
}

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct WebOptions {
    /// Addresses to listen on: the LAN interface's addresses, never the WAN.
    pub listen: Vec<SocketAddr>,
    /// Directory for the private handler socket (and, through `app`, the UI's state).
    pub run_dir: PathBuf,
    pub limits: Limits,
    pub app: AppOptions,
}

/// The running web server.
pub struct Web {
    listen: Arc<gate::Listen>,
    app: Arc<App>,
    stop: Arc<AtomicBool>,
    server: Arc<tiny_http::Server>,
    gate: Option<gate::Gate>,
    handlers: Vec<JoinHandle<()>>,
    socket: PathBuf,
}

impl std::fmt::Debug for Web {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").field("addrs", &self.addrs()).finish()
    }
}

impl Web {
    /// The addresses bound now (port 0 becomes the real port).
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.listen
            .bound
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    /// Moves the server to other addresses (the LAN address or the UI port changed);
    /// takes effect within a fraction of a second. If none can be bound, it stays put.
    pub fn rebind(&self, addrs: Vec<SocketAddr>) {
        if let Ok(mut m) = self.listen.move_to.lock() {
            *m = Some(addrs);
        }
    }

    /// Stops accepting, finishes what is in flight and returns.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(g) = self.gate.take() {
            // Workers end when the gate's queue closes.
            g.join();
        }
        for _ in &self.handlers {
            self.server.unblock();
        }
        for h in self.handlers.drain(..) {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.socket);
        self.app.flush_audit();
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Sets the admin password (console recovery): hashes it and saves `web.json` in
/// `state_dir`. A running daemon reads the file again at the next login attempt.
pub fn set_password(state_dir: &std::path::Path, password: &str) -> Result<(), String> {
    if let Some(why) = auth::password_problem(password) {
        return Err(format!("password: {why}"));
    }
    let hash = auth::hash_password(password, auth::Cost::DEFAULT).map_err(|e| e.to_string())?;
    crate::store::save_atomic_private(&state_dir.join(secrets::FILE), &secrets::encode(&hash))
        .map_err(|e| crate::daemon::chain(&e))
}

/// Binds the listeners and starts serving.
pub fn start(daemon: Handle, opts: WebOptions) -> Result<Web, WebError> {
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for addr in &opts.listen {
        let l = TcpListener::bind(addr).map_err(|source| WebError::Bind {
            addr: *addr,
            source,
        })?;
        addrs.push(l.local_addr().unwrap_or(*addr));
        listeners.push(l);
    }
    let (socket, server) =
        backend::bind(&opts.run_dir, SOCKET_PREFIX).map_err(WebError::Backend)?;
    let server = Arc::new(server);
    let app = Arc::new(App::new(daemon, opts.app.clone()).map_err(WebError::Threads)?);
    let stop = Arc::new(AtomicBool::new(false));
    let mut handlers = Vec::new();
    for i in 0..HANDLERS {
        let server = Arc::clone(&server);
        let app = Arc::clone(&app);
        let stop = Arc::clone(&stop);
        handlers.push(
            std::thread::Builder::new()
                .name(format!("web-handler-{i}"))
                .spawn(move || handler_loop(&server, &app, &stop))
                .map_err(WebError::Threads)?,
        );
    }
    {
        let app = Arc::clone(&app);
        let stop = Arc::clone(&stop);
        handlers.push(
            std::thread::Builder::new()
                .name("web-hits".into())
                .spawn(move || {
                    let step = std::time::Duration::from_millis(250);
                    let mut since = HIT_POLL;
                    while !stop.load(Ordering::Relaxed) {
                        if since >= HIT_POLL {
                            app.observe_hits(Timestamp::now());
                            since = std::time::Duration::ZERO;
                        }
                        std::thread::sleep(step);
                        since += step;
                    }
                })
                .map_err(WebError::Threads)?,
        );
    }
    let listen = Arc::new(gate::Listen {
        move_to: std::sync::Mutex::new(None),
        bound: std::sync::Mutex::new(addrs),
    });
    let gate = gate::spawn(
        listeners,
        socket.clone(),
        opts.limits.clone(),
        Arc::clone(&stop),
        Arc::clone(&listen),
    )
    .map_err(WebError::Threads)?;
    Ok(Web {
        listen,
        app,
        stop,
        server,
        gate: Some(gate),
        handlers,
        socket,
    })
}

/// Runs one request's handler. Handlers are written not to panic; should one anyway
/// (debug builds and tests unwind; release builds abort, see docs/decisions.md), the
/// client gets a 500 and the thread lives on.
pub fn guarded(handle: impl FnOnce() -> Response) -> Response {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(handle)).unwrap_or_else(|_| {
        eprintln!("portcullis: web: a request handler panicked; answered 500");
        Response::error(500, "internal error while answering this request")
    })
}

fn handler_loop(server: &tiny_http::Server, app: &App, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut rq) = server.recv() else {
            continue;
        };
        // The gate already capped the body at its limit.
        let req = backend::request(&mut rq, u64::MAX);
        let resp = guarded(|| route(app, &req, Timestamp::now()));
        backend::respond(rq, resp);
    }
}

/// Answers any request: host check, API or asset, and the security headers.
pub fn route(app: &App, req: &Request, now: Timestamp) -> Response {
    let resp = if !api::host_allowed(req.header("Host").unwrap_or("")) {
        Response::error(
            421,
            "use the router's address (or a .lan name) to reach this page",
        )
    } else if req.path.starts_with("/api/") {
        app.handle(req, now)
    } else if req.method == "GET" || req.method == "HEAD" {
        let gz = req
            .header("Accept-Encoding")
            .is_some_and(|a| a.split(',').any(|e| e.trim().starts_with("gzip")));
        assets::serve(&req.path, gz, req.header("If-None-Match"))
            .unwrap_or_else(|| Response::error(404, "not found"))
    } else {
        Response::error(405, "method not allowed")
    };
    with_security_headers(resp)
}

fn with_security_headers(r: Response) -> Response {
    r.header("Content-Security-Policy", CSP)
        .header("X-Frame-Options", "DENY")
        .header("X-Content-Type-Options", "nosniff")
        .header("Referrer-Policy", "no-referrer")
        .header("Cross-Origin-Opener-Policy", "same-origin")
        .header("Cross-Origin-Resource-Policy", "same-origin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_answers_500_and_the_caller_goes_on() {
        let r = guarded(|| panic!("handler bug"));
        assert_eq!(r.status, 500);
        assert_eq!(guarded(|| Response::empty(204)).status, 204);
    }

    #[test]
    fn stale_handler_sockets_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("pcx-sock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let stale = dir.join(format!("{SOCKET_PREFIX}1.sock"));
        let listener = std::os::unix::net::UnixListener::bind(&stale).unwrap();
        drop(listener);
        // A regular file with the same kind of name is not ours to remove.
        let file = dir.join(format!("{SOCKET_PREFIX}2.sock"));
        std::fs::write(&file, b"x").unwrap();
        let other = dir.join("config.json");
        std::fs::write(&other, b"{}").unwrap();
        backend::remove_stale(&dir, SOCKET_PREFIX);
        assert!(!stale.exists());
        assert!(file.exists() && other.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
