//! A fake VPN provider's NAT-PMP gateway (RFC 6886), steered by a control file the test rewrites.
//!
//! The control file is re-read for every request; its first line is one of
//!   `grant PORT LIFETIME`   map requests succeed with external port PORT (the same for UDP and
//!                           TCP, whatever internal or suggested port was asked, 0 included) and
//!                           lifetime LIFETIME seconds (a deletion, lifetime 0, is acknowledged);
//!   `refuse CODE`           map requests get result code CODE (RFC 6886 §3.5, e.g. 2 = refused);
//!   `silent`                no request is answered.
//! Public address requests (opcode 0) are answered with `--public` unless silent. Every request is
//! logged to stderr as one line.

use crate::{Args, Usage};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Instant;

/// The NAT-PMP server port (RFC 6886 §3).
const PORT: u16 = 5351;

/// What the control file says to do.
#[derive(Debug, PartialEq)]
enum Mode {
    Grant { port: u16, lifetime: u32 },
    Refuse(u16),
    Silent,
}

fn read_mode(path: &str) -> Mode {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_mode(&text).unwrap_or(Mode::Silent)
}

fn parse_mode(text: &str) -> Option<Mode> {
    let mut w = text.lines().next()?.split_whitespace();
    match w.next()? {
        "grant" => Some(Mode::Grant {
            port: w.next()?.parse().ok()?,
            lifetime: w.next()?.parse().ok()?,
        }),
        "refuse" => Some(Mode::Refuse(w.next()?.parse().ok()?)),
        "silent" => Some(Mode::Silent),
        _ => None,
    }
}

/// Builds the answer to one request, or None for no answer (silent, or not a NAT-PMP request).
fn answer(req: &[u8], mode: &Mode, epoch: u32, public: Ipv4Addr) -> Option<Vec<u8>> {
    if *mode == Mode::Silent {
        return None;
    }
    let (&version, &op) = (req.first()?, req.get(1)?);
    let mut out = vec![0, op | 0x80];
    if version != 0 {
        out.extend_from_slice(&1u16.to_be_bytes()); // unsupported version
        out.extend_from_slice(&epoch.to_be_bytes());
        return Some(out);
    }
    match op {
        0 => {
            out.extend_from_slice(&0u16.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&public.octets());
        }
        1 | 2 => {
            let b = req.get(4..12)?;
            let internal = [*b.first()?, *b.get(1)?];
            let lifetime_req = u32::from_be_bytes([*b.get(4)?, *b.get(5)?, *b.get(6)?, *b.get(7)?]);
            let (code, ext, life) = match *mode {
                Mode::Grant { .. } if lifetime_req == 0 => (0, 0, 0),
                Mode::Grant { port, lifetime } => (0, port, lifetime),
                Mode::Refuse(c) => (c, 0, 0),
                Mode::Silent => return None,
            };
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&epoch.to_be_bytes());
            out.extend_from_slice(&internal);
            out.extend_from_slice(&ext.to_be_bytes());
            out.extend_from_slice(&life.to_be_bytes());
        }
        _ => {
            out.extend_from_slice(&5u16.to_be_bytes()); // unsupported opcode
            out.extend_from_slice(&epoch.to_be_bytes());
        }
    }
    Some(out)
}

fn describe(req: &[u8]) -> String {
    match (req.get(1), req.get(4..12)) {
        (Some(0), _) => "public-address".to_string(),
        (Some(&op), Some(b)) if op == 1 || op == 2 => {
            let p = |i: usize| {
                u16::from_be_bytes([
                    b.get(i).copied().unwrap_or(0),
                    b.get(i + 1).copied().unwrap_or(0),
                ])
            };
            let life = (u32::from(p(4)) << 16) | u32::from(p(6));
            format!(
                "map-{} internal={} suggested={} lifetime={life}",
                if op == 1 { "udp" } else { "tcp" },
                p(0),
                p(2)
            )
        }
        _ => format!("unknown {} bytes", req.len()),
    }
}

/// `natpmp-gw --bind ADDR --control FILE [--public ADDR]`: serves until killed.
pub fn run(args: &Args) -> Result<bool, Usage> {
    let bind: Ipv4Addr = args
        .req("bind")?
        .parse()
        .map_err(|_| Usage("--bind: not an IPv4 address".into()))?;
    let control = args.req("control")?.to_string();
    let public: Ipv4Addr = args
        .opt("public")
        .unwrap_or("203.0.113.7")
        .parse()
        .map_err(|_| Usage("--public: not an IPv4 address".into()))?;
    let sock = match UdpSocket::bind(SocketAddr::from((bind, PORT))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("natpmp-gw: bind {bind}:{PORT}: {e}");
            return Ok(false);
        }
    };
    eprintln!("natpmp-gw: listening on {bind}:{PORT}, control {control}");
    let start = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        let (n, from) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("natpmp-gw: recv: {e}");
                continue;
            }
        };
        let req = buf.get(..n).unwrap_or_default();
        let mode = read_mode(&control);
        let epoch = u32::try_from(start.elapsed().as_secs()).unwrap_or(u32::MAX);
        let reply = answer(req, &mode, epoch, public);
        eprintln!(
            "natpmp-gw: from {from} {} -> {mode:?}{}",
            describe(req),
            if reply.is_some() { "" } else { " (no answer)" }
        );
        if let Some(r) = reply {
            if let Err(e) = sock.send_to(&r, from) {
                eprintln!("natpmp-gw: send to {from}: {e}");
            }
        }
    }
}

/// `natpmp-req GATEWAY [--op addr|udp|tcp] [--internal P] [--lifetime S] [--timeout S]`: one
/// request (RFC 6886 §3.2, §3.3); prints `result=C epoch=E external=ADDR` or
/// `result=C epoch=E internal=P external_port=P lifetime=S`; exit 1 on no answer.
pub fn request(args: &Args) -> Result<bool, Usage> {
    let gw: Ipv4Addr = args
        .pos(0, "GATEWAY")?
        .parse()
        .map_err(|_| Usage("GATEWAY: not an IPv4 address".into()))?;
    let op = match args.opt("op").unwrap_or("tcp") {
        "addr" => 0u8,
        "udp" => 1,
        "tcp" => 2,
        o => return Err(Usage(format!("--op: {o:?} is not addr, udp or tcp"))),
    };
    let internal: u16 = args.num("internal", 0)?;
    let lifetime: u32 = args.num("lifetime", 60)?;
    let mut req = vec![0u8, op];
    if op != 0 {
        req.extend_from_slice(&[0, 0]);
        req.extend_from_slice(&internal.to_be_bytes());
        req.extend_from_slice(&0u16.to_be_bytes());
        req.extend_from_slice(&lifetime.to_be_bytes());
    }
    let sock = UdpSocket::bind(("0.0.0.0", 0)).and_then(|s| {
        s.set_read_timeout(Some(
            args.timeout(2.0)
                .unwrap_or(std::time::Duration::from_secs(2)),
        ))?;
        s.send_to(&req, (gw, PORT))?;
        Ok(s)
    });
    let mut buf = [0u8; 64];
    let n = match sock.and_then(|s| s.recv(&mut buf)) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("natpmp-req {gw}: {e}");
            return Ok(false);
        }
    };
    let r = buf.get(..n).unwrap_or_default();
    let u16at = |i: usize| {
        r.get(i..i + 2)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u16::from_be_bytes)
    };
    let u32at = |i: usize| (u32::from(u16at(i)) << 16) | u32::from(u16at(i + 2));
    if op == 0 {
        println!(
            "result={} epoch={} external={}",
            u16at(2),
            u32at(4),
            Ipv4Addr::from(u32at(8))
        );
    } else {
        println!(
            "result={} epoch={} internal={} external_port={} lifetime={}",
            u16at(2),
            u32at(4),
            u16at(8),
            u16at(10),
            u32at(12)
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_file_lines() {
        assert_eq!(
            parse_mode("grant 40000 8\n"),
            Some(Mode::Grant {
                port: 40000,
                lifetime: 8
            })
        );
        assert_eq!(parse_mode("refuse 2"), Some(Mode::Refuse(2)));
        assert_eq!(parse_mode("silent\n"), Some(Mode::Silent));
        assert_eq!(parse_mode("grant x 8"), None);
        assert_eq!(parse_mode(""), None);
    }

    #[test]
    fn map_answers_same_port_for_any_internal_port() {
        let m = Mode::Grant {
            port: 40000,
            lifetime: 8,
        };
        let req = [0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60];
        let r = answer(&req, &m, 7, Ipv4Addr::new(203, 0, 113, 7)).unwrap();
        assert_eq!(
            r,
            vec![0, 130, 0, 0, 0, 0, 0, 7, 0, 0, 0x9c, 0x40, 0, 0, 0, 8]
        );
        let r = answer(
            &[0, 1, 0, 0, 0x1f, 0x90, 0, 0, 0, 0, 0, 60],
            &m,
            7,
            Ipv4Addr::LOCALHOST,
        )
        .unwrap();
        assert_eq!(r.get(8..12), Some(&[0x1f, 0x90, 0x9c, 0x40][..]));
        let r = answer(&[0, 0], &m, 7, Ipv4Addr::new(203, 0, 113, 7)).unwrap();
        assert_eq!(r, vec![0, 128, 0, 0, 0, 0, 0, 7, 203, 0, 113, 7]);
    }

    #[test]
    fn refuse_and_silent() {
        let req = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60];
        let r = answer(&req, &Mode::Refuse(2), 1, Ipv4Addr::LOCALHOST).unwrap();
        assert_eq!(r.get(2..4), Some(&[0, 2][..]));
        assert_eq!(answer(&req, &Mode::Silent, 1, Ipv4Addr::LOCALHOST), None);
        assert_eq!(
            answer(&[0, 1, 0], &Mode::Refuse(2), 1, Ipv4Addr::LOCALHOST),
            None
        );
    }
}
