//! Every error the API answers with, mapped to a status and a stable code in this one place.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use facerec_core::StoreError;
use facerec_service::{AppError, EngineError};
use serde::Serialize;
use utoipa::ToSchema;

use super::form::payload_too_large;

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

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Box<serde_json::Value>>,
    pub retry_after_secs: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after_secs: None,
        }
    }

    /// A malformed request: a missing or unparsable field.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn busy() -> Self {
        Self {
            retry_after_secs: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                "the server is at capacity; retry shortly",
            )
        }
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        use facerec_vision::IngestError as I;
        let status = match &err {
            AppError::Store(_) | AppError::Engine(EngineError::Busy) => None,
            AppError::Ingest(I::Empty | I::Corrupt(_) | I::TooManyScans { .. }) => {
                Some(StatusCode::BAD_REQUEST)
            }
            AppError::Ingest(I::UnsupportedFormat) => Some(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            AppError::Ingest(I::TooLarge { .. } | I::DimensionsTooLarge { .. }) => {
                Some(StatusCode::PAYLOAD_TOO_LARGE)
            }
            AppError::Engine(EngineError::Stopped) => Some(StatusCode::SERVICE_UNAVAILABLE),
            AppError::Engine(EngineError::Failed) => Some(StatusCode::INTERNAL_SERVER_ERROR),
            AppError::Runtime(_) => Some(StatusCode::INTERNAL_SERVER_ERROR),
            AppError::NoFace
            | AppError::MultipleFaces(_)
            | AppError::PoorQuality(_)
            | AppError::ConsentRequired => Some(StatusCode::UNPROCESSABLE_ENTITY),
        };
        let details = match &err {
            AppError::MultipleFaces(n) => Some(Box::new(serde_json::json!({ "faces": n }))),
            AppError::PoorQuality(reason) => serde_json::to_value(reason).ok().map(Box::new),
            _ => None,
        };
        if status == Some(StatusCode::INTERNAL_SERVER_ERROR) {
            tracing::error!(error = %err, "inference failure");
        }
        match (status, err) {
            (None, AppError::Store(e)) => e.into(),
            (None, _) => Self::busy(),
            (Some(status), err) => Self {
                details,
                ..Self::new(status, err.code(), err.to_string())
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let status = match &err {
            StoreError::PersonNotFound(_) | StoreError::FaceNotFound(_) => StatusCode::NOT_FOUND,
            StoreError::DuplicateExternalId(_) => StatusCode::CONFLICT,
            StoreError::ConsentRequired | StoreError::InvalidPerson(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            StoreError::EmbeddingDimension { .. } | StoreError::InvalidEmbedding(_) => {
                StatusCode::BAD_REQUEST
            }
            StoreError::Locked(_)
            | StoreError::Database(_)
            | StoreError::Unavailable(_)
            | StoreError::ReadOnly(_) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        };
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::INSUFFICIENT_STORAGE
        ) {
            // The driver's words (SQL, host names, paths) go to the log only.
            tracing::error!(error = %err, "database failure");
            let message = match err {
                StoreError::StorageFull(_) => {
                    "the database's storage is full: nothing was written; reads still work"
                }
                StoreError::ReadOnly(_) => {
                    "the database refuses writes (a read-only file or mount, or a standby): \
                     nothing was written; reads still work"
                }
                _ => {
                    "the database did not answer as expected; the server log has the details \
                     under this request's id"
                }
            };
            let mut answer = Self::new(status, err.code(), message);
            if matches!(err, StoreError::Unavailable(_)) {
                answer.retry_after_secs = Some(2);
            }
            return answer;
        }
        Self::new(status, err.code(), err.to_string())
    }
}

/// The code and message of an error answer, kept beside its body so that the compatible APIs can
/// answer it in their clients' formats (`compat::dialect`) without parsing it back.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let info = ErrorInfo {
            code: self.code,
            message: self.message.clone(),
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                details: self.details.map(|d| *d),
                request_id: None,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(info);
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The status of a request that ran past the timeout (tower-http's `TimeoutLayer` answers it
/// without a body; [`envelope`] names it).
pub const TIMEOUT_STATUS: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

/// Puts every error response that is not already ours into the envelope: axum's rejections (unknown
/// route, wrong method, bad path or query, failed WebSocket upgrade) and the body-limit and timeout
/// layers answer in plain text or with no body at all.
pub async fn envelope(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if is_json {
        return match request_id {
            Some(id) if status.is_server_error() => with_request_id(response, id).await,
            _ => response,
        };
    }
    let (parts, body) = response.into_parts();
    // axum's rejection texts are short and say what was wrong (which parameter, which header).
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::not_found("no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "method_not_allowed",
            "this route does not take this method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        TIMEOUT_STATUS => ApiError::new(status, "request_timeout", "the request took too long"),
        s if s.is_client_error() => ApiError::new(
            s,
            "invalid_request",
            if text.is_empty() {
                s.canonical_reason().unwrap_or("invalid request").to_owned()
            } else {
                text
            },
        ),
        s => {
            tracing::error!(status = %s, body = %text, "an error answered outside the envelope");
            ApiError::new(
                s,
                "internal_error",
                "the server failed to answer this request",
            )
        }
    };
    let mut answer = error.into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    match request_id {
        Some(id) if status.is_server_error() => with_request_id(answer, id).await,
        _ => answer,
    }
}

/// Adds the request id to an error envelope (server-side failures only: the id is what an
/// operator looks up in the log).
async fn with_request_id(response: Response, id: String) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, "").into_response();
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(value) => value,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    if let Some(error) = value.get_mut("error").and_then(|e| e.as_object_mut()) {
        error.insert("request_id".into(), serde_json::Value::String(id));
    }
    let body = serde_json::to_vec(&value).expect("JSON serializes");
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
