//! TEMPORARY: stand-ins for the daemon's port-mapping interface until it lands on main.
//! Deleted at the merge; every use is replaced by the real name it mirrors.
#![allow(dead_code, clippy::unnecessary_wraps, clippy::needless_pass_by_value)]

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::config::{MacAddr, Timestamp, Upnp, UpnpRule};
use crate::daemon::{CallError, Edit, EditError, Handle, Settings, Snapshot};
use crate::portmap::{ExternalAddress, Mapping, Proto, Via};

#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub id: u64,
    pub via: Via,
    pub client: Ipv4Addr,
    pub mac: Option<MacAddr>,
    pub proto: Proto,
    pub external_port: u16,
    pub internal_port: u16,
    pub description: String,
    pub first_asked: Timestamp,
    pub last_asked: Timestamp,
    pub asks: u32,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Once,
    Always,
    Deny,
}

#[derive(Debug, Clone)]
pub enum Revoke {
    One { proto: Proto, external_port: u16 },
    Host { client: Ipv4Addr },
    All,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortmapView {
    pub mappings: Vec<Mapping>,
    pub pending: Vec<Pending>,
    pub external: ExternalAddressJson,
    pub listening: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct ExternalAddressJson {
    pub addr: Option<Ipv4Addr>,
    pub not_public: bool,
}

pub fn portmap(_snap: &Snapshot) -> PortmapView {
    let e = ExternalAddress::default();
    PortmapView {
        mappings: Vec::new(),
        pending: Vec::new(),
        external: ExternalAddressJson {
            addr: e.addr,
            not_public: e.not_public,
        },
        listening: false,
    }
}

pub fn edit_upnp(upnp: Upnp, if_match: Option<String>) -> Edit {
    let _ = upnp;
    Edit::Settings {
        if_match,
        settings: Settings {
            lan: crate::config::Lan {
                interface: String::new(),
                subnets: Vec::new(),
            },
            wan: crate::config::Wan {
                interface: String::new(),
            },
            management: crate::config::Management::default(),
        },
    }
}

pub fn revoke(_h: &Handle, _r: Revoke) -> Result<Vec<Mapping>, CallError> {
    Ok(Vec::new())
}

pub fn decide(
    _h: &Handle,
    _id: u64,
    _d: Decision,
) -> Result<Result<Option<UpnpRule>, EditError>, CallError> {
    Ok(Ok(None))
}
