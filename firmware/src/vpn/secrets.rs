//! STUB
use super::key::Key;
use std::path::{Path, PathBuf};
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secrets {
    pub private_key: Key,
    pub preshared_key: Option<Key>,
}
#[derive(Debug, thiserror::Error)]
#[error("secrets")]
pub struct SecretsError;
pub fn path(saved: &Path) -> PathBuf {
    saved.with_file_name("vpn.key")
}
pub fn load(_p: &Path) -> Result<Option<Secrets>, SecretsError> {
    Ok(None)
}
pub fn save(_p: &Path, _s: &Secrets) -> Result<(), SecretsError> {
    Ok(())
}
pub fn remove(_p: &Path) -> Result<(), SecretsError> {
    Ok(())
}
