//! The layers around the routes, in the order a request meets them (the outermost, tracing and
//! request ids, are added where the router is built).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use super::state::AppState;
use super::{auth, compat, envelope, guard};

/// HTTP-level settings.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Origins allowed to call the API from a browser; empty = CORS off.
    pub cors_origins: Vec<String>,
    /// Host names served besides loopback (for a reverse proxy); see `guard`.
    pub allowed_hosts: Vec<String>,
    /// Serve `/metrics` without a key even when keys are configured.
    pub metrics_public: bool,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            // A 10 MiB photo (the image limit) with room for the form around it.
            max_body_bytes: 12 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            metrics_public: false,
        }
    }
}

/// The layers every request passes, innermost first: body limit, timeout, envelope, access guard,
/// compatible dialects.
pub(super) fn layered(
    routes: Router<Arc<AppState>>,
    state: &AppState,
    limits: &HttpLimits,
    bind: std::net::SocketAddr,
) -> Router<Arc<AppState>> {
    let access = Arc::new(guard::AccessPolicy {
        allowed_hosts: limits
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect(),
        // Keys protect a server beyond loopback (configured, or an admin key in the database).
        any_host_by_default: !state.keys.is_empty() || !bind.ip().is_loopback(),
        bind,
        cors_origins: limits.cors_origins.clone(),
    });
    routes
        // The body limit: a declared length above it is refused before reading (413), a longer
        // chunked body fails while read; axum's own default limit gives way to this one.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        // WebSocket upgrades live on after the response; only the handshake is timed.
        .layer(TimeoutLayer::with_status_code(
            envelope::TIMEOUT_STATUS,
            limits.request_timeout,
        ))
        // Last on the way out: whatever answered an error without our JSON (a layer above, or one
        // of axum's own rejections) answers it in the envelope.
        .layer(middleware::from_fn(envelope::envelope))
        // First on the way in: foreign host names and foreign web pages are refused before anything
        // else runs (the body is not read). CORS preflights from allowed origins are answered
        // outside it.
        .layer(middleware::from_fn_with_state(access, guard::check_access))
        // Outside the guard and the envelope: the compatible APIs' clients get every error in
        // their own format.
        .layer(middleware::from_fn(compat::dialect))
}

/// CORS for the listed origins (none: CORS off, and the guard refuses other pages).
pub(super) fn with_cors(
    router: Router<Arc<AppState>>,
    origins: &[String],
) -> Router<Arc<AppState>> {
    if origins.is_empty() {
        return router;
    }
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    router.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods(tower_http::cors::Any)
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                "x-api-key".parse().unwrap(),
                auth::COLLECTION_HEADER.parse().unwrap(),
            ]),
    )
}
