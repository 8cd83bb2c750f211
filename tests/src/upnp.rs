//! Helpers for the port-mapping tests (issue 8): Debian's UPnP and NAT-PMP clients run in
//! a namespace, a minimal SOAP client for what upnpc cannot send (floods, bad input), the
//! `upnp` config section, a targeted TCP+UDP nmap scan and a process's resident memory.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use crate::cli::{Cli, Daemon};
use crate::clients;
use crate::netns;
use crate::poll;
use crate::scan::parse_grepable;
use crate::topology::{Topology, ROUTER_LAN};
use crate::Config;

/// The ports a port-mapping server may listen on: SSDP (udp), SOAP (tcp), NAT-PMP/PCP (udp).
pub const SSDP_PORT: u16 = 1900;
pub const SOAP_PORT: u16 = 5000;
pub const PMP_PORT: u16 = 5351;

/// The programs these tests drive and the Debian package of each.
const TOOLS: &[(&str, &str)] = &[
    ("upnpc", "miniupnpc"),
    ("natpmpc", "natpmpc"),
    ("nmap", "nmap"),
    ("timeout", "coreutils"),
];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| d.join(program).is_file())
            || ["/usr/sbin", "/sbin"]
                .iter()
                .any(|d| std::path::Path::new(d).join(program).is_file())
    })
}

/// Panics naming the Debian packages to install (`make deps`) unless every client
/// program is present: a missing tool must fail the suite, not skip it silently.
pub fn require_tools() {
    crate::topology::require_root();
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(p, _)| !on_path(p))
        .map(|(p, pkg)| format!("{p} (package {pkg})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the port-mapping tests need {}: run `make deps`",
        missing.join(", ")
    );
}

/// Panics unless Debian's miniupnpd (package miniupnpd-nftables) is installed.
pub fn require_miniupnpd() {
    assert!(
        on_path("miniupnpd"),
        "the port-mapping bench needs miniupnpd (package miniupnpd-nftables): run `make deps`"
    );
}

/// The upnp section `{"mode": MODE, "allow": [RULES...]}` (rules as JSON objects).
pub fn section(mode: &str, rules: &[&str]) -> String {
    format!(r#"{{"mode": "{mode}", "allow": [{}]}}"#, rules.join(", "))
}

/// The rule most tests use: the LAN host may map 50000-50100, TCP and UDP.
pub const RULE_LAN_HOST: &str =
    r#"{"hosts": ["192.168.1.10/32"], "external_ports": "50000-50100", "protocol": "both"}"#;

/// What a client program printed.
#[derive(Debug)]
pub struct Out {
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    pub fn story(&self) -> String {
        format!(
            "`{}` exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// stdout and stderr together, for matching a message wherever the tool put it.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `program args...` in `ns` under `timeout(1)`, killed after `secs`: natpmpc
/// retries for two minutes when nobody answers and upnpc waits for SSDP answers.
pub fn run_tool(ns: &str, secs: u32, program: &str, args: &[&str]) -> Out {
    let secs = secs.to_string();
    let mut full = vec!["-s", "KILL", secs.as_str(), program];
    full.extend_from_slice(args);
    let o = netns::output(netns::command(ns, "timeout", &full));
    Out {
        command: format!("{program} {}", args.join(" ")),
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `upnpc ARGS` in `ns` (discovery included; bounded at 20 s).
pub fn upnpc(ns: &str, args: &[&str]) -> Out {
    run_tool(ns, 20, "upnpc", args)
}

/// True when upnpc reported the mapping as made (`... is redirected to internal ...`).
pub fn upnpc_mapped(o: &Out) -> bool {
    o.stdout.contains("is redirected to internal")
}

/// `natpmpc -g GATEWAY ARGS` in `ns` (bounded at 6 s: long enough for three retries).
pub fn natpmpc(ns: &str, gateway: Ipv4Addr, args: &[&str]) -> Out {
    let g = gateway.to_string();
    let mut full = vec!["-g", g.as_str()];
    full.extend_from_slice(args);
    run_tool(ns, 6, "natpmpc", &full)
}

/// The lifetime natpmpc reports for a mapping (`Mapped public port P ... liftime N`,
/// natpmpc's own spelling), if it got one.
pub fn natpmpc_lifetime(o: &Out) -> Option<u32> {
    let line = o
        .stdout
        .lines()
        .find(|l| l.starts_with("Mapped public port"))?;
    line.split_whitespace().last()?.parse().ok()
}

/// Open TCP and UDP ports among `ports` of `target` seen from `ns` (nmap `-sS -sU`; a UDP
/// port counts as open only if something answered, not on `open|filtered`).
pub fn open_ports(ns: &str, target: Ipv4Addr, ports: &[u16]) -> Vec<String> {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    let list = list.join(",");
    let target = target.to_string();
    let mut found = Vec::new();
    for (kind, flag) in [("tcp", "-sS"), ("udp", "-sU")] {
        let args = [
            flag,
            "-p",
            &list,
            "-n",
            "-Pn",
            "--open",
            "-oG",
            "-",
            "-T4",
            "--max-retries",
            "2",
            &target,
        ];
        let out = netns::run_ok(netns::command(ns, "nmap", &args));
        found.extend(
            parse_grepable(&out)
                .into_iter()
                .map(|p| format!("{p}/{kind}")),
        );
    }
    found
}

/// Resident memory of process `pid` in KiB (VmRSS in /proc/PID/status).
pub fn rss_kib(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// One HTTP/1.1 exchange on a fresh connection from the current thread's namespace
/// (as upnpc does: one connection per request). Returns (status, whole response text).
pub fn http_here(
    dst: SocketAddrV4,
    head: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, String), String> {
    let mut s = clients::connect_here(None, dst, timeout).map_err(|e| format!("{dst}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body))
        .map_err(|e| format!("send to {dst}: {e}"))?;
    let mut raw = Vec::new();
    // A server that closes early (body too large) may reset the connection: keep what came.
    let _ = s.take(1 << 20).read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP answer from {dst}: {text:?}"))?;
    Ok((status, text))
}

/// The WANIPConnection control URL's path in a root description (`<controlURL>` of the
/// service whose type names WANIPConnection).
pub fn control_path(root_desc: &str) -> Option<String> {
    service_url(root_desc, "controlURL")
}

/// The path of URL element `tag` (`controlURL`, `eventSubURL`) of WANIPConnection.
pub fn service_url(root_desc: &str, tag: &str) -> Option<String> {
    let at = root_desc.find("service:WANIPConnection:")?;
    let rest = &root_desc[at..];
    let open = format!("<{tag}>");
    let start = rest.find(&open)? + open.len();
    let end = rest[start..].find(&format!("</{tag}>"))? + start;
    let url = rest[start..end].trim();
    // Absolute URLs happen too: keep only the path.
    let path = match url.split_once("://") {
        Some((_, after)) => after.find('/').map_or("/", |i| &after[i..]),
        None => url,
    };
    Some(path.to_owned())
}

/// The service type of that WANIPConnection (`...:1` or `...:2`), for the SOAPAction.
pub fn service_type(root_desc: &str) -> String {
    let at = root_desc
        .find("urn:schemas-upnp-org:service:WANIPConnection:")
        .unwrap_or(0);
    let v = root_desc[at..]
        .chars()
        .nth("urn:schemas-upnp-org:service:WANIPConnection:".len())
        .unwrap_or('1');
    format!("urn:schemas-upnp-org:service:WANIPConnection:{v}")
}

/// A SOAP client of one IGD, for requests upnpc cannot make.
#[derive(Debug, Clone)]
pub struct Soap {
    pub addr: SocketAddrV4,
    pub control: String,
    /// The eventing (SUBSCRIBE) path, if the description has one.
    pub event: Option<String>,
    pub service: String,
}

impl Soap {
    /// Fetches `/rootDesc.xml` from `addr` (in the current thread's namespace) and finds
    /// the control URL.
    pub fn discover_here(addr: SocketAddrV4) -> Result<Soap, String> {
        let head =
            format!("GET /rootDesc.xml HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let (status, text) = http_here(addr, &head, b"", clients::TIMEOUT * 4)?;
        if status != 200 {
            return Err(format!("rootDesc.xml: HTTP {status}: {text}"));
        }
        let control = control_path(&text).ok_or_else(|| format!("no controlURL in {text}"))?;
        Ok(Soap {
            addr,
            control,
            event: service_url(&text, "eventSubURL"),
            service: service_type(&text),
        })
    }

    /// POSTs `body` with `SOAPAction: "<service>#<action>"`; returns (status, response).
    pub fn call_raw(&self, action: &str, body: &[u8]) -> Result<(u16, String), String> {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
             SOAPAction: \"{}#{action}\"\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            self.control,
            self.addr,
            self.service,
            body.len()
        );
        http_here(self.addr, &head, body, clients::TIMEOUT * 4)
    }

    /// The envelope of `action` with `args` (name, value), as upnpc writes it.
    pub fn envelope(&self, action: &str, args: &[(&str, String)]) -> String {
        let args: String = args
            .iter()
            .map(|(n, v)| format!("<{n}>{v}</{n}>"))
            .collect();
        format!(
            "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
             s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
             <u:{action} xmlns:u=\"{}\">{args}</u:{action}></s:Body></s:Envelope>\r\n",
            self.service
        )
    }

    /// AddPortMapping of `external` to `internal_client:internal`; Ok(status, response).
    pub fn add_port_mapping(
        &self,
        external: u16,
        proto: &str,
        internal: u16,
        internal_client: Ipv4Addr,
        lease: u32,
    ) -> Result<(u16, String), String> {
        let body = self.envelope(
            "AddPortMapping",
            &[
                ("NewRemoteHost", String::new()),
                ("NewExternalPort", external.to_string()),
                ("NewProtocol", proto.to_owned()),
                ("NewInternalPort", internal.to_string()),
                ("NewInternalClient", internal_client.to_string()),
                ("NewEnabled", "1".to_owned()),
                ("NewPortMappingDescription", "bench".to_owned()),
                ("NewLeaseDuration", lease.to_string()),
            ],
        );
        self.call_raw("AddPortMapping", body.as_bytes())
    }

    /// GetExternalIPAddress: the cheapest valid request, to ask "do you still answer?".
    pub fn external_ip(&self) -> Result<(u16, String), String> {
        let body = self.envelope("GetExternalIPAddress", &[]);
        self.call_raw("GetExternalIPAddress", body.as_bytes())
    }
}

/// Saves `cfg`, starts `serve` and waits until its control socket answers `status`.
pub fn serve(cli: &Cli, cfg: &Config) -> Daemon {
    std::fs::write(&cli.saved, cfg.to_json()).expect("write the saved config");
    cli.serve_until(Duration::from_secs(10), || {
        cli.dir.join("control.sock").exists() && cli.status(false).code == Some(0)
    })
}

/// Waits until the SOAP server answers on the router's LAN address (seen from the LAN
/// host) and returns its description; panics with the daemon's logs otherwise.
pub fn soap_ready(t: &Topology, daemon: &Daemon) -> Soap {
    poll::until(Duration::from_secs(10), || {
        netns::run_in(&t.lan, || {
            Soap::discover_here(SocketAddrV4::new(ROUTER_LAN, SOAP_PORT)).ok()
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no IGD description on {ROUTER_LAN}:{SOAP_PORT}\nlistening:\n{}\n{}",
            listening(&t.router),
            daemon.logs()
        )
    })
}

/// Waits until NAT-PMP answers an external-address request on the LAN address.
pub fn pmp_ready(t: &Topology, daemon: &Daemon) {
    let ok = poll::until_true(Duration::from_secs(10), || {
        natpmpc(&t.lan, ROUTER_LAN, &[])
            .stdout
            .contains("Public IP address")
    });
    assert!(
        ok,
        "NAT-PMP never answered\nlistening:\n{}\n{}",
        listening(&t.router),
        daemon.logs()
    );
}

/// `ss -lntu` of namespace `ns`: every listening socket, for failure messages.
pub fn listening(ns: &str) -> String {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, "ss", "-lntup"]);
    String::from_utf8_lossy(&netns::output(c).stdout).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_control_url_of_wanipconnection() {
        let desc = "<root><service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType><controlURL>/ctl/L3F</controlURL></service>\
            <service><serviceType>urn:schemas-upnp-org:service:WANIPConnection:2</serviceType><controlURL>http://192.168.1.1:5000/ctl/IPConn</controlURL></service></root>";
        assert_eq!(control_path(desc).as_deref(), Some("/ctl/IPConn"));
        assert_eq!(
            service_type(desc),
            "urn:schemas-upnp-org:service:WANIPConnection:2"
        );
    }

    #[test]
    fn reads_natpmpc_lifetime() {
        let o = Out {
            command: String::new(),
            code: Some(0),
            stdout: "Mapped public port 50001 protocol UDP to local port 50001 liftime 60\n".into(),
            stderr: String::new(),
        };
        assert_eq!(natpmpc_lifetime(&o), Some(60));
    }
}
