//! The upload form of `/v1` routes, read by `facerec-upload` (per-field limits while the body streams
//! in, image bytes never copied); this module maps its errors and values to the API's.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::header;
use bytes::Bytes;
use facerec_upload::{Upload, UploadError, UploadSpec, MAX_TEXT_FIELD_BYTES};

use super::error::ApiError;
use super::state::AppState;
use facerec_core::ErrorCode;

/// Fields that carry image bytes; every other field is text.
const FILE_FIELDS: [&str; 2] = ["image", "image2"];

/// A `/v1` upload form, as `facerec-upload` read it.
#[derive(Debug, Default)]
pub struct Form(Upload);

impl FromRequest<Arc<AppState>> for Form {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        match BodyType::of(&request) {
            Ok(BodyType::Multipart(boundary)) => {
                Self::read_multipart(request, boundary, state, &FILE_FIELDS, None).await
            }
            _ => Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "expected a multipart/form-data body (Content-Type with a boundary)",
            )),
        }
    }
}

/// What a body claims to be, told from its headers before any byte of it is read. Media types
/// compare case-insensitively (RFC 9110); a boundary is kept as sent.
enum BodyType {
    Multipart(String),
    Json,
    UrlEncoded,
    /// No body at all (and no type).
    Empty,
}

impl BodyType {
    fn of(request: &Request) -> Result<Self, ApiError> {
        let headers = request.headers();
        let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
            return if super::admission::declares_body(headers) {
                Err(unsupported("a body without a Content-Type"))
            } else {
                Ok(Self::Empty)
            };
        };
        let content_type = content_type.to_str().unwrap_or("");
        if let Some(boundary) = facerec_upload::boundary(content_type) {
            return Ok(Self::Multipart(boundary));
        }
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("application/json") {
            Ok(Self::Json)
        } else if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Ok(Self::UrlEncoded)
        } else {
            Err(unsupported(essence))
        }
    }
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::UnsupportedMediaType,
        format!(
            "'{what}' is not accepted here: send multipart/form-data, JSON or a URL-encoded form"
        ),
    )
}

impl Form {
    /// The form of a compatible API's client: `multipart/form-data`, JSON with base64 images
    /// (CompreFace's alternative), a URL-encoded form (DeepStack's calls without an image), or
    /// nothing at all. `file_fields` name the fields that hold images; with `any_files`, so does
    /// every multipart part that names a file, up to that many. The image limit holds for each,
    /// decoded.
    pub async fn read_any(
        request: Request,
        state: &AppState,
        file_fields: &[&str],
        any_files: Option<usize>,
    ) -> Result<Self, ApiError> {
        let body_type = BodyType::of(&request)?;
        if let BodyType::Multipart(boundary) = body_type {
            return Self::read_multipart(request, boundary, state, file_fields, any_files).await;
        }
        let spec = UploadSpec {
            file_fields,
            max_file_bytes: state.app.max_image_bytes() as u64,
        };
        // Base64 is 4/3 of the bytes; the router's body limit bounds this read first.
        let limit = spec.max_file_bytes as usize / 3 * 4 * file_fields.len().max(1)
            + MAX_TEXT_FIELD_BYTES as usize;
        let body = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|e| upload_error(UploadError::Body(Box::new(e))))?;
        let upload = match body_type {
            BodyType::Json => facerec_upload::read_json(&body, spec),
            _ => facerec_upload::read_urlencoded(&body),
        };
        upload.map(Form).map_err(upload_error)
    }

    /// A multipart body, each field against its limit while it arrives.
    async fn read_multipart(
        request: Request,
        boundary: String,
        state: &AppState,
        file_fields: &[&str],
        any_files: Option<usize>,
    ) -> Result<Self, ApiError> {
        let spec = UploadSpec {
            file_fields,
            max_file_bytes: state.app.max_image_bytes() as u64,
        };
        let body = request.into_body().into_data_stream();
        let upload = match any_files {
            Some(max) => facerec_upload::read_multipart_files(body, boundary, spec, max).await,
            None => facerec_upload::read_multipart(body, boundary, spec).await,
        };
        upload.map(Form).map_err(upload_error)
    }

    /// The image under `name`; a missing one is a malformed request.
    pub fn image(&mut self, name: &str) -> Result<Bytes, ApiError> {
        self.0.files.remove(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the multipart field '{name}' (an image file) is missing"
            ))
        })
    }

    /// Every image of the form, in field-name order.
    pub fn take_images(&mut self) -> Vec<(String, Bytes)> {
        let mut images: Vec<_> = self.0.files.drain().collect();
        images.sort_by(|a, b| a.0.cmp(&b.0));
        images
    }

    pub fn take_image(&mut self, name: &str) -> Option<Bytes> {
        self.0.files.remove(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.0
            .fields
            .get(name)
            .map(String::as_str)
            .filter(|s| !s.trim().is_empty())
    }

    pub fn parse<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|v| {
                v.trim().parse().map_err(|_| {
                    ApiError::bad_request(format!("field '{name}' has an invalid value '{v}'"))
                })
            })
            .transpose()
    }

    /// A boolean field: `true` or `false`, as the API document says (consent in particular is an
    /// explicit `true`, not anything that might be read as one). Absent is `false`.
    /// A boolean field: `true` or `false` in any case (Python clients, generated ones included,
    /// write `True`); absent is false.
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name).map(str::trim) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "field '{name}' must be true or false, not '{v}'"
            ))),
        }
    }
}

pub fn upload_error(err: UploadError) -> ApiError {
    match err {
        UploadError::FileTooLarge { limit, .. } => ApiError::new(
            ErrorCode::ImageTooLarge,
            format!("the image is more than the limit of {limit} bytes"),
        ),
        UploadError::Body(source) if is_length_limit(source.as_ref()) => payload_too_large(),
        other => ApiError::bad_request(other.to_string()),
    }
}

/// Whether a body error is the body-size limit (tower-http's `RequestBodyLimitLayer`).
fn is_length_limit(mut error: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if error.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        match error.source() {
            Some(source) => error = source,
            None => return false,
        }
    }
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        "the request body is larger than the server accepts",
    )
}
