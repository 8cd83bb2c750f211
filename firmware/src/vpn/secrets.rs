//! PLACEHOLDER (branch `tunnel`): replaced at merge by the secrets helper's `secrets.rs`.

use super::key::Key;

/// The tunnel's secrets (stored 0600 beside the config).
#[derive(Debug, Clone)]
pub struct Secrets {
    /// `[Interface] PrivateKey`.
    pub private_key: Key,
    /// `[Peer] PresharedKey`, if the provider gave one.
    pub preshared_key: Option<Key>,
}
