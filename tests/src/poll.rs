//! Waiting for a condition with a deadline instead of sleeping a fixed time.

use std::time::{Duration, Instant};

/// How often [`until`] re-checks.
pub const INTERVAL: Duration = Duration::from_millis(50);

/// Calls `f` until it returns `Some` (returned) or `within` has passed (`None`).
pub fn until<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(INTERVAL);
    }
}

/// Like [`until`] for a boolean condition.
pub fn until_true(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    until(within, || f().then_some(())).is_some()
}

/// Sleeps until the given instant (no-op if it is past).
pub fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
