//! Image ingestion (signature, limits, header, decode, orientation) on arbitrary bytes: it must
//! return an image or an error, never panic, hang or exhaust memory.
#![no_main]

use facerec_vision::{decode_image, IngestLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Smaller than the service's defaults so that a run spends its time on parsing rather than
    // on filling large pixel buffers; the code paths are the same. The corpus replay test
    // (crates/vision/tests/fuzz_corpus.rs) uses the same limits.
    let limits = IngestLimits {
        max_bytes: 1 << 20,
        max_pixels: 1 << 20,
        max_side: 4096,
    };
    if let Ok(image) = decode_image(data, &limits) {
        assert!(u64::from(image.width()) * u64::from(image.height()) <= limits.max_pixels);
    }
});
