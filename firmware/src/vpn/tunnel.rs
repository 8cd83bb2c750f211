//! STUB
use super::key::Key;
use super::secrets::Secrets;
use crate::config::{Ipv4Net, Vpn};
use std::net::SocketAddrV4;
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelPlan {
    pub ifname: String,
    pub mtu: u16,
    pub addresses: Vec<Ipv4Net>,
    pub table: u32,
}
#[derive(Debug, thiserror::Error)]
#[error("tunnel")]
pub struct TunnelError;
#[derive(Debug, Clone)]
pub struct TunnelState {
    pub link_up: bool,
    pub mtu: u32,
    pub addresses: Vec<Ipv4Net>,
    pub public_key: Option<Key>,
    pub listen_port: u16,
    pub fwmark: u32,
    pub peers: Vec<PeerState>,
}
#[derive(Debug, Clone)]
pub struct PeerState {
    pub public_key: Key,
    pub endpoint: Option<SocketAddrV4>,
    pub last_handshake_unix_secs: Option<u64>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub allowed_ips: Vec<Ipv4Net>,
    pub keepalive: u16,
}
pub fn plan(_vpn: &Vpn, _s: &Secrets) -> Result<TunnelPlan, TunnelError> {
    Err(TunnelError)
}
pub fn install(_p: &TunnelPlan) -> Result<(), TunnelError> {
    Ok(())
}
pub fn remove(_ifname: &str, _table: u32) -> Result<(), TunnelError> {
    Ok(())
}
pub fn read(_ifname: &str) -> Result<Option<TunnelState>, TunnelError> {
    Ok(None)
}
pub fn rules_installed(_p: &TunnelPlan) -> Result<bool, TunnelError> {
    Ok(true)
}
