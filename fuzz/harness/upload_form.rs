// The upload form fuzz harness, shared by the cargo-fuzz target (fuzz/fuzz_targets/upload_form.rs)
// and the corpus replay on stable (crates/upload/tests/fuzz_corpus.rs), which `include!` it.

const SPEC: facerec_upload::UploadSpec<'static> = facerec_upload::UploadSpec {
    file_fields: &["image", "image2"],
    max_file_bytes: 4096,
};

/// Parses an arbitrary body: the first byte sets the chunk size (1..=256), the rest is the body,
/// boundary "B". A form or an error, never a panic, and never a field beyond its limit. `true` when
/// a form came out.
async fn fuzz_upload_form(data: &[u8]) -> bool {
    let Some((&chunk, body)) = data.split_first() else {
        return false;
    };
    let chunks: Vec<Result<bytes::Bytes, std::convert::Infallible>> = body
        .chunks(usize::from(chunk) + 1)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    match facerec_upload::read_multipart(stream, "B".into(), SPEC).await {
        Ok(upload) => {
            assert!(upload.files.values().all(|f| f.len() as u64 <= SPEC.max_file_bytes));
            let text_limit = facerec_upload::MAX_TEXT_FIELD_BYTES;
            assert!(upload.fields.values().all(|t| t.len() as u64 <= text_limit));
            true
        }
        Err(_) => false,
    }
}
