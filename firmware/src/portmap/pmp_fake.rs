//! A scripted [`Mapper`] for the NAT-PMP/PCP tests: records every call; `map` answers with
//! the next scripted reply, or grants the suggested port (40000 for "any") for the
//! lifetime asked; `unmap` answers with the next scripted reply, or removes nothing
//! (NotFound).

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::sync::Mutex;

use crate::config::Timestamp;
use crate::portmap::{ExternalAddress, Grant, MapRequest, Mapper, Mapping, Refusal, Unmap};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Call {
    Map(MapRequest),
    Unmap(Unmap),
}

#[derive(Debug, Default)]
pub(crate) struct FakeMapper {
    pub calls: Mutex<Vec<Call>>,
    pub map_replies: Mutex<VecDeque<Result<Grant, Refusal>>>,
    pub unmap_replies: Mutex<VecDeque<Result<Vec<Mapping>, Refusal>>>,
    pub external: Option<Ipv4Addr>,
    pub epoch: u32,
}

impl FakeMapper {
    /// External address 203.0.113.7, epoch 1234.
    pub fn new() -> FakeMapper {
        FakeMapper {
            external: Some(Ipv4Addr::new(203, 0, 113, 7)),
            epoch: 1234,
            ..FakeMapper::default()
        }
    }

    pub fn reply_map(&self, r: Result<Grant, Refusal>) {
        self.map_replies.lock().unwrap().push_back(r);
    }

    pub fn reply_unmap(&self, r: Result<Vec<Mapping>, Refusal>) {
        self.unmap_replies.lock().unwrap().push_back(r);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }
}

/// The mapping a grant of `req` on `external_port` would be.
pub(crate) fn mapping_of(req: &MapRequest, external_port: u16) -> Mapping {
    Mapping {
        via: req.via,
        client: req.client,
        mac: req.mac,
        proto: req.proto,
        external_port,
        internal_port: req.internal_port,
        remote_host: req.remote_host,
        description: req.description.clone(),
        nonce: req.nonce,
        created_at: Timestamp(1_000),
        expires_at: Timestamp(1_000 + u64::from(req.lifetime_secs)),
    }
}

impl Mapper for FakeMapper {
    fn map(&self, req: MapRequest) -> Result<Grant, Refusal> {
        self.calls.lock().unwrap().push(Call::Map(req.clone()));
        if let Some(r) = self.map_replies.lock().unwrap().pop_front() {
            return r;
        }
        let port = if req.external_port == 0 {
            40000
        } else {
            req.external_port
        };
        Ok(Grant {
            mapping: mapping_of(&req, port),
            lifetime_secs: req.lifetime_secs,
            refreshed: false,
        })
    }

    fn unmap(&self, req: Unmap) -> Result<Vec<Mapping>, Refusal> {
        self.calls.lock().unwrap().push(Call::Unmap(req));
        self.unmap_replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Err(Refusal::NotFound))
    }

    fn mappings(&self) -> Vec<Mapping> {
        Vec::new()
    }

    fn external(&self) -> ExternalAddress {
        ExternalAddress::of(self.external)
    }

    fn epoch_secs(&self) -> u32 {
        self.epoch
    }
}
