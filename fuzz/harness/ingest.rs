// The ingestion fuzz harness, shared by the cargo-fuzz target (fuzz/fuzz_targets/ingest.rs) and the
// corpus replay on stable (crates/vision/tests/fuzz_corpus.rs), which `include!` it.

/// Smaller than the service's defaults so that a run spends its time on parsing rather than on
/// filling large pixel buffers; the code paths are the same.
const LIMITS: facerec_vision::IngestLimits = facerec_vision::IngestLimits {
    max_bytes: 1 << 20,
    max_pixels: 1 << 20,
    max_side: 4096,
};

/// Decodes arbitrary bytes: an image within the limits or an error, never a panic. `true` when an
/// image came out.
fn fuzz_ingest(data: &[u8]) -> bool {
    match facerec_vision::decode_image(data, &LIMITS) {
        Ok(image) => {
            assert!(u64::from(image.width()) * u64::from(image.height()) <= LIMITS.max_pixels);
            true
        }
        Err(err) => {
            assert!(!err.code().as_str().is_empty());
            false
        }
    }
}
