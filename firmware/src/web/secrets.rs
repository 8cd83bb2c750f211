//! The admin password file (`web.json` next to the saved config), failing closed.
//!
//! A missing file at start is a first boot: the setup page sets the password. A file that
//! exists but cannot be read or does not hold a well-formed hash is *not* "no password":
//! setup and logins are refused with a message naming the file and the console recovery
//! command (`portcullis set-password`), so a damaged flash never reopens the public setup
//! page to every LAN host. The file is read again whenever it changes on disk (one
//! `stat` per login or setup call), so the recovery command takes effect without a restart.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::auth;
use crate::store::{self, StoreError};

/// The file name, in the state directory.
pub const FILE: &str = "web.json";

/// The console command that repairs a lost or damaged password file.
pub const RECOVERY: &str = "portcullis set-password";

/// What the password file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// No file at first boot: setup is open.
    Missing,
    /// The scrypt hash in force.
    Set(String),
    /// The file exists but is unusable (the text says why and how to recover): setup and
    /// logins are refused.
    Broken(String),
}

/// What is on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Secrets {
    password: Option<String>,
}

/// Identity of the file as last read: (device, inode, size, mtime, ctime, ctime_nsec).
type Stamp = (u64, u64, u64, i64, i64, i64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// The password file and what it held when last read.
#[derive(Debug)]
pub struct PasswordFile {
    path: Option<PathBuf>,
    state: Password,
    seen: Option<Stamp>,
}

impl PasswordFile {
    /// Reads `web.json` in `state_dir` (None: in memory only, for tests).
    pub fn open(state_dir: Option<&Path>) -> PasswordFile {
        let path = state_dir.map(|d| d.join(FILE));
        let mut f = PasswordFile {
            path,
            state: Password::Missing,
            seen: None,
        };
        if let Some(p) = f.path.clone() {
            f.seen = stamp(&p);
            f.state = match read(&p) {
                Ok(Some(hash)) => Password::Set(hash),
                Ok(None) => Password::Missing,
                Err(why) => Password::Broken(broken_message(&p, &why)),
            };
            if let Password::Broken(m) = &f.state {
                eprintln!("portcullis: web: {m}");
            }
        }
        f
    }

    /// Reads the file again if it changed since it was last read. Once a password was
    /// set (or the file was damaged), a file that disappears is damage, not a first boot.
    /// Returns whether the password in force changed (then every session must end: the
    /// console recovery or a damaged file must not leave old sessions working).
    pub fn refresh(&mut self) -> bool {
        let Some(p) = self.path.clone() else {
            return false;
        };
        let now = stamp(&p);
        if now == self.seen && !matches!(self.state, Password::Broken(_)) {
            return false;
        }
        let before = self.state.clone();
        self.seen = now;
        self.state = match (read(&p), &self.state) {
            (Ok(Some(hash)), _) => Password::Set(hash),
            (Ok(None), Password::Missing) => Password::Missing,
            (Ok(None), _) => Password::Broken(broken_message(&p, "it was removed")),
            (Err(why), _) => Password::Broken(broken_message(&p, &why)),
        };
        if self.state != before {
            match &self.state {
                Password::Broken(m) => eprintln!("portcullis: web: {m}"),
                Password::Set(_) => eprintln!("portcullis: web: {} read again", p.display()),
                Password::Missing => {}
            }
        }
        self.state != before
    }

    pub fn state(&self) -> &Password {
        &self.state
    }

    /// Saves a new hash (atomically, mode 0600) and makes it the password in force.
    pub fn save(&mut self, hash: &str) -> Result<(), StoreError> {
        if let Some(p) = &self.path {
            store::save_atomic_private(p, &encode(hash))?;
            self.seen = stamp(p);
        }
        self.state = Password::Set(hash.to_string());
        Ok(())
    }
}

/// The file's bytes for a hash.
pub fn encode(hash: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&Secrets {
        password: Some(hash.to_string()),
    })
    .unwrap_or_default()
}

/// Ok(None) when there is no file; Err(why) when it exists but is unusable.
fn read(path: &Path) -> Result<Option<String>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("it cannot be read: {e}")),
    };
    let s: Secrets = crate::store::json(&bytes).map_err(|e| format!("it is not valid: {e}"))?;
    match s.password {
        Some(h) if auth::well_formed_hash(&h) => Ok(Some(h)),
        Some(_) => Err("its password hash is malformed".into()),
        None => Err("it holds no password hash".into()),
    }
}

fn broken_message(path: &Path, why: &str) -> String {
    format!(
        "the web UI password file {} is unusable ({why}); setup and logins are refused until \
         the password is set again on the router's console with `{RECOVERY}` (it reads the \
         new password on standard input)",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_setup_damaged_is_refused_and_recovery_is_picked_up() {
        let dir = std::env::temp_dir().join(format!("pcx-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(PasswordFile::open(Some(&dir)).state(), &Password::Missing);
        let p = dir.join(FILE);
        for bad in [
            &b"{not json"[..],
            b"{\"password\": null}",
            b"{\"password\": \"x\"}",
        ] {
            std::fs::write(&p, bad).unwrap();
            let f = PasswordFile::open(Some(&dir));
            let Password::Broken(m) = f.state() else {
                panic!("{bad:?} accepted")
            };
            assert!(m.contains("web.json") && m.contains(RECOVERY), "{m}");
        }
        let mut f = PasswordFile::open(Some(&dir));
        let hash = auth::hash_password(
            "mellow-otter-93",
            auth::Cost {
                log_n: 4,
                r: 8,
                p: 1,
            },
        )
        .unwrap();
        std::fs::write(&p, encode(&hash)).unwrap();
        f.refresh();
        assert_eq!(f.state(), &Password::Set(hash));
        // A password file that disappears later is damage, not a new first boot.
        std::fs::remove_file(&p).unwrap();
        f.refresh();
        assert!(matches!(f.state(), Password::Broken(_)));
        // A directory in its place cannot be read.
        std::fs::create_dir(&p).unwrap();
        assert!(matches!(
            PasswordFile::open(Some(&dir)).state(),
            Password::Broken(_)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
