//! The other two forms clients send: a JSON object whose image fields are base64 (CompreFace's
//! alternative to multipart) and `application/x-www-form-urlencoded` (DeepStack's calls without an
//! image). Both arrive as one buffered body, already bounded by the server's body limit.
//!
//! The JSON is never parsed into a generic tree: each field is kept as its raw text
//! (`serde_json::value::RawValue`, a slice of the body) and only image and string fields are
//! decoded, so a body of a million tiny values costs no more memory than its bytes.

use std::collections::HashMap;

use base64::Engine;
use bytes::Bytes;
use serde_json::value::RawValue;

use crate::{Upload, UploadError, UploadSpec, MAX_TEXT_FIELD_BYTES};

/// A JSON object of fields: those named by `spec.file_fields` hold base64 images (a `data:` URL
/// prefix is tolerated), each at most `spec.max_file_bytes` once decoded (refused from its length,
/// before decoding); every other field is text: a string as it is, anything else as its JSON text,
/// each at most [`MAX_TEXT_FIELD_BYTES`].
pub fn read_json(body: &[u8], spec: UploadSpec<'_>) -> Result<Upload, UploadError> {
    let fields: HashMap<String, &RawValue> = serde_json::from_slice(body)
        .map_err(|e| UploadError::Malformed(format!("the body is not a JSON object: {e}")))?;
    let mut upload = Upload::default();
    for (name, raw) in fields {
        if spec.file_fields.contains(&name.as_str()) {
            let image = decode_base64_image(&name, raw, spec.max_file_bytes)?;
            upload.files.insert(name, image);
        } else {
            // A value whose JSON text could not fit the limit is refused from its length (a JSON
            // escape is at most 6 bytes for one), so a huge one is never copied.
            let raw_limit = MAX_TEXT_FIELD_BYTES as usize * 6 + 2;
            let text = (raw.get().len() <= raw_limit).then(|| text_of(raw));
            let Some(text) = text.filter(|t| t.len() as u64 <= MAX_TEXT_FIELD_BYTES) else {
                return Err(UploadError::TextTooLarge {
                    field: name,
                    limit: MAX_TEXT_FIELD_BYTES,
                });
            };
            upload.fields.insert(name, text);
        }
    }
    Ok(upload)
}

/// URL-encoded fields, each at most [`MAX_TEXT_FIELD_BYTES`]; a repeated field keeps its last value.
pub fn read_urlencoded(body: &[u8]) -> Result<Upload, UploadError> {
    let mut upload = Upload::default();
    for (name, value) in form_urlencoded::parse(body) {
        if value.len() as u64 > MAX_TEXT_FIELD_BYTES {
            return Err(UploadError::TextTooLarge {
                field: name.into_owned(),
                limit: MAX_TEXT_FIELD_BYTES,
            });
        }
        upload.fields.insert(name.into_owned(), value.into_owned());
    }
    Ok(upload)
}

/// A JSON string's contents, or another value's JSON text.
fn text_of(raw: &RawValue) -> String {
    serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned())
}

fn decode_base64_image(name: &str, raw: &RawValue, max_bytes: u64) -> Result<Bytes, UploadError> {
    let text: String = serde_json::from_str(raw.get())
        .map_err(|_| UploadError::Malformed(format!("field '{name}' must be a base64 string")))?;
    let data = text
        .split_once(";base64,")
        .map_or(text.as_str(), |(_, data)| data)
        .trim();
    // Decoded size first, so that an oversized image is refused without decoding it.
    if (data.len() / 4 * 3) as u64 > max_bytes + 2 {
        return Err(UploadError::FileTooLarge {
            field: name.to_owned(),
            limit: max_bytes,
        });
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| UploadError::Malformed(format!("field '{name}' is not valid base64: {e}")))?;
    if bytes.len() as u64 > max_bytes {
        return Err(UploadError::FileTooLarge {
            field: name.to_owned(),
            limit: max_bytes,
        });
    }
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: UploadSpec<'static> = UploadSpec {
        file_fields: &["file"],
        max_file_bytes: 6,
    };

    #[test]
    fn json_images_and_text() {
        let body = br#"{"file": "data:image/jpeg;base64,/9j/AAE=", "name": "Ann", "n": [1, 2]}"#;
        let upload = read_json(body, SPEC).unwrap();
        assert_eq!(upload.files["file"].as_ref(), b"\xFF\xD8\xFF\x00\x01");
        assert_eq!(upload.fields["name"], "Ann");
        assert_eq!(upload.fields["n"], "[1, 2]");
    }

    #[test]
    fn json_limits_and_errors() {
        let err = read_json(br#"{"file": "AAAAAAAAAAAAAAAA"}"#, SPEC).unwrap_err();
        assert!(
            matches!(err, UploadError::FileTooLarge { limit: 6, .. }),
            "{err}"
        );
        let err = read_json(br#"{"file": 3}"#, SPEC).unwrap_err();
        assert!(err.to_string().contains("base64 string"), "{err}");
        let err = read_json(br#"{"file": "!!!!"}"#, SPEC).unwrap_err();
        assert!(err.to_string().contains("not valid base64"), "{err}");
        let err = read_json(b"[1, 2]", SPEC).unwrap_err();
        assert!(err.to_string().contains("not a JSON object"), "{err}");
        let long = format!(
            r#"{{"name": "{}"}}"#,
            "a".repeat(MAX_TEXT_FIELD_BYTES as usize + 1)
        );
        let err = read_json(long.as_bytes(), SPEC).unwrap_err();
        assert!(matches!(err, UploadError::TextTooLarge { .. }), "{err}");
    }

    #[test]
    fn urlencoded_fields() {
        let upload = read_urlencoded(b"userid=Ann+Lee&api_key=k%26y&userid=Bo").unwrap();
        assert_eq!(upload.fields["userid"], "Bo");
        assert_eq!(upload.fields["api_key"], "k&y");
        let long = format!("a={}", "b".repeat(MAX_TEXT_FIELD_BYTES as usize + 1));
        assert!(matches!(
            read_urlencoded(long.as_bytes()),
            Err(UploadError::TextTooLarge { .. })
        ));
    }
}
