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

use facerec_vision::{
    Analysis, AnalyzerConfig, Detection, FaceAnalyzer, IngestLimits, ModelId, RuntimeError,
    VisionError,
};
use tokio::sync::oneshot;

/// A job tells its worker whether it left the analyzer usable.
type Job = Box<dyn FnOnce(&mut FaceAnalyzer) -> Outcome + Send>;

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
    model: ModelId,
    /// The score a detection needs to be kept.
    detection_threshold: f32,
}

impl Engine {
    /// Loads one analyzer per worker (failing fast if a model or the runtime is missing) and starts
    /// the workers. `queue` is how many requests may wait beyond those being processed.
    pub fn start(
        config: &AnalyzerConfig,
        workers: usize,
        queue: usize,
    ) -> Result<Self, RuntimeError> {
        let workers = workers.max(1);
        let analyzers = (0..workers)
            .map(|_| FaceAnalyzer::load(config))
            .collect::<Result<Vec<_>, _>>()?;
        let model = analyzers[0].model_id().clone();
        let (sender, receiver) = crossbeam_channel::bounded::<Job>(queue);
        let alive = Arc::new(AtomicUsize::new(workers));
        for (i, analyzer) in analyzers.into_iter().enumerate() {
            let (receiver, config, alive) = (receiver.clone(), config.clone(), Arc::clone(&alive));
            thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || work_loop(analyzer, &receiver, &config, &alive))
                .expect("spawning an inference thread");
        }
        Ok(Self {
            sender,
            in_flight: Arc::new(AtomicUsize::new(0)),
            alive,
            workers,
            model,
            detection_threshold: config.detector.score_threshold,
        })
    }

    /// Decodes and analyzes `image` on a worker, embedding the faces `select` keeps (with their
    /// chips as JPEGs when `chips`).
    ///
    /// With the test-only feature `fault-injection`, an image starting with `facerec:test:panic`
    /// panics on its worker instead: the faults tests drive a real server into a worker panic
    /// through it. No use case sees the hook.
    pub async fn analyze<E>(
        &self,
        image: bytes::Bytes,
        limits: IngestLimits,
        select: impl FnOnce(Vec<Detection>) -> Result<Vec<Detection>, E> + Send + 'static,
        chips: bool,
    ) -> Result<Result<Analysis, E>, EngineError>
    where
        E: From<VisionError> + From<RuntimeError> + Send + 'static,
    {
        self.run(move |analyzer| {
            #[cfg(feature = "fault-injection")]
            if image.starts_with(b"facerec:test:panic") {
                panic!("a fault injected by a test");
            }
            analyzer.analyze_bytes_selecting(&image, &limits, select, chips)
        })
        .await
    }

    /// Runs `work` on a worker with its analyzer; `Busy` at once when the queue is full.
    pub async fn run<T, F>(&self, work: F) -> Result<T, EngineError>
    where
        T: Send + 'static,
        F: FnOnce(&mut FaceAnalyzer) -> T + Send + 'static,
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

    pub fn model(&self) -> &ModelId {
        &self.model
    }
}

/// One worker: runs jobs until the engine is dropped. After a job panicked, its sessions are
/// replaced with fresh ones; if that fails the worker ends (and `/ready` shows one fewer).
fn work_loop(
    mut analyzer: FaceAnalyzer,
    jobs: &crossbeam_channel::Receiver<Job>,
    config: &AnalyzerConfig,
    alive: &AtomicUsize,
) {
    while let Ok(job) = jobs.recv() {
        match job(&mut analyzer) {
            Outcome::Done => {}
            Outcome::Abandoned => {
                metrics::counter!("facerec_inference_abandoned_total").increment(1);
            }
            Outcome::Panicked => {
                metrics::counter!("facerec_inference_worker_restarts_total").increment(1);
                tracing::error!("an inference job panicked; replacing this worker's sessions");
                match FaceAnalyzer::load(config) {
                    Ok(fresh) => analyzer = fresh,
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
