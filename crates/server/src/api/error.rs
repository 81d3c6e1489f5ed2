//! Every error the API answers with, mapped to a status and a stable code in this one place.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use facerec_core::{ErrorCode, StoreError};
use facerec_service::{AppError, EngineError};
use serde::Serialize;
use utoipa::ToSchema;

/// `{"error": {"code": "...", "message": "..."}}`
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: clients branch on this.
    pub code: String,
    /// For people; wording may change.
    pub message: String,
    /// Structured context where there is some (e.g. the quality check that failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
    /// On server-side failures: the request's id (also in `x-request-id`), under which the server
    /// log holds what happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An error answer: a row of the code table, the words for this case, and what goes beside them.
/// Its status is the code's own (`ErrorCode::status`), except where an answer made outside the
/// handlers (one of axum's rejections) passes its own through the envelope.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<Box<serde_json::Value>>,
    pub retry_after_secs: Option<u32>,
    status: Option<StatusCode>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
            status: None,
        }
    }

    /// The status this answer goes out with.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| status_of(self.code))
    }

    /// An answer whose status another layer chose (kept as it was).
    pub(super) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Retry after this many seconds (`Retry-After`).
    pub fn retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// A malformed request: a missing or unparsable field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn busy() -> Self {
        Self::new(
            ErrorCode::Overloaded,
            "the server is at capacity; retry shortly",
        )
        .retry_after(1)
    }
}

/// A code's status on `/v1`, from the table.
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).expect("the code table holds valid statuses")
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        let details = match &err {
            AppError::MultipleFaces(n) => Some(Box::new(serde_json::json!({ "faces": n }))),
            AppError::PoorQuality(reason) => serde_json::to_value(reason).ok().map(Box::new),
            AppError::InsufficientScope(scope) => {
                Some(Box::new(serde_json::json!({ "scope": scope.as_str() })))
            }
            AppError::DuplicateExternalId { person, .. } => {
                Some(Box::new(serde_json::json!({ "person_id": person.0 })))
            }
            _ => None,
        };
        match err {
            AppError::Store(e) => e.into(),
            AppError::Engine(EngineError::Busy) => Self::busy(),
            AppError::CalibrationTooSoon(wait) => Self::new(err.code(), err.to_string())
                .retry_after(wait.as_secs_f64().ceil().max(1.0) as u32),
            err => {
                if status_of(err.code()) == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(error = %err, "inference failure");
                }
                Self {
                    details,
                    ..Self::new(err.code(), err.to_string())
                }
            }
        }
    }
}

/// A number outside its range (`facerec_service::ranges`): 400, saying the range.
impl From<facerec_service::ranges::OutOfRange> for ApiError {
    fn from(e: facerec_service::ranges::OutOfRange) -> Self {
        Self::bad_request(e.to_string())
    }
}

/// An id in a path: 400 when it is not one.
pub fn path_id<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("'{text}' is not a {what} id (UUID)")))
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let message = match err {
            StoreError::StorageFull(_) => {
                "the database's storage is full: nothing was written; reads still work"
            }
            StoreError::ReadOnly(_) => {
                "the database refuses writes (a read-only file or mount, or a standby): \
                 nothing was written; reads still work"
            }
            StoreError::Locked(_) | StoreError::Database(_) | StoreError::Unavailable(_) => {
                "the database did not answer as expected; the server log has the details \
                 under this request's id"
            }
            err => return Self::new(err.code(), err.to_string()),
        };
        // The driver's words (SQL, host names, paths) go to the log only.
        tracing::error!(error = %err, "database failure");
        let answer = Self::new(err.code(), message);
        match err {
            StoreError::Unavailable(_) => answer.retry_after(2),
            _ => answer,
        }
    }
}

/// An error answer's contents, kept beside its body so that the outer layers can answer it again
/// without parsing it back: the envelope adds the request id, and the compatible APIs answer it in
/// their clients' formats (`compat::dialect`).
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ErrorInfo {
    /// The `/v1` envelope.
    pub(crate) fn body(&self, request_id: Option<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str().to_owned(),
                message: self.message.clone(),
                details: self.details.clone(),
                request_id,
            },
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let info = ErrorInfo {
            code: self.code,
            message: self.message.clone(),
            details: self.details.as_deref().cloned(),
        };
        let mut response = (self.status(), info.body(None)).into_response();
        response.extensions_mut().insert(info);
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A JSON body as a handler takes it: its rejection (malformed, wrong type, unknown field) is
/// answered by [`body`] as our `invalid_request`, with serde's words.
pub type Body<T> = Result<axum::Json<T>, axum::extract::rejection::JsonRejection>;

/// The body, or the 400 that says what is wrong with it.
pub fn body<T>(body: Body<T>) -> Result<T, ApiError> {
    body.map(|axum::Json(b)| b)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}
