//! TCP bulk transfer (the tunnel throughput bench) and plain UDP sends.

use crate::{sockaddr, Args, Usage};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::time::Instant;

/// `bulk-recv --bind ADDR:PORT`: reads each connection to its end, then writes `OK <bytes>\n`.
pub fn recv(args: &Args) -> Result<bool, Usage> {
    let bind = sockaddr(args.req("bind")?)?;
    let l = match TcpListener::bind(bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bulk-recv: bind {bind}: {e}");
            return Ok(false);
        }
    };
    eprintln!("bulk-recv: listening on {bind}");
    for conn in l.incoming() {
        let Ok(mut s) = conn else { continue };
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut total = 0u64;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n as u64,
                    Err(_) => return,
                }
            }
            let _ = writeln!(s, "OK {total}");
        });
    }
    Ok(true)
}

/// `bulk-send ADDR:PORT --bytes N [--timeout S]`: sends N bytes, waits for the receiver's count;
/// prints `BULK bytes=N secs=S mbit=R`.
pub fn send(args: &Args) -> Result<bool, Usage> {
    let addr = sockaddr(args.pos(0, "ADDR:PORT")?)?;
    let bytes: u64 = args.num("bytes", 20_000_000)?;
    let timeout = args.timeout(120.0)?;
    let t0 = Instant::now();
    let run = || -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_write_timeout(Some(timeout))?;
        s.set_read_timeout(Some(timeout))?;
        let chunk = vec![0x5au8; 65536];
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left.min(65536)).unwrap_or(65536);
            s.write_all(chunk.get(..n).unwrap_or_default())?;
            left -= n as u64;
        }
        s.shutdown(Shutdown::Write)?;
        let mut ack = String::new();
        s.read_to_string(&mut ack)?;
        Ok(ack)
    };
    match run() {
        Ok(ack) if ack.trim() == format!("OK {bytes}") => {
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "BULK bytes={bytes} secs={secs:.3} mbit={:.1}",
                bytes as f64 * 8.0 / secs / 1e6
            );
            Ok(true)
        }
        Ok(ack) => {
            eprintln!("bulk-send {addr}: receiver answered {ack:?}");
            Ok(false)
        }
        Err(e) => {
            eprintln!("bulk-send {addr}: {e}");
            Ok(false)
        }
    }
}

/// `udp-send ADDR:PORT [--count N]`: sends N datagrams `pcx-guest N`.
pub fn udp_send(args: &Args) -> Result<bool, Usage> {
    let addr = sockaddr(args.pos(0, "ADDR:PORT")?)?;
    let count: u32 = args.num("count", 1)?;
    let sock = match UdpSocket::bind(("0.0.0.0", 0)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("udp-send: {e}");
            return Ok(false);
        }
    };
    let mut sent = 0;
    for i in 0..count {
        if sock
            .send_to(format!("pcx-guest {i}").as_bytes(), addr)
            .is_ok()
        {
            sent += 1;
        }
    }
    println!("sent={sent}");
    Ok(sent == count)
}
