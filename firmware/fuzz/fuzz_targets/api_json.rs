//! The web API's JSON bodies: forwards and triggers (with the field-naming error path),
//! router settings, a restored config file and the login/setup body. None may panic.
//! Run: `cargo fuzz run api_json` in `firmware/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    portcullis::web::api::fuzz_bodies(data);
});
