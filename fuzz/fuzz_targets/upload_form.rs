//! The upload form parser on arbitrary bodies, cut into chunks at arbitrary places: it must return a
//! form or an error, never panic, and never hold a field beyond its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../harness/upload_form.rs");

fuzz_target!(|data: &[u8]| {
    futures_executor::block_on(fuzz_upload_form(data));
});
