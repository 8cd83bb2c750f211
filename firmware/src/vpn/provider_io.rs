//! STUB
use super::provider::Event;
use std::net::Ipv4Addr;
use std::time::Duration;
pub struct Update {
    pub held: Option<(u16, Duration)>,
    pub health: String,
    pub events: Vec<Event>,
}
#[derive(Debug, thiserror::Error)]
#[error("provider")]
pub struct ProviderError;
pub struct ProviderHandle;
impl ProviderHandle {
    pub fn tunnel_up(&self) {}
    pub fn tunnel_down(&self) {}
    pub fn stop(self) {}
}
pub fn spawn(
    _ifname: String,
    _gateway: Ipv4Addr,
    _report: Box<dyn Fn(Update) + Send>,
) -> Result<ProviderHandle, ProviderError> {
    Ok(ProviderHandle)
}
