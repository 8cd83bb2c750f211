//! The hardened front of the web server.
//!
//! `tiny_http` reads requests with blocking sockets, no timeouts, unbounded header lines and
//! one thread per connection, so a handful of idle or trickling sockets would pin threads
//! and memory forever. It therefore never sees a client socket. This gate owns the TCP
//! listeners and:
//!
//! - reads every connection's request from one `poll(2)` thread, so idle sockets cost a
//!   buffer, not a thread;
//! - caps the request head ([`Limits::max_head`], else 431) and body ([`Limits::max_body`],
//!   else 413), refuses chunked bodies (411), and closes connections whose request has not
//!   arrived within [`Limits::head_timeout`] (408);
//! - caps connections waiting for their request ([`Limits::max_pending`]): when full, the
//!   oldest one of the peer holding the most is closed with a 503, so a flood of idle
//!   sockets (even from one LAN host) cannot lock out a new client; and caps the bytes they hold together ([`Limits::max_buffered`], the biggest
//!   is refused);
//! - hands complete requests to a fixed pool of [`Limits::workers`] threads, which pass
//!   each one to `tiny_http` over a private Unix socket with `Connection: close` and the
//!   client's address in `X-Portcullis-Peer` (a client's own copy of that header is
//!   removed), and write the answer back with a write timeout. While all workers are busy,
//!   complete requests wait in the gate, in arrival order, counted against the same
//!   connection and memory caps: a page load plus polling never sees a 503.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

pub use super::request::PEER_HEADER;
use super::request::{progress, refusal, rewrite_head, Progress};

/// Resource caps of the gate.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connections whose request is still arriving.
    pub max_pending: usize,
    /// Bytes of request line plus headers.
    pub max_head: usize,
    /// Bytes of body (a config restore is the largest legitimate body).
    pub max_body: usize,
    /// Time a client has to send its whole request.
    pub head_timeout: Duration,
    /// Write timeout for the answer, and read timeout towards the handlers.
    pub io_timeout: Duration,
    /// Threads passing complete requests to the handlers.
    pub workers: usize,
    /// Bytes buffered for all waiting connections together; beyond it the connection
    /// holding the most is refused (503), so slow uploads cannot exhaust a router's RAM.
    pub max_buffered: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_pending: 256,
            max_head: 8 * 1024,
            max_body: 256 * 1024,
            head_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            workers: 6,
            max_buffered: 4 * 1024 * 1024,
        }
    }
}

struct Pending {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    started: Instant,
}

/// A complete request, ready for a worker.
struct Job {
    stream: TcpStream,
    peer: SocketAddr,
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Job {
    /// Bytes it holds.
    fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }
}

/// Best effort: the socket is non-blocking or has a short timeout; a client that does not
/// read its refusal simply loses it.
fn refuse(mut stream: TcpStream, status: u16) {
    let _ = stream.write_all(&refusal(status));
    let _ = stream.shutdown(Shutdown::Both);
}

/// The running gate: its poll thread and workers.
#[derive(Debug)]
pub(crate) struct Gate {
    threads: Vec<JoinHandle<()>>,
}

impl Gate {
    pub(crate) fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Shared with the web server: addresses to move to (taken by the gate) and the addresses
/// bound now.
#[derive(Debug, Default)]
pub(crate) struct Listen {
    pub(crate) move_to: Mutex<Option<Vec<SocketAddr>>>,
    pub(crate) bound: Mutex<Vec<SocketAddr>>,
}

/// Starts the gate on `listeners`, passing complete requests to the Unix socket `backend`.
pub(crate) fn spawn(
    listeners: Vec<TcpListener>,
    backend: PathBuf,
    limits: Limits,
    stop: Arc<AtomicBool>,
    listen: Arc<Listen>,
) -> std::io::Result<Gate> {
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    // Jobs beyond the ones being handed over wait in the gate (`ready` in `poll_loop`),
    // where the caps count them.
    let (tx, rx) = sync_channel::<Job>(1);
    let rx = Arc::new(Mutex::new(rx));
    let mut threads = Vec::new();
    for i in 0..limits.workers {
        let rx = Arc::clone(&rx);
        let backend = backend.clone();
        let timeout = limits.io_timeout;
        threads.push(
            std::thread::Builder::new()
                .name(format!("web-worker-{i}"))
                .spawn(move || worker(&rx, &backend, timeout))?,
        );
    }
    threads.push(
        std::thread::Builder::new()
            .name("web-gate".into())
            .spawn(move || poll_loop(listeners, &tx, &limits, &stop, &listen))?,
    );
    Ok(Gate { threads })
}

/// Binds non-blocking listeners on `addrs`; addresses that fail are logged and skipped.
fn bind_all(addrs: &[SocketAddr]) -> Vec<TcpListener> {
    addrs
        .iter()
        .filter_map(|a| {
            match TcpListener::bind(a).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => Some(l),
                Err(e) => {
                    eprintln!("portcullis: web: listening on {a} failed: {e}");
                    None
                }
            }
        })
        .collect()
}

fn bound_addrs(listeners: &[TcpListener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect()
}

fn poll_loop(
    mut listeners: Vec<TcpListener>,
    tx: &SyncSender<Job>,
    limits: &Limits,
    stop: &AtomicBool,
    listen: &Listen,
) {
    let mut pending: VecDeque<Pending> = VecDeque::new();
    // Complete requests waiting for a free worker, oldest first.
    let mut ready: VecDeque<Job> = VecDeque::new();
    let mut chunk = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        if !hand_over(&mut ready, tx) {
            return;
        }
        // Move to new addresses (the LAN address or the UI port changed). Listeners on an
        // address in both sets are kept, the others are bound before the old ones close;
        // if none of the new addresses can be bound, the server stays where it is (it is
        // never left listening nowhere, not even for a moment).
        let move_to = listen.move_to.lock().ok().and_then(|mut m| m.take());
        if let Some(addrs) = move_to {
            let (keep, old): (Vec<TcpListener>, Vec<TcpListener>) = listeners
                .drain(..)
                .partition(|l| l.local_addr().is_ok_and(|a| addrs.contains(&a)));
            let kept = bound_addrs(&keep);
            let missing: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| !kept.contains(a))
                .collect();
            let fresh = bind_all(&missing);
            if keep.is_empty() && fresh.is_empty() {
                listeners = old;
            } else {
                drop(old);
                listeners = keep.into_iter().chain(fresh).collect();
            }
            let now = bound_addrs(&listeners);
            eprintln!("portcullis: web UI now on {now:?}");
            if let Ok(mut b) = listen.bound.lock() {
                *b = now;
            }
        }
        let listeners = &listeners;
        let (ready_listeners, ready_conns) = {
            let mut fds: Vec<PollFd<'_>> = listeners
                .iter()
                .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
                .chain(
                    pending
                        .iter()
                        .map(|p| PollFd::new(p.stream.as_fd(), PollFlags::POLLIN)),
                )
                .collect();
            // With requests waiting for a worker, look again soon.
            let wait: u16 = if ready.is_empty() { 200 } else { 5 };
            if let Err(e) = poll(&mut fds, PollTimeout::from(wait)) {
                if e != nix::errno::Errno::EINTR {
                    eprintln!("portcullis: web: poll failed: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            let revents: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            let (l, c) = revents.split_at(listeners.len());
            (l.to_vec(), c.to_vec())
        };

        // Read from ready connections first (indexes refer to the current queue).
        let mut done: Vec<usize> = Vec::new();
        for (i, c_ready) in ready_conns.iter().enumerate() {
            if !*c_ready {
                continue;
            }
            let Some(p) = pending.get_mut(i) else {
                continue;
            };
            let closed = loop {
                match p.stream.read(&mut chunk) {
                    Ok(0) => break true,
                    Ok(n) => {
                        p.buf.extend_from_slice(&chunk[..n]);
                        if p.buf.len() > limits.max_head + limits.max_body {
                            break false;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break true,
                }
            };
            if closed || progress(&p.buf, limits) != Progress::More {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let Some(p) = pending.remove(i) else { continue };
            match progress(&p.buf, limits) {
                Progress::More => {} // closed by the client before finishing: drop it
                Progress::Refuse(status) => refuse(p.stream, status),
                Progress::Complete { head_len, body_len } => {
                    let mut buf = p.buf;
                    // `progress` guarantees the range; `get` keeps even a bug from panicking.
                    let body = buf
                        .get(head_len..head_len.saturating_add(body_len))
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default();
                    buf.truncate(head_len);
                    let job = Job {
                        stream: p.stream,
                        peer: p.peer,
                        head: buf,
                        body,
                    };
                    let held: usize = ready.iter().map(Job::len).sum();
                    if held + job.len() > limits.max_buffered {
                        refuse(job.stream, 503);
                    } else {
                        ready.push_back(job);
                    }
                }
            }
        }
        if !hand_over(&mut ready, tx) {
            return;
        }

        // Cap the memory held by requests still arriving (and those waiting for a worker).
        let held: usize = ready.iter().map(Job::len).sum();
        let mut total: usize = held + pending.iter().map(|p| p.buf.len()).sum::<usize>();
        while total > limits.max_buffered {
            let Some((i, _)) = pending.iter().enumerate().max_by_key(|(_, p)| p.buf.len()) else {
                break;
            };
            let Some(p) = pending.remove(i) else { break };
            total -= p.buf.len();
            refuse(p.stream, 503);
        }

        // Time out slow requests.
        let now = Instant::now();
        while pending
            .front()
            .is_some_and(|p| now.duration_since(p.started) > limits.head_timeout)
        {
            if let Some(p) = pending.pop_front() {
                refuse(p.stream, 408);
            }
        }

        // Accept new connections; when full, the oldest waiting connection makes room.
        for (l, l_ready) in listeners.iter().zip(&ready_listeners) {
            if !*l_ready {
                continue;
            }
            loop {
                match l.accept() {
                    Ok((stream, peer)) => {
                        if stream.set_nonblocking(true).is_err() {
                            continue;
                        }
                        if pending.len() + ready.len() >= limits.max_pending
                            && !evict_one(&mut pending)
                        {
                            // Every slot holds a complete request waiting for a worker.
                            refuse(stream, 503);
                            continue;
                        }
                        pending.push_back(Pending {
                            stream,
                            peer,
                            buf: Vec::new(),
                            started: Instant::now(),
                        });
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        eprintln!("portcullis: web: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                        break;
                    }
                }
            }
        }
    }
}

/// Makes room for one more waiting connection: closes (503) the oldest waiting connection
/// of the peer address holding the most, so a LAN host flooding the UI with idle sockets
/// evicts its own sockets rather than other people's.
/// Returns false when there was nothing to evict.
fn evict_one(pending: &mut VecDeque<Pending>) -> bool {
    let mut counts: std::collections::HashMap<IpAddr, usize> = std::collections::HashMap::new();
    for p in pending.iter() {
        *counts.entry(p.peer.ip()).or_default() += 1;
    }
    let Some(heaviest) = counts.into_iter().max_by_key(|(_, n)| *n).map(|(ip, _)| ip) else {
        return false;
    };
    let Some(old) = pending
        .iter()
        .position(|p| p.peer.ip() == heaviest)
        .and_then(|i| pending.remove(i))
    else {
        return false;
    };
    refuse(old.stream, 503);
    true
}

/// Passes waiting requests to free workers, oldest first; false when the workers are gone.
fn hand_over(ready: &mut VecDeque<Job>, tx: &SyncSender<Job>) -> bool {
    while let Some(job) = ready.pop_front() {
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                ready.push_front(job);
                break;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
    true
}

fn worker(rx: &Mutex<Receiver<Job>>, backend: &std::path::Path, timeout: Duration) {
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(j) => j,
                Err(_) => return,
            }
        };
        let mut stream = job.stream;
        if stream.set_nonblocking(false).is_err()
            || stream.set_write_timeout(Some(timeout)).is_err()
        {
            continue;
        }
        match pass(backend, &job.head, &job.body, job.peer.ip(), timeout) {
            Ok(answer) => {
                let _ = stream.write_all(&answer);
            }
            Err(e) => {
                eprintln!("portcullis: web: handler unreachable: {e}");
                let _ = stream.write_all(&refusal(503));
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
    }
}

fn pass(
    backend: &std::path::Path,
    head: &[u8],
    body: &[u8],
    peer: IpAddr,
    timeout: Duration,
) -> std::io::Result<Vec<u8>> {
    let mut up = UnixStream::connect(backend)?;
    up.set_read_timeout(Some(timeout))?;
    up.set_write_timeout(Some(timeout))?;
    up.write_all(&rewrite_head(head, peer))?;
    up.write_all(body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    Ok(answer)
}
