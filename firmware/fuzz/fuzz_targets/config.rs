//! The config file and the API's config bodies: `Config::parse` and validation on arbitrary
//! bytes, then for what parses: the saved form reads back as the same config, and a valid
//! config plans and renders. Nothing may panic.

#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use portcullis::config::{validate, validate_host, Config, Timestamp};
use portcullis::plan::{plan, HostFacts};

/// 2026-11-28T18:00:00Z, so that expiries in the seed corpus are in the future.
const NOW: Timestamp = Timestamp(1_795_888_800);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::parse(text) else {
        return;
    };
    let report = validate(&cfg, NOW);
    let router = [Ipv4Addr::new(192, 168, 1, 1)];
    let host_report = validate_host(&cfg, &router);
    for f in &cfg.forwards {
        let _ = f.open_to_anyone();
    }
    // What the daemon saves must load again, unchanged.
    let saved = cfg.to_json();
    match Config::parse(&saved) {
        Ok(again) => assert_eq!(again, cfg, "saved form differs:\n{saved}"),
        Err(e) => panic!("saved form does not parse: {e}\n{saved}"),
    }
    if report.has_errors() || host_report.has_errors() {
        return;
    }
    let facts = HostFacts {
        wan_addrs: vec![Ipv4Addr::new(198, 51, 100, 1)],
        ..HostFacts::default()
    };
    let rs = plan(&cfg, &facts, NOW);
    let _ = portcullis::render::render(&rs);
});
