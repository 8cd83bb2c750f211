//! A whoami HTTP server and a small HTTP/1.0 client with timeouts (busybox `wget -T` crashes in
//! the guests).

use crate::{sockaddr, Args, Usage};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// `whoami-http --bind ADDR:PORT`: answers every request with `REMOTE=<client ip>\n`.
pub fn whoami(args: &Args) -> Result<bool, Usage> {
    let bind = sockaddr(args.req("bind")?)?;
    let l = match TcpListener::bind(bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("whoami-http: bind {bind}: {e}");
            return Ok(false);
        }
    };
    eprintln!("whoami-http: listening on {bind}");
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        std::thread::spawn(move || {
            let Ok(peer) = s.peer_addr() else { return };
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16384 {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(buf.get(..n).unwrap_or_default()),
                }
            }
            let body = format!("REMOTE={}\n", peer.ip());
            let _ = write!(s, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            eprintln!("whoami-http: {peer}");
        });
    }
    Ok(true)
}

/// One GET: Ok(body) on status 200, Err(reason) otherwise.
fn fetch(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    s.set_write_timeout(Some(left()))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
        addr.ip()
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        s.set_read_timeout(Some(left()))
            .map_err(|e| e.to_string())?;
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => resp.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) => return Err(format!("read: {e}")),
        }
        if Instant::now() >= deadline {
            return Err("timeout".into());
        }
    }
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP header in {} bytes", resp.len()))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("status {status:?}"));
    }
    Ok(body.to_string())
}

/// `get ADDR:PORT PATH [--timeout S]`: prints the body of a 200 answer; exit 1 otherwise.
pub fn get(args: &Args) -> Result<bool, Usage> {
    let addr = sockaddr(args.pos(0, "ADDR:PORT")?)?;
    let path = args.pos(1, "PATH").unwrap_or("/");
    match fetch(addr, path, args.timeout(5.0)?) {
        Ok(body) => {
            print!("{body}");
            Ok(true)
        }
        Err(e) => {
            eprintln!("get http://{addr}{path}: {e}");
            Ok(false)
        }
    }
}

/// `burst ADDR:PORT PATH --seconds S [--timeout S] [--interval-ms N]`: GETs for S seconds;
/// prints `ok=N fail=M` (the first answer body too); exit 0 always when run.
pub fn burst(args: &Args) -> Result<bool, Usage> {
    let addr = sockaddr(args.pos(0, "ADDR:PORT")?)?;
    let path = args.pos(1, "PATH").unwrap_or("/");
    let secs: f64 = args.num("seconds", 5.0)?;
    let interval = Duration::from_millis(args.num("interval-ms", 100)?);
    let timeout = args.timeout(1.0)?;
    let end = Instant::now() + Duration::from_secs_f64(secs.clamp(0.0, 3600.0));
    let (mut ok, mut fail, mut first) = (0u32, 0u32, None);
    while Instant::now() < end {
        match fetch(addr, path, timeout) {
            Ok(b) => {
                ok += 1;
                first.get_or_insert(b);
            }
            Err(_) => fail += 1,
        }
        std::thread::sleep(interval);
    }
    println!(
        "ok={ok} fail={fail} first={:?}",
        first.unwrap_or_default().trim()
    );
    Ok(true)
}
