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

/// The header carrying the client's address from the gate to the handlers.
pub const PEER_HEADER: &str = "X-Portcullis-Peer";

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

/// What the bytes received so far amount to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Keep reading.
    More,
    /// Head ends at `head_len`; the request is `head_len + body_len` bytes.
    Complete { head_len: usize, body_len: usize },
    /// Answer with this status and close.
    Refuse(u16),
}

/// Decides, from the bytes received so far, whether a request is complete. Pure, so the
/// limits are unit-tested.
pub(crate) fn progress(buf: &[u8], limits: &Limits) -> Progress {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > limits.max_head {
            Progress::Refuse(431)
        } else {
            Progress::More
        };
    };
    let head_len = end + 4;
    if head_len > limits.max_head {
        return Progress::Refuse(431);
    }
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Progress::Refuse(400);
    };
    let mut length: Option<usize> = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            return Progress::Refuse(400);
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Progress::Refuse(411);
        }
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = value.trim().parse::<usize>() else {
                return Progress::Refuse(400);
            };
            if length.is_some_and(|l| l != n) {
                return Progress::Refuse(400);
            }
            length = Some(n);
        }
    }
    let body_len = length.unwrap_or(0);
    if body_len > limits.max_body {
        return Progress::Refuse(413);
    }
    if buf.len() >= head_len + body_len {
        Progress::Complete { head_len, body_len }
    } else {
        Progress::More
    }
}

/// Fuzzing entry point: runs the gate's request parsing over arbitrary bytes (as they
/// could arrive from a LAN client) with the default and with tight limits, and checks
/// what the handlers would receive: the client's own peer header never gets through, and
/// exactly one is added. Panics only if one of those properties breaks.
pub fn fuzz_request_head(data: &[u8]) {
    let tight = Limits {
        max_head: 64,
        max_body: 16,
        ..Limits::default()
    };
    for limits in [&Limits::default(), &tight] {
        let Progress::Complete { head_len, body_len } = progress(data, limits) else {
            continue;
        };
        assert!(head_len <= limits.max_head && body_len <= limits.max_body);
        assert!(head_len + body_len <= data.len());
        let peer = IpAddr::from([192, 168, 1, 5]);
        let out = rewrite_head(&data[..head_len], peer);
        let text = String::from_utf8_lossy(&out);
        assert!(text.ends_with("\r\n\r\n"));
        let peers: Vec<&str> = text
            .split("\r\n")
            .filter(|l| {
                l.split_once(':')
                    .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(PEER_HEADER))
            })
            .collect();
        assert_eq!(peers, [format!("{PEER_HEADER}: 192.168.1.5")], "{text:?}");
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The head passed on to the handlers: hop-by-hop headers and any client-sent peer
/// header removed, `Connection: close` and the real peer address added.
pub(crate) fn rewrite_head(head: &[u8], peer: IpAddr) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len() + 64);
    for (i, line) in text.split("\r\n").enumerate() {
        if line.is_empty() {
            continue;
        }
        if i > 0 {
            let name = line.split_once(':').map(|(n, _)| n.trim()).unwrap_or("");
            if [
                "connection",
                "keep-alive",
                "expect",
                "upgrade",
                "proxy-connection",
            ]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h))
                || name.eq_ignore_ascii_case(PEER_HEADER)
            {
                continue;
            }
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n");
    out.push_str(PEER_HEADER);
    out.push_str(": ");
    out.push_str(&peer.to_string());
    out.push_str("\r\n\r\n");
    out.into_bytes()
}

/// A plain answer the gate writes itself.
pub(crate) fn refusal(status: u16) -> Vec<u8> {
    let (reason, text) = match status {
        400 => ("Bad Request", "malformed request"),
        408 => ("Request Timeout", "the request did not arrive in time"),
        411 => (
            "Length Required",
            "send a Content-Length, not a chunked body",
        ),
        413 => ("Payload Too Large", "request body too large"),
        431 => (
            "Request Header Fields Too Large",
            "request headers too large",
        ),
        _ => (
            "Service Unavailable",
            "the router is busy with too many connections; try again",
        ),
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 2\r\n\r\n{text}\n",
        text.len() + 1
    )
    .into_bytes()
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
        // Move to new addresses (the LAN address or the UI port changed). The old
        // listeners close first, so an address in both sets can be bound again; if nothing
        // can be bound, the old addresses are taken back.
        let move_to = listen.move_to.lock().ok().and_then(|mut m| m.take());
        if let Some(addrs) = move_to {
            let old = bound_addrs(&listeners);
            listeners.clear();
            listeners = bind_all(&addrs);
            if listeners.is_empty() {
                listeners = bind_all(&old);
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
            let p = &mut pending[i];
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
                    let body = buf[head_len..head_len + body_len].to_vec();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_waits_for_head_and_body_and_enforces_caps() {
        let l = Limits {
            max_head: 64,
            max_body: 10,
            ..Limits::default()
        };
        assert_eq!(progress(b"GET / HTTP/1.1\r\nHost: a", &l), Progress::More);
        assert_eq!(
            progress(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &l),
            Progress::Complete {
                head_len: 27,
                body_len: 0
            }
        );
        let post = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab";
        assert_eq!(progress(post, &l), Progress::More);
        let mut full = post.to_vec();
        full.push(b'c');
        assert!(matches!(
            progress(&full, &l),
            Progress::Complete { body_len: 3, .. }
        ));
        assert_eq!(
            progress(b"POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n", &l),
            Progress::Refuse(413)
        );
        assert_eq!(
            progress(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &l),
            Progress::Refuse(411)
        );
        assert_eq!(progress(&[b'a'; 65], &l), Progress::Refuse(431));
        assert_eq!(
            progress(
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &l
            ),
            Progress::Refuse(400)
        );
    }

    #[test]
    fn fuzz_entry_point_holds_on_tricky_heads() {
        for data in [
            &b"GET / HTTP/1.1\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nX-Portcullis-Peer: 1.2.3.4\r\n\r\n",
            b"GET / HTTP/1.1\r\n x-portcullis-peer : 1.2.3.4\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\rX-Portcullis-Peer: 1.2.3.4\r\n\r\n",
            b"GET / HTTP/1.1\r\nA: b\nX-Portcullis-Peer: 1.2.3.4\r\n\r\n",
            b"\r\n\r\n",
            b"GET /\xff HTTP/1.1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        ] {
            fuzz_request_head(data);
        }
    }

    #[test]
    fn rewrite_strips_a_forged_peer_and_closes() {
        let head = b"GET / HTTP/1.1\r\nHost: r\r\nx-portcullis-peer: 1.2.3.4\r\nConnection: keep-alive\r\n\r\n";
        let out = String::from_utf8(rewrite_head(head, "192.168.1.5".parse().unwrap())).unwrap();
        assert_eq!(
            out,
            "GET / HTTP/1.1\r\nHost: r\r\nConnection: close\r\nX-Portcullis-Peer: 192.168.1.5\r\n\r\n"
        );
    }
}
