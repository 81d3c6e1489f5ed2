//! The HTTP layer: the route table ([`router`]), the handlers (`/v1` in [`handlers`] and
//! [`stream`], the compatible APIs in [`compat`]), the middleware ([`guard`], [`auth`],
//! [`admission`], [`envelope`]), errors ([`error`]), the OpenAPI document ([`openapi`]) and
//! [`metrics`].

pub mod admin;
pub mod admission;
pub mod auth;
pub mod compat;
pub mod dto;
pub mod envelope;
pub mod error;
pub mod form;
pub mod guard;
pub mod handlers;
pub mod metrics;
pub mod openapi;
mod router;
pub mod stream;
mod web;

use std::sync::Arc;
use std::time::Duration;

use facerec_service::App;
use metrics_exporter_prometheus::PrometheusHandle;

use self::auth::{ApiKeys, RateLimit};

pub use self::metrics::metrics_handle;
pub use self::openapi::ApiDoc;
pub use self::router::{keyed_routes, router, Credential, Route};

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
    /// Whether the operator's keys hold the `embeddings` scope (`--allow-embeddings`): a template
    /// and a similarity oracle are enough to rebuild a stored one.
    pub allow_embeddings: bool,
    /// Uploads whose key can only come from their body, at once
    /// ([`admission::admit_upload_keyed_by_form`]).
    pub preauth_uploads: Arc<tokio::sync::Semaphore>,
    /// Addresses whose keys keep failing.
    pub failed_keys: auth::FailedKeys,
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
