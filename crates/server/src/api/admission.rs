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
use super::AppState;

/// Admission before reading: an upload (a multipart POST, or a JSON one: CompreFace's clients may
/// send base64 images) needs a permit, taken before its body is
/// read and held until it is answered. There are as many as the inference pool can hold (workers +
/// queue), so at most that many bodies are ever in memory; beyond them the client gets 503
/// `overloaded` with `Retry-After` at once, and its body is never read.
pub async fn admit_upload(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let is_upload = request.method() == axum::http::Method::POST
        && request
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| {
                v.as_bytes().starts_with(b"multipart/")
                    || v.as_bytes().starts_with(b"application/json")
            });
    if !is_upload {
        return next.run(request).await;
    }
    match Arc::clone(&state.uploads).try_acquire_owned() {
        Ok(_permit) => next.run(request).await,
        Err(_) => {
            metrics::counter!("facerec_uploads_shed_total").increment(1);
            discard_body(request.into_body());
            ApiError::busy().into_response()
        }
    }
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
