//! The UPnP IGD servers: SSDP on the LAN interface and SOAP/HTTP on LAN addresses.
//!
//! ```text
//!  LAN host ──UDP 1900──► SSDP thread (LAN hosts only, rate-limited) ──► unicast answers
//!  LAN host ──TCP 5000──► web gate (caps, timeouts) ──Unix socket──► tiny_http
//!                                                    ──► handler threads ──► &dyn Mapper
//! ```
//!
//! The HTTP side reuses the web UI's hardened gate ([`crate::web::gate`]): this module
//! only adds a second private socket (`.portcullis-igd-<pid>.sock`) and its own routes
//! (see [`http`]).

mod http;
mod ssdp_io;

use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::describe::Udns;
use super::{ssdp, LanSide, Mapper};
use crate::config::Timestamp;
use crate::web::backend;
use crate::web::gate::{self, Limits};

/// The private socket between the gate and tiny_http is `run_dir/SOCKET_PREFIX<pid>.sock`.
const SOCKET_PREFIX: &str = ".portcullis-igd-";
/// Threads running SOAP handlers.
const HANDLERS: usize = 2;

/// Why the IGD could not start.
#[derive(Debug, thiserror::Error)]
pub enum IgdError {
    #[error("the LAN interface {0} has no IPv4 address")]
    NoAddress(String),
    #[error("SSDP: {what} ({addr})")]
    Ssdp {
        what: &'static str,
        addr: SocketAddrV4,
        #[source]
        source: std::io::Error,
    },
    #[error("listening for UPnP control on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up the UPnP handlers")]
    Backend(#[source] backend::BackendError),
    #[error("starting UPnP threads")]
    Threads(#[source] std::io::Error),
}

/// Choices beyond the LAN side.
#[derive(Debug, Clone)]
pub struct IgdOptions {
    /// Directory for the private handler socket (the daemon's state or run directory).
    pub run_dir: PathBuf,
    /// TCP port of the web UI, for the description's presentationURL.
    pub web_port: u16,
}

impl Default for IgdOptions {
    fn default() -> Self {
        IgdOptions {
            run_dir: std::env::temp_dir(),
            web_port: 80,
        }
    }
}

/// Where the sockets go; [`Ports::standard`] outside tests.
#[derive(Debug, Clone)]
pub(crate) struct Ports {
    /// The SSDP listening address (239.255.255.250:1900).
    pub ssdp_bind: SocketAddrV4,
    /// Where announcements go (239.255.255.250:1900).
    pub notify_to: SocketAddrV4,
    /// Join the SSDP group on each LAN address.
    pub join_group: bool,
    /// SO_BINDTODEVICE the SSDP sockets to the LAN interface (needs CAP_NET_RAW).
    pub bind_device: bool,
    /// HTTP port (`lan.http_port`; 0 = any, for tests).
    pub http: u16,
}

impl Ports {
    pub(crate) fn standard(lan: &LanSide) -> Ports {
        let group = SocketAddrV4::new(ssdp::GROUP, ssdp::PORT);
        Ports {
            ssdp_bind: group,
            notify_to: group,
            join_group: true,
            bind_device: true,
            http: lan.http_port,
        }
    }
}

/// The running IGD. Dropping it stops it like [`IgdService::stop`].
pub struct IgdService {
    stop: Arc<AtomicBool>,
    site: Arc<http::Site>,
    senders: Arc<Vec<ssdp_io::Sender>>,
    notify_to: SocketAddrV4,
    ssdp_addr: Option<SocketAddr>,
    http_port: u16,
    boot_id: u32,
    server: Arc<tiny_http::Server>,
    gate: Option<gate::Gate>,
    threads: Vec<JoinHandle<()>>,
    socket: PathBuf,
}

impl std::fmt::Debug for IgdService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IgdService")
            .field("lan", &self.site.lan)
            .field("ssdp", &self.ssdp_addr)
            .field("http_port", &self.http_port)
            .finish()
    }
}

/// Starts the IGD on `lan` with default [`IgdOptions`] (handler socket in the temp
/// directory, web UI on port 80).
pub fn start(lan: &LanSide, mapper: Arc<dyn Mapper>) -> Result<IgdService, IgdError> {
    start_with(lan, mapper, &IgdOptions::default())
}

/// Starts the IGD: SSDP on 239.255.255.250:1900 joined on the LAN interface only, HTTP
/// on each LAN address at `lan.http_port`; announces the device (ssdp:alive, three times,
/// then every 15 minutes). Errors: no LAN address, or a socket, the handler socket or a
/// thread could not be set up (needs CAP_NET_RAW for SO_BINDTODEVICE).
pub fn start_with(
    lan: &LanSide,
    mapper: Arc<dyn Mapper>,
    opts: &IgdOptions,
) -> Result<IgdService, IgdError> {
    start_on(lan, mapper, opts, &Ports::standard(lan))
}

/// The MAC of `interface` from sysfs as bytes; the name's bytes when unreadable (still
/// stable across restarts).
fn interface_id(interface: &str) -> Vec<u8> {
    let path = Path::new("/sys/class/net").join(interface).join("address");
    let mac: Option<Vec<u8>> = std::fs::read_to_string(path).ok().and_then(|s| {
        s.trim()
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).ok())
            .collect()
    });
    mac.filter(|m| m.len() == 6 && m.iter().any(|&b| b != 0))
        .unwrap_or_else(|| interface.as_bytes().to_vec())
}

pub(crate) fn start_on(
    lan: &LanSide,
    mapper: Arc<dyn Mapper>,
    opts: &IgdOptions,
    ports: &Ports,
) -> Result<IgdService, IgdError> {
    if lan.addrs.is_empty() {
        return Err(IgdError::NoAddress(lan.interface.clone()));
    }
    let mut listeners = Vec::new();
    let mut http_port = ports.http;
    for &a in &lan.addrs {
        let addr = SocketAddr::from((a, http_port));
        let l = TcpListener::bind(addr).map_err(|source| IgdError::Bind { addr, source })?;
        // With port 0, the first listener picks the port the others take too.
        http_port = l.local_addr().map(|a| a.port()).unwrap_or(http_port);
        listeners.push(l);
    }
    let site = Arc::new(http::Site {
        lan: lan.clone(),
        udns: Udns::from_mac(&interface_id(&lan.interface)),
        web_port: opts.web_port,
        server: format!("Linux UPnP/1.1 Portcullis/{}", env!("CARGO_PKG_VERSION")),
    });
    let (listen, senders) = ssdp_io::open(&site, ports)?;
    let senders = Arc::new(senders);

    let (socket, server) =
        backend::bind(&opts.run_dir, SOCKET_PREFIX).map_err(IgdError::Backend)?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    // BOOTID.UPNP.ORG must grow with each start (UDA 1.1 §1.2.2): the start time does.
    let boot_id = u32::try_from(Timestamp::now().0 & 0x7fff_ffff).unwrap_or(1);
    let mut svc = IgdService {
        stop: Arc::clone(&stop),
        site: Arc::clone(&site),
        senders: Arc::clone(&senders),
        notify_to: ports.notify_to,
        ssdp_addr: listen.local_addr().ok(),
        http_port,
        boot_id,
        server: Arc::clone(&server),
        gate: None,
        threads: Vec::new(),
        socket: socket.clone(),
    };
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name)
            .spawn(f)
            .map_err(IgdError::Threads)
    };
    for i in 0..HANDLERS {
        let (server, site, mapper, stop) = (
            Arc::clone(&server),
            Arc::clone(&site),
            Arc::clone(&mapper),
            Arc::clone(&stop),
        );
        let h = spawn(
            format!("upnp-handler-{i}"),
            Box::new(move || handler_loop(&server, &site, mapper.as_ref(), &stop)),
        )?;
        svc.threads.push(h);
    }
    {
        let (site, senders, stop, ports) = (
            Arc::clone(&site),
            Arc::clone(&senders),
            Arc::clone(&stop),
            ports.clone(),
        );
        let h = spawn(
            "upnp-ssdp".into(),
            Box::new(move || {
                ssdp_io::run(&site, &listen, &senders, &ports, http_port, boot_id, &stop);
            }),
        )?;
        svc.threads.push(h);
    }
    let limits = Limits {
        max_pending: 32,
        max_head: 4 * 1024,
        max_body: super::xml::MAX_BODY,
        head_timeout: Duration::from_secs(5),
        io_timeout: Duration::from_secs(10),
        workers: 2,
        max_buffered: 256 * 1024,
    };
    let bound = listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let listen_state = Arc::new(gate::Listen {
        move_to: std::sync::Mutex::new(None),
        bound: std::sync::Mutex::new(bound),
    });
    svc.gate = Some(
        gate::spawn(listeners, socket, limits, stop, listen_state).map_err(IgdError::Threads)?,
    );
    Ok(svc)
}

impl IgdService {
    /// The HTTP port serving descriptions and control.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Where the SSDP socket listens (tests bind it to a loopback port).
    #[cfg(test)]
    pub(crate) fn ssdp_addr(&self) -> Option<SocketAddr> {
        self.ssdp_addr
    }

    /// Says ssdp:byebye, stops the threads and removes the handler socket.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if self.stop.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(g) = self.gate.take() {
            g.join();
        }
        for _ in 0..HANDLERS {
            self.server.unblock();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // After the SSDP thread ended, so no ssdp:alive can follow the byebye.
        let (site, senders) = (&self.site, &self.senders);
        let (to, port, boot_id) = (self.notify_to, self.http_port, self.boot_id);
        ssdp_io::announce(site, senders, to, port, boot_id, ssdp_io::Nts::ByeBye);
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for IgdService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Removes the handler sockets of earlier daemons from `run_dir` (the daemon holds an
/// exclusive lock on its config, so any such socket belongs to a dead one).
fn handler_loop(
    server: &tiny_http::Server,
    site: &http::Site,
    mapper: &dyn Mapper,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut rq) = server.recv() else { continue };
        let req = backend::request(&mut rq, super::xml::MAX_BODY as u64 + 1);
        let resp = crate::web::guarded(|| http::route(site, mapper, &req, Timestamp::now()));
        backend::respond(rq, resp);
    }
}

#[cfg(test)]
mod tests;
