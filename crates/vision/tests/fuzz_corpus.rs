//! Replays the ingestion fuzz target's corpus and its regressions (`fuzz/corpus/ingest`,
//! `fuzz/regressions/ingest`) on stable, with the target's limits: every input that `cargo fuzz`
//! kept as interesting, or that once crashed, must still decode or be refused, never panic.

use std::path::Path;

use facerec_vision::{decode_image, IngestLimits};

/// The fuzz target's limits (fuzz/fuzz_targets/ingest.rs).
const LIMITS: IngestLimits = IngestLimits {
    max_bytes: 1 << 20,
    max_pixels: 1 << 20,
    max_side: 4096,
};

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            inputs.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    inputs
}

#[test]
fn every_corpus_input_decodes_or_is_refused() {
    let inputs = inputs("ingest");
    assert!(
        inputs.len() >= 10,
        "the corpus is missing: {} inputs",
        inputs.len()
    );
    let mut decoded = 0;
    for (name, bytes) in inputs {
        match decode_image(&bytes, &LIMITS) {
            Ok(image) => {
                assert!(u64::from(image.width()) * u64::from(image.height()) <= LIMITS.max_pixels);
                decoded += 1;
            }
            Err(err) => assert!(!err.code().is_empty(), "{name}: {err}"),
        }
    }
    assert!(
        decoded > 0,
        "the seeds include valid images of every format"
    );
}
