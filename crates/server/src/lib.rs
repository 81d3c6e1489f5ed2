//! # facerec-server
//!
//! The HTTP layer of facerec: [`api`] translates between HTTP and the use cases of
//! `facerec-service`; [`serve`] wires the store it is given, the inference pool and the routes
//! from a [`ServerConfig`].

pub mod api;
pub mod listen;

use std::net::SocketAddr;
use std::sync::Arc;

use facerec_core::{KeysInForce, Store};
use facerec_service::{App, AppConfig, StartError};

use crate::api::keys::ApiKeys;
use crate::api::limits::RateLimit;
use crate::api::stream::{StreamLimits, StreamSlots};
use crate::api::{AppState, HttpLimits};

/// Everything the server needs, read once at start and passed down: the app's settings, and the
/// HTTP layer's own.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub app: AppConfig,
    pub bind: SocketAddr,
    pub keys: ApiKeys,
    pub http: HttpLimits,
    /// Requests per minute per API key; 0 = unlimited.
    pub rate_limit_per_minute: u32,
    pub stream: StreamLimits,
    /// Consent statement for registrations through the compatible APIs (none: refused there).
    pub compat_consent_basis: Option<String>,
    /// Serve the routes that accept or return raw embeddings.
    pub allow_embeddings: bool,
    pub connections: listen::ConnectionLimits,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Refuses to expose an unauthenticated API beyond this machine: beyond loopback, keys must be
/// configured or an `admin` key kept in the database (`facerec keys create --scopes admin`), so
/// that someone can still manage the keys.
pub fn check_exposure(config: &ServerConfig, in_force: KeysInForce) -> Result<(), ServeError> {
    if config.keys.is_empty() && !in_force.admin && !config.bind.ip().is_loopback() {
        return Err(ServeError::Config(format!(
            "refusing to listen on {} without API keys: set FACEREC_API_KEYS (or \
             --api-keys-file), create an admin key (`facerec keys create --collection default \
             --scopes admin --label admin`), or bind to 127.0.0.1",
            config.bind
        )));
    }
    Ok(())
}

/// Loads the models over `store`, then serves until SIGINT/SIGTERM, finishing requests in flight.
/// Serves until a shutdown signal. `started` runs once the app is up, before the first request:
/// where the command line starts what works beside the server (the event dispatcher, bridges).
pub async fn serve(
    config: ServerConfig,
    store: Arc<dyn Store>,
    started: impl FnOnce(Arc<App>) -> Result<(), String>,
) -> Result<(), ServeError> {
    let in_force = store
        .keys_in_force(chrono::Utc::now())
        .await
        .map_err(|e| ServeError::Config(format!("cannot read the keys: {e}")))?;
    check_exposure(&config, in_force)?;
    if config.keys.is_empty() && in_force.any {
        tracing::info!(bind = %config.bind, "API keys in the database: every request needs one");
    } else if config.keys.is_empty() {
        tracing::warn!(bind = %config.bind, "no API keys configured: accepting unauthenticated requests on loopback only, until the first key is created");
    }
    // Each upload needs one inference job (verify with two photos, two): as many as the pool can
    // run or hold.
    let uploads = config.app.engine.workers + config.app.engine.queue;
    let app = Arc::new(App::start(config.app.clone(), store).await?);
    started(Arc::clone(&app)).map_err(ServeError::Config)?;
    let state = Arc::new(AppState {
        app,
        keys: config.keys.clone(),
        rate_limit: RateLimit::per_minute(config.rate_limit_per_minute),
        frame_limit: RateLimit::per_second(config.stream.max_frames_per_sec_per_key),
        metrics: api::metrics_handle(),
        stream_slots: StreamSlots::new(
            config.stream.max_streams,
            config.stream.max_streams_per_key,
        ),
        uploads: Arc::new(tokio::sync::Semaphore::new(uploads)),
        stream_limits: config.stream.clone(),
        compat_consent_basis: config.compat_consent_basis.clone(),
        allow_embeddings: config.allow_embeddings,
        failed_keys: Default::default(),
        preauth_uploads: Arc::new(tokio::sync::Semaphore::new(api::admission::PREAUTH_SLOTS)),
        loopback: config.bind.ip().is_loopback(),
    });
    let sweeping = Arc::clone(&state);
    tokio::spawn(async move { sweeping.app.persons().sweep_expired_forever().await });
    let calibrating = Arc::clone(&state);
    tokio::spawn(async move { calibrating.app.calibrator().calibrate_forever().await });
    let forgetting = Arc::clone(&state);
    tokio::spawn(async move { forgetting.app.sweep_captures_forever().await });
    tokio::spawn(return_memory_when_idle(Arc::clone(&state), uploads));
    let router = api::router(state, &config.http, config.bind);
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.bind,
            source,
        })?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    // Printed for people and for tests that bind port 0.
    println!("facerec listening on http://{}", listener.local_addr()?);
    listen::serve(listener, router, &config.connections, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// How often an idle server gives freed memory back to the system.
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// After a burst, glibc keeps the memory freed by the inference threads and the upload buffers in
/// its per-thread arenas (RSS stayed ~30 MiB above the warm idle 10 s after a flood of uploads,
/// docs/BENCHMARKS.md). Every [`TRIM_EVERY`], when no upload and no inference is in flight, what
/// is free in the arenas goes back to the system (`malloc_trim`: a few milliseconds, only while
/// idle; a burst shorter than the period is not seen as one, so every idle look trims).
async fn return_memory_when_idle(state: Arc<AppState>, uploads: usize) {
    let mut tick = tokio::time::interval(TRIM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let idle = state.app.load().in_flight == 0 && state.uploads.available_permits() == uploads;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if idle {
            // SAFETY: malloc_trim only releases free memory; any thread may call it.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
        let _ = idle;
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
