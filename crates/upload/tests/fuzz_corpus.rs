//! Replays the upload form fuzz target's corpus and its regressions (`fuzz/corpus/upload_form`,
//! `fuzz/regressions/upload_form`) on stable, through the target's own harness.

use std::path::Path;

include!("../../../fuzz/harness/upload_form.rs");

#[tokio::test]
async fn every_corpus_input_parses_or_is_refused() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut inputs = Vec::new();
    for dir in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("upload_form")) {
            inputs.extend(entries.map(|e| e.unwrap().path()));
        }
    }
    assert!(
        inputs.len() >= 10,
        "the corpus is missing: {} inputs",
        inputs.len()
    );
    let mut parsed = 0;
    for path in inputs {
        parsed += usize::from(fuzz_upload_form(&std::fs::read(&path).unwrap()).await);
    }
    assert!(parsed > 0, "the seeds include well-formed forms");
}

mod body_forms {
    use std::path::Path;

    include!("../../../fuzz/harness/body_forms.rs");

    #[test]
    fn every_corpus_input_parses_or_is_refused() {
        let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut inputs = Vec::new();
        for dir in ["corpus", "regressions"] {
            if let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("body_forms")) {
                inputs.extend(entries.map(|e| e.unwrap().path()));
            }
        }
        assert!(
            inputs.len() >= 10,
            "the corpus is missing: {} inputs",
            inputs.len()
        );
        let parsed: usize = inputs
            .iter()
            .map(|path| usize::from(fuzz_body_forms(&std::fs::read(path).unwrap())))
            .sum();
        assert!(parsed > 0, "the seeds include well-formed forms");
        assert!(parsed < inputs.len(), "and malformed ones");
    }
}
