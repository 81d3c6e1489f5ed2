//! The outermost error layer of `/v1`: every error answer goes out in the `{"error": {...}}`
//! envelope, whoever answered it, and server-side failures carry their request id.

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use facerec_core::ErrorCode;

use super::error::{ApiError, ErrorInfo};
use super::form::payload_too_large;

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
            Some(id) if status.is_server_error() => with_request_id(response, id),
            _ => response,
        };
    }
    let (parts, body) = response.into_parts();
    // axum's rejection texts are short and say what was wrong (which parameter, which header).
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = rejection(status, text);
    let mut answer = error.into_response();
    if let Some(allow) = parts.headers.get(header::ALLOW) {
        answer.headers_mut().insert(header::ALLOW, allow.clone());
    }
    match request_id {
        Some(id) if status.is_server_error() => with_request_id(answer, id),
        _ => answer,
    }
}

/// Adds the request id to one of our error answers (server-side failures only: the id is what an
/// operator looks up in the log), written again from its [`ErrorInfo`].
fn with_request_id(response: Response, id: String) -> Response {
    let Some(info) = response.extensions().get::<ErrorInfo>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = info.body(Some(id)).into_response().into_body();
    Response::from_parts(parts, body)
}

/// What an answer made outside the handlers says, by its status (`text` is its own words, if any).
fn rejection(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::NOT_FOUND => ApiError::new(ErrorCode::NotFound, "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            ErrorCode::MethodNotAllowed,
            "this route does not take this method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        TIMEOUT_STATUS => ApiError::new(ErrorCode::RequestTimeout, "the request took too long"),
        s if s.is_client_error() => ApiError::new(
            ErrorCode::InvalidRequest,
            if text.is_empty() {
                s.canonical_reason().unwrap_or("invalid request").to_owned()
            } else {
                text
            },
        )
        .with_status(s),
        s => {
            tracing::error!(status = %s, body = %text, "an error answered outside the envelope");
            ApiError::new(
                ErrorCode::InternalError,
                "the server failed to answer this request",
            )
            .with_status(s)
        }
    }
}
