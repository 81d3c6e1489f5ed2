//! Replays the upload form fuzz target's corpus and its regressions (`fuzz/corpus/upload_form`,
//! `fuzz/regressions/upload_form`) on stable, cut into chunks as the target cuts them.

use std::path::Path;

use bytes::Bytes;
use facerec_upload::{read_multipart, UploadSpec, MAX_TEXT_FIELD_BYTES};

/// The fuzz target's spec (fuzz/fuzz_targets/upload_form.rs).
const SPEC: UploadSpec<'static> = UploadSpec {
    file_fields: &["image", "image2"],
    max_file_bytes: 4096,
};

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
        let data = std::fs::read(&path).unwrap();
        let Some((&chunk, body)) = data.split_first() else {
            continue;
        };
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> = body
            .chunks(usize::from(chunk) + 1)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures_util::stream::iter(chunks);
        if let Ok(upload) = read_multipart(stream, "B".into(), SPEC).await {
            assert!(upload
                .files
                .values()
                .all(|f| f.len() as u64 <= SPEC.max_file_bytes));
            assert!(upload
                .fields
                .values()
                .all(|t| t.len() as u64 <= MAX_TEXT_FIELD_BYTES));
            parsed += 1;
        }
    }
    assert!(parsed > 0, "the seeds include well-formed forms");
}
