//! [`App`]: the inference pool, the store and the policies, behind the use cases (the other modules
//! of this crate each add one group of them).

use std::sync::Arc;

use bytes::Bytes;
use facerec_core::{Caller, CollectionId, Matcher, ModelId, QualityPolicy, Store};
use facerec_vision::{Analysis, Detection, IngestLimits};

use crate::calibration::CalibrationConfig;
use crate::engine::Engine;
use crate::error::AppResult;
use crate::registration::FacePick;
use crate::retention::Retention;
use facerec_core::calibration::Calibration;

pub struct App {
    pub(crate) engine: Engine,
    pub(crate) store: Arc<dyn Store>,
    /// The configured threshold: the lowest the calibration may settle on.
    pub(crate) floor: Matcher,
    /// Each collection's calibration in force (at most one per collection, [`facerec_core::Collection::MAX`]).
    pub(crate) calibrations:
        std::sync::RwLock<std::collections::HashMap<CollectionId, Arc<Calibration>>>,
    pub(crate) calibration_config: CalibrationConfig,
    pub(crate) quality: QualityPolicy,
    pub(crate) limits: IngestLimits,
    pub(crate) model: ModelId,
    pub(crate) retention: Retention,
    /// Keys and collections as the database said within the last second.
    pub(crate) access: crate::access::AccessCache,
    /// The last face count and when it was taken (metrics).
    pub(crate) face_count: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
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
        matcher: Matcher,
        quality: QualityPolicy,
        limits: IngestLimits,
        retention: Retention,
        calibration_config: CalibrationConfig,
    ) -> Self {
        let model = engine.model().clone();
        Self {
            engine,
            store,
            floor: matcher,
            calibrations: std::sync::RwLock::default(),
            calibration_config,
            quality,
            limits,
            model,
            retention,
            access: crate::access::AccessCache::default(),
            face_count: std::sync::Mutex::new(None),
        }
    }

    /// The embedding model every stored face is compared under.
    pub fn model(&self) -> &ModelId {
        &self.model
    }

    /// The one place that turns similarities into decisions, at the threshold the calibration in
    /// force for the caller's collection settled on.
    pub fn matcher(&self, caller: &Caller) -> Matcher {
        Matcher::new(self.calibration(&caller.collection).threshold())
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
        self.engine
            .analyze(image, self.limits, move |d| selection.apply(d))
            .await?
    }
}

/// Which detected faces a use case embeds. The choice is made on detections, before the embedder
/// runs, so faces a use case would discard cost nothing (~10 ms each on CPU).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selection {
    /// At most this many faces, strongest detections first.
    Strongest(usize),
    /// The face to enroll or verify.
    Pick(FacePick),
}

impl Selection {
    fn apply(self, mut detections: Vec<Detection>) -> AppResult<Vec<Detection>> {
        match self {
            Self::Strongest(max) => {
                detections.truncate(max);
                Ok(detections)
            }
            Self::Pick(FacePick::Only) if detections.len() > 1 => {
                Err(crate::error::AppError::MultipleFaces(detections.len()))
            }
            Self::Pick(FacePick::Only) => Ok(detections),
            Self::Pick(FacePick::Largest) => Ok(largest(detections).into_iter().collect()),
        }
    }
}

/// The face with the largest box: the subject of a portrait, the one to enroll from a group photo.
fn largest(detections: Vec<Detection>) -> Option<Detection> {
    let area = |d: &Detection| d.bbox.width() * d.bbox.height();
    detections
        .into_iter()
        .max_by(|a, b| area(a).total_cmp(&area(b)))
}
