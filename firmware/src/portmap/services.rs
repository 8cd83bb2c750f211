//! Which port-mapping servers run: a supervisor thread starts the UPnP IGD and NAT-PMP/PCP
//! servers when the config's mode is not `off` (and the router is not in safe mode), stops
//! them when it becomes `off`, and restarts them when the LAN side changes. The daemon's
//! owner only sends it the config in force over a [`Link`]; it never waits for servers,
//! which themselves wait for the owner.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{LanSide, Mapper};
use crate::config::{Config, UpnpMode};

/// Whether the servers listen, as the supervisor last found.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Listening {
    pub listening: bool,
    /// Why not, when they should.
    pub error: Option<String>,
}

/// The owner's end: tell what to serve, read whether it is served.
#[derive(Debug, Clone, Default)]
pub struct Link {
    tx: Option<Sender<Config>>,
    state: Arc<Mutex<Listening>>,
}

/// The supervisor's end of a [`Link`].
#[derive(Debug)]
pub struct Receiving {
    pub rx: Receiver<Config>,
    pub state: Arc<Mutex<Listening>>,
}

impl Link {
    /// A connected pair.
    pub fn pair() -> (Link, Receiving) {
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(Mutex::new(Listening::default()));
        (
            Link {
                tx: Some(tx),
                state: Arc::clone(&state),
            },
            Receiving { rx, state },
        )
    }

    /// Asks for the servers `cfg` wants (none when `cfg.upnp.mode` is off). Never blocks.
    pub fn want(&self, cfg: &Config) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(cfg.clone());
        }
    }

    /// Asks for no servers at all (safe mode).
    pub fn none(&self, cfg: &Config) {
        let mut off = cfg.clone();
        off.upnp.mode = UpnpMode::Off;
        self.want(&off);
    }

    pub fn state(&self) -> Listening {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// Stops a running server (sends its goodbyes, joins its threads).
pub type Stop = Box<dyn FnOnce() + Send>;

/// Starts one server on the LAN side; the error says why it could not.
pub type Start = Box<dyn Fn(&LanSide, Arc<dyn Mapper>) -> Result<Stop, String> + Send>;

/// How often the supervisor retries servers that should run but could not start (say,
/// the LAN interface had no address yet).
const RETRY: Duration = Duration::from_secs(5);

/// The running supervisor thread.
#[derive(Debug)]
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    join: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Starts the supervisor: it serves what the configs arriving on `recv` want, with
    /// `servers` (name, start function), all calling `mapper`.
    pub fn spawn(
        recv: Receiving,
        mapper: Arc<dyn Mapper>,
        servers: Vec<(&'static str, Start)>,
    ) -> std::io::Result<Supervisor> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let join = std::thread::Builder::new()
            .name("portcullis-portmap".into())
            .spawn(move || supervise(&recv, &mapper, &servers, &flag))?;
        Ok(Supervisor {
            stop,
            join: Some(join),
        })
    }

    /// Stops every server (UPnP says goodbye) and the supervisor.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The LAN side a config asks servers for; None when the mode is off.
fn wanted(cfg: &Config) -> Option<Result<LanSide, String>> {
    if cfg.upnp.mode == UpnpMode::Off {
        return None;
    }
    let addrs: Vec<_> = match crate::facts::interface_addrs(&cfg.lan.interface) {
        Ok(a) => a
            .into_iter()
            .filter(|a| cfg.lan.subnets.iter().any(|n| n.contains(*a)))
            .collect(),
        Err(e) => return Some(Err(format!("reading the LAN addresses: {e}"))),
    };
    if addrs.is_empty() {
        return Some(Err(format!(
            "{} has no address in the LAN subnets yet",
            cfg.lan.interface
        )));
    }
    Some(Ok(LanSide {
        interface: cfg.lan.interface.clone(),
        addrs,
        subnets: cfg.lan.subnets.clone(),
        http_port: IGD_HTTP_PORT,
        web_port: cfg.management.http_port,
    }))
}

/// TCP port of the UPnP description and control server (reserved in the config).
pub const IGD_HTTP_PORT: u16 = 5000;

fn supervise(
    recv: &Receiving,
    mapper: &Arc<dyn Mapper>,
    servers: &[(&'static str, Start)],
    stop: &AtomicBool,
) {
    let mut running: Vec<Stop> = Vec::new();
    let mut serving: Option<LanSide> = None;
    let mut last: Option<Config> = None;
    let mut failed_at: Option<Instant> = None;
    let mut last_failed: Option<Config> = None;
    let report = |l: Listening| {
        if let Ok(mut s) = recv.state.lock() {
            *s = l;
        }
    };
    while !stop.load(Ordering::SeqCst) {
        match recv.rx.recv_timeout(Duration::from_millis(500)) {
            Ok(cfg) => last = Some(cfg),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // Only the newest config counts.
        while let Ok(cfg) = recv.rx.try_recv() {
            last = Some(cfg);
        }
        let Some(cfg) = &last else {
            continue;
        };
        let want = wanted(cfg);
        match &want {
            // Off, and nothing runs.
            None if serving.is_none() && running.is_empty() => {
                report(Listening::default());
                continue;
            }
            // Already serving exactly this.
            Some(Ok(lan)) if serving.as_ref() == Some(lan) => continue,
            // Failed recently: retry only every RETRY.
            Some(_)
                if failed_at.is_some_and(|t: Instant| t.elapsed() < RETRY)
                    && last_failed.as_ref() == Some(cfg) =>
            {
                continue
            }
            _ => {}
        }
        for s in running.drain(..) {
            s();
        }
        serving = None;
        failed_at = None;
        let lan = match want {
            None => {
                report(Listening::default());
                continue;
            }
            Some(Err(why)) => {
                failed_at = Some(Instant::now());
                last_failed = Some(cfg.clone());
                report(Listening {
                    listening: false,
                    error: Some(why),
                });
                continue;
            }
            Some(Ok(lan)) => lan,
        };
        let mut errors = Vec::new();
        for (name, start) in servers {
            match start(&lan, Arc::clone(mapper)) {
                Ok(s) => running.push(s),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        if errors.is_empty() {
            eprintln!(
                "portcullis: port-mapping servers listening on {} ({:?})",
                lan.interface, lan.addrs
            );
            serving = Some(lan);
            report(Listening {
                listening: true,
                error: None,
            });
        } else {
            // All or nothing: a half-started set is stopped and retried.
            for s in running.drain(..) {
                s();
            }
            let why = errors.join("; ");
            eprintln!("portcullis: port-mapping servers not started: {why}");
            failed_at = Some(Instant::now());
            last_failed = Some(cfg.clone());
            report(Listening {
                listening: false,
                error: Some(why),
            });
        }
    }
    for s in running.drain(..) {
        s();
    }
    report(Listening::default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portmap::memory::MemoryMapper;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    fn until(what: &str, f: impl Fn() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            std::thread::yield_now();
        }
    }

    #[test]
    fn servers_run_exactly_while_the_mode_is_not_off() {
        let mut cfg = Config::parse(
            r#"{"version":1,"lan":{"interface":"lo","subnets":["127.0.0.0/8"]},"wan":{"interface":"w"}}"#,
        )
        .expect("parses");
        let (link, recv) = Link::pair();
        let starts = Arc::new(AtomicUsize::new(0));
        let stops = Arc::new(AtomicUsize::new(0));
        let (a, b) = (Arc::clone(&starts), Arc::clone(&stops));
        let start: Start = Box::new(move |lan: &LanSide, _m| {
            assert_eq!(lan.interface, "lo");
            assert_eq!(lan.http_port, IGD_HTTP_PORT);
            a.fetch_add(1, Ordering::SeqCst);
            let b = Arc::clone(&b);
            Ok(Box::new(move || {
                b.fetch_add(1, Ordering::SeqCst);
            }) as Stop)
        });
        let sup = Supervisor::spawn(
            recv,
            Arc::new(MemoryMapper::new(&cfg)),
            vec![("fake", start)],
        )
        .expect("spawns");
        link.want(&cfg);
        assert!(!link.state().listening, "off: nothing listens");
        cfg.upnp.mode = UpnpMode::AllowList;
        link.want(&cfg);
        until("listening", || link.state().listening);
        link.want(&cfg);
        assert_eq!(
            starts.load(Ordering::SeqCst),
            1,
            "the same config starts nothing new"
        );
        link.none(&cfg);
        until("stopped", || stops.load(Ordering::SeqCst) == 1);
        until("not listening", || !link.state().listening);
        link.want(&cfg);
        until("listening again", || link.state().listening);
        sup.stop();
        assert_eq!(
            stops.load(Ordering::SeqCst),
            2,
            "stopping the supervisor stops them"
        );
    }
}
