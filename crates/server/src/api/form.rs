//! Reading `multipart/form-data`: images by field name, everything else as text.

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::StatusCode;

use super::error::ApiError;

/// Fields that carry image bytes; every other field is text.
const FILE_FIELDS: [&str; 2] = ["image", "image2"];

/// The multipart extractor, with its rejection kept so that it becomes our JSON error.
pub type MultipartBody = Result<Multipart, MultipartRejection>;

#[derive(Debug, Default)]
pub struct Form {
    files: HashMap<String, Vec<u8>>,
    fields: HashMap<String, String>,
}

impl Form {
    pub async fn read(multipart: MultipartBody) -> Result<Self, ApiError> {
        let mut multipart = multipart.map_err(|e| {
            ApiError::bad_request(format!(
                "expected a multipart/form-data body: {}",
                e.body_text()
            ))
        })?;
        let mut form = Form::default();
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_owned();
            if FILE_FIELDS.contains(&name.as_str()) {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                form.files.insert(name, bytes.to_vec());
            } else {
                let text = field.text().await.map_err(multipart_error)?;
                form.fields.insert(name, text);
            }
        }
        Ok(form)
    }

    /// The image under `name`; a missing one is a malformed request.
    pub fn image(&mut self, name: &str) -> Result<Vec<u8>, ApiError> {
        self.files.remove(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the multipart field '{name}' (an image file) is missing"
            ))
        })
    }

    pub fn take_image(&mut self, name: &str) -> Option<Vec<u8>> {
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

    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(false),
            Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "field '{name}' must be true or false, not '{v}'"
            ))),
        }
    }
}

fn multipart_error(err: MultipartError) -> ApiError {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return payload_too_large();
    }
    ApiError::bad_request(format!("malformed multipart body: {}", err.body_text()))
}

pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than the server accepts",
    )
}
