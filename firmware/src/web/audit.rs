//! The audit log (every login attempt and every change) and hit tracking (new
//! connections on forwards, from counter deltas). Both are bounded rings; the audit log is
//! saved next to the config after each entry.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Timestamp;
use crate::status::Status;
use crate::store::{self, StoreError};

/// Entries kept.
const MAX_ENTRIES: usize = 300;

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

/// Saves are at least this far apart, so a password-guessing client cannot wear out the
/// flash by making the router rewrite the log for every attempt.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// The audit log, newest last.
#[derive(Debug)]
pub struct Audit {
    path: Option<PathBuf>,
    entries: VecDeque<Entry>,
    last_save: Option<Instant>,
    dirty: bool,
}

impl Audit {
    /// Loads the saved log (a missing or unreadable file starts an empty one).
    pub fn open(path: Option<PathBuf>) -> Audit {
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<VecDeque<Entry>>(&b).ok())
            .unwrap_or_default();
        Audit {
            path,
            entries,
            last_save: None,
            dirty: false,
        }
    }

    /// Appends; saves unless the last save was less than [`SAVE_EVERY`] ago (then
    /// [`Audit::flush`], called periodically, saves it).
    pub fn record(&mut self, e: Entry) -> Result<(), StoreError> {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(e);
        self.dirty = true;
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
            let body = serde_json::to_string(&self.entries).unwrap_or_default();
            store::save_atomic(p, body.as_bytes())?;
        }
        self.dirty = false;
        self.last_save = Some(Instant::now());
        Ok(())
    }

    /// Newest first.
    pub fn newest_first(&self) -> Vec<Entry> {
        self.entries.iter().rev().cloned().collect()
    }
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

    #[test]
    fn audit_is_bounded_and_saved() {
        let dir = std::env::temp_dir().join(format!("pcx-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("audit.json");
        let mut a = Audit::open(Some(p.clone()));
        for i in 0..(MAX_ENTRIES + 5) {
            a.record(Entry {
                time: Timestamp(i as u64),
                from: "192.168.1.5".into(),
                action: "login".into(),
                target: String::new(),
                ok: false,
                detail: String::new(),
            })
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
}
