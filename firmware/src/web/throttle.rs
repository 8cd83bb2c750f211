//! Login throttling per source address: after a few failures, each further attempt must
//! wait a delay that doubles with every failure (capped). Time is an argument, so the
//! schedule is unit-tested.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Timestamp;

/// Failures allowed before delays start.
const FREE_FAILURES: u32 = 3;
/// Longest delay between attempts, seconds.
const MAX_DELAY: u64 = 300;
/// Addresses remembered; the stalest are forgotten first.
const MAX_TRACKED: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Timestamp,
}

/// Per-address login failure record.
#[derive(Debug, Default)]
pub struct Throttle {
    entries: HashMap<IpAddr, Entry>,
}

impl Throttle {
    /// Delay after `failures` failures, in seconds.
    pub fn delay(failures: u32) -> u64 {
        if failures < FREE_FAILURES {
            return 0;
        }
        let doublings = (failures - FREE_FAILURES).min(16);
        (2u64 << doublings).min(MAX_DELAY)
    }

    /// Ok, or the seconds `ip` must still wait before trying again.
    pub fn check(&self, ip: IpAddr, now: Timestamp) -> Result<(), u64> {
        let Some(e) = self.entries.get(&ip) else {
            return Ok(());
        };
        let ready = e.last_failure.0 + Throttle::delay(e.failures);
        if now.0 >= ready {
            Ok(())
        } else {
            Err(ready - now.0)
        }
    }

    /// Records a failed attempt.
    pub fn fail(&mut self, ip: IpAddr, now: Timestamp) {
        if self.entries.len() >= MAX_TRACKED && !self.entries.contains_key(&ip) {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| *k)
            {
                self.entries.remove(&oldest);
            }
        }
        let e = self.entries.entry(ip).or_insert(Entry {
            failures: 0,
            last_failure: now,
        });
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
    }

    /// A successful login clears the address's record.
    pub fn succeed(&mut self, ip: IpAddr) {
        self.entries.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_address_and_reset_on_success() {
        let a: IpAddr = "192.168.1.5".parse().unwrap();
        let b: IpAddr = "192.168.1.6".parse().unwrap();
        let mut t = Throttle::default();
        let t0 = Timestamp(1000);
        for _ in 0..3 {
            assert_eq!(t.check(a, t0), Ok(()));
            t.fail(a, t0);
        }
        assert_eq!(t.check(a, t0), Err(2));
        assert_eq!(t.check(b, t0), Ok(()));
        t.fail(a, Timestamp(1002));
        assert_eq!(t.check(a, Timestamp(1002)), Err(4));
        assert_eq!(t.check(a, Timestamp(1006)), Ok(()));
        let delays: Vec<u64> = (0..14).map(Throttle::delay).collect();
        assert_eq!(&delays[..8], &[0, 0, 0, 2, 4, 8, 16, 32]);
        assert_eq!(delays[13], 300);
        t.succeed(a);
        assert_eq!(t.check(a, Timestamp(1001)), Ok(()));
    }
}
