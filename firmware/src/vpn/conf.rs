//! Import of the provider's WireGuard file, in `wg-quick(8)` format (`wg(8)`'s
//! `[Interface]`/`[Peer]` INI plus wg-quick's Address, DNS, MTU, Table, Pre/PostUp/Down,
//! SaveConfig).
//!
//! Section names and keys are case-insensitive, `#` starts a comment, `Key = Value` with
//! optional spaces. Repeated Address, DNS and AllowedIPs lines add up, as in wg-quick.
//! Exactly one `[Peer]`. Nothing in the file is ever run: Pre/PostUp/Down are noted and
//! ignored. The tunnel carries IPv4: IPv6 parts are dropped with one note.
//!
//! Every refusal names the line (1-based; 0 = the whole file) and the key.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};

use super::key::Key;
use super::secrets::Secrets;
use crate::config::{
    Ipv4Net, Vpn, VpnDevices, VpnPeer, DEFAULT_FWMARK, DEFAULT_INTERFACE, DEFAULT_MTU,
    DEFAULT_TABLE,
};

/// Largest file accepted, bytes (a provider's file is well under 1 KiB).
pub const MAX_LEN: usize = 64 * 1024;

/// What a provider's file gives: the `vpn` section (the owner's choices at their
/// defaults), the secrets (kept out of the config), and notes on what was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub vpn: Vpn,
    pub secrets: Secrets,
    /// One sentence per kind of ignored content, for the owner to read.
    pub notes: Vec<String>,
}

/// A refused file: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ConfError {
    /// 1-based line; 0 = the whole file (a missing key, a file too large).
    pub line: usize,
    /// The key (`PrivateKey`), or the section header (`[Peer]`); empty when none applies.
    pub key: String,
    pub reason: String,
}

impl ConfError {
    fn new(line: usize, key: &str, reason: impl Into<String>) -> ConfError {
        ConfError {
            line,
            key: shown(key),
            reason: reason.into(),
        }
    }

    /// `line 3, PrivateKey: not a WireGuard key (44 characters of base64)`.
    fn describe(&self) -> String {
        match (self.line, self.key.is_empty()) {
            (0, true) => self.reason.clone(),
            (0, false) => format!("{}: {}", self.key, self.reason),
            (n, true) => format!("line {n}: {}", self.reason),
            (n, false) => format!("line {n}, {}: {}", self.key, self.reason),
        }
    }
}

/// At most 40 characters of `s`, for messages.
fn shown(s: &str) -> String {
    s.chars().take(40).collect()
}

const NOT_A_KEY: &str = "not a WireGuard key (44 characters of base64)";
const IPV6_NOTE: &str =
    "IPv6 parts ignored: the tunnel carries IPv4; IPv6 of the devices that use it is blocked";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Interface,
    Peer,
}

/// Everything read so far; `Option<(value, line)>` for the keys whose absence is an error.
#[derive(Default)]
struct Acc {
    private_key: Option<Key>,
    address_line: usize,
    addresses: Vec<Ipv4Net>,
    dns: Vec<Ipv4Addr>,
    mtu: Option<u16>,
    listen_port: Option<u16>,
    fwmark: Option<u32>,
    table: Option<u32>,
    public_key: Option<Key>,
    preshared_key: Option<Key>,
    endpoint: Option<SocketAddrV4>,
    allowed_line: usize,
    allowed_ips: Vec<Ipv4Net>,
    persistent_keepalive: Option<u16>,
    ipv6: bool,
    notes: Vec<String>,
}

impl Acc {
    fn note(&mut self, s: String) {
        if !self.notes.contains(&s) {
            self.notes.push(s);
        }
    }
}

/// The resolver the firmware passes to [`parse`]: none. An Endpoint given as a host name
/// is refused with a message asking for the address: a resolver costs flash the mipsel
/// budget does not have (musl's getaddrinfo 38 KB, a minimal own A-record resolver 9 KB;
/// docs/decisions.md).
pub const NO_RESOLVER: fn(&str, u16) -> Option<SocketAddrV4> = |_, _| None;

/// Reads a provider's file. `resolve(host, port)` turns an Endpoint host name into an
/// address (the caller decides how: DNS on the router, or a fake in tests); `None` refuses
/// the file.
///
/// # Errors
/// The first problem, as [`ConfError`]: an unknown section or key, a key outside a section,
/// a malformed value, a second `[Peer]`, an IPv6 or unresolvable Endpoint, a missing
/// PrivateKey, Address, PublicKey, Endpoint or AllowedIPs (IPv4 ones), a file over 64 KiB.
pub fn parse(
    text: &str,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddrV4>,
) -> Result<Imported, ConfError> {
    if text.len() > MAX_LEN {
        return Err(ConfError::new(0, "", "the file is larger than 64 KiB"));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut acc = Acc::default();
    let mut section = Section::None;
    let mut peers = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(ConfError::new(n, line, "a section header ends with `]`"));
            };
            section = match name.trim().to_ascii_lowercase().as_str() {
                "interface" => Section::Interface,
                "peer" => {
                    peers += 1;
                    if peers > 1 {
                        return Err(ConfError::new(n, "[Peer]", "one peer is supported"));
                    }
                    Section::Peer
                }
                _ => {
                    return Err(ConfError::new(
                        n,
                        line,
                        "unknown section (expected [Interface] or [Peer])",
                    ))
                }
            };
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfError::new(n, line, "not `Key = Value`"));
        };
        let (key, value) = (key.trim(), value.trim());
        if section == Section::None {
            return Err(ConfError::new(
                n,
                key,
                "outside any section (put it under [Interface] or [Peer])",
            ));
        }
        entry(&mut acc, section, n, key, value, resolve)?;
    }
    finish(acc)
}

/// One `Key = Value` line of `section`.
fn entry(
    acc: &mut Acc,
    section: Section,
    n: usize,
    key: &str,
    value: &str,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddrV4>,
) -> Result<(), ConfError> {
    let lower = key.to_ascii_lowercase();
    let err = |canonical: &str, reason: &str| ConfError::new(n, canonical, reason);
    match (section, lower.as_str()) {
        (Section::Interface, "privatekey") => {
            acc.private_key =
                Some(Key::from_base64(value).ok_or_else(|| err("PrivateKey", NOT_A_KEY))?);
        }
        (Section::Interface, "address") => {
            acc.address_line = n;
            prefixes(acc, n, "Address", value, false)?;
        }
        (Section::Interface, "dns") => dns(acc, n, value)?,
        (Section::Interface, "mtu") => {
            acc.mtu = Some(
                value
                    .parse()
                    .map_err(|_| err("MTU", "not a number of bytes (576 to 9000)"))?,
            );
        }
        (Section::Interface, "listenport") => {
            let p: u16 = value
                .parse()
                .map_err(|_| err("ListenPort", "not a port number (0 to 65535)"))?;
            acc.listen_port = (p != 0).then_some(p);
        }
        (Section::Interface, "fwmark") => {
            let m = if value.eq_ignore_ascii_case("off") {
                0
            } else {
                number(value)
                    .ok_or_else(|| err("FwMark", "not a number (decimal or 0x hex) or off"))?
            };
            if m == 0 {
                acc.note(format!(
                    "FwMark off ignored: the tunnel needs a mark for its own packets ({DEFAULT_FWMARK} is used)"
                ));
            }
            acc.fwmark = (m != 0).then_some(m);
        }
        (Section::Interface, "table") => match value.parse::<u32>() {
            Ok(t) => acc.table = Some(t),
            Err(_) => {
                acc.table = None;
                acc.note(format!(
                    "Table = {} ignored: the tunnel's routes go to table {DEFAULT_TABLE}",
                    shown(value)
                ));
            }
        },
        (Section::Interface, "preup" | "postup" | "predown" | "postdown") => {
            let name = match lower.as_str() {
                "preup" => "PreUp",
                "postup" => "PostUp",
                "predown" => "PreDown",
                _ => "PostDown",
            };
            acc.note(format!("{name} ignored: Portcullis never runs commands"));
        }
        (Section::Interface, "saveconfig") => {
            acc.note("SaveConfig ignored: the file is imported once, never written back".into());
        }
        (Section::Peer, "publickey") => {
            acc.public_key =
                Some(Key::from_base64(value).ok_or_else(|| err("PublicKey", NOT_A_KEY))?);
        }
        (Section::Peer, "presharedkey") => {
            acc.preshared_key =
                Some(Key::from_base64(value).ok_or_else(|| err("PresharedKey", NOT_A_KEY))?);
        }
        (Section::Peer, "endpoint") => acc.endpoint = Some(endpoint(n, value, resolve)?),
        (Section::Peer, "allowedips") => {
            acc.allowed_line = n;
            prefixes(acc, n, "AllowedIPs", value, true)?;
        }
        (Section::Peer, "persistentkeepalive") => {
            acc.persistent_keepalive = if value.eq_ignore_ascii_case("off") {
                None
            } else {
                let s: u16 = value.parse().map_err(|_| {
                    err(
                        "PersistentKeepalive",
                        "not a number of seconds (0 to 65535) or off",
                    )
                })?;
                (s != 0).then_some(s)
            };
        }
        _ => {
            let within = if section == Section::Interface {
                "[Interface]"
            } else {
                "[Peer]"
            };
            return Err(ConfError::new(n, key, format!("unknown key in {within}")));
        }
    }
    Ok(())
}

/// A decimal or `0x` hexadecimal u32.
fn number(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Is `s` an IPv6 address or prefix (`fc00::1/128`)?
fn is_ipv6(s: &str) -> bool {
    let (a, len) = s.split_once('/').unwrap_or((s, "128"));
    a.parse::<Ipv6Addr>().is_ok() && len.parse::<u8>().is_ok_and(|l| l <= 128)
}

/// A comma list of prefixes (Address, AllowedIPs): IPv4 ones are kept, IPv6 ones noted.
fn prefixes(
    acc: &mut Acc,
    n: usize,
    key: &str,
    value: &str,
    allowed: bool,
) -> Result<(), ConfError> {
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item.contains(':') {
            if !is_ipv6(item) {
                return Err(ConfError::new(
                    n,
                    key,
                    format!("`{}` is not an IP address or prefix", shown(item)),
                ));
            }
            acc.ipv6 = true;
            continue;
        }
        let net: Ipv4Net = item
            .parse()
            .map_err(|e: String| ConfError::new(n, key, e))?;
        let list = if allowed {
            &mut acc.allowed_ips
        } else {
            &mut acc.addresses
        };
        if !list.contains(&net) {
            list.push(net);
        }
    }
    Ok(())
}

/// `DNS`: IPv4 resolvers kept, IPv6 ones noted, names are search domains (noted, ignored).
fn dns(acc: &mut Acc, n: usize, value: &str) -> Result<(), ConfError> {
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Ok(a) = item.parse::<Ipv4Addr>() {
            if !acc.dns.contains(&a) {
                acc.dns.push(a);
            }
        } else if item.parse::<Ipv6Addr>().is_ok() {
            acc.ipv6 = true;
        } else if is_host_name(item) {
            acc.note("DNS search domains ignored: names are not completed on the LAN".into());
        } else {
            return Err(ConfError::new(
                n,
                "DNS",
                format!("`{}` is neither an IP address nor a domain", shown(item)),
            ));
        }
    }
    Ok(())
}

/// Letters, digits, `-` and `.`, 1 to 253 characters, not all digits and dots.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && s.bytes().any(|b| b.is_ascii_alphabetic() || b == b'-')
}

/// `Endpoint`: `a.b.c.d:port` or `host:port` (resolved); IPv6 is refused.
fn endpoint(
    n: usize,
    value: &str,
    resolve: &dyn Fn(&str, u16) -> Option<SocketAddrV4>,
) -> Result<SocketAddrV4, ConfError> {
    let err = |reason: String| ConfError::new(n, "Endpoint", reason);
    if value.starts_with('[') || value.matches(':').count() > 1 {
        return Err(err("IPv6 endpoints are not supported yet".into()));
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(err(format!(
            "`{}` is not host:port (e.g. 203.0.113.5:51820)",
            shown(value)
        )));
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 => p,
        _ => {
            return Err(err(format!(
                "`{}` is not a UDP port (1 to 65535)",
                shown(port)
            )))
        }
    };
    if let Ok(a) = host.parse::<Ipv4Addr>() {
        return Ok(SocketAddrV4::new(a, port));
    }
    if !is_host_name(host) {
        return Err(err(format!(
            "`{}` is not an IPv4 address or host name",
            shown(host)
        )));
    }
    resolve(host, port).ok_or_else(|| {
        err(format!(
            "`{}` is a host name; give the server's IPv4 address instead (`nslookup {}` prints it)",
            shown(host),
            shown(host)
        ))
    })
}

/// The checks that need the whole file, and the result.
fn finish(acc: Acc) -> Result<Imported, ConfError> {
    let Acc {
        private_key,
        address_line,
        addresses,
        dns,
        mtu,
        listen_port,
        fwmark,
        table,
        public_key,
        preshared_key,
        endpoint,
        allowed_line,
        allowed_ips,
        persistent_keepalive,
        ipv6,
        mut notes,
    } = acc;
    let missing = |key: &str| ConfError::new(0, key, "missing");
    let private_key = private_key.ok_or_else(|| missing("PrivateKey"))?;
    if addresses.is_empty() {
        return Err(match address_line {
            0 => missing("Address"),
            n => ConfError::new(n, "Address", "no IPv4 address (the tunnel carries IPv4)"),
        });
    }
    let public_key = public_key.ok_or_else(|| missing("PublicKey"))?;
    let endpoint = endpoint.ok_or_else(|| missing("Endpoint"))?;
    if allowed_ips.is_empty() {
        return Err(match allowed_line {
            0 => missing("AllowedIPs"),
            n => ConfError::new(n, "AllowedIPs", "no IPv4 prefix (the tunnel carries IPv4)"),
        });
    }
    if ipv6 {
        notes.insert(0, IPV6_NOTE.to_string());
    }
    Ok(Imported {
        vpn: Vpn {
            enabled: true,
            interface: DEFAULT_INTERFACE.to_string(),
            addresses,
            dns,
            mtu: mtu.unwrap_or(DEFAULT_MTU),
            listen_port,
            fwmark: fwmark.unwrap_or(DEFAULT_FWMARK),
            table: table.unwrap_or(DEFAULT_TABLE),
            peer: VpnPeer {
                public_key: public_key.to_base64(),
                endpoint,
                allowed_ips,
                persistent_keepalive,
            },
            devices: VpnDevices::default(),
            kill_switch: true,
            port_forward: None,
        },
        secrets: Secrets {
            private_key,
            preshared_key,
        },
        notes,
    })
}

/// The section after importing a new file over `old`: the provider's part (addresses,
/// DNS, MTU, listen port, peer) from `imported`; the owner's choices (interface, fwmark,
/// table, devices, kill switch, port forwarding) kept from `old` when there is one; enabled.
pub fn merge(old: Option<&Vpn>, imported: Vpn) -> Vpn {
    let Some(old) = old else {
        return Vpn {
            enabled: true,
            ..imported
        };
    };
    Vpn {
        enabled: true,
        interface: old.interface.clone(),
        fwmark: old.fwmark,
        table: old.table,
        devices: old.devices.clone(),
        kill_switch: old.kill_switch,
        port_forward: old.port_forward.clone(),
        ..imported
    }
}

#[cfg(test)]
#[path = "conf_tests.rs"]
mod tests;
