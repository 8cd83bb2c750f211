//! The web gate's request parsing, on bytes as a LAN client could send them: whether a
//! request is complete or refused (head and body caps, chunked, duplicate lengths), and
//! the head passed on to the handlers (the client's own peer header never gets through).
//! Run: `cargo fuzz run http_gate` in `firmware/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis::web::request::fuzz_request_head(data);
});
