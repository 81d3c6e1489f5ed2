//! Reading upload forms from untrusted clients: `multipart/form-data` as it streams in, and the
//! buffered JSON (base64 images) and URL-encoded forms of the compatible APIs ([`body`]).
//!
//! Every field has a byte limit that `multer` enforces while the body streams in: a file field at
//! most the image limit, a text field 64 KiB, so nothing larger is ever buffered. File bytes are kept
//! as they arrived (`Bytes`), never copied. This crate knows nothing of any HTTP framework: the server
//! hands it the body as a stream and maps [`UploadError`] to responses; the fuzz target hands it
//! arbitrary bytes.

mod body;

use std::collections::HashMap;

use bytes::Bytes;
use futures_util::Stream;
use multer::{Constraints, SizeLimit};

/// Longest text field (names, metadata, consent basis, numbers).
pub const MAX_TEXT_FIELD_BYTES: u64 = 64 * 1024;

pub use body::{read_json, read_urlencoded};

/// Which fields carry files and how large a file may be; every other field is text.
#[derive(Debug, Clone, Copy)]
pub struct UploadSpec<'a> {
    pub file_fields: &'a [&'a str],
    pub max_file_bytes: u64,
}

/// A parsed form: files by field name, text fields by name. A repeated field keeps its last value.
#[derive(Debug, Default)]
pub struct Upload {
    pub files: HashMap<String, Bytes>,
    pub fields: HashMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file in field '{field}' is more than the limit of {limit} bytes")]
    FileTooLarge { field: String, limit: u64 },
    #[error("a form may carry at most {limit} files")]
    TooManyFiles { limit: usize },
    #[error("field '{field}' is longer than {limit} bytes")]
    TextTooLarge { field: String, limit: u64 },
    /// A file too long for a text field, under a name the route does not read as a file (such as
    /// CompreFace's `file` on a route that takes `image`).
    #[error("field '{field}' is a file this route does not read: {}", expected_files(.expected))]
    UnexpectedFile {
        field: String,
        expected: Vec<String>,
    },
    /// Reading the body itself failed; the source says why (a body-size limit, a dropped connection).
    #[error("the request body could not be read: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Not a well-formed body of its type; says what is wrong.
    #[error("{0}")]
    Malformed(String),
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub fn boundary(content_type: &str) -> Option<String> {
    multer::parse_boundary(content_type).ok()
}

/// Reads a whole form, enforcing the per-field limits as the bytes arrive. Files are the fields
/// `spec.file_fields` names.
pub async fn read_multipart<S, E>(
    body: S,
    boundary: String,
    spec: UploadSpec<'_>,
) -> Result<Upload, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    read(body, boundary, spec, None).await
}

/// Reads a whole form in which every part that names a file (`filename=`) is a file, whatever its
/// field's name (DeepStack's own server takes every file of the form), and so are the fields
/// `spec.file_fields` names; at most `max_files` of them.
pub async fn read_multipart_files<S, E>(
    body: S,
    boundary: String,
    spec: UploadSpec<'_>,
    max_files: usize,
) -> Result<Upload, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    read(body, boundary, spec, Some(max_files)).await
}

async fn read<S, E>(
    body: S,
    boundary: String,
    spec: UploadSpec<'_>,
    any_files: Option<usize>,
) -> Result<Upload, UploadError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    // Where any part may be a file, every part may be as large as a file; text parts are held to
    // their own limit while they arrive (`read_text`).
    let mut per_field = SizeLimit::new().per_field(match any_files {
        Some(_) => spec.max_file_bytes,
        None => MAX_TEXT_FIELD_BYTES,
    });
    for name in spec.file_fields {
        per_field = per_field.for_field(*name, spec.max_file_bytes);
    }
    let constraints = Constraints::new().size_limit(per_field);
    let mut multipart = multer::Multipart::with_constraints(body, boundary, constraints);
    let mut upload = Upload::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| classify(e, &spec))?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let is_file = spec.file_fields.contains(&name.as_str())
            || (any_files.is_some() && field.file_name().is_some());
        if is_file {
            if let Some(max) = any_files.filter(|max| upload.files.len() >= *max) {
                return Err(UploadError::TooManyFiles { limit: max });
            }
            let bytes = field.bytes().await.map_err(|e| classify(e, &spec))?;
            upload.files.insert(name, bytes);
        } else {
            let carries_a_file = field.file_name().is_some();
            let text = read_text(field, &name, &spec).await.map_err(|e| match e {
                UploadError::TextTooLarge { field, .. } if carries_a_file => {
                    UploadError::UnexpectedFile {
                        field,
                        expected: spec.file_fields.iter().map(|f| f.to_string()).collect(),
                    }
                }
                other => other,
            })?;
            upload.fields.insert(name, text);
        }
    }
    Ok(upload)
}

/// What a route reads as files, said to a client that sent one under another name.
fn expected_files(expected: &[String]) -> String {
    match expected {
        [] => "it takes no file".to_owned(),
        [one] => format!("send the image as '{one}'"),
        many => format!("it takes images as '{}'", many.join("', '")),
    }
}

/// A text field, refused as soon as it passes [`MAX_TEXT_FIELD_BYTES`].
async fn read_text(
    mut field: multer::Field<'_>,
    name: &str,
    spec: &UploadSpec<'_>,
) -> Result<String, UploadError> {
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| classify(e, spec))? {
        if (text.len() + chunk.len()) as u64 > MAX_TEXT_FIELD_BYTES {
            return Err(UploadError::TextTooLarge {
                field: name.to_owned(),
                limit: MAX_TEXT_FIELD_BYTES,
            });
        }
        text.extend_from_slice(&chunk);
    }
    String::from_utf8(text)
        .map_err(|_| UploadError::Malformed(format!("field '{name}' is not UTF-8 text")))
}

fn classify(err: multer::Error, spec: &UploadSpec<'_>) -> UploadError {
    match err {
        multer::Error::FieldSizeExceeded { limit, field_name } => {
            let field = field_name.unwrap_or_default();
            if spec.file_fields.contains(&field.as_str()) {
                UploadError::FileTooLarge { field, limit }
            } else {
                UploadError::TextTooLarge { field, limit }
            }
        }
        multer::Error::StreamReadFailed(source) => UploadError::Body(source),
        other => UploadError::Malformed(format!("malformed multipart body: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: UploadSpec<'static> = UploadSpec {
        file_fields: &["image"],
        max_file_bytes: 8,
    };

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in parts {
            out.extend_from_slice(
                format!("--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                    .as_bytes(),
            );
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--B--\r\n");
        out
    }

    async fn read(bytes: Vec<u8>) -> Result<Upload, UploadError> {
        // One byte per chunk: every boundary and header straddles chunks.
        let chunks: Vec<Result<Bytes, std::convert::Infallible>> = bytes
            .into_iter()
            .map(|b| Ok(Bytes::from(vec![b])))
            .collect();
        read_multipart(futures_util::stream::iter(chunks), "B".into(), SPEC).await
    }

    #[tokio::test]
    async fn files_and_text_fields_by_name() {
        let upload = read(body(&[("image", b"\xFF\xD8bytes"), ("name", b"Ann")]))
            .await
            .unwrap();
        assert_eq!(upload.files["image"].as_ref(), b"\xFF\xD8bytes");
        assert_eq!(upload.fields["name"], "Ann");
        assert_eq!(
            boundary("multipart/form-data; boundary=B").as_deref(),
            Some("B")
        );
        assert_eq!(boundary("application/json"), None);
    }

    #[tokio::test]
    async fn any_part_naming_a_file_is_a_file_up_to_the_count() {
        let part = |name: &str, file: &str| {
            format!(
                "--B\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\r\nxy\r\n"
            )
        };
        let form = format!(
            "{}{}--B\r\nContent-Disposition: form-data; name=\"userid\"\r\n\r\nAnn\r\n--B--\r\n",
            part("image7f3a", "a.jpg"),
            part("other", "b.jpg")
        );
        let stream = |body: String| {
            futures_util::stream::iter([Ok::<_, std::convert::Infallible>(Bytes::from(body))])
        };
        let upload = read_multipart_files(stream(form.clone()), "B".into(), SPEC, 2)
            .await
            .unwrap();
        assert_eq!(upload.files.len(), 2);
        assert_eq!(upload.fields["userid"], "Ann");
        let err = read_multipart_files(stream(form), "B".into(), SPEC, 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, UploadError::TooManyFiles { limit: 1 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn each_field_has_its_limit() {
        let err = read(body(&[("image", b"123456789")])).await.unwrap_err();
        assert!(
            matches!(err, UploadError::FileTooLarge { ref field, limit: 8 } if field == "image"),
            "{err}"
        );
        let long = vec![b'a'; MAX_TEXT_FIELD_BYTES as usize + 1];
        let err = read(body(&[("name", &long)])).await.unwrap_err();
        assert!(matches!(err, UploadError::TextTooLarge { .. }), "{err}");
        // A photo under a name the route does not read as a file (CompreFace's `file` where
        // `image` is meant) is named as such, with the field to use.
        let mut photo =
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.jpg\"\r\n\r\n"
                .to_vec();
        photo.extend_from_slice(&long);
        photo.extend_from_slice(b"\r\n--B--\r\n");
        let err = read(photo).await.unwrap_err();
        assert!(matches!(err, UploadError::UnexpectedFile { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "field 'file' is a file this route does not read: send the image as 'image'"
        );
        let err = read(b"--B\r\nno headers end".to_vec()).await.unwrap_err();
        assert!(matches!(err, UploadError::Malformed(_)), "{err}");
    }
}
