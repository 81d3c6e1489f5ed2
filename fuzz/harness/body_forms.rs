// The body forms fuzz harness (JSON with base64 images, URL-encoded), shared by the cargo-fuzz target
// (fuzz/fuzz_targets/body_forms.rs) and the corpus replay on stable
// (crates/upload/tests/fuzz_corpus.rs), which `include!` it.

const BODY_SPEC: facerec_upload::UploadSpec<'static> = facerec_upload::UploadSpec {
    file_fields: &["file", "source_image", "target_image"],
    max_file_bytes: 4096,
};

/// Parses an arbitrary body: an even first byte reads the rest as JSON, an odd one as a URL-encoded
/// form. A form or an error, never a panic, and never a field beyond its limit. `true` when a form
/// came out.
fn fuzz_body_forms(data: &[u8]) -> bool {
    let Some((&kind, body)) = data.split_first() else {
        return false;
    };
    let parsed = if kind % 2 == 0 {
        facerec_upload::read_json(body, BODY_SPEC)
    } else {
        facerec_upload::read_urlencoded(body)
    };
    match parsed {
        Ok(upload) => {
            let file_limit = BODY_SPEC.max_file_bytes;
            assert!(upload.files.values().all(|f| f.len() as u64 <= file_limit));
            let text_limit = facerec_upload::MAX_TEXT_FIELD_BYTES;
            assert!(upload.fields.values().all(|t| t.len() as u64 <= text_limit));
            true
        }
        Err(_) => false,
    }
}
