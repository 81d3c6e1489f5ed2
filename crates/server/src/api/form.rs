//! The upload form of `/v1` routes, read by `facerec-upload` (per-field limits while the body streams
//! in, image bytes never copied); this module maps its errors and values to the API's.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use facerec_upload::{Upload, UploadError, UploadSpec};

use super::error::ApiError;
use super::AppState;

/// Fields that carry image bytes; every other field is text.
const FILE_FIELDS: [&str; 2] = ["image", "image2"];

/// A `/v1` upload form, as `facerec-upload` read it.
#[derive(Debug, Default)]
pub struct Form(Upload);

impl FromRequest<Arc<AppState>> for Form {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let boundary = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(facerec_upload::boundary)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "expected a multipart/form-data body (Content-Type with a boundary)",
                )
            })?;
        let spec = UploadSpec {
            file_fields: &FILE_FIELDS,
            max_file_bytes: state.app.max_image_bytes() as u64,
        };
        let body = request.into_body().into_data_stream();
        facerec_upload::read_multipart(body, boundary, spec)
            .await
            .map(Form)
            .map_err(upload_error)
    }
}

impl Form {
    /// The image under `name`; a missing one is a malformed request.
    pub fn image(&mut self, name: &str) -> Result<Bytes, ApiError> {
        self.0.files.remove(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the multipart field '{name}' (an image file) is missing"
            ))
        })
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
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name).map(str::trim) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "field '{name}' must be true or false, not '{v}'"
            ))),
        }
    }
}

pub fn upload_error(err: UploadError) -> ApiError {
    match err {
        UploadError::FileTooLarge { limit, .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "image_too_large",
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
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than the server accepts",
    )
}
