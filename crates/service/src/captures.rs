//! Captured faces: kept from the recognitions of a collection that turned capture on, written off
//! the answer's path through a bounded queue, grouped into clusters of strangers, and reviewed —
//! named, assigned to a person, rejected ("not this person"), searched and deleted.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use facerec_core::capture::*;
use facerec_core::{
    Caller, CaptureId, ClusterId, CollectionId, NewAuditEvent, PersonId, QualityPolicy, Store,
};
use tokio::sync::mpsc;

use crate::app::App;
use crate::error::{AppError, AppResult};
use crate::selection::{FacePick, Selection};

/// Captures waiting to be written, at most; beyond it they are dropped and counted
/// (`facerec_captures_dropped_total`), so that capturing never slows an answer.
pub const QUEUE: usize = 1_024;

/// Captures listed, searched or named at once, at most: a page of a listing.
pub const MAX_LIST: u32 = crate::ranges::PAGE_SIZE.max as u32;

/// Captured faces: the queue that writes them and the store that holds them.
pub struct Review {
    store: Arc<dyn Store>,
    queue: mpsc::Sender<(CollectionId, NewCapture)>,
    quality: QualityPolicy,
}

impl Review {
    /// Starts the writer task (on the current runtime).
    pub(crate) fn start(store: Arc<dyn Store>, quality: QualityPolicy) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        tokio::spawn(write_captures(Arc::clone(&store), pending));
        Self {
            store,
            queue,
            quality,
        }
    }

    /// Queues a capture; when the queue is full it is dropped and counted, never waited for.
    /// Whether it was queued.
    pub(crate) fn keep(&self, collection: CollectionId, capture: NewCapture) -> bool {
        match self.queue.try_send((collection, capture)) {
            Ok(()) => {
                metrics::gauge!("facerec_capture_queue_depth")
                    .set((QUEUE - self.queue.capacity()) as f64);
                true
            }
            Err(_) => {
                metrics::counter!("facerec_captures_dropped_total").increment(1);
                false
            }
        }
    }

    /// Captures, newest first; a merged cluster's id lists its survivor's.
    pub async fn list(&self, caller: &Caller, filter: &CaptureFilter) -> AppResult<Vec<Capture>> {
        let mut filter = filter.clone();
        if let Some(cluster) = filter.cluster {
            match self
                .store
                .get_cluster(caller.collection_id(), cluster)
                .await
            {
                Ok(found) => filter.cluster = Some(found.id),
                Err(facerec_core::StoreError::ClusterNotFound(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self
            .store
            .list_captures(caller.collection_id(), &filter)
            .await?)
    }

    pub async fn get(&self, caller: &Caller, id: CaptureId) -> AppResult<Capture> {
        Ok(self.store.get_capture(caller.collection_id(), id).await?)
    }

    /// The capture's chip (JPEG).
    pub async fn chip(&self, caller: &Caller, id: CaptureId) -> AppResult<ChipJpeg> {
        Ok(self.store.capture_chip(caller.collection_id(), id).await?)
    }

    pub async fn delete(&self, caller: &Caller, id: CaptureId) -> AppResult<()> {
        Ok(self
            .store
            .delete_capture(caller.collection_id(), id, &caller.actor)
            .await?)
    }

    /// A page of the collection's clusters (largest, then newest, first), and the offset of the
    /// next page when there is one.
    pub async fn clusters(
        &self,
        caller: &Caller,
        limit: u32,
        offset: u32,
    ) -> AppResult<(Vec<Cluster>, Option<u32>)> {
        // One more than asked for says whether another page follows.
        let mut clusters = self
            .store
            .list_clusters(caller.collection_id(), limit + 1, offset)
            .await?;
        let next = (clusters.len() > limit as usize).then(|| offset + limit);
        clusters.truncate(limit as usize);
        Ok((clusters, next))
    }

    pub async fn cluster(&self, caller: &Caller, id: ClusterId) -> AppResult<Cluster> {
        Ok(self.store.get_cluster(caller.collection_id(), id).await?)
    }

    /// Deletes a cluster and its captures: how many.
    pub async fn delete_cluster(&self, caller: &Caller, id: ClusterId) -> AppResult<u64> {
        Ok(self
            .store
            .delete_cluster(caller.collection_id(), id, &caller.actor)
            .await?)
    }

    /// Names captures for a person: the ones good enough to enroll (the enrollment quality
    /// policy) also become their faces.
    pub async fn assign(
        &self,
        caller: &Caller,
        ids: &[CaptureId],
        to: NameFor,
    ) -> AppResult<Assigned> {
        let mut candidates = Vec::with_capacity(ids.len());
        for &id in ids {
            candidates.push(self.store.get_capture(caller.collection_id(), id).await?);
        }
        let as_faces = self.enrollable(candidates, ids.len());
        if matches!(to, NameFor::New(_)) && as_faces.is_empty() {
            return Err(none_enrollable());
        }
        Ok(self
            .store
            .assign_captures(caller.collection_id(), ids, to, &as_faces, &caller.actor)
            .await?)
    }

    /// Names a cluster (by its id or a merged id): all its captures go to the person, and its best
    /// [`FACES_FROM_CLUSTER`] (of its first [`MAX_LIST`]) that are good enough become their faces.
    /// A larger cluster is named in batches of [`MAX_LIST`], the first with the faces.
    pub async fn name_cluster(
        &self,
        caller: &Caller,
        id: ClusterId,
        to: NameFor,
    ) -> AppResult<Assigned> {
        let cluster = self.store.get_cluster(caller.collection_id(), id).await?;
        let filter = CaptureFilter {
            cluster: Some(cluster.id),
            limit: MAX_LIST,
            ..CaptureFilter::default()
        };
        let mut to = to;
        let mut named: Option<Assigned> = None;
        loop {
            let captures = self
                .store
                .list_captures(caller.collection_id(), &filter)
                .await?;
            if captures.is_empty() {
                break;
            }
            let ids: Vec<CaptureId> = captures.iter().map(|c| c.id).collect();
            let as_faces = match named {
                None => self.enrollable(captures, FACES_FROM_CLUSTER),
                Some(_) => Vec::new(),
            };
            if matches!(to, NameFor::New(_)) && as_faces.is_empty() {
                return Err(none_enrollable());
            }
            let batch = self
                .store
                .assign_captures(caller.collection_id(), &ids, to, &as_faces, &caller.actor)
                .await?;
            to = NameFor::Existing(batch.person.id);
            named = Some(match named {
                None => batch,
                Some(mut all) => {
                    all.captures.extend(batch.captures);
                    all.faces_added += batch.faces_added;
                    all
                }
            });
        }
        named.ok_or(AppError::Store(facerec_core::StoreError::ClusterNotFound(
            id,
        )))
    }

    /// The best `n` captures that pass the enrollment quality policy and still hold their chip
    /// (a capture named earlier gave its face already).
    fn enrollable(&self, captures: Vec<Capture>, n: usize) -> Vec<CaptureId> {
        let passing = captures
            .into_iter()
            .filter(|c| c.has_chip && self.quality.check(c.det_score, &c.quality).is_ok())
            .collect();
        best_for_faces(passing, n)
            .into_iter()
            .map(|c| c.id)
            .collect()
    }

    /// Deletes, in every collection that holds captures, those past its retention.
    pub async fn sweep(
        &self,
        policies: impl Fn(CollectionId) -> Option<CapturePolicy>,
    ) -> AppResult<u64> {
        let now = Utc::now();
        let mut deleted = 0;
        for collection in self.store.collections_with_captures().await? {
            // A collection deleted meanwhile took its captures with it.
            let Some(policy) = policies(collection) else {
                continue;
            };
            deleted += self
                .store
                .delete_captures_before(collection, policy.expired_before(now))
                .await?;
        }
        if deleted > 0 {
            metrics::counter!("facerec_captures_expired_total").increment(deleted);
            tracing::info!(
                captures = deleted,
                "deleted captured faces past their retention"
            );
        }
        Ok(deleted)
    }
}

/// A new person needs a face: none of the captures named passes the enrollment quality policy.
fn none_enrollable() -> AppError {
    AppError::Store(facerec_core::StoreError::InvalidPerson(
        "none of these captured faces is good enough to enroll (the enrollment quality policy): \
         assign them to an existing person, or register a photo"
            .into(),
    ))
}

/// Writes queued captures one at a time, until the app is dropped.
async fn write_captures(
    store: Arc<dyn Store>,
    mut pending: mpsc::Receiver<(CollectionId, NewCapture)>,
) {
    while let Some((collection, capture)) = pending.recv().await {
        match store.capture(collection, capture).await {
            Ok(captured) => {
                metrics::counter!("facerec_captures_written_total").increment(1);
                if captured.evicted > 0 {
                    metrics::counter!("facerec_captures_evicted_total").increment(captured.evicted);
                }
            }
            // The collection deleted meanwhile, the database away: the capture is lost, counted.
            Err(e) => {
                metrics::counter!("facerec_captures_failed_total").increment(1);
                tracing::warn!(error = %e, %collection, "writing a captured face failed");
            }
        }
    }
}

/// Where a recognition's captures come from: the request's `source`, else the key's label; and
/// the route that recognized.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureContext {
    pub source: Option<Source>,
    pub route: &'static str,
}

impl CaptureContext {
    pub fn route(route: &'static str) -> Self {
        Self {
            source: None,
            route,
        }
    }

    /// The source a recognition names: the one given, else the caller's key's label.
    pub fn source_for(&self, caller: &Caller) -> Source {
        self.source
            .clone()
            .unwrap_or_else(|| caller.default_source())
    }
}

/// What a reviewer names.
#[derive(Debug, Clone)]
pub enum Named {
    Cluster(ClusterId),
    Captures(Vec<CaptureId>),
}

/// Whom a reviewer names captures for.
#[derive(Debug, Clone)]
pub enum NameTarget {
    Existing(PersonId),
    New {
        name: String,
        consent: bool,
        consent_basis: Option<String>,
    },
}

impl App {
    /// What the cameras saw.
    pub fn review(&self) -> &Review {
        &self.review
    }

    /// Names a cluster (or assigns captures): for an existing person, or for a new one whose
    /// consent the reviewer attests as on a registration (`consent` and a basis).
    pub async fn name_captures(
        &self,
        caller: &Caller,
        what: Named,
        who: NameTarget,
    ) -> AppResult<Assigned> {
        let to = match who {
            NameTarget::Existing(person) => NameFor::Existing(person),
            NameTarget::New {
                name,
                consent,
                consent_basis,
            } => {
                let basis = consent_basis.filter(|b| !b.trim().is_empty());
                if !consent || basis.is_none() {
                    return Err(AppError::ConsentRequired);
                }
                let consent = self.consent(caller, basis.unwrap_or_default(), None)?;
                NameFor::New(facerec_core::NewPerson {
                    name,
                    external_id: None,
                    metadata: serde_json::json!({}),
                    consent,
                })
            }
        };
        match what {
            Named::Cluster(id) => self.review.name_cluster(caller, id, to).await,
            Named::Captures(ids) => self.review.assign(caller, &ids, to).await,
        }
    }

    /// The calibration in force, and the false matches reviewers observed in the collection
    /// ("not this person" on captures still held).
    pub async fn calibration_evidence(
        &self,
        caller: &Caller,
    ) -> AppResult<(Arc<facerec_core::calibration::Calibration>, u64)> {
        let calibration = self.calibrator().calibration(&caller.collection);
        let observed = self.store.count_rejections(caller.collection_id()).await?;
        Ok((calibration, observed))
    }

    /// "Not this person": the capture becomes unknown (in a cluster), held against the person it
    /// was named for while it is kept.
    pub async fn reject_capture(&self, caller: &Caller, id: CaptureId) -> AppResult<Capture> {
        let threshold = self.calibrator().matcher(&caller.collection).threshold();
        Ok(self
            .store
            .reject_capture(caller.collection_id(), id, threshold.value(), &caller.actor)
            .await?)
    }

    /// When and where this photo's face (its largest) was seen, within what is held; audited.
    pub async fn search_captures_by_photo(
        &self,
        caller: &Caller,
        image: Bytes,
        since: Option<DateTime<Utc>>,
        source: Option<&Source>,
        limit: u32,
    ) -> AppResult<Vec<Neighbour>> {
        let analysis = self
            .analyze_selecting(caller, image, Selection::Pick(FacePick::Largest))
            .await?;
        let face = analysis.faces.into_iter().next().ok_or(AppError::NoFace)?;
        let found = self
            .captures_near(caller, &face.embedding, since, source, limit)
            .await?;
        self.audit_search(caller, None, found.len()).await?;
        Ok(found)
    }

    /// When and where a registered person was seen (any of their faces), within what is held;
    /// audited.
    pub async fn search_captures_of_person(
        &self,
        caller: &Caller,
        person: PersonId,
        since: Option<DateTime<Utc>>,
        source: Option<&Source>,
        limit: u32,
    ) -> AppResult<Vec<Neighbour>> {
        let faces = self
            .store
            .list_faces(caller.collection_id(), person)
            .await?;
        let mut found: Vec<Neighbour> = Vec::new();
        let model = &caller.collection.model.recognizer;
        for face in faces.iter().filter(|f| f.model == *model) {
            let near = self
                .captures_near(caller, &face.embedding, since, source, limit)
                .await?;
            for n in near {
                match found.iter_mut().find(|f| f.capture.id == n.capture.id) {
                    Some(f) if f.similarity.value() < n.similarity.value() => *f = n,
                    Some(_) => {}
                    None => found.push(n),
                }
            }
        }
        found.sort_by(|a, b| b.similarity.value().total_cmp(&a.similarity.value()));
        found.truncate(limit as usize);
        self.audit_search(caller, Some(person), found.len()).await?;
        Ok(found)
    }

    /// The held captures at or above the threshold in force, most similar first.
    async fn captures_near(
        &self,
        caller: &Caller,
        probe: &facerec_vision::NormalizedEmbedding,
        since: Option<DateTime<Utc>>,
        source: Option<&Source>,
        limit: u32,
    ) -> AppResult<Vec<Neighbour>> {
        let threshold = self.calibrator().matcher(&caller.collection).threshold();
        let search = CaptureSearch {
            threshold: threshold.value(),
            since,
            source,
            limit: limit as usize,
        };
        Ok(self
            .store
            .search_captures(
                caller.collection_id(),
                probe,
                &caller.collection.model.recognizer,
                search,
            )
            .await?)
    }

    async fn audit_search(
        &self,
        caller: &Caller,
        person: Option<PersonId>,
        found: usize,
    ) -> AppResult<()> {
        let event = NewAuditEvent::captures_reviewed("searched", person, found);
        Ok(self
            .store
            .record(caller.collection_id(), event, &caller.actor)
            .await?)
    }

    /// Sweeps captures as often as expired consents (`--retention-sweep-secs`), forever; a
    /// failed sweep is logged and retried at the next tick.
    pub async fn sweep_captures_forever(&self) {
        let mut tick = tokio::time::interval(self.retention.sweep_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.sweep_captures().await {
                tracing::warn!(error = %e, "sweeping captured faces failed; retrying later");
            }
        }
    }

    /// Deletes the captures past their collection's retention.
    pub async fn sweep_captures(&self) -> AppResult<u64> {
        let collections = self.access().collections().await?;
        self.review
            .sweep(|id| {
                collections
                    .iter()
                    .find(|c| c.id == id)
                    .map(|c| CapturePolicy::of(&c.settings))
            })
            .await
    }
}
