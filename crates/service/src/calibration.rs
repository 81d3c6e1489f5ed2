//! The threshold that follows the gallery (see `facerec_core::calibration`): scores measured on the
//! gallery itself, a calibration computed from them in the background when the gallery has changed
//! enough (and on demand), kept in the database so that replicas share it, and the effective
//! threshold every decision then uses. Serving never waits for it: a request reads the calibration
//! in force, and a recomputation replaces it when done.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use facerec_core::calibration::{Basis, Calibration, Gallery, Scores, DEFAULT_TARGET_FPIR};
use facerec_core::{Collection, CollectionId, Matcher, PageRequest, PersonId, Store, Threshold};
use facerec_types::embedding::dot;
use facerec_types::NormalizedEmbedding;

use crate::error::{AppError, AppResult};

/// How the threshold is calibrated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalibrationConfig {
    /// The share of strangers that may be named (`--target-fpir`).
    pub target_fpir: f64,
    /// Persons sampled at most, so that a large gallery calibrates in bounded time.
    pub max_persons: u32,
    /// Recalibrate once the face count has changed by this fraction since the last calibration.
    pub after_change: f64,
    /// How often the background task looks (and adopts what another replica computed).
    pub check_every: Duration,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            target_fpir: DEFAULT_TARGET_FPIR,
            max_persons: 1_000,
            after_change: 0.1,
            check_every: Duration::from_secs(60),
        }
    }
}

/// A sampled person's faces used as probes, at most (a person with hundreds of photos would weigh
/// on the estimate as much as hundreds of persons).
const PROBES_PER_PERSON: usize = 5;
/// Impostor pairs computed at most (2M dot products: well under a second).
const MAX_PAIRS: usize = 2_000_000;

/// The sampled persons' faces.
type Sample = BTreeMap<PersonId, Vec<NormalizedEmbedding>>;

/// Each collection's calibration in force, and the work of keeping it current.
pub struct Calibrator {
    store: Arc<dyn Store>,
    /// The configured threshold (`--match-threshold`): the lowest the calibration may settle on
    /// where a collection sets none.
    server_floor: Threshold,
    config: CalibrationConfig,
    /// At most one per collection ([`Collection::MAX`]); a deleted collection's goes at the next
    /// look.
    calibrations: RwLock<HashMap<CollectionId, Arc<Calibration>>>,
    /// One calibration computes at a time on the whole server (the background look's and those
    /// asked for): a calibration takes one core for seconds, and serving keeps the others.
    computing: tokio::sync::Semaphore,
    /// Per collection, the calibration asked for now: requests that come while it runs wait for
    /// it and share its answer; when it ended (at most one per collection, like `calibrations`).
    asked: Mutex<HashMap<CollectionId, Arc<tokio::sync::Mutex<Option<Instant>>>>>,
    /// Collections whose newest recorded calibration was made for another basis (another
    /// replica's settings or model), already logged: a configuration error is said once, not at
    /// every look (at most one per collection).
    disagreeing: Mutex<HashSet<CollectionId>>,
}

/// A collection's calibrations asked for ([`Calibrator::calibrate_on_demand`]) run at most once in
/// this long: more often is refused (429), since the gallery cannot have changed enough to matter.
pub const ON_DEMAND_EVERY: Duration = Duration::from_secs(60);

impl Calibrator {
    pub fn new(store: Arc<dyn Store>, floor: Threshold, config: CalibrationConfig) -> Self {
        Self {
            store,
            server_floor: floor,
            config,
            calibrations: RwLock::default(),
            computing: tokio::sync::Semaphore::new(1),
            asked: Mutex::default(),
            disagreeing: Mutex::default(),
        }
    }

    /// The one place that turns similarities into decisions, at the threshold the calibration in
    /// force for the collection settled on.
    pub fn matcher(&self, collection: &Collection) -> Matcher {
        Matcher::new(self.calibration(collection).threshold())
    }

    /// The threshold no calibration of this collection goes below: its own setting, else the
    /// server's `--match-threshold`.
    pub fn floor(&self, collection: &Collection) -> Threshold {
        collection
            .settings
            .match_threshold
            .unwrap_or(self.server_floor)
    }

    /// The share of strangers this collection's calibration allows to be named.
    pub fn target_fpir(&self, collection: &Collection) -> f64 {
        collection
            .settings
            .target_fpir
            .unwrap_or(self.config.target_fpir)
    }

    /// What a calibration of this collection is made for here: its floor and target, and its
    /// recognizer.
    pub fn basis(&self, collection: &Collection) -> Basis {
        Basis {
            floor: self.floor(collection),
            target_fpir: self.target_fpir(collection),
            model: collection.model.recognizer.clone(),
        }
    }

    /// The calibration in force for the collection: the last one computed for its basis, or its
    /// floor alone.
    pub fn calibration(&self, collection: &Collection) -> Arc<Calibration> {
        let basis = self.basis(collection);
        self.calibrations
            .read()
            .expect("calibration lock")
            .get(&collection.id)
            .filter(|c| c.fits(&basis))
            .cloned()
            .unwrap_or_else(|| Arc::new(Calibration::floor_only(&basis)))
    }

    fn adopt(&self, collection: &Collection, calibration: Arc<Calibration>) {
        let mut calibrations = self.calibrations.write().expect("calibration lock");
        // Bounded by the collections there are: entries of deleted ones go at the next look, or
        // at once on the replica that deleted them (`forget`).
        calibrations.insert(collection.id, calibration);
    }

    /// Every collection's calibration in force, by collection id (what `/metrics` shows).
    pub fn in_force(&self) -> Vec<(CollectionId, Arc<Calibration>)> {
        let calibrations = self.calibrations.read().expect("calibration lock");
        calibrations
            .iter()
            .map(|(id, c)| (*id, Arc::clone(c)))
            .collect()
    }

    /// Drops a deleted collection's calibration (other replicas drop theirs at their next look).
    pub fn forget(&self, collection: CollectionId) {
        self.calibrations
            .write()
            .expect("calibration lock")
            .remove(&collection);
        self.asked
            .lock()
            .expect("calibration requests lock")
            .remove(&collection);
    }

    /// A calibration asked for now (`POST /v1/calibration`): requests for the same collection while
    /// one runs share its answer; another within [`ON_DEMAND_EVERY`] of the last is refused
    /// ([`AppError::CalibrationTooSoon`]).
    pub async fn calibrate_on_demand(
        &self,
        collection: &Collection,
    ) -> AppResult<Arc<Calibration>> {
        let asked_at = Instant::now();
        let slot = Arc::clone(
            self.asked
                .lock()
                .expect("calibration requests lock")
                .entry(collection.id)
                .or_default(),
        );
        let mut last = slot.lock().await;
        if let Some(ended) = *last {
            if ended >= asked_at {
                // The run this request waited for.
                return Ok(self.calibration(collection));
            }
            let wait = (ended + ON_DEMAND_EVERY).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                return Err(AppError::CalibrationTooSoon(wait));
            }
        }
        let calibrated = self.calibrate(collection).await;
        *last = Some(Instant::now());
        calibrated
    }

    /// Measures the collection's gallery, computes a calibration, records it and puts it in force
    /// (one at a time on the whole server).
    pub async fn calibrate(&self, collection: &Collection) -> AppResult<Arc<Calibration>> {
        let _turn = self
            .computing
            .acquire()
            .await
            .map_err(|_| AppError::Internal("the calibrator is closed".into()))?;
        let (by_person, strangers, gallery) = self.measure(collection).await?;
        let basis = self.basis(collection);
        let calibration = tokio::task::spawn_blocking(move || {
            let mut scores = pairwise(&by_person);
            scores.strangers = strangers;
            Calibration::compute(&scores, gallery, &basis, Utc::now())
        })
        .await
        .map_err(|e| AppError::Internal(format!("calibration task failed: {e}")))?;
        let document = serde_json::to_value(&calibration)
            .map_err(|e| AppError::Internal(format!("calibration does not serialize: {e}")))?;
        self.store
            .save_calibration(
                collection.id,
                calibration.computed_at,
                gallery.faces,
                document,
            )
            .await?;
        tracing::info!(
            collection = %collection.name,
            threshold = calibration.effective_threshold.value(),
            estimated_fpir = calibration.estimated_fpir,
            weak = calibration.weak,
            persons = gallery.persons,
            "calibrated the match threshold"
        );
        let calibration = Arc::new(calibration);
        self.adopt(collection, Arc::clone(&calibration));
        Ok(calibration)
    }

    /// The gallery's sample, each sampled person's faces (in the order they were added), and
    /// per sampled person, each of their probes' best score against the rest of the gallery.
    async fn measure(
        &self,
        collection: &Collection,
    ) -> AppResult<(Sample, Vec<Vec<f32>>, Gallery)> {
        let c = collection.id;
        let first = PageRequest {
            limit: 1,
            ..PageRequest::default()
        };
        let persons = self.store.list_persons(c, &first).await?.total;
        let faces = self.store.count_faces(Some(c)).await?;
        let mut sample = self
            .store
            .sample_faces(c, self.config.max_persons, &collection.model.recognizer)
            .await?;
        // Each person's faces in the order they were added (ids are time-ordered UUIDv7).
        sample.sort_by_key(|face| face.id);
        let mut by_person = Sample::new();
        for face in sample {
            by_person
                .entry(face.person_id)
                .or_default()
                .push(face.embedding);
        }
        let mut strangers = Vec::with_capacity(by_person.len());
        for (person, embeddings) in &by_person {
            let mut best = Vec::new();
            for probe in embeddings.iter().take(PROBES_PER_PERSON) {
                // The best of the others, the person left out in the search itself: every probe
                // is counted, however many faces its person has.
                let hits = (self.store)
                    .search_others(c, probe, &collection.model.recognizer, *person, 1)
                    .await?;
                best.extend(hits.first().map(|hit| hit.similarity.value()));
            }
            strangers.push(best);
        }
        let gallery = Gallery {
            persons,
            faces,
            persons_sampled: by_person.len() as u64,
        };
        Ok((by_person, strangers, gallery))
    }

    /// One look at a collection: adopts the newest recorded calibration made for its settings, and
    /// recalibrates when there is none or its gallery has changed by
    /// [`CalibrationConfig::after_change`].
    pub async fn calibrate_if_changed(
        &self,
        collection: &Collection,
    ) -> AppResult<Arc<Calibration>> {
        let config = self.config;
        let recorded = self.recorded(collection).await?;
        let faces = self.store.count_faces(Some(collection.id)).await?;
        if let Some(recorded) = &recorded {
            // The last good calibration serves until a new one is ready.
            if **recorded != *self.calibration(collection) {
                self.adopt(collection, Arc::clone(recorded));
            }
        }
        match recorded {
            Some(c)
                if (faces.abs_diff(c.faces) as f64)
                    < config.after_change * c.faces.max(1) as f64 =>
            {
                Ok(c)
            }
            _ => self.calibrate(collection).await,
        }
    }

    /// The collection's newest recorded calibration made for its basis here. Replicas whose
    /// settings or model differ each find their own among the few kept, so they never recompute
    /// in turn; that they differ is logged once, as the configuration error it is. (A document
    /// that does not read as a calibration, such as one recorded before calibrations named their
    /// model, is passed over.)
    async fn recorded(&self, collection: &Collection) -> AppResult<Option<Arc<Calibration>>> {
        let basis = self.basis(collection);
        let mut recorded: Vec<Calibration> = (self.store)
            .recent_calibrations(collection.id)
            .await?
            .into_iter()
            .filter_map(|d| serde_json::from_value(d).ok())
            .collect();
        let ours = recorded.iter().position(|c| c.fits(&basis));
        // Ours, but behind another basis's: not a change of settings here (the newest would then
        // be ours), but a replica computing for other ones.
        if ours.is_some_and(|at| at > 0) {
            self.disagreement(collection, &basis, &recorded[0].basis());
        }
        Ok(ours.map(|at| Arc::new(recorded.swap_remove(at))))
    }

    fn disagreement(&self, collection: &Collection, ours: &Basis, theirs: &Basis) {
        let first = (self
            .disagreeing
            .lock()
            .expect("calibration disagreements lock"))
        .insert(collection.id);
        if first {
            tracing::warn!(
                collection = %collection.id,
                floor = ours.floor.value(),
                target_fpir = ours.target_fpir,
                model = %ours.model.name,
                other_floor = theirs.floor.value(),
                other_target_fpir = theirs.target_fpir,
                other_model = %theirs.model.name,
                "the newest calibration of this collection was made for other settings or another \
                 model than this replica's: replicas that differ in --match-threshold, \
                 --target-fpir or model are misconfigured (each keeps its own calibration \
                 meanwhile; said once per collection)"
            );
        }
    }

    /// One look at every collection; the calibrations of deleted collections are dropped. What is
    /// recorded is put in force first, for every collection that has none yet (a replica that
    /// starts serves the stored calibrations at once, not its floor while it recomputes); then
    /// each collection is recalibrated where its gallery changed, a failure in one holding back
    /// none of the others (it is logged, and retried at the next look).
    pub async fn calibrate_all_if_changed(&self) -> AppResult<()> {
        let collections = self.store.list_collections().await?;
        self.calibrations
            .write()
            .expect("calibration lock")
            .retain(|id, _| collections.iter().any(|c| c.id == *id));
        self.asked
            .lock()
            .expect("calibration requests lock")
            .retain(|id, _| collections.iter().any(|c| c.id == *id));
        self.disagreeing
            .lock()
            .expect("calibration disagreements lock")
            .retain(|id| collections.iter().any(|c| c.id == *id));
        for collection in &collections {
            let in_force = self
                .calibrations
                .read()
                .expect("calibration lock")
                .contains_key(&collection.id);
            if !in_force {
                if let Ok(Some(recorded)) = self.recorded(collection).await {
                    self.adopt(collection, recorded);
                }
            }
        }
        for collection in &collections {
            if let Err(e) = self.calibrate_if_changed(collection).await {
                tracing::warn!(
                    error = %e,
                    collection = %collection.id,
                    "calibrating a collection failed; the others go on, and it is retried at the next look"
                );
            }
        }
        Ok(())
    }

    /// Looks every [`CalibrationConfig::check_every`], forever; a failure is logged and retried at
    /// the next look.
    pub async fn calibrate_forever(&self) {
        let mut tick = tokio::time::interval(self.config.check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.calibrate_all_if_changed().await {
                tracing::warn!(error = %e, "calibrating the match threshold failed; retrying later");
            }
        }
    }
}

/// Genuine scores (each face against the rest of its person), impostor pairs (faces of different
/// sampled persons) and, for pairs of sampled persons, the best of their faces' pairs, over at
/// most [`MAX_PAIRS`] pairs of faces.
fn pairwise(by_person: &Sample) -> Scores {
    // In an order that says nothing of when they registered (ids are UUIDv7: time first, then 62
    // random bits), so that the pairs the cap keeps are not those of the oldest persons.
    let mut persons: Vec<(PersonId, &[NormalizedEmbedding])> = by_person
        .iter()
        .map(|(id, faces)| (*id, &faces[..faces.len().min(PROBES_PER_PERSON)]))
        .collect();
    persons.sort_by_key(|(id, _)| id.0.as_u64_pair().1);
    let persons: Vec<&[NormalizedEmbedding]> = persons.into_iter().map(|(_, f)| f).collect();
    let mut genuine_best = Vec::new();
    for faces in persons.iter().filter(|faces| faces.len() >= 2) {
        for (i, probe) in faces.iter().enumerate() {
            let best = faces
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, other)| dot(probe.as_slice(), other.as_slice()))
                .fold(f32::MIN, f32::max);
            genuine_best.push(best);
        }
    }
    // Whole pairs of persons, in that order: the pairs of any prefix are those of a random set of
    // persons.
    let (mut impostor_pairs, mut person_pairs) = (Vec::new(), Vec::new());
    'pairs: for (i, a) in persons.iter().enumerate() {
        for b in &persons[i + 1..] {
            if impostor_pairs.len() + a.len() * b.len() > MAX_PAIRS {
                break 'pairs;
            }
            let mut best = f32::MIN;
            for x in a.iter() {
                for y in b.iter() {
                    let similarity = dot(x.as_slice(), y.as_slice());
                    impostor_pairs.push(similarity);
                    best = best.max(similarity);
                }
            }
            person_pairs.push(best);
        }
    }
    Scores {
        strangers: Vec::new(),
        genuine_best,
        impostor_pairs,
        person_pairs,
        sampled_faces: by_person.values().map(|faces| faces.len() as u64).collect(),
    }
}
