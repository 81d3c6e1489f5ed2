//! The inference pool: a fixed number of worker threads, each owning its own ONNX sessions, fed by a
//! bounded queue. Heavy work (decode, detect, embed) never runs on the async runtime; when the queue is
//! full the caller is told at once (and answers 503) instead of piling up latency.
//!
//! A job whose caller has gone (timed out, disconnected) is skipped, not run. A job that panics fails
//! its own request (`Failed`), and its worker replaces its sessions before taking the next job: state
//! left half-updated by the panic is never used again.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use facerec_core::{Collection, ModelBinding};

use crate::error::AppError;
use facerec_vision::{
    decode_image, Analysis, AnalyzedFace, AnalyzerConfig, Detection, DetectorConfig, FaceAnalyzer,
    IngestLimits, ModelId, ModelPack, RgbImage, RuntimeConfig, RuntimeError, VisionError,
};
use tokio::sync::oneshot;

/// A job tells its worker whether it left the analyzer usable.
type Job = Box<dyn FnOnce(&mut Analyzers) -> Outcome + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Abandoned,
    Panicked,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the inference queue is full")]
    Busy,
    #[error("the inference workers have stopped")]
    Stopped,
    #[error("inference failed on this request (the worker was restarted)")]
    Failed,
}

pub struct Engine {
    sender: crossbeam_channel::Sender<Job>,
    in_flight: Arc<AtomicUsize>,
    alive: Arc<AtomicUsize>,
    workers: usize,
    /// Every pack the workers hold, in their analyzers' order.
    packs: Vec<LoadedPack>,
    /// The same, as a new collection may be bound to them.
    offered: ModelPacks,
    /// The detector input side a collection gets when it sets none (`--det-size`).
    detection_size: u32,
    /// The score a detection needs to be kept.
    detection_threshold: f32,
}

/// A pack as the workers hold it.
#[derive(Debug, Clone)]
pub struct LoadedPack {
    pub pack: ModelPack,
    /// Its recognizer's identity, stored beside every embedding it makes.
    pub recognizer: ModelId,
    /// The input side its detector's model fixes, if it fixes one.
    pub fixed_detection_size: Option<u32>,
}

/// Which of the engine's models analyze an image: a collection's pack's recognizer, the detector
/// it chose, at the input side it chose. Made by [`Engine::models`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Models {
    detector: usize,
    recognizer: usize,
    detection_size: u32,
}

/// A worker's models: one analyzer per pack, in [`Engine::packs`]' order. Each pack is loaded once
/// per worker, whatever the number of collections bound to it.
pub struct Analyzers {
    analyzers: Vec<FaceAnalyzer>,
    /// Each one's pack, for the metrics' `pack` label.
    packs: Arc<[String]>,
}

impl Analyzers {
    /// Decodes untrusted bytes, detects, and embeds the faces `select` keeps (with their chips
    /// when `chips`), with `models`.
    pub fn analyze_bytes_selecting<E: From<VisionError> + From<RuntimeError>>(
        &mut self,
        models: Models,
        bytes: &[u8],
        limits: &IngestLimits,
        select: impl FnOnce(Vec<Detection>) -> Result<Vec<Detection>, E>,
        chips: bool,
    ) -> Result<Analysis, E> {
        let image = decode_image(bytes, limits).map_err(VisionError::from)?;
        let detections = select(self.detect(models, &image)?)?;
        let faces = self.embed(models, &image, detections, chips)?;
        Ok(Analysis {
            width: image.width(),
            height: image.height(),
            faces,
        })
    }

    /// Detection alone, with the collection's detector at its input side.
    pub fn detect(
        &mut self,
        models: Models,
        image: &RgbImage,
    ) -> Result<Vec<Detection>, RuntimeError> {
        let _timer = StageTimer::new("detect", &self.packs[models.detector]);
        self.analyzers[models.detector].detect_at(image, models.detection_size)
    }

    /// Aligns and embeds detected faces with the collection's recognizer.
    pub fn embed(
        &mut self,
        models: Models,
        image: &RgbImage,
        detections: Vec<Detection>,
        chips: bool,
    ) -> Result<Vec<AnalyzedFace>, RuntimeError> {
        let _timer = StageTimer::new("embed", &self.packs[models.recognizer]);
        self.analyzers[models.recognizer].embed_detections_keeping(image, detections, chips)
    }
}

/// Times one inference stage into `facerec_inference_seconds{stage, pack}`.
struct StageTimer {
    stage: &'static str,
    pack: String,
    started: std::time::Instant,
}

impl StageTimer {
    fn new(stage: &'static str, pack: &str) -> Self {
        Self {
            stage,
            pack: pack.to_owned(),
            started: std::time::Instant::now(),
        }
    }
}

impl Drop for StageTimer {
    fn drop(&mut self) {
        metrics::histogram!("facerec_inference_seconds", "stage" => self.stage, "pack" => self.pack.clone())
            .record(self.started.elapsed().as_secs_f64());
    }
}

/// The model packs a server offers (the built-in first, each checked by sha256) and which is
/// the default: what a new collection can be bound to.
#[derive(Debug, Clone)]
pub struct ModelPacks {
    packs: Vec<ModelPack>,
    default: usize,
}

impl ModelPacks {
    /// Refused when no pack is named `default`.
    pub fn new(packs: Vec<ModelPack>, default: &str) -> Result<Self, AppError> {
        let default = packs
            .iter()
            .position(|p| p.name == default)
            .ok_or_else(|| unknown_pack(default, &packs))?;
        Ok(Self { packs, default })
    }

    pub fn packs(&self) -> &[ModelPack] {
        &self.packs
    }

    pub fn default_pack(&self) -> &ModelPack {
        &self.packs[self.default]
    }

    /// A new collection's models: the recognizer of the pack it names (else the default's), and
    /// the detector of the pack it names for detection (else the same pack's).
    pub fn binding(
        &self,
        pack: Option<&str>,
        detector: Option<&str>,
    ) -> Result<ModelBinding, AppError> {
        let find = |name: &str| {
            self.packs
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| unknown_pack(name, &self.packs))
        };
        let recognizer = match pack {
            Some(name) => find(name)?,
            None => self.default_pack(),
        };
        let detector = match detector {
            Some(name) => find(name)?,
            None => recognizer,
        };
        Ok(ModelBinding {
            pack: recognizer.name.clone(),
            recognizer: recognizer.recognizer_id(),
            detector_pack: detector.name.clone(),
            detector_sha256: detector.detector.sha256.clone(),
        })
    }
}

fn unknown_pack(name: &str, packs: &[ModelPack]) -> AppError {
    AppError::UnknownPack(format!(
        "model pack '{name}' is not loaded here (loaded: {})",
        packs
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// What an engine loads: the packs, and how they run.
#[derive(Debug, Clone)]
pub struct PackSet {
    pub packs: ModelPacks,
    pub runtime: RuntimeConfig,
    pub detector: DetectorConfig,
}

impl PackSet {
    /// The default pack alone: for work without a collection (`facerec analyze`), which would
    /// only pay for the others' memory.
    pub fn default_only(self) -> Self {
        let default = self.packs.default_pack().clone();
        Self {
            packs: ModelPacks {
                packs: vec![default],
                default: 0,
            },
            ..self
        }
    }

    fn configs(&self) -> Vec<AnalyzerConfig> {
        self.packs
            .packs
            .iter()
            .map(|p| p.analyzer_config(self.runtime.clone(), self.detector))
            .collect()
    }
}

/// The models a worker loads, and their packs' names.
type Loading = (Vec<AnalyzerConfig>, Arc<[String]>);

fn load_all((configs, packs): &Loading) -> Result<Analyzers, RuntimeError> {
    Ok(Analyzers {
        analyzers: configs
            .iter()
            .map(FaceAnalyzer::load)
            .collect::<Result<Vec<_>, _>>()?,
        packs: Arc::clone(packs),
    })
}

impl Engine {
    /// Loads every pack on every worker (failing fast if a model, its shapes or the runtime are
    /// wrong) and starts the workers. `queue` is how many requests may wait beyond those being
    /// processed.
    pub fn start(set: &PackSet, workers: usize, queue: usize) -> Result<Self, RuntimeError> {
        let workers = workers.max(1);
        let loading: Loading = (
            set.configs(),
            set.packs.packs.iter().map(|p| p.name.clone()).collect(),
        );
        let analyzers = (0..workers)
            .map(|_| load_all(&loading))
            .collect::<Result<Vec<_>, _>>()?;
        let packs = set
            .packs
            .packs
            .iter()
            .zip(&analyzers[0].analyzers)
            .map(|(pack, analyzer)| LoadedPack {
                pack: pack.clone(),
                recognizer: analyzer.model_id().clone(),
                fixed_detection_size: analyzer.fixed_detection_size(),
            })
            .collect();
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(queue);
        let alive = Arc::new(AtomicUsize::new(workers));
        let loading = Arc::new(loading);
        for (i, analyzers) in analyzers.into_iter().enumerate() {
            let (receiver, loading, alive) =
                (receiver.clone(), Arc::clone(&loading), Arc::clone(&alive));
            thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || work_loop(analyzers, &receiver, &loading, &alive))
                .expect("spawning an inference thread");
        }
        Ok(Self {
            sender,
            in_flight: Arc::new(AtomicUsize::new(0)),
            alive,
            workers,
            packs,
            offered: set.packs.clone(),
            detection_size: set.detector.input_size,
            detection_threshold: set.detector.score_threshold,
        })
    }

    /// The packs loaded, the built-in first.
    pub fn packs(&self) -> &[LoadedPack] {
        &self.packs
    }

    /// The pack a collection gets when it names none.
    pub fn default_pack(&self) -> &LoadedPack {
        &self.packs[self.offered.default]
    }

    /// Its index in [`Engine::packs`].
    pub fn default_index(&self) -> usize {
        self.offered.default
    }

    /// What a new collection may be bound to.
    pub fn offered(&self) -> &ModelPacks {
        &self.offered
    }

    /// The models a collection is analyzed with, or why they are not here: its pack or its
    /// detector's pack is not loaded, or its recognizer's file is not the one it was bound to.
    pub fn models(&self, collection: &Collection) -> Result<Models, Unavailable> {
        let binding = &collection.model;
        let find = |name: &str| self.packs.iter().position(|p| p.pack.name == name);
        let recognizer = find(&binding.pack)
            .filter(|&i| self.packs[i].recognizer == binding.recognizer)
            .ok_or_else(|| Unavailable::new(collection, self.loaded(&binding.pack)))?;
        let detector = find(&binding.detector_pack)
            .ok_or_else(|| Unavailable::new(collection, self.loaded(&binding.detector_pack)))?;
        let detection_size = self.side(detector, collection.settings.detection_size);
        Ok(Models {
            detector,
            recognizer,
            detection_size,
        })
    }

    /// The pack of that name, if loaded.
    pub fn pack(&self, name: &str) -> Option<&LoadedPack> {
        self.packs.iter().find(|p| p.pack.name == name)
    }

    /// The default pack's models (`facerec analyze`, which has no collection).
    pub fn default_models(&self) -> Models {
        let default = self.offered.default;
        Models {
            detector: default,
            recognizer: default,
            detection_size: self.side(default, None),
        }
    }

    /// The side `detector` runs at: the one its model fixes, else the one asked for, else
    /// `--det-size` (a collection asking another than a fixed one is refused when it sets it).
    fn side(&self, detector: usize, asked: Option<u32>) -> u32 {
        self.packs[detector]
            .fixed_detection_size
            .or(asked)
            .unwrap_or(self.detection_size)
    }

    fn loaded(&self, name: &str) -> String {
        match self.pack(name) {
            Some(p) => format!("the loaded pack {name} has recognizer {}", p.recognizer),
            None => format!(
                "pack {name} is not loaded (loaded: {})",
                self.packs
                    .iter()
                    .map(|p| p.pack.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Decodes and analyzes `image` on a worker, embedding the faces `select` keeps (with their
    /// chips as JPEGs when `chips`).
    ///
    /// With the test-only feature `fault-injection`, an image starting with `facerec:test:panic`
    /// panics on its worker instead: the faults tests drive a real server into a worker panic
    /// through it. No use case sees the hook.
    pub async fn analyze<E>(
        &self,
        models: Models,
        image: bytes::Bytes,
        limits: IngestLimits,
        select: impl FnOnce(Vec<Detection>) -> Result<Vec<Detection>, E> + Send + 'static,
        chips: bool,
    ) -> Result<Result<Analysis, E>, EngineError>
    where
        E: From<VisionError> + From<RuntimeError> + Send + 'static,
    {
        self.run(move |analyzers| {
            #[cfg(feature = "fault-injection")]
            if image.starts_with(b"facerec:test:panic") {
                panic!("a fault injected by a test");
            }
            analyzers.analyze_bytes_selecting(models, &image, &limits, select, chips)
        })
        .await
    }

    /// Runs `work` on a worker with its analyzers; `Busy` at once when the queue is full.
    pub async fn run<T, F>(&self, work: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Analyzers) -> T + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let in_flight = Arc::clone(&self.in_flight);
        in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(Arc::clone(&in_flight));
        let job: Job = Box::new(move |analyzer| {
            let _guard = guard;
            // The requester has gone (timeout, disconnect): nobody would read the result.
            if reply.is_closed() {
                return Outcome::Abandoned;
            }
            match catch_unwind(AssertUnwindSafe(|| work(analyzer))) {
                Ok(value) => {
                    let _ = reply.send(Ok(value));
                    Outcome::Done
                }
                Err(_) => {
                    let _ = reply.send(Err(EngineError::Failed));
                    Outcome::Panicked
                }
            }
        });
        match self.sender.try_send(job) {
            Ok(()) => result.await.map_err(|_| EngineError::Stopped)?,
            Err(crossbeam_channel::TrySendError::Full(_)) => Err(EngineError::Busy),
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => Err(EngineError::Stopped),
        }
    }

    /// Requests waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.sender.len()
    }

    /// Requests queued or being processed.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Workers running now: fewer than `workers` only if replacing a failed one failed too.
    pub fn workers_alive(&self) -> usize {
        self.alive.load(Ordering::SeqCst)
    }

    /// The score a detection needs to be kept (`--det-threshold`).
    pub fn detection_threshold(&self) -> f32 {
        self.detection_threshold
    }
}

/// A collection's models are not loaded here (answered 503 `model_unavailable`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("collection '{collection}' is bound to model pack {pack} (recognizer {recognizer}), which this server cannot serve: {why}")]
pub struct Unavailable {
    pub collection: String,
    pub pack: String,
    pub recognizer: String,
    pub why: String,
}

impl Unavailable {
    fn new(collection: &Collection, why: String) -> Self {
        Self {
            collection: collection.name.clone(),
            pack: collection.model.pack.clone(),
            recognizer: collection.model.recognizer.to_string(),
            why,
        }
    }
}

/// One worker: runs jobs until the engine is dropped. After a job panicked, its sessions are
/// replaced with fresh ones; if that fails the worker ends (and `/ready` shows one fewer).
fn work_loop(
    mut analyzers: Analyzers,
    jobs: &crossbeam_channel::Receiver<Job>,
    loading: &Loading,
    alive: &AtomicUsize,
) {
    while let Ok(job) = jobs.recv() {
        match job(&mut analyzers) {
            Outcome::Done => {}
            Outcome::Abandoned => {
                metrics::counter!("facerec_inference_abandoned_total").increment(1);
            }
            Outcome::Panicked => {
                metrics::counter!("facerec_inference_worker_restarts_total").increment(1);
                tracing::error!("an inference job panicked; replacing this worker's sessions");
                match load_all(loading) {
                    Ok(fresh) => analyzers = fresh,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reload the models; this worker stops");
                        alive.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                }
            }
        }
    }
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
