//! What is open right now, per forward and trigger: computed from the saved config and a
//! view of what the kernel holds (counters, element expirations, trigger hosts).
//!
//! Pure, so the logic is unit-tested; the daemon and CLI fill [`KernelView`] from a
//! read-back of the table.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::Serialize;

use crate::config::{Config, Protocol, Timestamp};
use crate::names;

/// The facts status needs from the kernel, keyed by planner names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelView {
    /// Whether our table exists at all.
    pub table_present: bool,
    /// Named counters: (packets, bytes).
    pub counters: HashMap<String, (u64, u64)>,
    /// Installed forwards (by counter name, `fwd_NAME`) and triggers (by inbound chain,
    /// `trg_NAME_in`), with the remaining time of expiring ones (None: no timeout).
    pub installed: HashMap<String, Option<Duration>>,
    /// Trigger maps holding a host: map name → (host, remaining time).
    pub trigger_hosts: HashMap<String, (Ipv4Addr, Option<Duration>)>,
    /// Ports the kernel dispatches, by the same keys as `installed`: (protocol number,
    /// first port, last port). Lets status describe what is installed but not configured.
    pub ports: HashMap<String, Vec<(u8, u16, u16)>>,
}

/// State of one forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardState {
    /// In the kernel and forwarding.
    Active,
    Disabled,
    /// Its expiry passed (the kernel dropped it; the daemon removes it from the config).
    Expired,
    /// Configured and enabled but not in the kernel: the saved config was not applied.
    NotInstalled,
    /// Disabled or expired in the config, but the kernel still forwards it (the config
    /// was not applied yet).
    StillInstalled,
    /// In the kernel but not in the config at all: it still passes traffic.
    NotInConfig,
}

/// One row of `portcullis status` for a forward.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardStatus {
    pub name: String,
    pub state: ForwardState,
    pub protocol: Protocol,
    pub external_port: String,
    pub destination: String,
    /// Allowed sources; empty means anyone.
    pub allow_from: Vec<String>,
    /// New connections that passed the allow-list and rate limit.
    pub hits_packets: u64,
    pub hits_bytes: u64,
    /// Seconds until the kernel closes it, for expiring forwards.
    pub remaining_secs: Option<u64>,
}

/// State of one trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerState {
    /// Open to a LAN host.
    Open,
    /// Waiting for outbound trigger traffic.
    Armed,
    Disabled,
    NotInstalled,
    /// Disabled in the config but still in the kernel.
    StillInstalled,
    /// In the kernel but not in the config at all.
    NotInConfig,
}

/// One row of `portcullis status` for a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TriggerStatus {
    pub name: String,
    pub state: TriggerState,
    pub open_protocol: Protocol,
    pub open_port: String,
    /// The LAN host the ports are open to.
    pub host: Option<Ipv4Addr>,
    /// Inbound connection attempts on the open ports.
    pub hits_packets: u64,
    pub remaining_secs: Option<u64>,
}

/// Packets the datapath refused on purpose, from its named counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Drops {
    /// Packets of open connections the intent no longer allows (a forward removed,
    /// disabled, narrowed, re-pointed or expired; a trigger timed out).
    pub flows_cut: u64,
    /// New connections a rate limit refused (over the rate, or the meter full).
    pub rate_limited: u64,
}

/// The whole status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub table_present: bool,
    pub forwards: Vec<ForwardStatus>,
    pub triggers: Vec<TriggerStatus>,
    pub drops: Drops,
}

/// Computes status at `now`.
pub fn compute(cfg: &Config, k: &KernelView, now: Timestamp) -> Status {
    let forwards = cfg
        .forwards
        .iter()
        .map(|f| {
            let installed = k.installed.get(&names::forward_counter(&f.name));
            let state = if !f.enabled || f.expires_at.is_some_and(|t| t <= now) {
                if installed.is_some() {
                    ForwardState::StillInstalled
                } else if f.enabled {
                    ForwardState::Expired
                } else {
                    ForwardState::Disabled
                }
            } else if installed.is_some() {
                ForwardState::Active
            } else {
                ForwardState::NotInstalled
            };
            let (p, b) = k
                .counters
                .get(&names::forward_counter(&f.name))
                .copied()
                .unwrap_or_default();
            let remaining = match (state, installed) {
                (ForwardState::Active | ForwardState::StillInstalled, Some(Some(d))) => {
                    Some(d.as_secs())
                }
                (ForwardState::Active, _) => f.expires_at.map(|t| t.0.saturating_sub(now.0)),
                _ => None,
            };
            let int = f.internal_range();
            ForwardStatus {
                name: f.name.clone(),
                state,
                protocol: f.protocol,
                external_port: f.external_port.to_string(),
                destination: format!("{}:{int}", cfg.forward_host(f)),
                allow_from: f.allow_from.iter().map(ToString::to_string).collect(),
                hits_packets: p,
                hits_bytes: b,
                remaining_secs: remaining,
            }
        })
        .collect::<Vec<_>>();
    let mut forwards = forwards;
    forwards.extend(unconfigured_forwards(cfg, k));
    let triggers = cfg
        .triggers
        .iter()
        .map(|t| {
            let map = names::trigger_map(&t.name);
            let installed = k.installed.contains_key(&names::trigger_in_chain(&t.name));
            let held = k.trigger_hosts.get(&map);
            let state = match (t.enabled, installed, held) {
                (false, true, _) => TriggerState::StillInstalled,
                (false, false, _) => TriggerState::Disabled,
                (true, false, _) => TriggerState::NotInstalled,
                (true, true, Some(_)) => TriggerState::Open,
                (true, true, None) => TriggerState::Armed,
            };
            TriggerStatus {
                name: t.name.clone(),
                state,
                open_protocol: t.open_protocol,
                open_port: t.open_port.to_string(),
                host: held.map(|h| h.0),
                hits_packets: k.counters.get(&map).map(|c| c.0).unwrap_or_default(),
                remaining_secs: held.and_then(|h| h.1).map(|d| d.as_secs()),
            }
        })
        .collect::<Vec<_>>();
    let mut triggers = triggers;
    triggers.extend(unconfigured_triggers(cfg, k));
    let packets = |name: &str| k.counters.get(name).map(|c| c.0).unwrap_or_default();
    Status {
        table_present: k.table_present,
        forwards,
        triggers,
        drops: Drops {
            flows_cut: packets(names::FLOWS_CUT),
            rate_limited: packets(names::RATE_LIMITED),
        },
    }
}

/// Protocol and port text of what the kernel dispatches under `key`.
fn kernel_ports(k: &KernelView, key: &str) -> (Protocol, String) {
    let ports = k.ports.get(key).map(Vec::as_slice).unwrap_or_default();
    let tcp = ports.iter().any(|p| p.0 == names::TCP);
    let udp = ports.iter().any(|p| p.0 == names::UDP);
    let protocol = match (tcp, udp) {
        (true, true) => Protocol::Both,
        (false, true) => Protocol::Udp,
        _ => Protocol::Tcp,
    };
    let text = match ports.first() {
        None => "?".to_string(),
        Some((_, a, b)) if a == b => a.to_string(),
        Some((_, a, b)) => format!("{a}-{b}"),
    };
    (protocol, text)
}

/// Forwards the kernel holds that the config does not name: they still pass traffic, so
/// status shows them rather than hiding them until the daemon reconciles.
fn unconfigured_forwards(cfg: &Config, k: &KernelView) -> Vec<ForwardStatus> {
    let mut extra: Vec<ForwardStatus> = k
        .installed
        .iter()
        .filter_map(|(key, left)| {
            let name = names::forward_of_counter(key)?;
            if cfg.forwards.iter().any(|f| f.name == name) {
                return None;
            }
            let (protocol, external_port) = kernel_ports(k, key);
            let (p, b) = k.counters.get(key).copied().unwrap_or_default();
            Some(ForwardStatus {
                name: name.to_string(),
                state: ForwardState::NotInConfig,
                protocol,
                external_port,
                destination: "?".into(),
                allow_from: Vec::new(),
                hits_packets: p,
                hits_bytes: b,
                remaining_secs: left.map(|d| d.as_secs()),
            })
        })
        .collect();
    extra.sort_by(|a, b| a.name.cmp(&b.name));
    extra
}

/// Triggers the kernel holds that the config does not name.
fn unconfigured_triggers(cfg: &Config, k: &KernelView) -> Vec<TriggerStatus> {
    let mut extra: Vec<TriggerStatus> = k
        .installed
        .keys()
        .filter_map(|chain| {
            let name = names::trigger_of_in_chain(chain)?;
            if cfg.triggers.iter().any(|t| t.name == name) {
                return None;
            }
            let map = names::trigger_map(name);
            let held = k.trigger_hosts.get(&map);
            let (open_protocol, open_port) = kernel_ports(k, chain);
            Some(TriggerStatus {
                name: name.to_string(),
                state: TriggerState::NotInConfig,
                open_protocol,
                open_port,
                host: held.map(|h| h.0),
                hits_packets: k.counters.get(&map).map(|c| c.0).unwrap_or_default(),
                remaining_secs: held.and_then(|h| h.1).map(|d| d.as_secs()),
            })
        })
        .collect();
    extra.sort_by(|a, b| a.name.cmp(&b.name));
    extra
}

/// Human-readable table for the CLI.
pub fn render_text(s: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if !s.table_present {
        out.push_str("warning: no portcullis table in the kernel (nothing applied yet?)\n");
    }
    let _ = writeln!(
        out,
        "{:<24} {:<15} {:<8} {:<12} {:<24} {:>8} {:>10} {:>13}  FROM",
        "FORWARD", "STATE", "PROTO", "PORT", "TO", "HITS", "BYTES", "LEFT"
    );
    for f in &s.forwards {
        let from = if f.allow_from.is_empty() {
            "anyone".to_string()
        } else {
            f.allow_from.join(",")
        };
        let _ = writeln!(
            out,
            "{:<24} {:<15} {:<8} {:<12} {:<24} {:>8} {:>10} {:>13}  {from}",
            f.name,
            state_name(&f.state),
            f.protocol.to_string(),
            f.external_port,
            f.destination,
            f.hits_packets,
            f.hits_bytes,
            left(f.remaining_secs),
        );
    }
    let _ = writeln!(
        out,
        "\n{:<24} {:<15} {:<8} {:<12} {:<24} {:>8} {:>13}",
        "TRIGGER", "STATE", "PROTO", "OPEN PORT", "HOST", "HITS", "LEFT"
    );
    for t in &s.triggers {
        let _ = writeln!(
            out,
            "{:<24} {:<15} {:<8} {:<12} {:<24} {:>8} {:>13}",
            t.name,
            state_name(&t.state),
            t.open_protocol.to_string(),
            t.open_port,
            t.host.map(|h| h.to_string()).unwrap_or_else(|| "-".into()),
            t.hits_packets,
            left(t.remaining_secs),
        );
    }
    let _ = writeln!(
        out,
        "\ndropped: {} packets of connections no longer allowed, {} new connections over a rate limit",
        s.drops.flows_cut, s.drops.rate_limited
    );
    out
}

/// The port mappings LAN devices made (UPnP IGD, NAT-PMP, PCP) for the CLI, one line each:
/// `upnp    tcp 50000 → 192.168.1.10:50000  host aa:bb:cc:dd:ee:ff 'game'  expires in 9m58s`.
/// Descriptions are the clients' own words: control characters are replaced, so a
/// description cannot move the terminal's cursor or rewrite other lines.
pub fn render_mappings(mappings: &[crate::portmap::Mapping], now: Timestamp) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("\nPORT MAPPINGS (made by LAN devices with UPnP, NAT-PMP or PCP)\n");
    if mappings.is_empty() {
        out.push_str("none\n");
    }
    for m in mappings {
        let host = m
            .mac
            .map_or_else(|| "unknown".to_string(), |mac| mac.to_string());
        let description: String = m
            .description
            .chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect();
        let _ = write!(
            out,
            "{:<7} {} {} → {}:{}  host {host} '{description}'  expires in {}",
            m.via.as_str(),
            m.proto.as_str(),
            m.external_port,
            m.client,
            m.internal_port,
            crate::render::duration(Duration::from_secs(m.secs_left(now))),
        );
        if let Some(r) = m.remote_host {
            let _ = write!(out, "  only from {r}");
        }
        out.push('\n');
    }
    out
}

/// A state as the JSON spells it (`not_in_config`).
fn state_name(state: &impl Serialize) -> String {
    serde_json::to_value(state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn left(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) => crate::render::duration(Duration::from_secs(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_render_one_line_each_without_control_characters() {
        use crate::portmap::{Mapping, Proto, Via};
        let m = Mapping {
            via: Via::Upnp,
            client: Ipv4Addr::new(192, 168, 1, 10),
            mac: "aa:bb:cc:dd:ee:ff".parse().ok(),
            proto: Proto::Tcp,
            external_port: 50000,
            internal_port: 50000,
            remote_host: None,
            description: "game\x1b[2Jx".into(),
            nonce: None,
            created_at: Timestamp(0),
            expires_at: Timestamp(1000),
        };
        let natpmp = Mapping {
            via: Via::Natpmp,
            mac: None,
            proto: Proto::Udp,
            remote_host: Some(Ipv4Addr::new(203, 0, 113, 7)),
            description: String::new(),
            ..m.clone()
        };
        let text = render_mappings(&[m, natpmp], Timestamp(402));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "upnp    tcp 50000 → 192.168.1.10:50000  host aa:bb:cc:dd:ee:ff \
             'game\u{fffd}[2Jx'  expires in 9m58s"
        );
        assert_eq!(
            lines[3],
            "natpmp  udp 50000 → 192.168.1.10:50000  host unknown ''  expires in 9m58s  \
             only from 203.0.113.7"
        );
        assert!(render_mappings(&[], Timestamp(0)).ends_with("none\n"));
    }

    #[test]
    fn states_follow_config_and_kernel() {
        let mut cfg = Config::parse(include_str!("../examples/home.json")).unwrap();
        cfg.forwards[1].enabled = false;
        let now = Timestamp(1_795_888_800);
        let mut k = KernelView {
            table_present: true,
            ..KernelView::default()
        };
        k.installed.insert("fwd_web".into(), None);
        k.installed
            .insert("fwd_friend-ssh".into(), Some(Duration::from_secs(90)));
        k.installed.insert("trg_irc-ident_in".into(), None);
        k.counters.insert("fwd_web".into(), (3, 180));
        k.counters.insert("flows_cut".into(), (12, 900));
        k.trigger_hosts.insert(
            "trg_irc-ident".into(),
            (
                "192.168.1.10".parse().unwrap(),
                Some(Duration::from_secs(42)),
            ),
        );
        let s = compute(&cfg, &k, now);
        assert_eq!(s.forwards[0].state, ForwardState::Active);
        assert_eq!(
            (s.forwards[0].hits_packets, s.forwards[0].hits_bytes),
            (3, 180)
        );
        assert_eq!(s.forwards[1].state, ForwardState::Disabled);
        assert_eq!(s.drops.flows_cut, 12);
        assert_eq!(s.forwards[2].remaining_secs, Some(90));
        assert_eq!(s.triggers[0].state, TriggerState::Open);
        assert_eq!(s.triggers[0].remaining_secs, Some(42));
        let text = render_text(&s);
        assert!(
            text.contains("friend-ssh") && text.contains("1m30s"),
            "{text}"
        );

        k.installed.remove("fwd_web");
        k.trigger_hosts.clear();
        let s = compute(&cfg, &k, now);
        assert_eq!(s.forwards[0].state, ForwardState::NotInstalled);
        assert_eq!(s.triggers[0].state, TriggerState::Armed);
        let s = compute(&cfg, &k, Timestamp(2_000_000_000));
        assert_eq!(s.forwards[2].state, ForwardState::StillInstalled);
        k.installed.remove("fwd_friend-ssh");
        let s = compute(&cfg, &k, Timestamp(2_000_000_000));
        assert_eq!(s.forwards[2].state, ForwardState::Expired);
    }

    #[test]
    fn kernel_and_config_disagreeing_is_shown_not_hidden() {
        let mut cfg = Config::parse(include_str!("../examples/home.json")).unwrap();
        let now = Timestamp(1_795_888_800);
        let mut k = KernelView {
            table_present: true,
            ..KernelView::default()
        };
        // The kernel still forwards `web` though the config disables it, and forwards
        // `old` and triggers `gone`, which the config does not name at all.
        cfg.forwards[0].enabled = false;
        cfg.triggers[0].enabled = false;
        k.installed.insert("fwd_web".into(), None);
        k.installed
            .insert("fwd_old".into(), Some(Duration::from_secs(60)));
        k.ports
            .insert("fwd_old".into(), vec![(6, 4000, 4001), (17, 4000, 4001)]);
        k.counters.insert("fwd_old".into(), (7, 700));
        k.installed.insert("trg_irc-ident_in".into(), None);
        k.installed.insert("trg_gone_in".into(), None);
        k.ports.insert("trg_gone_in".into(), vec![(17, 5000, 5000)]);
        let s = compute(&cfg, &k, now);
        assert_eq!(s.forwards[0].state, ForwardState::StillInstalled);
        let old = s.forwards.last().unwrap();
        assert_eq!(
            (old.name.as_str(), old.state, old.protocol),
            ("old", ForwardState::NotInConfig, Protocol::Both)
        );
        assert_eq!(
            (
                old.external_port.as_str(),
                old.hits_packets,
                old.remaining_secs
            ),
            ("4000-4001", 7, Some(60))
        );
        assert_eq!(s.triggers[0].state, TriggerState::StillInstalled);
        let gone = s.triggers.last().unwrap();
        assert_eq!(
            (gone.name.as_str(), gone.state, gone.open_protocol),
            ("gone", TriggerState::NotInConfig, Protocol::Udp)
        );
        let text = render_text(&s);
        assert!(
            text.contains("not_in_config") && text.contains("still_installed"),
            "{text}"
        );
    }
}
