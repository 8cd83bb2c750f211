//! The tunnel's secrets: `vpn.key` beside the saved config, mode 0600, never in the config
//! file, a backup or an API answer.
//!
//! The file is text in `wg(8)`'s own spelling, so an owner can read it with `cat` as root:
//!
//! ```text
//! PrivateKey = <44 characters of base64>
//! PresharedKey = <44 characters of base64>      (optional)
//! ```
//!
//! Blank lines and `#` comments are allowed; key names are case-insensitive.

use std::fs::{self, File};
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use super::key::Key;
use crate::store::{save_atomic_private, StoreError};

/// The secrets file's name.
pub const FILE_NAME: &str = "vpn.key";

/// Largest secrets file read, bytes (two keys take under 120).
const MAX_LEN: u64 = 4096;

/// The interface's private key and the peer's preshared key. `Debug` shows neither
/// (see [`Key`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secrets {
    /// `[Interface] PrivateKey`.
    pub private_key: Key,
    /// `[Peer] PresharedKey`, when the provider gave one.
    pub preshared_key: Option<Key>,
}

/// Failures of the secrets file; each names the path.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is readable by others (mode {mode:o}): chmod 600")]
    ReadableByOthers { path: PathBuf, mode: u32 },
    #[error("{path}, line {line}: {reason}")]
    Malformed {
        path: PathBuf,
        /// 1-based; 0 = the whole file.
        line: usize,
        reason: String,
    },
    #[error("saving {path}")]
    Save {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("removing {path}")]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the secrets of the config saved at `saved_config` live: `vpn.key` in the same
/// directory.
pub fn path(saved_config: &Path) -> PathBuf {
    match saved_config.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(FILE_NAME),
        _ => PathBuf::from(FILE_NAME),
    }
}

/// Reads the secrets file; none when it does not exist.
///
/// # Errors
/// The file cannot be read, gives its group or others any permission
/// ([`SecretsError::ReadableByOthers`], checked on the opened file), is larger than 4 KiB,
/// not UTF-8, or not in the format above ([`SecretsError::Malformed`] naming the line).
pub fn load(path: &Path) -> Result<Option<Secrets>, SecretsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let read_err = |source| SecretsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    let mode = f.metadata().map_err(read_err)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(SecretsError::ReadableByOthers {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    let mut bytes = Vec::new();
    f.take(MAX_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    let malformed = |line, reason: &str| SecretsError::Malformed {
        path: path.to_path_buf(),
        line,
        reason: reason.to_string(),
    };
    if bytes.len() as u64 > MAX_LEN {
        return Err(malformed(0, "larger than 4 KiB"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| malformed(0, "not UTF-8 text"))?;
    parse(text)
        .map(Some)
        .map_err(|(line, reason)| malformed(line, reason))
}

/// Reads the text of a secrets file; the error is (1-based line or 0, reason).
fn parse(text: &str) -> Result<Secrets, (usize, &'static str)> {
    let mut private_key = None;
    let mut preshared_key = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err((n, "not `Key = Value`"));
        };
        let slot = if k.trim().eq_ignore_ascii_case("PrivateKey") {
            &mut private_key
        } else if k.trim().eq_ignore_ascii_case("PresharedKey") {
            &mut preshared_key
        } else {
            return Err((n, "unknown key (PrivateKey or PresharedKey)"));
        };
        if slot.is_some() {
            return Err((n, "given twice"));
        }
        *slot =
            Some(Key::from_base64(v).ok_or((n, "not a WireGuard key (44 characters of base64)"))?);
    }
    Ok(Secrets {
        private_key: private_key.ok_or((0, "no PrivateKey"))?,
        preshared_key,
    })
}

/// Writes the secrets atomically (temporary file created 0600 in the same directory,
/// written, fsynced, renamed over `path`, directory fsynced: the key is never readable by
/// others, not even for an instant, and a power cut leaves the old file or the new one).
///
/// # Errors
/// [`SecretsError::Save`] with the failed step.
pub fn save(path: &Path, s: &Secrets) -> Result<(), SecretsError> {
    let mut text = format!("PrivateKey = {}\n", s.private_key.to_base64());
    if let Some(psk) = &s.preshared_key {
        text.push_str("PresharedKey = ");
        text.push_str(&psk.to_base64());
        text.push('\n');
    }
    save_atomic_private(path, text.as_bytes()).map_err(|source| SecretsError::Save {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes the secrets file; one that does not exist is fine.
///
/// # Errors
/// [`SecretsError::Remove`] for any other failure.
pub fn remove(path: &Path) -> Result<(), SecretsError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SecretsError::Remove {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pcx-secrets-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn sample() -> Secrets {
        Secrets {
            private_key: Key([7; 32]),
            preshared_key: Some(Key([9; 32])),
        }
    }

    #[test]
    fn lives_beside_the_saved_config() {
        assert_eq!(
            path(Path::new("/etc/portcullis/config.json")),
            Path::new("/etc/portcullis/vpn.key")
        );
        assert_eq!(path(Path::new("config.json")), Path::new("vpn.key"));
    }

    #[test]
    fn round_trip_with_mode_0600() {
        let d = dir("round");
        let p = d.join(FILE_NAME);
        save(&p, &sample()).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load(&p).unwrap(), Some(sample()));
        let text = fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("PrivateKey = BwcH"), "{text}");
        let without = Secrets {
            preshared_key: None,
            ..sample()
        };
        save(&p, &without).unwrap();
        assert_eq!(load(&p).unwrap(), Some(without));
        assert!(!fs::read_to_string(&p).unwrap().contains("Preshared"));
        remove(&p).unwrap();
        assert_eq!(load(&p).unwrap(), None);
        remove(&p).unwrap(); // absent is fine
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_others_may_read_is_refused() {
        let d = dir("mode");
        let p = d.join(FILE_NAME);
        save(&p, &sample()).unwrap();
        for mode in [0o640, 0o604, 0o601, 0o610] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let e = load(&p).unwrap_err();
            assert!(
                matches!(e, SecretsError::ReadableByOthers { .. }),
                "{mode:o}: {e}"
            );
            assert!(e.to_string().contains("chmod 600"), "{e}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o400)).unwrap();
        assert!(load(&p).unwrap().is_some());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn garbage_names_the_line() {
        let d = dir("garbage");
        let p = d.join(FILE_NAME);
        let cases: [(&str, usize); 7] = [
            ("# mine\n\nPrivateKey = nope\n", 3),
            (
                "PrivateKey = BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\nhello\n",
                2,
            ),
            ("Foo = bar\n", 1),
            (
                "PresharedKey = BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
                0,
            ),
            ("", 0),
            (
                "PrivateKey = BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n\
                 privatekey = BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n",
                2,
            ),
            ("\u{1}\u{2}", 1),
        ];
        for (text, want) in cases {
            fs::write(&p, text).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            match load(&p) {
                Err(SecretsError::Malformed { line, .. }) => assert_eq!(line, want, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(matches!(
            load(&p),
            Err(SecretsError::Malformed { line: 0, .. })
        ));
        fs::write(&p, vec![b'#'; 5000]).unwrap();
        assert!(matches!(
            load(&p),
            Err(SecretsError::Malformed { line: 0, .. })
        ));
        // Comments, blank lines and any case are fine.
        fs::write(
            &p,
            "# written by hand\n\n  privatekey=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=  # mine\n",
        )
        .unwrap();
        assert_eq!(
            load(&p).unwrap(),
            Some(Secrets {
                private_key: Key([7; 32]),
                preshared_key: None
            })
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn debug_shows_no_key() {
        let shown = format!("{:?}", sample());
        assert!(!shown.contains("BwcH") && !shown.contains('7'), "{shown}");
    }
}
