//! STUB
use super::secrets::Secrets;
use crate::config::Vpn;
pub struct Imported {
    pub vpn: Vpn,
    pub secrets: Secrets,
    pub notes: Vec<String>,
}
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, {key}: {reason}")]
pub struct ConfError {
    pub line: usize,
    pub key: String,
    pub reason: String,
}
pub fn parse(
    _text: &str,
    _resolve: &dyn Fn(&str, u16) -> Option<std::net::SocketAddrV4>,
) -> Result<Imported, ConfError> {
    Err(ConfError {
        line: 0,
        key: String::new(),
        reason: String::new(),
    })
}
pub fn merge(_old: Option<&Vpn>, imported: Vpn) -> Vpn {
    imported
}
