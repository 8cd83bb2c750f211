//! Saving the config so that a crash or power cut never leaves a torn file.
//!
//! Write a temporary file in the same directory, fsync it, rename it over the old one,
//! then fsync the directory so the rename itself is durable. Readers see either the old
//! file or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Reads JSON from bytes through the `&str` parser. Everything here parses JSON from text:
/// serde_json's byte-slice reader is a second copy of every deserializer it touches
/// (about 60 KB of the mipsel binary), so it is never used.
///
/// # Errors
/// Bytes that are not UTF-8, or JSON that does not fit `T`.
pub fn json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(e) => Err(serde::de::Error::custom(format!("not UTF-8 text: {e}"))),
    }
}

/// Failures while saving; each names the step and the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("creating temporary file {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing temporary file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("renaming {from} over {to}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("syncing directory {path}")]
    SyncDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Removes temporary files a killed save left in `dir` (`.NAME.tmp-PID`). Call only while
/// no other process saves there (the daemon holds its lock).
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Atomically replaces `path` with `contents` (mode 0644 before umask).
pub fn save_atomic(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    save_atomic_mode(path, contents, 0o644)
}

/// Like [`save_atomic`], for secrets: the file is created with mode 0600, so there is no
/// moment at which other users could read it.
pub fn save_atomic_private(path: &Path, contents: &[u8]) -> Result<(), StoreError> {
    save_atomic_mode(path, contents, 0o600)
}

fn save_atomic_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = write_synced(&tmp, contents, mode).and_then(|()| {
        fs::rename(&tmp, path).map_err(|source| StoreError::Rename {
            from: tmp.clone(),
            to: path.to_path_buf(),
            source,
        })
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::SyncDir { path: dir, source })
}

fn write_synced(tmp: &Path, contents: &[u8], mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let open = || {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(tmp)
    };
    let mut f = open()
        .or_else(|_| {
            // A leftover from a crash of a process with the same pid: replace it.
            let _ = fs::remove_file(tmp);
            open()
        })
        .map_err(|source| StoreError::Create {
            path: tmp.to_path_buf(),
            source,
        })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|source| StoreError::Write {
            path: tmp.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_behind() {
        let dir = std::env::temp_dir().join(format!("pcx-store-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        save_atomic(&p, b"one").unwrap();
        save_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("config.json")]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn private_files_are_never_readable_by_others() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("pcx-store-private-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("web.json");
        save_atomic_private(&p, b"secret").unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_save_keeps_the_old_file() {
        let dir = std::env::temp_dir().join(format!("pcx-store-fail-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("config.json");
        save_atomic(&p, b"old").unwrap();
        // Renaming a file over a non-empty directory fails: the old contents must survive.
        let blocker = dir.join("sub");
        fs::create_dir_all(blocker.join("x")).unwrap();
        assert!(save_atomic(&blocker, b"new").is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert!(!dir
            .join(".sub.tmp-".to_string() + &std::process::id().to_string())
            .exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
