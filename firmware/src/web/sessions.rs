//! Sessions in memory: random 128-bit tokens, idle and absolute expiry, one CSRF token
//! each. A reboot logs everyone out, which is fine for a router.

use std::collections::HashMap;

use super::auth::{constant_time_eq, hex, random_bytes, AuthError};
use crate::config::Timestamp;

/// A session ends after this long without a request.
pub const IDLE_SECS: u64 = 30 * 60;
/// And after this long whatever happens.
pub const ABSOLUTE_SECS: u64 = 12 * 60 * 60;
/// Live sessions kept; logging in once more evicts the oldest.
const MAX_SESSIONS: usize = 16;

/// One logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    pub csrf: String,
    pub created: Timestamp,
    pub last_seen: Timestamp,
}

/// All live sessions, keyed by token.
#[derive(Debug, Default)]
pub struct Sessions {
    live: HashMap<String, Session>,
}

impl Sessions {
    /// Starts a session; returns its token.
    pub fn create(&mut self, now: Timestamp) -> Result<String, AuthError> {
        self.prune(now);
        if self.live.len() >= MAX_SESSIONS {
            if let Some(oldest) = self
                .live
                .iter()
                .min_by_key(|(_, s)| s.created)
                .map(|(k, _)| k.clone())
            {
                self.live.remove(&oldest);
            }
        }
        let token = hex(&random_bytes::<16>()?);
        let csrf = hex(&random_bytes::<16>()?);
        self.live.insert(
            token.clone(),
            Session {
                csrf,
                created: now,
                last_seen: now,
            },
        );
        Ok(token)
    }

    /// The session for `token` if it is live; touching it resets the idle timer.
    pub fn touch(&mut self, token: &str, now: Timestamp) -> Option<Session> {
        self.prune(now);
        let key = self
            .live
            .keys()
            .find(|k| constant_time_eq(k.as_bytes(), token.as_bytes()))?
            .clone();
        let s = self.live.get_mut(&key)?;
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn remove(&mut self, token: &str) {
        self.live.remove(token);
    }

    /// Ends every session (after a password change), except `keep`.
    pub fn clear_except(&mut self, keep: Option<&str>) {
        self.live.retain(|k, _| Some(k.as_str()) == keep);
    }

    fn prune(&mut self, now: Timestamp) {
        self.live.retain(|_, s| {
            now.0 < s.last_seen.0 + IDLE_SECS && now.0 < s.created.0 + ABSOLUTE_SECS
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_absolutely() {
        let mut s = Sessions::default();
        let t = s.create(Timestamp(0)).unwrap();
        assert_eq!(t.len(), 32);
        assert!(s.touch(&t, Timestamp(IDLE_SECS - 1)).is_some());
        assert!(s.touch(&t, Timestamp(2 * IDLE_SECS - 2)).is_some());
        assert!(s.touch(&t, Timestamp(3 * IDLE_SECS)).is_none());
        let t = s.create(Timestamp(0)).unwrap();
        let mut now = 0;
        while now < ABSOLUTE_SECS - 60 {
            now += 60;
            assert!(s.touch(&t, Timestamp(now)).is_some());
        }
        assert!(s.touch(&t, Timestamp(ABSOLUTE_SECS)).is_none());
        assert!(s.touch("nope", Timestamp(0)).is_none());
    }
}
