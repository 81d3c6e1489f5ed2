//! What every handler can reach.

use std::sync::Arc;

use facerec_service::App;
use metrics_exporter_prometheus::PrometheusHandle;

use super::keys::ApiKeys;
use super::limits::{FailedKeys, RateLimit};
use super::stream::slots::{StreamLimits, StreamSlots};

/// What every handler can reach. Handlers reach the core only through `app`'s use cases.
pub struct AppState {
    pub app: Arc<App>,
    pub keys: ApiKeys,
    pub rate_limit: Option<RateLimit>,
    /// Stream frames per second per key.
    pub frame_limit: Option<RateLimit>,
    pub metrics: PrometheusHandle,
    pub stream_slots: Arc<StreamSlots>,
    pub stream_limits: StreamLimits,
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
    pub failed_keys: FailedKeys,
    /// The server listens on loopback only: without keys in force, a request without a key is
    /// the local operator.
    pub loopback: bool,
}
