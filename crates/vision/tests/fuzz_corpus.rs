//! Replays the ingestion fuzz target's corpus and its regressions (`fuzz/corpus/ingest`,
//! `fuzz/regressions/ingest`) on stable, through the target's own harness: every input that
//! `cargo fuzz` kept as interesting, or that once crashed, must still decode or be refused, never
//! panic.

include!("../../../fuzz/harness/ingest.rs");
include!("../../../fuzz/harness/corpus.rs");

#[test]
fn every_corpus_input_decodes_or_is_refused() {
    let decoded = corpus_inputs("ingest")
        .iter()
        .filter(|input| fuzz_ingest(input))
        .count();
    assert!(
        decoded > 0,
        "the seeds include valid images of every format"
    );
}
