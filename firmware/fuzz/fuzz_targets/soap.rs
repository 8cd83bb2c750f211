//! The UPnP IGD SOAP control, on bytes as a LAN client could send them: the first line is
//! the SOAPAction header, the rest the body (bounded XML reader, argument parsing, both
//! services, faults). Run: `cargo fuzz run soap` in `firmware/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis::portmap::soap::fuzz_soap(data);
});
