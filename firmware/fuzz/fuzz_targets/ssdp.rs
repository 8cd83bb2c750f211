//! SSDP M-SEARCH parsing and answering, on datagrams as a LAN host could send them.
//! Run: `cargo fuzz run ssdp` in `firmware/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis::portmap::ssdp::fuzz_ssdp(data);
});
