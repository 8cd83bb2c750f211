//! Entering network namespaces and running commands in them.
//!
//! `setns(2)` changes the namespace of the calling thread only, so code that must run
//! "inside" a namespace runs on a fresh thread that enters it first. Threads that thread
//! spawns inherit its namespace, and sockets keep the namespace they were created in.

use std::fs::File;
use std::process::{Command, Output, Stdio};
use std::thread;

use nix::sched::{setns, CloneFlags};

/// Path of the bind mount `ip netns add NAME` creates.
pub fn netns_path(name: &str) -> String {
    format!("/run/netns/{name}")
}

/// Moves the current thread into namespace `name`. Only call it on a thread you own.
pub fn enter(name: &str) {
    let path = netns_path(name);
    let f = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    setns(&f, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns({path}): {e}"));
}

/// Runs `f` on a new thread inside namespace `name` and returns its result. A panic in
/// `f` is re-raised on the caller's thread.
pub fn run_in<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> T {
    thread::scope(|s| {
        let handle = s.spawn(|| {
            enter(name);
            f()
        });
        match handle.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// A `Command` that runs `program args...` inside namespace `ns` via `ip netns exec`.
pub fn command(ns: &str, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns, program]).args(args);
    c.stdin(Stdio::null());
    c
}

/// Runs a command to completion and returns its output, whatever its exit status.
pub fn output(mut cmd: Command) -> Output {
    let desc = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"))
}

/// Runs a command and panics with its stderr if it fails; returns its stdout.
pub fn run_ok(cmd: Command) -> String {
    let desc = format!("{cmd:?}");
    let out = output(cmd);
    if !out.status.success() {
        panic!(
            "{desc} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip ARGS...` in the root namespace (use `-n NS` in `args` to target a namespace).
pub fn ip(args: &[&str]) -> String {
    let mut c = Command::new("ip");
    c.args(args).stdin(Stdio::null());
    run_ok(c)
}

/// Writes a sysctl of namespace `ns` through /proc while inside it.
pub fn sysctl(ns: &str, key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    run_in(ns, || {
        std::fs::write(&path, value).unwrap_or_else(|e| panic!("write {path} in {ns}: {e}"))
    });
}

/// Process ids currently living in namespace `ns` (`ip netns pids`).
pub fn pids(ns: &str) -> Vec<i32> {
    let mut c = Command::new("ip");
    c.args(["netns", "pids", ns]).stdin(Stdio::null());
    let out = output(c);
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
