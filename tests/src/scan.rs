//! A full TCP port scan with nmap, run from inside a namespace.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::netns;

/// Open TCP ports of `target` seen from namespace `ns`: a SYN scan of 1-65535 with
/// aggressive timing (the path is a veth pair: nothing is lost, nothing is slow).
pub fn open_tcp_ports(ns: &str, target: Ipv4Addr) -> BTreeSet<u16> {
    let target = target.to_string();
    let out = netns::run_ok(netns::command(
        ns,
        "nmap",
        &[
            "-sS",
            "-p-",
            "-n",
            "-Pn",
            "-T5",
            "--min-rate",
            "20000",
            "--max-retries",
            "1",
            "--open",
            "-oG",
            "-",
            &target,
        ],
    ));
    parse_grepable(&out)
}

/// Open ports from nmap's grepable output (`-oG -`).
pub fn parse_grepable(text: &str) -> BTreeSet<u16> {
    let mut open = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("Host:")) {
        let Some((_, ports)) = line.split_once("Ports: ") else {
            continue;
        };
        let ports = ports.split('\t').next().unwrap_or("");
        for entry in ports.split(", ") {
            let mut f = entry.split('/');
            let (Some(port), Some(state)) = (f.next(), f.next()) else {
                continue;
            };
            if state == "open" {
                if let Ok(p) = port.trim().parse() {
                    open.insert(p);
                }
            }
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grepable_output() {
        let text = "# Nmap 7.93 scan initiated\nHost: 203.0.113.2 ()\tStatus: Up\nHost: 203.0.113.2 ()\tPorts: 8080/open/tcp//http-proxy///, 27015/open/tcp/////, 22/closed/tcp//ssh///\tIgnored State: filtered (65532)\n# Nmap done\n";
        assert_eq!(parse_grepable(text), BTreeSet::from([8080, 27015]));
    }
}
