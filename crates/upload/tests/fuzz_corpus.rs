//! Replays the upload fuzz targets' corpora and their regressions (`fuzz/corpus/<target>`,
//! `fuzz/regressions/<target>`) on stable, through the targets' own harnesses.

include!("../../../fuzz/harness/upload_form.rs");
include!("../../../fuzz/harness/body_forms.rs");
include!("../../../fuzz/harness/corpus.rs");

#[tokio::test]
async fn every_corpus_input_parses_or_is_refused() {
    let mut parsed = 0;
    for input in corpus_inputs("upload_form") {
        parsed += usize::from(fuzz_upload_form(&input).await);
    }
    assert!(parsed > 0, "the seeds include well-formed forms");
}

#[test]
fn every_body_forms_input_parses_or_is_refused() {
    let inputs = corpus_inputs("body_forms");
    let parsed = inputs.iter().filter(|input| fuzz_body_forms(input)).count();
    assert!(parsed > 0, "the seeds include well-formed forms");
    assert!(parsed < inputs.len(), "and malformed ones");
}
