//! One synchronous netlink socket (`NETLINK_ROUTE` or `NETLINK_GENERIC`) for the tunnel:
//! a request and its ack, a request and its one answer, or a dump. The same framing as the
//! nf_tables layer (`crate::nft::wire`), one message at a time instead of batches.

use std::io;

use netlink_sys::{Socket, SocketAddr};

use crate::nft::uapi::{NLMSG_DONE, NLMSG_ERROR};
use crate::nft::wire::{messages, Msg};

/// `linux/netlink.h`: protocol numbers.
pub const NETLINK_ROUTE: isize = 0;
pub const NETLINK_GENERIC: isize = 16;

/// Receive buffer for one datagram (dump skbs are at most 32 KiB; the margin detects
/// truncation, read with `MSG_TRUNC`).
const RECV_BUF: usize = 64 * 1024;

/// What one received message is to a request (`linux/netlink.h`, `struct nlmsgerr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// An answer (or one dump part): the payload after `nlmsghdr`.
    Data(&'a [u8]),
    /// `NLMSG_ERROR` with error 0, or `NLMSG_DONE` with status ≥ 0: the end.
    Done,
    /// The kernel's errno (positive), from `NLMSG_ERROR` or a negative `NLMSG_DONE` status.
    Error(i32),
}

/// Classifies one message. `NLMSG_ERROR`'s payload starts with `int error` (negative
/// errno, 0 = ack); `NLMSG_DONE` of a dump carries the dump's `int` status, if any.
pub fn reply<'a>(m: &Msg<'a>) -> Result<Reply<'a>, &'static str> {
    let int = |p: &[u8]| {
        p.get(..4)
            .and_then(|b| b.try_into().ok())
            .map(i32::from_ne_bytes)
    };
    match m.ty {
        NLMSG_ERROR => match int(m.payload) {
            Some(0) => Ok(Reply::Done),
            Some(e) => Ok(Reply::Error(e.saturating_neg())),
            None => Err("short netlink error message"),
        },
        NLMSG_DONE => match int(m.payload) {
            Some(e) if e < 0 => Ok(Reply::Error(e.saturating_neg())),
            _ => Ok(Reply::Done),
        },
        _ => Ok(Reply::Data(m.payload)),
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// An open netlink socket in the calling thread's network namespace.
pub struct Nl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Nl {
    /// Opens, binds and connects a socket of `protocol`, with extended and capped acks.
    pub fn open(protocol: isize) -> io::Result<Nl> {
        let mut sock = Socket::new(protocol)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        sock.set_ext_ack(true)?;
        sock.set_cap_ack(true)?;
        let seq = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(Nl {
            sock,
            seq,
            buf: Vec::with_capacity(RECV_BUF),
        })
    }

    /// A fresh sequence number for the next request.
    pub fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `req` (sequence `seq`) and hands every answer's payload to `f` until the ack,
    /// `NLMSG_DONE` or an error. A request without `NLM_F_ACK` that is not a dump must be
    /// answered by exactly one message: use [`Nl::request_one`].
    pub fn request(
        &mut self,
        req: &[u8],
        seq: u32,
        mut f: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.request_until(req, seq, false, &mut f)
    }

    /// Sends a request answered by one message (no ack), returning its payload copied.
    pub fn request_one(&mut self, req: &[u8], seq: u32) -> io::Result<Vec<u8>> {
        let mut out = None;
        self.request_until(req, seq, true, &mut |p| {
            out = Some(p.to_vec());
            Ok(())
        })?;
        out.ok_or_else(|| invalid("no answer"))
    }

    fn request_until(
        &mut self,
        req: &[u8],
        seq: u32,
        one: bool,
        f: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.sock.send(req, 0)?;
        loop {
            self.buf.clear();
            let n = self.sock.recv(&mut self.buf, nix::libc::MSG_TRUNC)?;
            if n > RECV_BUF {
                return Err(invalid("netlink datagram larger than the receive buffer"));
            }
            for m in messages(&self.buf) {
                let m = m.map_err(invalid)?;
                if m.seq != seq {
                    continue; // a stale answer to an earlier, interrupted request
                }
                match reply(&m).map_err(invalid)? {
                    Reply::Data(p) => {
                        f(p)?;
                        if one {
                            return Ok(());
                        }
                    }
                    Reply::Done => return Ok(()),
                    Reply::Error(e) => return Err(io::Error::from_raw_os_error(e)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `NLMSG_ERROR` as the kernel sends it with `NETLINK_CAP_ACK`: `nlmsghdr`, then
    /// `struct nlmsgerr` (`int error`, the request's 16-byte `nlmsghdr`).
    fn error_msg(errno: i32, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&36u32.to_ne_bytes()); // nlmsg_len: 16 + 4 + 16
        v.extend_from_slice(&2u16.to_ne_bytes()); // nlmsg_type: NLMSG_ERROR
        v.extend_from_slice(&0x100u16.to_ne_bytes()); // nlmsg_flags: NLM_F_CAPPED
        v.extend_from_slice(&seq.to_ne_bytes()); // nlmsg_seq
        v.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
        v.extend_from_slice(&(-errno).to_ne_bytes()); // error: -errno
        v.extend_from_slice(&[0; 16]); // the request's header
        v
    }

    #[test]
    fn error_acks_give_the_errno_and_zero_is_the_end() {
        let buf = error_msg(nix::libc::EEXIST, 9);
        let m = messages(&buf).next().unwrap().unwrap();
        assert_eq!(m.seq, 9);
        assert_eq!(reply(&m), Ok(Reply::Error(nix::libc::EEXIST)));
        let buf = error_msg(0, 9);
        let m = messages(&buf).next().unwrap().unwrap();
        assert_eq!(reply(&m), Ok(Reply::Done));
        let short = Msg {
            ty: NLMSG_ERROR,
            flags: 0,
            seq: 1,
            payload: &[0, 0],
        };
        assert!(reply(&short).is_err());
    }

    #[test]
    fn done_carries_a_dump_status() {
        let done = |p: &'static [u8]| Msg {
            ty: NLMSG_DONE,
            flags: 2,
            seq: 1,
            payload: p,
        };
        assert_eq!(reply(&done(&[0, 0, 0, 0])), Ok(Reply::Done));
        assert_eq!(reply(&done(&[])), Ok(Reply::Done));
        let neg = (-nix::libc::EINTR).to_ne_bytes();
        let m = Msg {
            payload: &neg,
            ..done(&[])
        };
        assert_eq!(reply(&m), Ok(Reply::Error(nix::libc::EINTR)));
        let data = Msg {
            ty: 16,
            ..done(&[1, 2])
        };
        assert_eq!(reply(&data), Ok(Reply::Data(&[1, 2][..])));
    }
}
