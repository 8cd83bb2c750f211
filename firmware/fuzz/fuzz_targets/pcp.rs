//! PCP requests (RFC 6887) as a LAN host could send them, answered by the codec with a
//! mapper whose reply the first input byte picks (grant, a refusal, no external address).
//! Nothing may panic; every answer is PCP version 2, a response, 24 to 1100 bytes and a
//! multiple of 4. Run: `cargo fuzz run pcp` in `firmware/`.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use portcullis::config::Timestamp;
use portcullis::portmap::{
    pcp, ExternalAddress, Grant, MapRequest, Mapper, Mapping, Refusal, Unmap,
};

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);

/// Grants (mode 0), refuses (modes 1 to 4), or has no external address (mode 5).
struct Fake(u8);

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

fuzz_target!(|data: &[u8]| {
    let Some((&mode, msg)) = data.split_first() else {
        return;
    };
    if msg.len() > pcp::MAX_LEN {
        return; // the server drops these before the codec
    }
    let m = Fake(mode % 6);
    if let Some(r) = pcp::handle(msg, CLIENT, None, &m) {
        assert!(
            (24..=pcp::MAX_LEN).contains(&r.len()) && r.len() % 4 == 0,
            "{}",
            r.len()
        );
        assert_eq!(r.first(), Some(&2));
        assert!(r.get(1).is_some_and(|op| op & 0x80 != 0));
    }
});
