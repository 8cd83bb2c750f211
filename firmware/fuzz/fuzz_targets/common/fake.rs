//! The scripted mapper both NAT-PMP and PCP targets answer with (`#[path]`-included).

use std::net::Ipv4Addr;

use portcullis::config::Timestamp;
use portcullis::portmap::{ExternalAddress, Grant, MapRequest, Mapper, Mapping, Refusal, Unmap};

/// Grants (mode 0), refuses (modes 1 to 4), or has no external address (mode 5).
pub struct Fake(pub u8);

impl Mapper for Fake {
    fn map(&self, req: MapRequest) -> Result<Grant, Refusal> {
        match self.0 {
            1 => return Err(Refusal::Pending),
            2 => return Err(Refusal::NoneFree),
            3 => return Err(Refusal::Quota(1)),
            4 => return Err(Refusal::Invalid("fuzz".into())),
            5 => return Err(Refusal::NoExternalAddress),
            _ => {}
        }
        let lifetime_secs = req.lifetime_secs.min(7200);
        Ok(Grant {
            mapping: Mapping {
                via: req.via,
                client: req.client,
                mac: req.mac,
                proto: req.proto,
                external_port: req.external_port.max(1024),
                internal_port: req.internal_port,
                remote_host: req.remote_host,
                description: req.description,
                nonce: req.nonce,
                created_at: Timestamp(0),
                expires_at: Timestamp(u64::from(lifetime_secs)),
            },
            lifetime_secs,
            refreshed: false,
        })
    }
    fn unmap(&self, _: Unmap) -> Result<Vec<Mapping>, Refusal> {
        match self.0 {
            1 => Err(Refusal::NotOwner),
            _ => Err(Refusal::NotFound),
        }
    }
    fn mappings(&self) -> Vec<Mapping> {
        Vec::new()
    }
    fn external(&self) -> ExternalAddress {
        ExternalAddress::of((self.0 != 5).then_some(Ipv4Addr::new(203, 0, 113, 7)))
    }
    fn epoch_secs(&self) -> u32 {
        1234
    }
}
