//! The whole service: the public routes and the route table (`routes.rs`) behind its scopes and
//! upload admission, inside the layers (`layers.rs`).

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware;
use axum::routing::get;
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use super::admission::{admit_upload, admit_upload_keyed_by_form};
use super::layers::HttpLimits;
use super::layers::{layered, with_cors};
use super::metrics::{metrics, track_request};
use super::openapi::ApiDoc;
use super::routes::{keyed_routes, Credential};
use super::state::AppState;
use super::{auth, handlers, web};
use facerec_core::Scope;

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
                    // Method, route and id only: never bodies (images), query strings, or the ids and
                    // names a path may carry (`loggable_path`).
                    tracing::info_span!("request", id, method = %request.method(), path = %loggable_path(request.uri().path()))
                })
                // Every 5xx is a warning here (an overloaded queue answers 503 by design); the faults
                // themselves are logged at ERROR where they are mapped (api/error.rs).
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// The route table: the public routes, then every keyed route of [`keyed_routes`] behind its
/// scope and upload admission.
fn routes(state: &Arc<AppState>, limits: &HttpLimits) -> Router<Arc<AppState>> {
    let metrics_route = Router::new().route("/metrics", get(metrics));
    // Without keys in force the scope check lets the local operator through.
    let metrics_route = if limits.metrics_public {
        metrics_route
    } else {
        metrics_route.route_layer(middleware::from_fn_with_state(
            (Arc::clone(state), Scope::Admin),
            auth::require_scope,
        ))
    };
    let mut keyed = Router::new();
    for route in keyed_routes() {
        let handler = match route.credential {
            Credential::Header => route
                .handler
                .route_layer(middleware::from_fn_with_state(
                    Arc::clone(state),
                    admit_upload,
                ))
                .route_layer(middleware::from_fn_with_state(
                    (Arc::clone(state), route.scope),
                    auth::require_scope,
                )),
            // DeepStack's clients send their key inside the form: its handlers authenticate
            // once it is read.
            Credential::HeaderOrForm => route.handler.route_layer(middleware::from_fn_with_state(
                Arc::clone(state),
                admit_upload_keyed_by_form,
            )),
            // Authenticates itself: by header like /v1, or by a one-time ticket (browsers
            // cannot set headers on a WebSocket).
            Credential::HeaderOrTicket => route.handler,
        };
        let handler = handler.route_layer(middleware::from_fn_with_state(
            route.scope,
            auth::declare_scope,
        ));
        keyed = keyed.route(route.path, handler);
    }
    Router::new()
        .route("/health", get(handlers::health))
        .route("/ready", get(handlers::ready))
        .merge(metrics_route)
        .merge(web::routes())
        .merge(keyed)
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(handlers::route_not_found)
        .route_layer(middleware::from_fn(track_request))
}

/// A request's path as logs may show it: each segment that is an id, and the subject that
/// CompreFace's paths name a person by, replaced by a placeholder (a log names no person and no
/// person's id).
pub fn loggable_path(path: &str) -> String {
    let mut out = Vec::new();
    let mut after_subjects = false;
    for segment in path.split('/') {
        let hidden = if after_subjects && !segment.is_empty() {
            "{subject}"
        } else if uuid::Uuid::parse_str(segment).is_ok() {
            "{id}"
        } else {
            segment
        };
        after_subjects = segment == "subjects";
        out.push(hidden);
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn logged_paths_name_no_person_and_no_id() {
        assert_eq!(
            loggable_path("/v1/persons/0190a5c2-7f3b-7c1e-9d4a-3b2c1d0e9f8a/faces"),
            "/v1/persons/{id}/faces"
        );
        assert_eq!(
            loggable_path("/api/v1/recognition/subjects/Ana%20Lima"),
            "/api/v1/recognition/subjects/{subject}"
        );
        assert_eq!(loggable_path("/v1/recognize"), "/v1/recognize");
        assert_eq!(
            loggable_path("/api/v1/recognition/subjects/"),
            "/api/v1/recognition/subjects/"
        );
    }
}
