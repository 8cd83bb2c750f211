//! Clients that connect from a chosen source address with short timeouts and report
//! which server answered.

use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};
use nix::sys::time::{TimeVal, TimeValLike};

use crate::netns;

/// Default time a client waits for a TCP handshake or a UDP answer. Everything runs on
/// veth pairs on one machine, so a working path answers in well under a millisecond;
/// the margin is for a busy CI machine. It stays under Linux's 1 s SYN retransmission
/// time, so each failed probe sends exactly one SYN.
pub const TIMEOUT: Duration = Duration::from_millis(800);

/// What a server answered: its label and the peer address it saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub label: String,
    /// The source address the server saw (after any NAT).
    pub peer: SocketAddrV4,
}

/// Why a probe got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    /// No answer within the timeout: dropped somewhere.
    Timeout,
    /// The TCP connection was refused (RST), or ICMP port unreachable for UDP.
    Refused,
    /// Connected, but the answer was not a server greeting.
    Garbled(String),
    /// Any other error (unreachable network, ...).
    Other(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Timeout => f.write_str("timed out"),
            ProbeError::Refused => f.write_str("refused"),
            ProbeError::Garbled(s) => write!(f, "unexpected answer {s:?}"),
            ProbeError::Other(s) => f.write_str(s),
        }
    }
}

fn parse_greeting(text: &str) -> Result<Probe, ProbeError> {
    let line = text.trim_end();
    let (label, peer) = line
        .split_once(" peer=")
        .ok_or_else(|| ProbeError::Garbled(line.to_owned()))?;
    let peer = peer
        .parse()
        .map_err(|_| ProbeError::Garbled(line.to_owned()))?;
    Ok(Probe {
        label: label.to_owned(),
        peer,
    })
}

/// Opens a TCP connection from `src` (any local address if None) to `dst` in the current
/// thread's namespace, giving up after `timeout`. Must run on a thread inside a namespace.
pub fn connect_here(
    src: Option<Ipv4Addr>,
    dst: SocketAddrV4,
    timeout: Duration,
) -> Result<TcpStream, ProbeError> {
    let other = |what: &str, e: Errno| ProbeError::Other(format!("{what}: {e}"));
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| other("socket", e))?;
    let ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    // A blocking connect() gives up after SO_SNDTIMEO with EINPROGRESS.
    setsockopt(&fd, sockopt::SendTimeout, &TimeVal::milliseconds(ms))
        .map_err(|e| other("SO_SNDTIMEO", e))?;
    if let Some(ip) = src {
        bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, 0)))
            .map_err(|e| other(&format!("bind {ip}"), e))?;
    }
    match connect(fd.as_raw_fd(), &SockaddrIn::from(dst)) {
        Ok(()) => {}
        Err(Errno::EINPROGRESS | Errno::EAGAIN | Errno::ETIMEDOUT) => {
            return Err(ProbeError::Timeout)
        }
        Err(Errno::ECONNREFUSED) => return Err(ProbeError::Refused),
        Err(e) => return Err(other(&format!("connect {dst}"), e)),
    }
    let stream = TcpStream::from(fd);
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| ProbeError::Other(e.to_string()))?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| ProbeError::Other(e.to_string()))?;
    Ok(stream)
}

/// Connects over TCP from `src` to `dst` inside the current thread's namespace and reads
/// the server's greeting.
pub fn tcp_here(
    src: Option<Ipv4Addr>,
    dst: SocketAddrV4,
    timeout: Duration,
) -> Result<Probe, ProbeError> {
    let mut stream = connect_here(src, dst, timeout)?;
    let mut text = String::new();
    match stream.read_to_string(&mut text) {
        Ok(_) => parse_greeting(&text),
        Err(e) if text.is_empty() => Err(ProbeError::Garbled(format!("no greeting: {e}"))),
        Err(_) => parse_greeting(&text),
    }
}

/// `GET path` over HTTP/1.0 from namespace `ns`, source `src`, to `dst`; returns the
/// response's status line (e.g. `HTTP/1.1 200 OK`).
pub fn http_get(
    ns: &str,
    src: Ipv4Addr,
    dst: SocketAddrV4,
    path: &str,
) -> Result<String, ProbeError> {
    netns::run_in(ns, || {
        let mut stream = connect_here(Some(src), dst, TIMEOUT)?;
        let req = format!("GET {path} HTTP/1.0\r\nHost: {dst}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(req.as_bytes())
            .map_err(|e| ProbeError::Other(format!("send request: {e}")))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.contains(&b'\n') {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) => return Err(ProbeError::Other(format!("read response: {e}"))),
            }
        }
        let text = String::from_utf8_lossy(&head);
        let line = text.lines().next().unwrap_or("").to_owned();
        if line.starts_with("HTTP/") {
            Ok(line)
        } else {
            Err(ProbeError::Garbled(text.into_owned()))
        }
    })
}

/// Sends one UDP datagram from `src` to `dst` in the current thread's namespace and
/// waits for the greeting.
pub fn udp_here(
    src: Option<Ipv4Addr>,
    dst: SocketAddrV4,
    timeout: Duration,
) -> Result<Probe, ProbeError> {
    let io = |e: std::io::Error| ProbeError::Other(e.to_string());
    let s =
        UdpSocket::bind(SocketAddrV4::new(src.unwrap_or(Ipv4Addr::UNSPECIFIED), 0)).map_err(io)?;
    s.connect(dst).map_err(io)?;
    s.send(b"hello").map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    let mut buf = [0u8; 2048];
    match s.recv(&mut buf) {
        Ok(n) => parse_greeting(&String::from_utf8_lossy(&buf[..n])),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(ProbeError::Refused),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(ProbeError::Timeout)
        }
        Err(e) => Err(io(e)),
    }
}

/// A TCP probe from namespace `ns`, source `src`, to `dst`, with [`TIMEOUT`].
pub fn tcp(ns: &str, src: Ipv4Addr, dst: SocketAddrV4) -> Result<Probe, ProbeError> {
    netns::run_in(ns, || tcp_here(Some(src), dst, TIMEOUT))
}

/// A UDP probe from namespace `ns`, source `src`, to `dst`, with [`TIMEOUT`].
pub fn udp(ns: &str, src: Ipv4Addr, dst: SocketAddrV4) -> Result<Probe, ProbeError> {
    netns::run_in(ns, || udp_here(Some(src), dst, TIMEOUT))
}

/// `count` TCP probes from `src` to `dst`, all started at once (one thread each) inside
/// namespace `ns`. Results are in no particular order.
pub fn tcp_flood(
    ns: &str,
    src: Ipv4Addr,
    dst: SocketAddrV4,
    count: usize,
) -> Vec<Result<Probe, ProbeError>> {
    netns::run_in(ns, || {
        // Threads spawned here inherit this thread's namespace.
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..count)
                .map(|_| s.spawn(|| tcp_here(Some(src), dst, TIMEOUT)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("probe thread panicked"))
                .collect()
        })
    })
}
