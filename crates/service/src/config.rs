//! The one place that builds an [`App`] over the store it is given: it starts the inference pool
//! and sets up the calibrator. `facerec serve`, `enroll` and `identify` start the app this way;
//! `analyze`, which needs no database, starts only the pool, from the same [`EngineConfig`]. Which
//! store, and how it is opened, is the command line's choice (the composition root).

use std::sync::Arc;

use facerec_core::{QualityPolicy, Store, StoreError, Threshold};
use facerec_vision::{IngestLimits, RuntimeError};

use crate::app::App;
use crate::calibration::{CalibrationConfig, Calibrator};
use crate::engine::{Engine, PackSet};
use crate::retention::Retention;

/// One inference worker per core: the models are small, so work splits across images, not threads.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The inference pool: the models, how many workers run them, how many jobs may wait.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The model packs, every worker loads each once.
    pub packs: PackSet,
    /// Workers, each with its own model sessions.
    pub workers: usize,
    /// Jobs that may wait for a worker before callers are refused (503 over HTTP).
    pub queue: usize,
}

impl EngineConfig {
    /// Jobs that may wait for a worker, by default.
    pub const DEFAULT_QUEUE: usize = 16;

    /// One worker per core and the default queue.
    pub fn new(packs: PackSet) -> Self {
        Self {
            packs,
            workers: default_workers(),
            queue: Self::DEFAULT_QUEUE,
        }
    }

    /// Loads the models on every worker (off the async runtime: it takes a while) and starts them.
    pub async fn start(self) -> Result<Engine, StartError> {
        let Self {
            packs,
            workers,
            queue,
        } = self;
        tokio::task::spawn_blocking(move || Engine::start(&packs, workers, queue))
            .await
            .map_err(|e| StartError::Loading(e.to_string()))?
            .map_err(StartError::from)
    }
}

/// Everything the use cases need besides the store.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub engine: EngineConfig,
    pub ingest: IngestLimits,
    pub threshold: Threshold,
    pub quality: QualityPolicy,
    pub retention: Retention,
    pub calibration: CalibrationConfig,
    /// Where webhooks may deliver (`--webhook-allow-private-networks`).
    pub webhook_addresses: facerec_core::events::AddressPolicy,
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("loading the models failed: {0}")]
    Loading(String),
}

impl App {
    /// Starts the inference pool and the calibrator over `store`.
    pub async fn start(config: AppConfig, store: Arc<dyn Store>) -> Result<Self, StartError> {
        let (workers, queue) = (config.engine.workers, config.engine.queue);
        let engine = config.engine.start().await?;
        let packs: Vec<String> = engine
            .packs()
            .iter()
            .map(|p| p.recognizer.to_string())
            .collect();
        tracing::info!(?packs, default = %engine.default_pack().pack.name, workers, queue,
                       backend = store.backend(), "models loaded");
        let calibrator = Calibrator::new(Arc::clone(&store), config.threshold, config.calibration);
        Ok(Self::new(
            engine,
            store,
            calibrator,
            config.quality,
            config.ingest,
            config.retention,
            config.webhook_addresses,
        ))
    }
}
