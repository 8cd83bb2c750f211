//! What the gate decides from a request's bytes, without I/O: whether it is complete or
//! must be refused ([`progress`]), the head passed on to the handlers ([`rewrite_head`]),
//! and the plain answers the gate writes itself ([`refusal`]). Pure, so the limits are
//! unit-tested and fuzzed ([`fuzz_request_head`]).

use std::net::IpAddr;

use super::gate::Limits;

/// The header carrying the client's address from the gate to the handlers.
pub const PEER_HEADER: &str = "X-Portcullis-Peer";

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

    /// Mutations of valid requests (a fixed-seed xorshift; the fuzz target explores more).
    #[test]
    fn fuzz_entry_point_holds_on_mutated_requests() {
        let seeds: [&[u8]; 3] = [
            b"GET /api/v1/setup HTTP/1.1\r\nHost: r\r\nX-Portcullis-Peer: 1.2.3.4\r\n\r\n",
            b"POST /api/v1/login HTTP/1.1\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nabcde",
            b"PUT /x HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\nExpect: 100\r\n\r\nab",
        ];
        let mut x: u32 = 0x9e37_79b9;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as usize
        };
        for _ in 0..20_000 {
            let mut d = seeds[next() % 3].to_vec();
            for _ in 0..(next() % 4) {
                let i = next() % d.len();
                match next() % 3 {
                    0 => {
                        let tokens = b"\r\n:X- 0a";
                        d[i] = tokens[next() % tokens.len()];
                    }
                    1 => {
                        d.remove(i);
                    }
                    _ => d.insert(i, next().to_le_bytes()[0]),
                }
                if d.is_empty() {
                    break;
                }
            }
            fuzz_request_head(&d);
        }
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
