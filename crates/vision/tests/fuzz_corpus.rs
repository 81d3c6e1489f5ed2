//! Replays the ingestion fuzz target's corpus and its regressions (`fuzz/corpus/ingest`,
//! `fuzz/regressions/ingest`) on stable, through the target's own harness: every input that
//! `cargo fuzz` kept as interesting, or that once crashed, must still decode or be refused, never
//! panic.

use std::path::Path;

include!("../../../fuzz/harness/ingest.rs");

#[test]
fn every_corpus_input_decodes_or_is_refused() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("ingest")) {
            inputs.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    assert!(
        inputs.len() >= 10,
        "the corpus is missing: {} inputs",
        inputs.len()
    );
    let decoded = inputs
        .iter()
        .filter(|path| fuzz_ingest(&std::fs::read(path).unwrap()))
        .count();
    assert!(
        decoded > 0,
        "the seeds include valid images of every format"
    );
}
