//! The route table and the layers around it, in the order a request meets them.

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::Method;
use axum::http::{header, HeaderValue};
use axum::middleware;
use axum::routing::{delete, get, patch, post, put, MethodRouter};
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
use super::{admin, auth, compat, envelope, guard, handlers, stream, web, AppState, HttpLimits};
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

/// How a keyed route's caller proves who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// A key in a header (or none, on a loopback server without keys), checked before the
    /// handler runs.
    Header,
    /// DeepStack's: a header, or the form's `api_key` field (checked once the form is read).
    HeaderOrForm,
    /// The stream's: a header, or a one-time ticket in the query.
    HeaderOrTicket,
}

/// One row of the route table: a method and path, the scope it needs, how the key comes, the
/// handler.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub scope: Scope,
    pub credential: Credential,
    handler: MethodRouter<Arc<AppState>>,
}

/// Every route that needs a key, with the one scope it needs: `/v1`, CompreFace's and
/// DeepStack's. A route is added here or not at all (`routes` builds the router from this), so
/// none can exist without a scope.
pub fn keyed_routes() -> Vec<Route> {
    use compat::compreface as cf;
    use compat::deepstack as ds;
    use Credential::*;
    use Scope::*;
    let row = |method: Method, path, scope, credential, handler| Route {
        method,
        path,
        scope,
        credential,
        handler,
    };
    // Constants, so each row takes its own copy.
    const G: Method = Method::GET;
    const P: Method = Method::POST;
    const D: Method = Method::DELETE;
    const U: Method = Method::PATCH;
    vec![
        // facerec's own API.
        row(P, "/v1/register", Enroll, Header, post(handlers::register)),
        row(
            P,
            "/v1/recognize",
            Recognize,
            Header,
            post(handlers::recognize),
        ),
        row(P, "/v1/verify", Recognize, Header, post(handlers::verify)),
        row(P, "/v1/detect", Recognize, Header, post(handlers::detect)),
        row(
            G,
            "/v1/calibration",
            Manage,
            Header,
            get(handlers::calibration),
        ),
        row(
            P,
            "/v1/calibration",
            Manage,
            Header,
            post(handlers::recalibrate),
        ),
        row(
            G,
            "/v1/persons",
            Manage,
            Header,
            get(handlers::list_persons),
        ),
        row(
            G,
            "/v1/persons/{id}",
            Manage,
            Header,
            get(handlers::get_person),
        ),
        row(
            U,
            "/v1/persons/{id}",
            Manage,
            Header,
            patch(handlers::update_person),
        ),
        row(
            D,
            "/v1/persons/{id}",
            Manage,
            Header,
            delete(handlers::delete_person),
        ),
        row(
            G,
            "/v1/persons/{id}/export",
            Manage,
            Header,
            get(handlers::export_person),
        ),
        row(
            G,
            "/v1/persons/{id}/faces",
            Manage,
            Header,
            get(handlers::list_faces),
        ),
        row(
            P,
            "/v1/persons/{id}/faces",
            Enroll,
            Header,
            post(handlers::add_face),
        ),
        row(
            D,
            "/v1/faces/{id}",
            Manage,
            Header,
            delete(handlers::delete_face),
        ),
        row(G, "/v1/audit", Manage, Header, get(admin::audit)),
        row(
            P,
            "/v1/stream/ticket",
            Recognize,
            Header,
            post(stream::ticket),
        ),
        row(
            G,
            "/v1/stream",
            Recognize,
            HeaderOrTicket,
            get(stream::stream),
        ),
        row(G, "/v1/me", Recognize, Header, get(admin::me)),
        row(
            P,
            "/v1/collections",
            Admin,
            Header,
            post(admin::create_collection),
        ),
        row(
            G,
            "/v1/collections",
            Admin,
            Header,
            get(admin::list_collections),
        ),
        row(
            G,
            "/v1/collections/{id}",
            Admin,
            Header,
            get(admin::get_collection),
        ),
        row(
            U,
            "/v1/collections/{id}",
            Admin,
            Header,
            patch(admin::update_collection),
        ),
        row(
            D,
            "/v1/collections/{id}",
            Admin,
            Header,
            delete(admin::delete_collection),
        ),
        row(P, "/v1/keys", Admin, Header, post(admin::create_key)),
        row(G, "/v1/keys", Admin, Header, get(admin::list_keys)),
        row(D, "/v1/keys/{id}", Admin, Header, delete(admin::revoke_key)),
        // CompreFace's: a key is its collection, as a CompreFace recognition service is.
        row(
            G,
            "/api/v1/recognition/subjects",
            Manage,
            Header,
            get(cf::list_subjects),
        ),
        row(
            G,
            "/api/v1/recognition/subjects/",
            Manage,
            Header,
            get(cf::list_subjects),
        ),
        row(
            P,
            "/api/v1/recognition/subjects",
            Enroll,
            Header,
            post(cf::add_subject),
        ),
        row(
            D,
            "/api/v1/recognition/subjects",
            Manage,
            Header,
            delete(cf::delete_all_subjects),
        ),
        row(
            Method::PUT,
            "/api/v1/recognition/subjects/{subject}",
            Manage,
            Header,
            put(cf::rename_subject),
        ),
        row(
            D,
            "/api/v1/recognition/subjects/{subject}",
            Manage,
            Header,
            delete(cf::delete_subject),
        ),
        row(
            G,
            "/api/v1/recognition/faces",
            Manage,
            Header,
            get(cf::list_faces),
        ),
        row(
            P,
            "/api/v1/recognition/faces",
            Enroll,
            Header,
            post(cf::add_face),
        ),
        row(
            D,
            "/api/v1/recognition/faces",
            Manage,
            Header,
            delete(cf::delete_faces),
        ),
        row(
            P,
            "/api/v1/recognition/faces/delete",
            Manage,
            Header,
            post(cf::delete_face_list),
        ),
        row(
            D,
            "/api/v1/recognition/faces/{image_id}",
            Manage,
            Header,
            delete(cf::delete_face),
        ),
        row(
            P,
            "/api/v1/recognition/faces/{image_id}/verify",
            Recognize,
            Header,
            post(cf::verify_with_face),
        ),
        row(
            P,
            "/api/v1/recognition/recognize",
            Recognize,
            Header,
            post(cf::recognize),
        ),
        row(
            P,
            "/api/v1/recognition/embeddings/recognize",
            Embeddings,
            Header,
            post(cf::recognize_embeddings),
        ),
        row(
            P,
            "/api/v1/recognition/embeddings/faces/{image_id}/verify",
            Embeddings,
            Header,
            post(cf::verify_embeddings_with_face),
        ),
        row(
            P,
            "/api/v1/detection/detect",
            Recognize,
            Header,
            post(cf::detect),
        ),
        row(
            P,
            "/api/v1/verification/verify",
            Recognize,
            Header,
            post(cf::verify),
        ),
        row(
            P,
            "/api/v1/verification/embeddings/verify",
            Embeddings,
            Header,
            post(cf::verify_embeddings),
        ),
        // DeepStack's: its clients may send the key in the form.
        row(
            P,
            "/v1/vision/face",
            Recognize,
            HeaderOrForm,
            post(ds::detect),
        ),
        row(
            P,
            "/v1/vision/face/",
            Recognize,
            HeaderOrForm,
            post(ds::detect),
        ),
        row(
            P,
            "/v1/vision/face/recognize",
            Recognize,
            HeaderOrForm,
            post(ds::recognize),
        ),
        row(
            P,
            "/v1/vision/face/register",
            Enroll,
            HeaderOrForm,
            post(ds::register),
        ),
        row(
            P,
            "/v1/vision/face/list",
            Manage,
            HeaderOrForm,
            post(ds::list),
        ),
        row(
            P,
            "/v1/vision/face/delete",
            Manage,
            HeaderOrForm,
            post(ds::delete),
        ),
        row(
            P,
            "/v1/vision/face/match",
            Recognize,
            HeaderOrForm,
            post(ds::match_faces),
        ),
    ]
}

/// The route table: the public routes, then every keyed route of [`keyed_routes`] behind its
/// scope and upload admission.
fn routes(state: &Arc<AppState>, limits: &HttpLimits) -> Router<Arc<AppState>> {
    let metrics_route = Router::new().route("/metrics", get(metrics));
    let metrics_route = if limits.metrics_public || state.keys.is_empty() {
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
                auth::COLLECTION_HEADER.parse().unwrap(),
            ]),
    )
}
