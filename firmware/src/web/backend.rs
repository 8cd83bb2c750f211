//! The private side of a gate ([`super::gate`]): the Unix socket on which `tiny_http`
//! takes the complete requests the gate passes on, and the conversion of those requests
//! and of our answers. The web UI and the UPnP IGD each run one, with their own socket
//! name prefix in the daemon's run directory.

use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use super::gate::PEER_HEADER;
use super::http::{Request, Response};

/// Why the private socket or its server could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("creating the handler socket {path}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the HTTP server on {path}: {message}")]
    Http { path: PathBuf, message: String },
}

/// Removes the sockets of earlier daemons named `prefix…​.sock` from `run_dir`, then
/// binds `run_dir/<prefix><pid>.sock` (mode 0600) and serves it with `tiny_http`. The
/// daemon holds an exclusive lock on its config, so any such socket but our own belongs
/// to a dead one.
///
/// # Errors
/// The socket cannot be bound or made private, or `tiny_http` refuses it.
pub fn bind(run_dir: &Path, prefix: &str) -> Result<(PathBuf, tiny_http::Server), BackendError> {
    remove_stale(run_dir, prefix);
    let path = run_dir.join(format!("{prefix}{}.sock", std::process::id()));
    let socket = |source| BackendError::Socket {
        path: path.clone(),
        source,
    };
    let unix = std::os::unix::net::UnixListener::bind(&path).map_err(socket)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(socket)?;
    }
    let server = tiny_http::Server::from_listener(unix, None).map_err(|e| BackendError::Http {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok((path, server))
}

/// Removes the handler sockets named `prefix….sock` from `run_dir`, and nothing else.
pub fn remove_stale(run_dir: &Path, prefix: &str) {
    use std::os::unix::fs::FileTypeExt as _;
    let Ok(dir) = std::fs::read_dir(run_dir) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = name.starts_with(prefix)
            && name.ends_with(".sock")
            && e.file_type().is_ok_and(|t| t.is_socket());
        if ours {
            if let Err(err) = std::fs::remove_file(e.path()) {
                eprintln!(
                    "portcullis: removing the stale socket {}: {err}",
                    e.path().display()
                );
            }
        }
    }
}

/// A request as the handlers see it: the client's address from the gate's
/// [`PEER_HEADER`] (0.0.0.0 if absent), the path without its query, at most `max_body`
/// bytes of body.
pub fn request(rq: &mut tiny_http::Request, max_body: u64) -> Request {
    let headers: Vec<(String, String)> = rq
        .headers()
        .iter()
        .map(|h| (h.field.as_str().to_string(), h.value.as_str().to_string()))
        .collect();
    let peer = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(PEER_HEADER))
        .and_then(|(_, v)| v.parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let mut body = Vec::new();
    let _ = rq.as_reader().take(max_body).read_to_end(&mut body);
    Request {
        method: rq.method().as_str().to_ascii_uppercase(),
        path: rq.url().split('?').next().unwrap_or("/").to_string(),
        headers,
        body,
        peer,
    }
}

/// Sends `resp` as the answer to `rq`.
pub fn respond(rq: tiny_http::Request, resp: Response) {
    let mut out = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    for (name, value) in resp.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            out.add_header(h);
        }
    }
    let _ = rq.respond(out);
}
