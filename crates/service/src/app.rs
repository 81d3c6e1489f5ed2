//! [`App`]: the use cases that need the inference pool (register, recognize, verify, detect,
//! live streams), and the parts that do not, each with one job: [`Access`] (collections, keys,
//! tickets, the audit log), [`Calibrator`] (the threshold in force per collection) and [`Persons`]
//! (what is stored about persons). The other modules of this crate each add one group of use
//! cases to one of them.

use std::sync::Arc;

use bytes::Bytes;
use facerec_core::{ModelId, QualityPolicy, Store};
use facerec_vision::{Analysis, IngestLimits};

use crate::access::Access;
use crate::calibration::Calibrator;
use crate::captures::Review;
use crate::engine::Engine;
use crate::error::AppResult;
use crate::events::Events;
use crate::persons::Persons;
use crate::retention::Retention;
use crate::selection::Selection;

pub struct App {
    pub(crate) engine: Engine,
    pub(crate) store: Arc<dyn Store>,
    access: Access,
    calibrator: Calibrator,
    persons: Persons,
    pub(crate) review: Review,
    events: Events,
    pub(crate) quality: QualityPolicy,
    pub(crate) limits: IngestLimits,
    pub(crate) model: ModelId,
    pub(crate) retention: Retention,
}

/// What `/ready` reports: the models are loaded and the database answers.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub database: &'static str,
    pub model: String,
    pub workers: usize,
}

/// The inference pool's load, for metrics.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    /// Requests waiting for a worker.
    pub queued: usize,
    /// Requests queued or being processed.
    pub in_flight: usize,
}

impl App {
    pub(crate) fn new(
        engine: Engine,
        store: Arc<dyn Store>,
        calibrator: Calibrator,
        quality: QualityPolicy,
        limits: IngestLimits,
        retention: Retention,
        webhook_addresses: facerec_core::events::AddressPolicy,
    ) -> Self {
        let model = engine.model().clone();
        Self {
            events: Events::start(Arc::clone(&store), webhook_addresses),
            access: Access::new(Arc::clone(&store)),
            persons: Persons::new(Arc::clone(&store), retention.sweep_every),
            review: Review::start(Arc::clone(&store), quality),
            engine,
            store,
            calibrator,
            quality,
            limits,
            model,
            retention,
        }
    }

    /// Collections, keys, stream tickets and the audit log.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// The threshold in force per collection.
    pub fn calibrator(&self) -> &Calibrator {
        &self.calibrator
    }

    /// Events (what decisions tell the house) and the webhooks they go to.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// What is stored about persons.
    pub fn persons(&self) -> &Persons {
        &self.persons
    }

    /// The embedding model every stored face is compared under.
    pub fn model(&self) -> &ModelId {
        &self.model
    }

    /// How the compatible APIs report detection scores (from the detector's own threshold).
    pub fn detection_scale(&self) -> facerec_core::DetectionScale {
        facerec_core::DetectionScale::new(self.engine.detection_threshold())
    }

    /// The database backend's name (`sqlite` or `postgres`).
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Ready when the database answers and at least one inference worker runs.
    pub async fn readiness(&self) -> AppResult<Readiness> {
        self.store.ping().await?;
        let workers = self.engine.workers_alive();
        if workers == 0 {
            return Err(crate::engine::EngineError::Stopped.into());
        }
        Ok(Readiness {
            database: self.store.backend(),
            model: self.engine.model().to_string(),
            workers,
        })
    }

    /// The largest encoded image accepted, so that an upload can be refused while it arrives.
    pub fn max_image_bytes(&self) -> usize {
        self.limits.max_bytes
    }

    pub fn load(&self) -> Load {
        Load {
            queued: self.engine.queue_depth(),
            in_flight: self.engine.in_flight(),
        }
    }

    /// Decodes and analyzes an image on the inference pool, embedding only the selected faces.
    pub(crate) async fn analyze_selecting(
        &self,
        image: Bytes,
        selection: Selection,
    ) -> AppResult<Analysis> {
        self.analyze_keeping(image, selection, false).await
    }

    /// As [`App::analyze_selecting`]; with `chips`, each face keeps its chip (a capture).
    pub(crate) async fn analyze_keeping(
        &self,
        image: Bytes,
        selection: Selection,
        chips: bool,
    ) -> AppResult<Analysis> {
        self.engine
            .analyze(image, self.limits, move |d| selection.apply(d), chips)
            .await?
    }
}
