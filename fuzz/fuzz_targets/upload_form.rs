//! The upload form parser on arbitrary bodies, cut into chunks at arbitrary places: it must return a
//! form or an error, never panic, and never hold a field beyond its limit.
#![no_main]

use bytes::Bytes;
use facerec_upload::{read_multipart, UploadSpec, MAX_TEXT_FIELD_BYTES};
use libfuzzer_sys::fuzz_target;

const SPEC: UploadSpec<'static> = UploadSpec {
    file_fields: &["image", "image2"],
    max_file_bytes: 4096,
};

fuzz_target!(|data: &[u8]| {
    // The first byte sets the chunk size (1..=256), the rest is the body; boundary "B" as in the
    // corpus (crates/upload/tests/fuzz_corpus.rs replays it the same way).
    let Some((&chunk, body)) = data.split_first() else {
        return;
    };
    let chunks: Vec<Result<Bytes, std::convert::Infallible>> = body
        .chunks(usize::from(chunk) + 1)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    if let Ok(upload) = futures_executor::block_on(read_multipart(stream, "B".into(), SPEC)) {
        assert!(upload.files.values().all(|f| f.len() as u64 <= SPEC.max_file_bytes));
        assert!(upload.fields.values().all(|t| t.len() as u64 <= MAX_TEXT_FIELD_BYTES));
    }
});
