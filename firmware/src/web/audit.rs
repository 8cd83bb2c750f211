//! The audit log (every login attempt and every change) and hit tracking (new
//! connections on forwards, from counter deltas). Both are bounded; the audit log is saved
//! next to the config (at most every [`SAVE_EVERY`]).
//!
//! Failed and throttled logins can come from anyone on the LAN, so they live apart from
//! everything else: one coalesced line per client address ("N failed logins between T1
//! and T2"), at most [`MAX_FAILURE_SOURCES`] addresses. However many attempts arrive,
//! they never push a change out of the log.
//!
//! What LAN devices do by themselves (port mappings made, renewed, refused, closed:
//! `upnp.*` events of the router) also lives apart, in a ring of its own of the same
//! size: a program churning mappings cannot push the owner's changes out either.
//!
//! A saved log that cannot be read is never overwritten: it is renamed to
//! `audit.json.bad-<unix time>` and the new log starts with an entry saying so. If even
//! the rename fails, the log is kept in memory only (and says that instead).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Timestamp;
use crate::status::Status;
use crate::store::{self, StoreError};

/// Entries kept (changes, successful logins, the router's own events).
const MAX_ENTRIES: usize = 300;

/// Client addresses whose failed logins are remembered (one coalesced line each).
pub const MAX_FAILURE_SOURCES: usize = 50;

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub time: Timestamp,
    /// Client address.
    pub from: String,
    /// What was attempted, e.g. `login`, `forward.add`.
    pub action: String,
    /// Which object, if any.
    #[serde(default)]
    pub target: String,
    pub ok: bool,
    /// Why it failed, or a short note.
    #[serde(default)]
    pub detail: String,
}

impl Entry {
    /// A failed or throttled login: kept in the coalesced ring of its own.
    fn is_failed_login(&self) -> bool {
        self.action == "login" && !self.ok
    }

    /// A port-mapping event a LAN device caused (not the owner's): kept in its own ring.
    fn is_device_event(&self) -> bool {
        self.from == "router" && self.action.starts_with("upnp.")
    }
}

/// Failed logins from one address, coalesced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures {
    pub from: String,
    pub first: Timestamp,
    pub last: Timestamp,
    /// Attempts refused (wrong password, throttled, refused for another reason).
    pub count: u64,
    /// Of those, attempts refused because the address had to wait.
    #[serde(default)]
    pub throttled: u64,
    /// Why the last one was refused.
    #[serde(default)]
    pub last_detail: String,
}

impl Failures {
    /// As one log line.
    pub fn entry(&self) -> Entry {
        let what = if self.count == 1 {
            "1 failed login".to_string()
        } else {
            format!("{} failed logins", self.count)
        };
        let mut detail = if self.first == self.last {
            format!("{what} at {}", self.first)
        } else {
            format!("{what} between {} and {}", self.first, self.last)
        };
        if self.throttled > 0 {
            detail.push_str(&format!(" ({} while throttled)", self.throttled));
        }
        if !self.last_detail.is_empty() {
            detail.push_str(&format!("; last: {}", self.last_detail));
        }
        Entry {
            time: self.last,
            from: self.from.clone(),
            action: "login".into(),
            target: String::new(),
            ok: false,
            detail,
        }
    }
}

/// What `audit.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    entries: VecDeque<Entry>,
    #[serde(default)]
    failed_logins: VecDeque<Failures>,
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    device_events: VecDeque<Entry>,
}

/// Saves are at least this far apart, so a password-guessing client cannot wear out the
/// flash by making the router rewrite the log for every attempt.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// The audit log, newest last.
#[derive(Debug)]
pub struct Audit {
    /// None: memory only (tests, or a damaged file that could not be moved aside).
    path: Option<PathBuf>,
    entries: VecDeque<Entry>,
    failures: VecDeque<Failures>,
    /// Port-mapping events of LAN devices.
    devices: VecDeque<Entry>,
    last_save: Option<Instant>,
    dirty: bool,
}

impl Audit {
    /// Loads the saved log. A missing file starts an empty log; a damaged one is moved
    /// aside (never overwritten) and the new log says where it went.
    pub fn open(path: Option<PathBuf>) -> Audit {
        let mut a = Audit {
            path: None,
            entries: VecDeque::new(),
            failures: VecDeque::new(),
            devices: VecDeque::new(),
            last_save: None,
            dirty: false,
        };
        let Some(p) = path else {
            return a;
        };
        let now = Timestamp::now();
        match load(&p) {
            Ok(saved) => {
                a.entries = saved.entries;
                a.failures = saved.failed_logins;
                a.devices = saved.device_events;
                a.path = Some(p);
            }
            Err(why) => {
                let aside = p.with_file_name(format!(
                    "{}.bad-{}",
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("audit.json"),
                    now.0
                ));
                let detail = match std::fs::rename(&p, &aside) {
                    Ok(()) => {
                        a.path = Some(p.clone());
                        format!(
                            "the saved audit log {} was unreadable ({why}); kept as {} and a new log started",
                            p.display(),
                            aside.display()
                        )
                    }
                    Err(e) => format!(
                        "the saved audit log {} is unreadable ({why}) and could not be moved aside ({e}); \
                         it is left untouched and this log is kept in memory only",
                        p.display()
                    ),
                };
                eprintln!("portcullis: {detail}");
                a.push(Entry {
                    time: now,
                    from: "router".into(),
                    action: "audit.damaged".into(),
                    target: String::new(),
                    ok: false,
                    detail,
                });
            }
        }
        a
    }

    fn push(&mut self, e: Entry) {
        if e.is_failed_login() {
            let i = self.failures.iter().position(|f| f.from == e.from);
            let mut f = match i.and_then(|i| self.failures.remove(i)) {
                Some(f) => f,
                None => Failures {
                    from: e.from.clone(),
                    first: e.time,
                    last: e.time,
                    count: 0,
                    throttled: 0,
                    last_detail: String::new(),
                },
            };
            f.count = f.count.saturating_add(1);
            if e.detail == "throttled" {
                f.throttled = f.throttled.saturating_add(1);
            }
            f.last = e.time;
            f.last_detail = e.detail;
            if self.failures.len() >= MAX_FAILURE_SOURCES {
                self.failures.pop_front();
            }
            self.failures.push_back(f);
        } else {
            let ring = if e.is_device_event() {
                &mut self.devices
            } else {
                &mut self.entries
            };
            if ring.len() >= MAX_ENTRIES {
                ring.pop_front();
            }
            ring.push_back(e);
        }
        self.dirty = true;
    }

    /// Appends; saves unless the last save was less than [`SAVE_EVERY`] ago (then
    /// [`Audit::flush`], called periodically, saves it).
    pub fn record(&mut self, e: Entry) -> Result<(), StoreError> {
        self.push(e);
        if self.last_save.is_none_or(|t| t.elapsed() >= SAVE_EVERY) {
            self.flush()?;
        }
        Ok(())
    }

    /// Saves if anything changed since the last save.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(p) = &self.path {
            let body = serde_json::to_string(&Saved {
                entries: self.entries.clone(),
                failed_logins: self.failures.clone(),
                device_events: self.devices.clone(),
            })
            .unwrap_or_default();
            store::save_atomic(p, body.as_bytes())?;
        }
        self.dirty = false;
        self.last_save = Some(Instant::now());
        Ok(())
    }

    /// Everything, newest first (failed logins as one line per address).
    pub fn newest_first(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self
            .entries
            .iter()
            .chain(&self.devices)
            .cloned()
            .chain(self.failures.iter().map(Failures::entry))
            .collect();
        // Stable: entries of the same second keep their order.
        all.reverse();
        all.sort_by_key(|e| std::cmp::Reverse(e.time));
        all
    }
}

/// Reads a saved log: the current format, or the plain list of earlier versions.
fn load(p: &Path) -> Result<Saved, String> {
    let bytes = match std::fs::read(p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(e) => return Err(e.to_string()),
    };
    if let Ok(entries) = crate::store::json::<VecDeque<Entry>>(&bytes) {
        return Ok(Saved {
            entries,
            failed_logins: VecDeque::new(),
            device_events: VecDeque::new(),
        });
    }
    crate::store::json::<Saved>(&bytes).map_err(|e| e.to_string())
}

/// New connections seen on a forward or trigger between two status reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HitEvent {
    pub time: Timestamp,
    /// `forward` or `trigger`.
    pub kind: &'static str,
    pub name: String,
    /// New connections since the previous read.
    pub new: u64,
}

/// Remembers counters to turn them into "last hit" times and a hit log.
#[derive(Debug, Default)]
pub struct Hits {
    last_count: HashMap<(&'static str, String), u64>,
    last_hit: HashMap<(&'static str, String), Timestamp>,
    events: VecDeque<HitEvent>,
}

impl Hits {
    /// Compares a fresh status with the previous one. A counter that went down (the
    /// ruleset was replaced) restarts from its new value.
    pub fn observe(&mut self, s: &Status, now: Timestamp) {
        let rows = s
            .forwards
            .iter()
            .map(|f| ("forward", &f.name, f.hits_packets))
            .chain(
                s.triggers
                    .iter()
                    .map(|t| ("trigger", &t.name, t.hits_packets)),
            );
        let rows: Vec<_> = rows.collect();
        // Forget items that are gone, so renames and deletions do not grow the maps.
        self.last_count
            .retain(|(k, n), _| rows.iter().any(|(rk, rn, _)| rk == k && *rn == n));
        self.last_hit
            .retain(|(k, n), _| rows.iter().any(|(rk, rn, _)| rk == k && *rn == n));
        for (kind, name, count) in rows {
            let key = (kind, name.clone());
            let before = self.last_count.insert(key.clone(), count);
            let new = match before {
                Some(b) if count > b => count - b,
                None if count > 0 => count,
                _ => 0,
            };
            if new > 0 {
                self.last_hit.insert(key, now);
                if self.events.len() >= MAX_ENTRIES {
                    self.events.pop_front();
                }
                self.events.push_back(HitEvent {
                    time: now,
                    kind,
                    name: name.clone(),
                    new,
                });
            }
        }
    }

    pub fn last_hit(&self, kind: &'static str, name: &str) -> Option<Timestamp> {
        self.last_hit.get(&(kind, name.to_string())).copied()
    }

    pub fn newest_first(&self) -> Vec<HitEvent> {
        self.events.iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;
    use crate::status::{ForwardState, ForwardStatus};

    fn status(hits: u64) -> Status {
        Status {
            table_present: true,
            forwards: vec![ForwardStatus {
                name: "web".into(),
                state: ForwardState::Active,
                protocol: Protocol::Tcp,
                external_port: "8080".into(),
                destination: "192.168.1.10:80".into(),
                allow_from: vec![],
                hits_packets: hits,
                hits_bytes: 0,
                remaining_secs: None,
            }],
            triggers: vec![],
            drops: Default::default(),
        }
    }

    #[test]
    fn deltas_become_events_and_last_hit() {
        let mut h = Hits::default();
        h.observe(&status(0), Timestamp(10));
        assert_eq!(h.last_hit("forward", "web"), None);
        h.observe(&status(3), Timestamp(20));
        h.observe(&status(3), Timestamp(30));
        h.observe(&status(1), Timestamp(40)); // ruleset replaced: counter restarted
        h.observe(&status(2), Timestamp(50));
        assert_eq!(h.last_hit("forward", "web"), Some(Timestamp(50)));
        let ev = h.newest_first();
        assert_eq!(ev.len(), 2);
        assert_eq!((ev[0].new, ev[1].new), (1, 3));
    }

    fn entry(i: usize, action: &str, ok: bool, from: &str) -> Entry {
        Entry {
            time: Timestamp(i as u64),
            from: from.into(),
            action: action.into(),
            target: String::new(),
            ok,
            detail: if ok {
                String::new()
            } else {
                "wrong password".into()
            },
        }
    }

    #[test]
    fn audit_is_bounded_and_saved() {
        let dir = std::env::temp_dir().join(format!("pcx-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("audit.json");
        let mut a = Audit::open(Some(p.clone()));
        for i in 0..(MAX_ENTRIES + 5) {
            a.record(entry(i, "forward.add", true, "192.168.1.5"))
                .unwrap();
        }
        a.flush().unwrap();
        let b = Audit::open(Some(p));
        assert_eq!(b.newest_first().len(), MAX_ENTRIES);
        assert_eq!(
            b.newest_first()[0].time,
            Timestamp((MAX_ENTRIES + 4) as u64)
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn device_mapping_events_never_push_changes_out() {
        let mut a = Audit::open(None);
        a.record(entry(1, "forward.add", true, "192.168.1.2"))
            .unwrap();
        for i in 0..(3 * MAX_ENTRIES) {
            a.record(entry(2 + i, "upnp.map", true, "router")).unwrap();
        }
        let all = a.newest_first();
        assert!(all.iter().any(|e| e.action == "forward.add"));
        assert_eq!(all.len(), MAX_ENTRIES + 1);
    }

    #[test]
    fn failed_logins_never_push_changes_out() {
        let mut a = Audit::open(None);
        a.record(entry(1, "forward.add", true, "192.168.1.2"))
            .unwrap();
        for i in 0..10_000 {
            let from = format!("192.168.1.{}", 10 + i % 100);
            a.record(entry(2 + i, "login", false, &from)).unwrap();
        }
        let all = a.newest_first();
        assert!(all.iter().any(|e| e.action == "forward.add"));
        let fails: Vec<_> = all.iter().filter(|e| e.action == "login").collect();
        assert_eq!(fails.len(), MAX_FAILURE_SOURCES);
        // Attempts from one address become one line.
        let mut a = Audit::open(None);
        for i in 0..1000 {
            let mut e = entry(10 + i, "login", false, &format!("192.168.1.{}", 10 + i % 4));
            if i >= 12 {
                e.detail = "throttled".into();
            }
            a.record(e).unwrap();
        }
        let all = a.newest_first();
        assert_eq!(all.len(), 4);
        assert_eq!(
            all[0].detail,
            "250 failed logins between 1970-01-01T00:00:13Z and 1970-01-01T00:16:49Z \
             (247 while throttled); last: throttled"
        );
    }

    #[test]
    fn a_damaged_log_is_kept_aside_not_overwritten() {
        let dir = std::env::temp_dir().join(format!("pcx-audit-bad-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("audit.json");
        std::fs::write(&p, b"[{\"time\": broken").unwrap();
        let mut a = Audit::open(Some(p.clone()));
        let first = &a.newest_first()[0];
        assert_eq!(first.action, "audit.damaged");
        assert!(first.detail.contains("audit.json.bad-"), "{}", first.detail);
        a.flush().unwrap();
        let aside: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("audit.json.bad-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(
            std::fs::read(dir.join(&aside[0])).unwrap(),
            b"[{\"time\": broken"
        );
        // The new log loads again.
        assert_eq!(
            Audit::open(Some(p)).newest_first()[0].action,
            "audit.damaged"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
