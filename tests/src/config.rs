//! Building Portcullis config files (JSON) for tests, matching the topology's
//! interface names and addresses by default.

use std::fmt::Write;
use std::net::Ipv4Addr;

/// A whole config file. `Config::new()` is the topology's LAN/WAN with no forwards.
#[derive(Debug, Clone)]
pub struct Config {
    pub lan_interface: String,
    pub lan_subnets: Vec<String>,
    pub wan_interface: String,
    pub http_port: u16,
    pub forwards: Vec<Forward>,
    pub triggers: Vec<Trigger>,
    /// The `upnp` section as raw JSON (an object), left out when None (the default: off).
    pub upnp: Option<String>,
}

/// One port forward. Build with [`Forward::tcp`], [`Forward::udp`] or [`Forward::both`]
/// and the chained setters.
#[derive(Debug, Clone)]
pub struct Forward {
    pub name: String,
    pub protocol: &'static str,
    /// A port (`"8080"`) or a range (`"27015-27020"`).
    pub external_port: String,
    pub internal_host: Ipv4Addr,
    pub internal_port: Option<String>,
    pub allow_from: Vec<String>,
    /// (connections, per, burst)
    pub rate_limit: Option<(u32, &'static str, u32)>,
    pub log: bool,
    pub expires_at: Option<String>,
}

/// One port trigger.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub name: String,
    pub trigger_protocol: &'static str,
    pub trigger_port: String,
    pub open_protocol: &'static str,
    pub open_port: String,
    pub timeout_secs: u32,
}

/// A port spelled as JSON: a number for a single port, a string for a range.
fn port_json(p: &str) -> String {
    if p.contains('-') {
        format!("\"{p}\"")
    } else {
        p.to_owned()
    }
}

fn str_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("\"{s}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

impl Config {
    /// LAN `lan0` with 192.168.1.0/24, WAN `wan0`, web UI on port 80, nothing forwarded.
    pub fn new() -> Config {
        Config {
            lan_interface: "lan0".into(),
            lan_subnets: vec!["192.168.1.0/24".into()],
            wan_interface: "wan0".into(),
            http_port: 80,
            forwards: Vec::new(),
            triggers: Vec::new(),
            upnp: None,
        }
    }

    pub fn forward(mut self, f: Forward) -> Config {
        self.forwards.push(f);
        self
    }

    pub fn trigger(mut self, t: Trigger) -> Config {
        self.triggers.push(t);
        self
    }

    /// Sets the `upnp` section to `json` (an object, written as given).
    pub fn upnp(mut self, json: &str) -> Config {
        self.upnp = Some(json.to_owned());
        self
    }

    /// The config as the JSON text Portcullis reads (with a comment line, which the
    /// format allows).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        s.push_str("// written by the portcullis end-to-end tests\n");
        s.push_str("{\n  \"version\": 1,\n");
        let _ = writeln!(
            s,
            "  \"lan\": {{ \"interface\": \"{}\", \"subnets\": {} }},",
            self.lan_interface,
            str_list(&self.lan_subnets)
        );
        let _ = writeln!(
            s,
            "  \"wan\": {{ \"interface\": \"{}\" }},",
            self.wan_interface
        );
        let _ = writeln!(
            s,
            "  \"management\": {{ \"http_port\": {} }},",
            self.http_port
        );
        let forwards: Vec<String> = self.forwards.iter().map(Forward::to_json).collect();
        if let Some(u) = &self.upnp {
            let _ = writeln!(s, "  \"upnp\": {u},");
        }
        let _ = writeln!(s, "  \"forwards\": [\n{}\n  ],", forwards.join(",\n"));
        let triggers: Vec<String> = self.triggers.iter().map(Trigger::to_json).collect();
        let _ = writeln!(s, "  \"triggers\": [\n{}\n  ]", triggers.join(",\n"));
        s.push_str("}\n");
        s
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

impl Forward {
    fn new(name: &str, protocol: &'static str, external_port: &str, host: Ipv4Addr) -> Forward {
        Forward {
            name: name.into(),
            protocol,
            external_port: external_port.into(),
            internal_host: host,
            internal_port: None,
            allow_from: Vec::new(),
            rate_limit: None,
            log: false,
            expires_at: None,
        }
    }

    /// A TCP forward of `external_port` (a port or `"a-b"`) to `host`, same port.
    pub fn tcp(name: &str, external_port: &str, host: Ipv4Addr) -> Forward {
        Forward::new(name, "tcp", external_port, host)
    }

    /// A UDP forward.
    pub fn udp(name: &str, external_port: &str, host: Ipv4Addr) -> Forward {
        Forward::new(name, "udp", external_port, host)
    }

    /// A TCP and UDP forward.
    pub fn both(name: &str, external_port: &str, host: Ipv4Addr) -> Forward {
        Forward::new(name, "both", external_port, host)
    }

    pub fn to_port(mut self, internal_port: &str) -> Forward {
        self.internal_port = Some(internal_port.into());
        self
    }

    pub fn allow(mut self, sources: &[&str]) -> Forward {
        self.allow_from = sources.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// At most `connections` new connections `per` ("second", "minute", "hour") from
    /// one source, with `burst` extra.
    pub fn rate_limit(mut self, connections: u32, per: &'static str, burst: u32) -> Forward {
        self.rate_limit = Some((connections, per, burst));
        self
    }

    pub fn log(mut self) -> Forward {
        self.log = true;
        self
    }

    /// Expiry as an RFC 3339 time.
    pub fn expires_at(mut self, at: &str) -> Forward {
        self.expires_at = Some(at.into());
        self
    }

    fn to_json(&self) -> String {
        let mut s = format!(
            "    {{ \"name\": \"{}\", \"protocol\": \"{}\", \"external_port\": {}, \"internal_host\": \"{}\"",
            self.name,
            self.protocol,
            port_json(&self.external_port),
            self.internal_host
        );
        if let Some(p) = &self.internal_port {
            let _ = write!(s, ", \"internal_port\": {}", port_json(p));
        }
        if !self.allow_from.is_empty() {
            let _ = write!(s, ", \"allow_from\": {}", str_list(&self.allow_from));
        }
        if let Some((c, per, burst)) = self.rate_limit {
            let _ = write!(
                s,
                ", \"rate_limit\": {{ \"connections\": {c}, \"per\": \"{per}\", \"burst\": {burst} }}"
            );
        }
        if self.log {
            s.push_str(", \"log\": true");
        }
        if let Some(t) = &self.expires_at {
            let _ = write!(s, ", \"expires_at\": \"{t}\"");
        }
        s.push_str(" }");
        s
    }
}

impl Trigger {
    /// Outbound TCP to `trigger_port` opens inbound TCP `open_port` for `timeout_secs`.
    pub fn tcp(name: &str, trigger_port: &str, open_port: &str, timeout_secs: u32) -> Trigger {
        Trigger {
            name: name.into(),
            trigger_protocol: "tcp",
            trigger_port: trigger_port.into(),
            open_protocol: "tcp",
            open_port: open_port.into(),
            timeout_secs,
        }
    }

    fn to_json(&self) -> String {
        format!(
            "    {{ \"name\": \"{}\", \"trigger_protocol\": \"{}\", \"trigger_port\": {}, \"open_protocol\": \"{}\", \"open_port\": {}, \"timeout_secs\": {} }}",
            self.name,
            self.trigger_protocol,
            port_json(&self.trigger_port),
            self.open_protocol,
            port_json(&self.open_port),
            self.timeout_secs
        )
    }
}
