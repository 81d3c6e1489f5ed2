//! The inference pool: a fixed number of worker threads, each owning its own ONNX sessions, fed by a
//! bounded queue. Heavy work (decode, detect, embed) never runs on the async runtime; when the queue is
//! full the caller is told at once (and answers 503) instead of piling up latency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use facerec_vision::{AnalyzerConfig, FaceAnalyzer, ModelId, RuntimeError};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut FaceAnalyzer) + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("the inference queue is full")]
    Busy,
    #[error("the inference workers have stopped")]
    Stopped,
}

pub struct Engine {
    sender: crossbeam_channel::Sender<Job>,
    in_flight: Arc<AtomicUsize>,
    workers: usize,
    model: ModelId,
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
        for (i, mut analyzer) in analyzers.into_iter().enumerate() {
            let receiver = receiver.clone();
            thread::Builder::new()
                .name(format!("inference-{i}"))
                .spawn(move || {
                    // Ends when every sender is gone (the engine was dropped).
                    while let Ok(job) = receiver.recv() {
                        job(&mut analyzer);
                    }
                })
                .expect("spawning an inference thread");
        }
        Ok(Self {
            sender,
            in_flight: Arc::new(AtomicUsize::new(0)),
            workers,
            model,
        })
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
            // The requester may have gone (timeout, disconnect); the result is then dropped.
            let _ = reply.send(work(analyzer));
        });
        match self.sender.try_send(job) {
            Ok(()) => result.await.map_err(|_| EngineError::Stopped),
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

    pub fn model(&self) -> &ModelId {
        &self.model
    }
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
