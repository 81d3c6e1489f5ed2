//! Image ingestion (signature, limits, header, decode, orientation) on arbitrary bytes: it must
//! return an image or an error, never panic, hang or exhaust memory.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../harness/ingest.rs");

fuzz_target!(|data: &[u8]| {
    fuzz_ingest(data);
});
