//! The JSON (base64 images) and URL-encoded form readers on arbitrary bodies: a form or an error,
//! never a panic, and never a field beyond its limit.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../harness/body_forms.rs");

fuzz_target!(|data: &[u8]| {
    fuzz_body_forms(data);
});
