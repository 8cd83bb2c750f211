//! Test-only PCP (RFC 6887) and NAT-PMP (RFC 6886) clients, written from the RFCs rather
//! than from the router's own codecs, so a test catches a codec that misreads the wire
//! format instead of agreeing with it. Debian's natpmpc covers NAT-PMP well but cannot
//! send a thousand requests quickly nor bad ones; nothing in Debian speaks PCP MAP with a
//! chosen nonce, which the renewal rules are about.

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::Duration;

/// The server port of both protocols.
pub const PORT: u16 = 5351;

/// PCP result codes (RFC 6887 §7.4) the tests look for.
pub mod result {
    pub const SUCCESS: u8 = 0;
    pub const NOT_AUTHORIZED: u8 = 2;
    pub const MALFORMED_REQUEST: u8 = 3;
    pub const NO_RESOURCES: u8 = 8;
}

/// One PCP MAP request (RFC 6887 §11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapRequest {
    pub lifetime: u32,
    /// The client's own address, sent as an IPv4-mapped IPv6 address.
    pub client: Ipv4Addr,
    pub nonce: [u8; 12],
    /// IP protocol number: 6 TCP, 17 UDP.
    pub protocol: u8,
    pub internal_port: u16,
    pub suggested_port: u16,
    /// Suggested external address; UNSPECIFIED for "any IPv4 address".
    pub suggested_addr: Ipv4Addr,
}

/// An IPv4 address as the IPv4-mapped IPv6 address PCP carries (`::ffff:a.b.c.d`).
fn mapped(a: Ipv4Addr) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[10] = 0xff;
    b[11] = 0xff;
    b[12..].copy_from_slice(&a.octets());
    b
}

impl MapRequest {
    /// A MAP request for `protocol` `port` (same suggested external port).
    pub fn new(client: Ipv4Addr, nonce: [u8; 12], protocol: u8, port: u16, lifetime: u32) -> Self {
        MapRequest {
            lifetime,
            client,
            nonce,
            protocol,
            internal_port: port,
            suggested_port: port,
            suggested_addr: Ipv4Addr::UNSPECIFIED,
        }
    }

    /// The 60 bytes on the wire: the 24-byte common header, then the 36-byte MAP body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(60);
        b.push(2); // version
        b.push(1); // R = 0 (request), opcode 1 = MAP
        b.extend_from_slice(&[0, 0]); // reserved
        b.extend_from_slice(&self.lifetime.to_be_bytes());
        b.extend_from_slice(&mapped(self.client));
        b.extend_from_slice(&self.nonce);
        b.push(self.protocol);
        b.extend_from_slice(&[0, 0, 0]); // reserved
        b.extend_from_slice(&self.internal_port.to_be_bytes());
        b.extend_from_slice(&self.suggested_port.to_be_bytes());
        b.extend_from_slice(&mapped(self.suggested_addr));
        b
    }
}

/// A PCP MAP response (RFC 6887 §7.2 and §11.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapResponse {
    pub result: u8,
    pub lifetime: u32,
    pub epoch: u32,
    pub nonce: [u8; 12],
    pub protocol: u8,
    pub internal_port: u16,
    pub external_port: u16,
    pub external_addr: Ipv4Addr,
}

impl MapResponse {
    /// Parses a response to a MAP request; Err says what is wrong with the bytes.
    pub fn parse(b: &[u8]) -> Result<MapResponse, String> {
        if b.len() < 24 {
            return Err(format!("{} bytes: shorter than a PCP header", b.len()));
        }
        if b[0] != 2 || b[1] != 0x81 {
            return Err(format!(
                "version {} opcode {:#x}: not a MAP response",
                b[0], b[1]
            ));
        }
        let result = b[3];
        let lifetime = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
        let epoch = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
        // An error answer may carry the request's body or nothing (RFC 6887 §8.3).
        if b.len() < 60 {
            if result == result::SUCCESS {
                return Err(format!("{} bytes: success without a MAP body", b.len()));
            }
            return Ok(MapResponse {
                result,
                lifetime,
                epoch,
                nonce: [0; 12],
                protocol: 0,
                internal_port: 0,
                external_port: 0,
                external_addr: Ipv4Addr::UNSPECIFIED,
            });
        }
        let m = &b[24..60];
        let mut nonce = [0u8; 12];
        nonce.copy_from_slice(&m[..12]);
        Ok(MapResponse {
            result,
            lifetime,
            epoch,
            nonce,
            protocol: m[12],
            internal_port: u16::from_be_bytes([m[16], m[17]]),
            external_port: u16::from_be_bytes([m[18], m[19]]),
            external_addr: Ipv4Addr::new(m[32], m[33], m[34], m[35]),
        })
    }
}

/// A NAT-PMP mapping request (RFC 6886 §3.3): 12 bytes. `udp` picks opcode 1, else 2 (TCP).
pub fn natpmp_map(udp: bool, internal: u16, suggested: u16, lifetime: u32) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[1] = if udp { 1 } else { 2 };
    b[4..6].copy_from_slice(&internal.to_be_bytes());
    b[6..8].copy_from_slice(&suggested.to_be_bytes());
    b[8..12].copy_from_slice(&lifetime.to_be_bytes());
    b
}

/// A NAT-PMP mapping response (RFC 6886 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmpResponse {
    pub opcode: u8,
    pub result: u16,
    pub internal_port: u16,
    pub external_port: u16,
    pub lifetime: u32,
}

impl PmpResponse {
    pub fn parse(b: &[u8]) -> Result<PmpResponse, String> {
        if b.len() < 8 || b[0] != 0 || b[1] < 128 {
            return Err(format!("{b:02x?}: not a NAT-PMP response"));
        }
        let result = u16::from_be_bytes([b[2], b[3]]);
        if b.len() < 16 {
            // Error answers to a map request may be 8 bytes long (RFC 6886 §3.5).
            return Ok(PmpResponse {
                opcode: b[1],
                result,
                internal_port: 0,
                external_port: 0,
                lifetime: 0,
            });
        }
        Ok(PmpResponse {
            opcode: b[1],
            result,
            internal_port: u16::from_be_bytes([b[8], b[9]]),
            external_port: u16::from_be_bytes([b[10], b[11]]),
            lifetime: u32::from_be_bytes([b[12], b[13], b[14], b[15]]),
        })
    }
}

/// A UDP socket bound to `src` (port chosen by the kernel) in the current thread's
/// namespace, with a read timeout. Run it on a thread inside the namespace.
pub fn socket_here(src: Ipv4Addr, timeout: Duration) -> UdpSocket {
    let s = UdpSocket::bind(SocketAddrV4::new(src, 0))
        .unwrap_or_else(|e| panic!("bind udp {src}: {e}"));
    s.set_read_timeout(Some(timeout)).expect("udp read timeout");
    s
}

/// Sends `bytes` to `dst` and returns the first datagram that comes back from `dst`
/// within the socket's timeout, or None.
pub fn exchange(s: &UdpSocket, dst: SocketAddrV4, bytes: &[u8]) -> Option<Vec<u8>> {
    s.send_to(bytes, dst).ok()?;
    let mut buf = [0u8; 1500];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, from)) if from == std::net::SocketAddr::V4(dst) => {
                return Some(buf[..n].to_vec())
            }
            // Something else (an announcement to the port?): keep waiting.
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request from RFC 6887 §11.1's layout, field by field.
    #[test]
    fn map_request_layout() {
        let r = MapRequest::new(Ipv4Addr::new(192, 168, 1, 10), [7; 12], 6, 50000, 600);
        let b = r.encode();
        assert_eq!(b.len(), 60);
        assert_eq!(&b[..4], &[2, 1, 0, 0]);
        assert_eq!(&b[4..8], &600u32.to_be_bytes());
        assert_eq!(
            &b[8..24],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 10]
        );
        assert_eq!(&b[24..36], &[7; 12]);
        assert_eq!(b[36], 6);
        assert_eq!(&b[40..44], &[0xc3, 0x50, 0xc3, 0x50]);
        assert_eq!(
            &b[44..60],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0]
        );
    }

    #[test]
    fn map_response_parses_and_short_errors_are_kept() {
        let mut b = vec![2, 0x81, 0, 0, 0, 0, 2, 0x58, 0, 0, 0, 9];
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[7; 12]);
        b.extend_from_slice(&[17, 0, 0, 0, 0xc3, 0x51, 0xc3, 0x52]);
        b.extend_from_slice(&mapped(Ipv4Addr::new(203, 0, 113, 2)));
        let r = MapResponse::parse(&b).expect("parses");
        assert_eq!((r.result, r.lifetime, r.epoch), (0, 600, 9));
        assert_eq!((r.internal_port, r.external_port), (50001, 50002));
        assert_eq!(r.external_addr, Ipv4Addr::new(203, 0, 113, 2));
        let short = [
            2, 0x81, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(MapResponse::parse(&short).map(|r| r.result), Ok(2));
        assert!(MapResponse::parse(&b[..10]).is_err());
    }

    #[test]
    fn natpmp_request_and_response() {
        assert_eq!(
            natpmp_map(true, 50001, 50001, 60),
            [0, 1, 0, 0, 0xc3, 0x51, 0xc3, 0x51, 0, 0, 0, 60]
        );
        let r = PmpResponse::parse(&[
            0, 129, 0, 0, 0, 0, 0, 5, 0xc3, 0x51, 0xc3, 0x51, 0, 0, 0, 60,
        ])
        .expect("parses");
        assert_eq!(
            (r.opcode, r.result, r.external_port, r.lifetime),
            (129, 0, 50001, 60)
        );
    }
}
