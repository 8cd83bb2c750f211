//! A [`Mapper`] that decides with the pure [`Table`] and installs nothing: for tests of
//! the protocol servers and codecs without a daemon (and for fuzzing them).

use std::sync::Mutex;
use std::time::Instant;

use super::table::{Policy, Table};
use super::{ExternalAddress, Grant, MapRequest, Mapper, Mapping, Refusal, Unmap};
use crate::config::{Config, Timestamp};

/// The table and policy of one config, behind a lock.
#[derive(Debug)]
pub struct MemoryMapper {
    inner: Mutex<(Table, Policy)>,
    external: ExternalAddress,
    started: Instant,
}

impl MemoryMapper {
    /// Decides by `cfg`'s `upnp` section; the external address is 203.0.113.2.
    pub fn new(cfg: &Config) -> MemoryMapper {
        MemoryMapper {
            inner: Mutex::new((Table::default(), Policy::of(cfg))),
            external: ExternalAddress::of(Some(std::net::Ipv4Addr::new(203, 0, 113, 2))),
            started: Instant::now(),
        }
    }

    /// The same with another external address.
    pub fn with_external(mut self, external: ExternalAddress) -> MemoryMapper {
        self.external = external;
        self
    }

    fn with<T>(&self, f: impl FnOnce(&mut Table, &Policy) -> T) -> T {
        let mut g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (t, p) = &mut *g;
        f(t, p)
    }
}

impl Mapper for MemoryMapper {
    fn map(&self, req: MapRequest) -> Result<Grant, Refusal> {
        self.with(|t, p| t.map(p, &req, Timestamp::now()))
    }

    fn unmap(&self, req: Unmap) -> Result<Vec<Mapping>, Refusal> {
        self.with(|t, _| t.unmap(&req))
    }

    fn mappings(&self) -> Vec<Mapping> {
        self.with(|t, _| {
            t.expire(Timestamp::now());
            t.mappings()
        })
    }

    fn external(&self) -> ExternalAddress {
        self.external
    }

    fn epoch_secs(&self) -> u32 {
        u32::try_from(self.started.elapsed().as_secs()).unwrap_or(u32::MAX)
    }
}
