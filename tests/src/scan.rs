//! A full TCP port scan with nmap, run from inside a namespace.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::netns;

/// Open TCP ports of `target` seen from namespace `ns`.
///
/// First a SYN scan of 1-65535 at a forced high rate, one retry (the path is a veth
/// pair; through a router that drops unsolicited traffic this takes about 3 s: two
/// probes for every filtered port at 50000 packets/s). On a loaded machine a fast scan can lose answers (nmap's capture buffer
/// overflows when it is starved of CPU), so every port in `recheck` (list the ports you
/// expect open and those where something listens that must not be reachable) and every
/// port the fast scan found is then scanned again, slowly and with retries; a port counts
/// as open if either scan saw it open. A port the fast scan missed and that is not in
/// `recheck` can still go unnoticed on a very busy machine; on an idle one it cannot.
pub fn open_tcp_ports(ns: &str, target: Ipv4Addr, recheck: &[u16]) -> BTreeSet<u16> {
    let mut open = nmap(
        ns,
        target,
        "1-65535",
        &["-T5", "--min-rate", "50000", "--max-retries", "1"],
    );
    let recheck: BTreeSet<u16> = open.iter().chain(recheck).copied().collect();
    if !recheck.is_empty() {
        let list: Vec<String> = recheck.iter().map(u16::to_string).collect();
        open.extend(nmap(
            ns,
            target,
            &list.join(","),
            &["-T4", "--max-retries", "3"],
        ));
    }
    open
}

fn nmap(ns: &str, target: Ipv4Addr, ports: &str, timing: &[&str]) -> BTreeSet<u16> {
    let target = target.to_string();
    let mut args = vec!["-sS", "-p", ports, "-n", "-Pn", "--open", "-oG", "-"];
    args.extend_from_slice(timing);
    args.push(&target);
    let started = std::time::Instant::now();
    let out = netns::run_ok(netns::command(ns, "nmap", &args));
    let open = parse_grepable(&out);
    eprintln!(
        "nmap {target} ports {} {}: open {open:?} in {:.1?}",
        if ports.len() > 40 {
            &ports[..40]
        } else {
            ports
        },
        timing.join(" "),
        started.elapsed()
    );
    open
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
