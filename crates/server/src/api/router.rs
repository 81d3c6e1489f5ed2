//! The route table and the layers around it, in the order a request meets them.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::routing::{delete, get, post};
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::admission::{admit_upload, admit_upload_keyed_by_form};
use super::metrics::{metrics, track_request};
use super::openapi::ApiDoc;
use super::{auth, compat, envelope, guard, handlers, stream, web, AppState, HttpLimits};

/// The whole service. `bind` is the listening address (always a valid `Host`).
pub fn router(state: Arc<AppState>, limits: &HttpLimits, bind: std::net::SocketAddr) -> Router {
    let routes = routes(&state, limits);
    let router = layered(routes, &state, limits, bind);
    let router = web::security_headers(router);
    with_cors(router, &limits.cors_origins)
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|request: &Request| {
                    let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    // Method, path and id only: never bodies (images) or query strings.
                    tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
                })
                // Every 5xx is a warning here (an overloaded queue answers 503 by design); the faults
                // themselves are logged at ERROR where they are mapped (api/error.rs).
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The route table: which handler answers which route, and which routes need a key and admission.
fn routes(state: &Arc<AppState>, limits: &HttpLimits) -> Router<Arc<AppState>> {
    let require_key = middleware::from_fn_with_state(Arc::clone(state), auth::require_api_key);
    let admission = middleware::from_fn_with_state(Arc::clone(state), admit_upload);
    let metrics_route = Router::new().route("/metrics", get(metrics));
    let metrics_route = if limits.metrics_public || state.keys.is_empty() {
        metrics_route
    } else {
        metrics_route.route_layer(require_key.clone())
    };
    let v1 = Router::new()
        .route("/v1/register", post(handlers::register))
        .route("/v1/recognize", post(handlers::recognize))
        .route("/v1/verify", post(handlers::verify))
        .route("/v1/detect", post(handlers::detect))
        .route(
            "/v1/calibration",
            get(handlers::calibration).post(handlers::recalibrate),
        )
        .route("/v1/persons", get(handlers::list_persons))
        .route(
            "/v1/persons/{id}",
            get(handlers::get_person)
                .patch(handlers::update_person)
                .delete(handlers::delete_person),
        )
        .route("/v1/persons/{id}/export", get(handlers::export_person))
        .route(
            "/v1/persons/{id}/faces",
            get(handlers::list_faces).post(handlers::add_face),
        )
        .route("/v1/faces/{id}", delete(handlers::delete_face))
        .route("/v1/stream/ticket", post(stream::ticket))
        .merge(compat::compreface::routes())
        .route_layer(admission)
        .route_layer(require_key);
    // DeepStack's clients send their key inside the form: its handlers authenticate once it is read.
    let deepstack = compat::deepstack::routes().route_layer(middleware::from_fn_with_state(
        Arc::clone(state),
        admit_upload_keyed_by_form,
    ));
    Router::new()
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .merge(metrics_route)
        // Authenticates itself: by header like /v1, or by a one-time ticket (browsers cannot set headers
        // on a WebSocket).
        .route("/v1/stream", get(stream::stream))
        .merge(web::routes())
        .merge(v1)
        .merge(deepstack)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(handlers::route_not_found)
        .route_layer(middleware::from_fn(track_request))
}

/// The layers every request passes, innermost first: body limit, timeout, envelope, access guard,
/// compatible dialects.
fn layered(
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
        any_host_by_default: !state.keys.is_empty(),
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
fn with_cors(router: Router<Arc<AppState>>, origins: &[String]) -> Router<Arc<AppState>> {
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
            ]),
    )
}
