//! The HTTP layer: routes, authentication, limits, metrics and the API's documentation.

pub mod auth;
pub mod compat;
pub mod dto;
pub mod error;
pub mod form;
pub mod guard;
pub mod handlers;
pub mod stream;
mod web;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use facerec_service::App;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use self::auth::{ApiKeys, RateLimit};

/// What every handler can reach. Handlers reach the core only through `app`'s use cases.
pub struct AppState {
    pub app: App,
    pub keys: ApiKeys,
    pub rate_limit: Option<RateLimit>,
    /// Stream frames per second per key.
    pub frame_limit: Option<RateLimit>,
    pub metrics: PrometheusHandle,
    pub stream_slots: Arc<stream::StreamSlots>,
    pub stream_limits: stream::StreamLimits,
    /// Uploads being received or processed at once (see [`admit_upload`]).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// How the operator collects consent from people registered through the compatible APIs,
    /// which have no consent field; `None` refuses registration there.
    pub compat_consent_basis: Option<String>,
}

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

#[derive(OpenApi)]
#[openapi(
    info(title = "facerec", description = "Face registration and recognition. Images are sent as multipart/form-data \
        (field `image`); every /v1 route needs an API key when keys are configured."),
    paths(
        handlers::health, handlers::ready, handlers::register, handlers::recognize, handlers::verify,
        handlers::detect, handlers::list_persons, handlers::get_person, handlers::update_person,
        handlers::delete_person, handlers::list_faces, handlers::add_face, handlers::delete_face,
        stream::ticket, stream::stream
    ),
    modifiers(&SecuritySchemes),
    tags((name = "registration"), (name = "recognition"), (name = "persons"), (name = "stream"), (name = "operations"))
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            // The operations that write to the database (persons, faces, stream tickets).
            let stores = path == "/v1/register"
                || path == "/v1/stream/ticket"
                || path.starts_with("/v1/persons/")
                || path.starts_with("/v1/faces/");
            for (operation, writes) in [
                (&mut item.get, false),
                (&mut item.post, stores),
                (&mut item.put, stores),
                (&mut item.patch, stores),
                (&mut item.delete, stores),
            ] {
                if let Some(operation) = operation {
                    document_refusals(path, operation, writes);
                }
            }
        }
    }
}

/// What any operation can answer besides its own results, written once instead of on every
/// handler and derived from the code table: the access guard, malformed requests, timeouts and the
/// database everywhere; on keyed routes both ways of sending a key and the key's refusals; what an
/// upload, a write or an id in the path can be refused for.
fn document_refusals(path: &str, operation: &mut utoipa::openapi::path::Operation, writes: bool) {
    use facerec_core::error_code::Documented;
    use utoipa::openapi::security::SecurityRequirement;
    let keyed = path.starts_with("/v1/");
    let applies = |documented: Documented| match documented {
        Documented::Always => true,
        Documented::Keyed => keyed,
        Documented::Writes => writes,
        Documented::ById => path.contains('{'),
        Documented::WithBody => operation.request_body.is_some(),
        Documented::Own => false,
    };
    let mut refusals: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    for code in facerec_core::ErrorCode::ALL {
        if applies(code.documented()) {
            refusals
                .entry(code.status())
                .or_default()
                .push(format!("{code}: {}", code.description()));
        }
    }
    if keyed {
        operation.security = Some(vec![
            SecurityRequirement::new("api_key", Vec::<String>::new()),
            SecurityRequirement::new("api_key_header", Vec::<String>::new()),
        ]);
    }
    for (status, codes) in refusals {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(&codes.join("; ")));
    }
}

fn error_response(description: &str) -> utoipa::openapi::RefOr<utoipa::openapi::Response> {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
        .into()
}

/// The process-wide Prometheus recorder (a process has one).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .expect("static buckets")
                .install_recorder()
                .expect("one metrics recorder per process")
        })
        .clone()
}

/// The whole service. `bind` is the listening address (always a valid `Host`).
pub fn router(state: Arc<AppState>, limits: &HttpLimits, bind: std::net::SocketAddr) -> Router {
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
    let require_key = middleware::from_fn_with_state(Arc::clone(&state), auth::require_api_key);
    let metrics_route = if limits.metrics_public || state.keys.is_empty() {
        Router::new().route("/metrics", get(metrics))
    } else {
        Router::new()
            .route("/metrics", get(metrics))
            .route_layer(require_key.clone())
    };
    let v1 = Router::new()
        .route("/v1/register", post(handlers::register))
        .route("/v1/recognize", post(handlers::recognize))
        .route("/v1/verify", post(handlers::verify))
        .route("/v1/detect", post(handlers::detect))
        .route("/v1/persons", get(handlers::list_persons))
        .route(
            "/v1/persons/{id}",
            get(handlers::get_person)
                .patch(handlers::update_person)
                .delete(handlers::delete_person),
        )
        .route(
            "/v1/persons/{id}/faces",
            get(handlers::list_faces).post(handlers::add_face),
        )
        .route("/v1/faces/{id}", delete(handlers::delete_face))
        .route("/v1/stream/ticket", post(stream::ticket))
        .merge(compat::compreface::routes())
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            admit_upload,
        ))
        .route_layer(require_key);
    // DeepStack's clients send their key inside the form: its handlers authenticate once it is read.
    let deepstack = compat::deepstack::routes().route_layer(middleware::from_fn_with_state(
        Arc::clone(&state),
        admit_upload,
    ));

    let mut router = Router::new()
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
        // The body limit: a declared length above it is refused before reading (413), a longer
        // chunked body fails while read; axum's own default limit gives way to this one.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        // WebSocket upgrades live on after the response; only the handshake is timed.
        .layer(TimeoutLayer::with_status_code(
            error::TIMEOUT_STATUS,
            limits.request_timeout,
        ))
        // Last on the way out: whatever answered an error without our JSON (a layer above, or one
        // of axum's own rejections) answers it in the envelope.
        .layer(middleware::from_fn(error::envelope))
        // First on the way in: foreign host names and foreign web pages are refused before anything
        // else runs (the body is not read). CORS preflights from allowed origins are answered
        // outside it.
        .layer(middleware::from_fn_with_state(access, guard::check_access))
        // Outside the guard and the envelope: the compatible APIs' clients get every error in
        // their own format.
        .layer(middleware::from_fn(compat::dialect));
    if !limits.cors_origins.is_empty() {
        let origins: Vec<HeaderValue> = limits
            .cors_origins
            .iter()
            .filter_map(|o| o.parse().ok())
            .collect();
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods(tower_http::cors::Any)
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    "x-api-key".parse().unwrap(),
                ]),
        );
    }
    router
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

/// Admission before reading: an upload (a multipart POST, or a JSON one: CompreFace's clients may
/// send base64 images) needs a permit, taken before its body is
/// read and held until it is answered. There are as many as the inference pool can hold (workers +
/// queue), so at most that many bodies are ever in memory; beyond them the client gets 503
/// `overloaded` with `Retry-After` at once, and its body is never read.
async fn admit_upload(
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
            error::ApiError::busy().into_response()
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

async fn track_request(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("facerec_http_requests_total", "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("facerec_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let load = state.app.load();
    metrics::gauge!("facerec_inference_queue_depth").set(load.queued as f64);
    metrics::gauge!("facerec_inference_in_flight").set(load.in_flight as f64);
    if let Ok(n) = state.app.faces_stored().await {
        metrics::gauge!("facerec_faces_stored").set(n as f64);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}
