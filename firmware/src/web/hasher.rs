//! Password hashing off the threads that answer requests.
//!
//! scrypt costs 16 MiB and tens of milliseconds on a PC, one or two seconds on a router.
//! Logins, setup and password changes hand their hashing to one dedicated thread through a
//! small bounded queue; when it is full the caller is told at once ([`Busy::Full`], the API
//! answers 503 with `Retry-After`), so a burst of logins occupies at most
//! `1 + queue` request threads and never all of them, and memory stays at one scrypt run.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, sync_channel, SyncSender, TrySendError};

type Job = Box<dyn FnOnce() + Send>;

/// Why a hashing job did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("the router is busy checking other passwords; try again in a second")]
    Full,
    #[error("the password hashing thread is not running")]
    Gone,
}

/// The hashing thread's queue. Dropping it ends the thread once its queue is empty.
#[derive(Debug)]
pub struct Hasher {
    tx: SyncSender<Job>,
}

impl Hasher {
    /// Starts the thread; `queue` jobs may wait while one runs.
    pub fn spawn(queue: usize) -> std::io::Result<Hasher> {
        let (tx, rx) = sync_channel::<Job>(queue);
        std::thread::Builder::new()
            .name("web-hasher".into())
            .spawn(move || {
                for job in rx {
                    // A job that panics (debug builds) loses its answer, not the thread.
                    let _ = catch_unwind(AssertUnwindSafe(job));
                }
            })?;
        Ok(Hasher { tx })
    }

    /// Runs `f` on the hashing thread and waits for its result, or fails at once when
    /// the queue is full.
    pub fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> Result<R, Busy> {
        let (rtx, rrx) = channel();
        self.tx
            .try_send(Box::new(move || {
                let _ = rtx.send(f());
            }))
            .map_err(|e| match e {
                TrySendError::Full(_) => Busy::Full,
                TrySendError::Disconnected(_) => Busy::Gone,
            })?;
        rrx.recv().map_err(|_| Busy::Gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_full_queue_refuses_at_once_and_a_panic_does_not_kill_the_thread() {
        let h = std::sync::Arc::new(Hasher::spawn(1).unwrap());
        // Hold the thread with a job that waits for our signal.
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let h1 = std::sync::Arc::clone(&h);
        let first = std::thread::spawn(move || {
            h1.run(move || {
                let _ = started_tx.send(());
                let _ = go_rx.recv();
                1
            })
        });
        started_rx.recv().unwrap();
        // Two more at once: one waits in the queue, the other is refused at once (it
        // answers while the first job still holds the thread).
        let (done_tx, done_rx) = mpsc::channel();
        let others: Vec<_> = [2, 3]
            .into_iter()
            .map(|n| {
                let h = std::sync::Arc::clone(&h);
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    let _ = done.send(h.run(move || n));
                })
            })
            .collect();
        assert_eq!(done_rx.recv().unwrap(), Err(Busy::Full));
        go_tx.send(()).unwrap();
        assert_eq!(first.join().unwrap(), Ok(1));
        assert!(matches!(done_rx.recv().unwrap(), Ok(2 | 3)));
        for t in others {
            t.join().unwrap();
        }
        // A job that panics loses its answer; the thread keeps serving.
        assert_eq!(h.run(|| -> u8 { panic!("test panic") }), Err(Busy::Gone));
        assert_eq!(h.run(|| 4), Ok(4));
    }
}
