//! [`App`]: the use cases that need the inference pool (register, recognize, verify, detect,
//! live streams), and the parts that do not, each with one job: [`Access`] (collections, keys,
//! tickets, the audit log), [`Calibrator`] (the threshold in force per collection) and [`Persons`]
//! (what is stored about persons). The other modules of this crate each add one group of use
//! cases to one of them.

use std::sync::Arc;

use bytes::Bytes;
use facerec_core::{
    Caller, Collection, CollectionPatch, CollectionRef, CollectionSettings, ModelBinding,
    NewCollection, QualityPolicy, Store,
};
use facerec_vision::{Analysis, IngestLimits};

use crate::access::Access;
use crate::calibration::Calibrator;
use crate::captures::Review;
use crate::engine::{Engine, LoadedPack, Models};
use crate::error::{AppError, AppResult};
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
    pub(crate) retention: Retention,
}

/// What `/ready` reports: the models are loaded and the database answers.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub database: &'static str,
    /// The packs loaded, the built-in first.
    pub packs: Vec<LoadedPack>,
    /// Which of them a collection gets when it names none.
    pub default_pack: usize,
    pub workers: usize,
}

impl Readiness {
    /// The pack a collection gets when it names none.
    pub fn default_pack(&self) -> &LoadedPack {
        &self.packs[self.default_pack]
    }
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

    /// The model packs loaded, the built-in first.
    pub fn packs(&self) -> &[LoadedPack] {
        self.engine.packs()
    }

    /// A new collection's models: the pack it names (else the default) for its recognizer, and
    /// the pack it names for its detector (else the same pack); refused when one is not loaded,
    /// or when its detection size does not suit the detector.
    pub fn model_binding(
        &self,
        pack: Option<&str>,
        detector_pack: Option<&str>,
        settings: &CollectionSettings,
    ) -> AppResult<ModelBinding> {
        let binding = self.engine.offered().binding(pack, detector_pack)?;
        if let Some(detector) = self.engine.pack(&binding.detector_pack) {
            check_detection_size(detector, settings)?;
        }
        Ok(binding)
    }

    /// Creates a collection bound to the models asked for (see [`App::model_binding`]).
    pub async fn create_collection(
        &self,
        name: String,
        pack: Option<&str>,
        detector_pack: Option<&str>,
        settings: CollectionSettings,
        caller: &Caller,
    ) -> AppResult<Collection> {
        let model = self.model_binding(pack, detector_pack, &settings)?;
        let new = NewCollection {
            name,
            model,
            settings,
        };
        self.access.create_collection(new, caller).await
    }

    /// Changes a collection's name or settings; a detection size its detector cannot take is
    /// refused.
    pub async fn update_collection(
        &self,
        named: &CollectionRef,
        patch: CollectionPatch,
        caller: &Caller,
    ) -> AppResult<Collection> {
        if let Some(settings) = &patch.settings {
            let collection = self.access.collection(named).await?;
            if let Some(detector) = self.engine.pack(&collection.model.detector_pack) {
                check_detection_size(detector, settings)?;
            }
        }
        self.access.update_collection(named, patch, caller).await
    }

    /// Whether the caller's collection can be served here (503 `model_unavailable` when its pack
    /// is not loaded): a stream asks before it opens.
    pub fn check_models(&self, caller: &Caller) -> AppResult<()> {
        self.models(caller).map(|_| ())
    }

    /// The models a caller's collection is analyzed with (503 `model_unavailable` when its pack
    /// is not loaded here).
    pub(crate) fn models(&self, caller: &Caller) -> AppResult<Models> {
        self.engine
            .models(&caller.collection)
            .map_err(AppError::from)
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
            packs: self.packs().to_vec(),
            default_pack: self.engine.default_index(),
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
        caller: &Caller,
        image: Bytes,
        selection: Selection,
    ) -> AppResult<Analysis> {
        self.analyze_keeping(caller, image, selection, false).await
    }

    /// As [`App::analyze_selecting`]; with `chips`, each face keeps its chip (a capture).
    pub(crate) async fn analyze_keeping(
        &self,
        caller: &Caller,
        image: Bytes,
        selection: Selection,
        chips: bool,
    ) -> AppResult<Analysis> {
        let models = self.models(caller)?;
        self.engine
            .analyze(
                models,
                image,
                self.limits,
                move |d| selection.apply(d),
                chips,
            )
            .await?
    }
}

/// A detection size the collection's detector can take: any multiple of 32 (checked with the
/// settings), unless its model fixes one.
fn check_detection_size(detector: &LoadedPack, settings: &CollectionSettings) -> AppResult<()> {
    match (detector.fixed_detection_size, settings.detection_size) {
        (Some(fixed), Some(asked)) if fixed != asked => Err(AppError::Store(
            facerec_core::StoreError::InvalidCollection(format!(
                "detection_size {asked}: the detector of pack {} takes {fixed} only",
                detector.pack.name
            )),
        )),
        _ => Ok(()),
    }
}
