//! Kernel tests of the nf_tables layer. They need root (CAP_NET_ADMIN and CAP_SYS_ADMIN for
//! `ip netns`), `ip` and `nft` 1.0.6; each test runs in fresh network namespaces that a
//! guard deletes again, even when the test panics.

use std::fs::File;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use portcullis::nft::example::example_ruleset;
use portcullis::nft::{Nft, NftError, TableState};
use portcullis::render::render;
use portcullis::ruleset::*;

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A network namespace that exists for the lifetime of the value.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        let name = format!(
            "pcx-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("run ip");
        assert!(st.success(), "ip netns add {name}");
        Netns { name }
    }

    /// Opens an `Nft` socket inside the namespace. setns(2) affects only the calling thread,
    /// so it runs in a throwaway thread; the socket stays in the namespace it was made in.
    fn nft(&self) -> Nft {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let f = File::open(&path).expect("open netns");
            setns(&f, CloneFlags::CLONE_NEWNET).expect("setns");
            Nft::open().expect("open nft socket")
        })
        .join()
        .expect("netns thread")
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]).args(args);
        c.stdin(std::process::Stdio::piped());
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().expect("spawn");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("write stdin");
        drop(input);
        child.wait_with_output().expect("wait")
    }

    /// Runs `nft ARGS` in the namespace and returns stdout; panics on failure.
    fn nft_cli(&self, args: &[&str]) -> String {
        let out = self.run("nft", args, None);
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    }

    /// Loads a script with `nft -f -`.
    fn nft_load(&self, script: &str) {
        let out = self.run("nft", &["-f", "-"], Some(script));
        assert!(
            out.status.success(),
            "nft -f failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn list(&self, table: &str) -> String {
        strip_expires(&self.nft_cli(&["list", "table", "inet", table]))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Removes ` expires 59m59s984ms` fragments, which depend on when the listing ran.
fn strip_expires(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(" expires ") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + " expires ".len()..];
        let end = tail
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(tail.len());
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn applied_table_lists_exactly_like_nft_loading_the_rendered_text() {
    let rs = example_ruleset("pc");
    let ours = Netns::new();
    let theirs = Netns::new();
    let report = ours.nft().apply(&rs).expect("apply");
    assert_eq!(report.chains, rs.chains.len());
    assert_eq!(report.rules, rs.rule_count());
    theirs.nft_load(&render(&rs));
    let a = ours.list("pc");
    let b = theirs.list("pc");
    assert_eq!(a, b, "ours:\n{a}\nnft:\n{b}");
    assert!(a.contains("dnat ip to tcp dport map @fwd_rng_ports"), "{a}");
}
