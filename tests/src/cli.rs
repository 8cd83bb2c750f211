//! Running the `portcullis` binary inside the router namespace.
//!
//! The binary is `$PORTCULLIS_BIN`, or `<workspace>/target/debug/portcullis` (built by
//! `cargo build -p portcullis`). Every call passes `--config` pointing into the
//! topology's scratch directory, so the real /etc/portcullis is never touched.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::netns;
use crate::poll;

/// Where the binary under test is.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTCULLIS_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "PORTCULLIS_BIN={} does not exist or is not a file",
            p.display()
        );
        return p;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let p = target.join("debug").join("portcullis");
    assert!(
        p.is_file(),
        "the portcullis binary is missing at {}: run `cargo build -p portcullis` first, \
         or set PORTCULLIS_BIN to the binary to test",
        p.display()
    );
    p
}

/// The outcome of one CLI run.
#[derive(Debug)]
pub struct Run {
    /// What was run, for messages.
    pub command: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(command: String, o: Output) -> Run {
        Run {
            command,
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Panics with the whole story unless the exit code was 0; returns self.
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code,
            Some(0),
            "`{}` failed\n{}",
            self.command,
            self.story()
        );
        self
    }

    /// stdout and stderr, for assertion messages.
    pub fn story(&self) -> String {
        format!(
            "exit code: {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The CLI bound to one namespace and one saved-config path.
#[derive(Debug, Clone)]
pub struct Cli {
    pub ns: String,
    pub dir: PathBuf,
    /// What `--config` points to.
    pub saved: PathBuf,
    pub bin: PathBuf,
}

impl Cli {
    /// A CLI running in `ns` whose saved config is `dir/saved.json`.
    pub fn new(ns: &str, dir: &Path) -> Cli {
        Cli {
            ns: ns.to_owned(),
            dir: dir.to_path_buf(),
            saved: dir.join("saved.json"),
            bin: binary(),
        }
    }

    /// Writes `text` to `dir/name` and returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    fn command(&self, args: &[&str]) -> Command {
        let bin = self.bin.to_string_lossy().into_owned();
        let saved = self.saved.to_string_lossy().into_owned();
        let mut full = vec!["--config", saved.as_str()];
        full.extend_from_slice(args);
        netns::command(&self.ns, &bin, &full)
    }

    /// Runs `portcullis --config SAVED ARGS...` in the namespace.
    pub fn run(&self, args: &[&str]) -> Run {
        let cmd = self.command(args);
        let desc = format!(
            "portcullis --config {} {}",
            self.saved.display(),
            args.join(" ")
        );
        Run::from_output(desc, netns::output(cmd))
    }

    /// `portcullis check FILE`.
    pub fn check(&self, file: &Path) -> Run {
        self.run(&["check", &file.to_string_lossy()])
    }

    /// `portcullis plan FILE`.
    pub fn plan(&self, file: &Path) -> Run {
        self.run(&["plan", &file.to_string_lossy()])
    }

    /// `portcullis apply FILE`.
    pub fn apply(&self, file: &Path) -> Run {
        self.run(&["apply", &file.to_string_lossy()])
    }

    /// Writes `text` to `dir/name` and applies it; panics if apply fails.
    #[track_caller]
    pub fn apply_text(&self, name: &str, text: &str) -> Run {
        let p = self.write(name, text);
        self.apply(&p).ok()
    }

    /// `portcullis status` (with `--json` if asked).
    pub fn status(&self, json: bool) -> Run {
        if json {
            self.run(&["status", "--json"])
        } else {
            self.run(&["status"])
        }
    }

    /// Starts `portcullis serve`; its output goes to `dir/serve.out` and `dir/serve.err`.
    pub fn serve(&self) -> Daemon {
        let out = self.dir.join("serve.out");
        let err = self.dir.join("serve.err");
        let mut cmd = self.command(&["serve"]);
        cmd.stdout(File::create(&out).expect("create serve.out"));
        cmd.stderr(File::create(&err).expect("create serve.err"));
        // `ip netns exec` execs the program, so the child's pid is portcullis's own.
        let child = cmd.spawn().expect("spawn portcullis serve");
        Daemon {
            child: Some(child),
            out,
            err,
        }
    }
}

impl Cli {
    /// Starts `portcullis serve` and waits up to `within` until `ready` holds (say, a
    /// forward of the saved config answers); panics with the daemon's logs otherwise.
    #[track_caller]
    pub fn serve_until(&self, within: Duration, mut ready: impl FnMut() -> bool) -> Daemon {
        let daemon = self.serve();
        assert!(
            poll::until_true(within, &mut ready),
            "serve did not install the saved config\n{}",
            daemon.logs()
        );
        daemon
    }
}

/// A running `portcullis serve`. Dropping it kills it.
pub struct Daemon {
    child: Option<Child>,
    out: PathBuf,
    err: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> Pid {
        let child = self.child.as_ref().expect("daemon already stopped");
        Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"))
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// What it printed so far (stdout then stderr).
    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- serve stdout ---\n{}--- serve stderr ---\n{}",
            read(&self.out),
            read(&self.err)
        )
    }

    /// Sends `sig` and waits up to `within` for it to exit; returns its exit status
    /// code (None if killed by a signal), or Err with its logs if it did not exit.
    pub fn stop(&mut self, sig: Signal, within: Duration) -> Result<Option<i32>, String> {
        let pid = self.pid();
        let _ = kill(pid, sig);
        let child = self.child.as_mut().expect("daemon already stopped");
        let status = poll::until(within, || child.try_wait().ok().flatten());
        match status {
            Some(s) => {
                self.child = None;
                Ok(s.code())
            }
            None => Err(format!(
                "portcullis serve did not exit within {within:?} of {sig}\n{}",
                self.logs()
            )),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
