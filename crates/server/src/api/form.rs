//! Reading `multipart/form-data` with `multer`'s per-field limits: an image field may hold at most
//! the image byte limit, a text field 64 KiB, so nothing larger is ever buffered. Image bytes are
//! kept as they arrived (`Bytes`), never copied.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use bytes::Bytes;
use multer::{Constraints, SizeLimit};

use super::error::ApiError;
use super::AppState;

/// Fields that carry image bytes; every other field is text.
const FILE_FIELDS: [&str; 2] = ["image", "image2"];
/// Longest text field (names, metadata, consent basis, numbers).
const MAX_TEXT_FIELD_BYTES: u64 = 64 * 1024;

#[derive(Debug, Default)]
pub struct Form {
    files: HashMap<String, Bytes>,
    fields: HashMap<String, String>,
}

impl FromRequest<Arc<AppState>> for Form {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let boundary = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok())
            .ok_or_else(|| {
                ApiError::bad_request(
                    "expected a multipart/form-data body (Content-Type with a boundary)",
                )
            })?;
        let image_limit = state.app.max_image_bytes() as u64;
        let mut per_field = SizeLimit::new().per_field(MAX_TEXT_FIELD_BYTES);
        for name in FILE_FIELDS {
            per_field = per_field.for_field(name, image_limit);
        }
        let constraints = Constraints::new().size_limit(per_field);
        let stream = request.into_body().into_data_stream();
        let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
        let mut form = Form::default();
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            if FILE_FIELDS.contains(&name.as_str()) {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                form.files.insert(name, bytes);
            } else {
                let text = field.text().await.map_err(multipart_error)?;
                form.fields.insert(name, text);
            }
        }
        Ok(form)
    }
}

impl Form {
    /// The image under `name`; a missing one is a malformed request.
    pub fn image(&mut self, name: &str) -> Result<Bytes, ApiError> {
        self.files.remove(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the multipart field '{name}' (an image file) is missing"
            ))
        })
    }

    pub fn take_image(&mut self, name: &str) -> Option<Bytes> {
        self.files.remove(name)
    }

    pub fn text(&self, name: &str) -> Option<&str> {
        self.fields
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

fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::FieldSizeExceeded { limit, field_name }
            if field_name
                .as_deref()
                .is_some_and(|name| FILE_FIELDS.contains(&name)) =>
        {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "image_too_large",
                format!("the image is more than the limit of {limit} bytes"),
            )
        }
        multer::Error::FieldSizeExceeded { limit, field_name } => ApiError::bad_request(format!(
            "field '{}' is longer than {limit} bytes",
            field_name.unwrap_or_default()
        )),
        multer::Error::StreamReadFailed(source) if is_length_limit(source.as_ref()) => {
            payload_too_large()
        }
        other => ApiError::bad_request(format!("malformed multipart body: {other}")),
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
