//! Upload admission: a permit per upload before its body is read, so that no more bodies are in
//! memory than the inference pool can hold; a refused body is read and thrown away in the
//! background, for a bounded time, so that its client sees the 503.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// Admission before reading: every request with a body on these routes, whatever its media type
/// says (a type is only a claim: a `text/plain` body was read all the same), needs a permit, taken
/// before its body is read and held until it is answered. There are as many as the inference pool can hold (workers +
/// queue), so at most that many bodies are ever in memory; beyond them the client gets 503
/// `overloaded` with `Retry-After` at once, and its body is never read.
pub async fn admit_upload(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    admit(&state.uploads, request, next).await
}

/// Admission for routes whose clients may send their key inside the body (DeepStack's): a request
/// that brings no key in a header, while keys are configured, is unauthenticated until its body
/// is read, so it takes one of the few [`PREAUTH_SLOTS`] instead of an upload permit (and must
/// send its form within [`PREAUTH_READ_DEADLINE`]): anonymous clients cannot take the permits that
/// keyed clients need.
pub async fn admit_upload_keyed_by_form(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let permits = if super::auth::key_only_in_body(&state, request.headers()).await {
        &state.preauth_uploads
    } else {
        &state.uploads
    };
    admit(permits, request, next).await
}

/// Requests whose key is read from their body, at once (see [`admit_upload_keyed_by_form`]).
pub const PREAUTH_SLOTS: usize = 4;

/// How long such a request may take to send its form.
pub const PREAUTH_READ_DEADLINE: Duration = Duration::from_secs(10);

/// A permit of `permits` for a request with a body, or its 503.
async fn admit(permits: &Arc<tokio::sync::Semaphore>, request: Request, next: Next) -> Response {
    if !has_body(&request) {
        return next.run(request).await;
    }
    match Arc::clone(permits).try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            metrics::counter!("facerec_uploads_shed_total").increment(1);
            discard_body(request.into_body());
            ApiError::busy().into_response()
        }
    }
}

/// Whether a request brings a body: one the transport has not ended, or one its headers declare.
fn has_body(request: &Request) -> bool {
    use axum::body::HttpBody;
    // The transport knows: no length and no transfer coding on HTTP/1.1, or the end of the stream
    // with the headers on HTTP/2, is no body (a bodiless POST such as `/v1/calibration` needs no
    // upload permit). A declared body is one, whatever its media type says.
    !request.body().is_end_stream() || declares_body(request.headers())
}

/// Whether headers announce body bytes: a length above zero, or a chunked (or otherwise encoded)
/// transfer.
pub fn declares_body(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || headers.contains_key(header::TRANSFER_ENCODING)
}

/// How long a refused upload's body is read and thrown away.
const DISCARD_BODY_FOR: Duration = Duration::from_secs(10);

/// Refused bodies being thrown away at once; beyond that, a refused body is dropped at once (the
/// client may then see a reset instead of the 503, which only happens under a flood).
const MAX_DISCARDING: usize = 256;
static DISCARDING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_DISCARDING);

/// Reads a refused request's body in the background and throws each chunk away, for a bounded
/// time ("lingering close"): closing the connection while the client is still sending would reset
/// it, and the client would never see the 503. Nothing is kept, so memory stays flat.
fn discard_body(body: axum::body::Body) {
    use futures_util::StreamExt;
    let Ok(permit) = DISCARDING.try_acquire() else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut chunks = body.into_data_stream();
        let _ = tokio::time::timeout(DISCARD_BODY_FOR, async {
            while let Some(Ok(_)) = chunks.next().await {}
        })
        .await;
    });
}
