//! A recording DNS responder (the provider's resolver at the tunnel's DNS address): answers every
//! A question with one fixed address (RFC 1035 §4.1), other types with an empty NOERROR answer,
//! and logs each query to stderr.

use crate::{sockaddr, Args, Usage};
use std::net::{Ipv4Addr, UdpSocket};

/// The QNAME/QTYPE of a one-question query: (name, qtype, end of the question section).
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    let mut i = 12;
    let mut name = String::new();
    loop {
        let len = usize::from(*q.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        name.push_str(&String::from_utf8_lossy(q.get(i..i + len)?));
        name.push('.');
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    Some((name, qtype, i + 4))
}

fn answer(q: &[u8], addr: Ipv4Addr) -> Option<Vec<u8>> {
    let (_, qtype, end) = question(q)?;
    let mut r = q.get(..end)?.to_vec();
    let flags_hi = r.get_mut(2)?;
    *flags_hi = 0x80 | (*flags_hi & 0x79); // QR, keep opcode and RD
    *r.get_mut(3)? = 0x80; // RA, NOERROR
    r.get_mut(6..12)?
        .copy_from_slice(&[0, u8::from(qtype == 1), 0, 0, 0, 0]);
    if qtype == 1 {
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&addr.octets());
    }
    Some(r)
}

/// `dns-sink --bind ADDR:PORT --answer ADDR`: serves until killed.
pub fn run(args: &Args) -> Result<bool, Usage> {
    let bind = sockaddr(args.req("bind")?)?;
    let addr: Ipv4Addr = args
        .req("answer")?
        .parse()
        .map_err(|_| Usage("--answer: not an IPv4 address".into()))?;
    let sock = match UdpSocket::bind(bind) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("dns-sink: bind {bind}: {e}");
            return Ok(false);
        }
    };
    eprintln!("dns-sink: listening on {bind}");
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let q = buf.get(..n).unwrap_or_default();
        match question(q) {
            Some((name, qtype, _)) => eprintln!("dns-sink: query from {from}: {name} type {qtype}"),
            None => eprintln!("dns-sink: malformed query from {from} ({n} bytes)"),
        }
        if let Some(r) = answer(q, addr) {
            let _ = sock.send_to(&r, from);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_an_a_query() {
        let q = [
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'e', b'b', 0, 0, 1, 0, 1,
        ];
        let (name, t, end) = question(&q).unwrap();
        assert_eq!((name.as_str(), t, end), ("web.", 1, q.len()));
        let r = answer(&q, Ipv4Addr::new(203, 0, 113, 80)).unwrap();
        assert_eq!(r.get(..4), Some(&[0x12, 0x34, 0x81, 0x80][..]));
        assert_eq!(r.get(6..8), Some(&[0, 1][..]));
        assert_eq!(r.get(r.len() - 4..), Some(&[203, 0, 113, 80][..]));
        assert_eq!(answer(&q[..15], Ipv4Addr::LOCALHOST), None);
    }
}
