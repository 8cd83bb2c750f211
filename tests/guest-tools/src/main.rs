//! `pcx-guest`: test-only tools for the QEMU VPN test (tests/qemu/vpn_test.py), run inside the
//! guest's namespaces. Static, std only; never part of the product image.
//!
//! Subcommands (exit 0 on success, 1 on failure, 2 on bad usage):
//!   natpmp-gw --bind ADDR --control FILE [--public ADDR]   fake provider NAT-PMP gateway (RFC 6886)
//!   natpmp-req GATEWAY [--op addr|udp|tcp] [--internal P] [--lifetime S]   one NAT-PMP request
//!   whoami-http --bind ADDR:PORT                           answers every GET with `REMOTE=<client ip>`
//!   get ADDR:PORT PATH [--timeout S]                       HTTP/1.0 GET; prints the body
//!   burst ADDR:PORT PATH --seconds S [--timeout S]         repeated GETs; prints `ok=N fail=M`
//!   bulk-recv --bind ADDR:PORT                             TCP sink; acknowledges each stream's byte count
//!   bulk-send ADDR:PORT --bytes N [--timeout S]            sends N bytes; prints `BULK bytes=N secs=S mbit=R`
//!   udp-send ADDR:PORT [--count N]                         N small UDP datagrams
//!   dns-sink --bind ADDR:PORT --answer ADDR                answers A queries with ADDR; logs each query

mod bulk;
mod dns;
mod http;
mod natpmp;

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

/// A command-line error: what was wrong, printed with the usage.
#[derive(Debug)]
pub struct Usage(pub String);

/// Parsed arguments: positionals in order, and `--flag value` options.
pub struct Args {
    pos: Vec<String>,
    opts: Vec<(String, String)>,
}

impl Args {
    fn parse(raw: &[String]) -> Result<Self, Usage> {
        let mut pos = Vec::new();
        let mut opts = Vec::new();
        let mut it = raw.iter();
        while let Some(a) = it.next() {
            if let Some(name) = a.strip_prefix("--") {
                let v = it
                    .next()
                    .ok_or_else(|| Usage(format!("--{name} needs a value")))?;
                opts.push((name.to_string(), v.clone()));
            } else {
                pos.push(a.clone());
            }
        }
        Ok(Self { pos, opts })
    }

    /// The `i`-th positional argument.
    pub fn pos(&self, i: usize, what: &str) -> Result<&str, Usage> {
        self.pos
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| Usage(format!("missing {what}")))
    }

    /// The value of `--name`, if given.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `--name`, required.
    pub fn req(&self, name: &str) -> Result<&str, Usage> {
        self.opt(name)
            .ok_or_else(|| Usage(format!("missing --{name}")))
    }

    /// `--name` parsed as a number, or `default`.
    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Usage> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| Usage(format!("--{name}: bad number {v:?}"))),
        }
    }

    /// `--timeout` in seconds (fractions allowed), default `default`.
    pub fn timeout(&self, default: f64) -> Result<Duration, Usage> {
        let s: f64 = self.num("timeout", default)?;
        if !(s > 0.0 && s < 86_400.0) {
            return Err(Usage(format!("--timeout: out of range {s}")));
        }
        Ok(Duration::from_secs_f64(s))
    }
}

/// Resolves `ADDR:PORT` (numeric) to a socket address.
pub fn sockaddr(s: &str) -> Result<SocketAddr, Usage> {
    s.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| Usage(format!("bad ADDR:PORT {s:?}")))
}

const USAGE: &str =
    "usage: pcx-guest natpmp-gw|natpmp-req|whoami-http|get|burst|bulk-recv|bulk-send|udp-send|dns-sink ... \
(see the source header, tests/guest-tools/src/main.rs)";

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match raw.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(Usage(m)) => {
            eprintln!("pcx-guest {cmd}: {m}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let r = match cmd {
        "natpmp-gw" => natpmp::run(&args),
        "natpmp-req" => natpmp::request(&args),
        "whoami-http" => http::whoami(&args),
        "get" => http::get(&args),
        "burst" => http::burst(&args),
        "bulk-recv" => bulk::recv(&args),
        "bulk-send" => bulk::send(&args),
        "udp-send" => bulk::udp_send(&args),
        "dns-sink" => dns::run(&args),
        _ => Err(Usage(format!("unknown subcommand {cmd:?}"))),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Usage(m)) => {
            eprintln!("pcx-guest {cmd}: {m}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
