//! Events: each decision becomes an [`EventData`] queued off the answer's path and written to the
//! database's outbox, where the dispatcher (facerec-integrations) takes it to the destinations;
//! and the webhooks a collection sends them to.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use facerec_core::calibration::Calibration;
use facerec_core::capture::{SeenCluster, Source};
use facerec_core::events::*;
use facerec_core::{Caller, CaptureId, CollectionId, PersonId, Recognition, Store, Threshold};
use facerec_vision::{AnalyzedFace, Detection};
use tokio::sync::mpsc;

use crate::error::{AppError, AppResult};
use crate::recognition::RecognizedImage;

/// Events waiting to be written to the outbox, at most; beyond it they are dropped and counted
/// (`facerec_events_dropped_total{reason="queue"}`), so that telling never slows an answer.
pub const QUEUE: usize = 4_096;
/// Events written to the outbox in one transaction, at most.
const BATCH: usize = 256;
/// How often the destinations are read again (a webhook created on another replica is heard of
/// within this).
const DESTINATIONS_EVERY: Duration = Duration::from_secs(2);
/// How often delivered and expired events are pruned from the outbox.
const PRUNE_EVERY: Duration = Duration::from_secs(30);
/// Deliveries listed at once, at most.
pub const MAX_DELIVERIES: u32 = DELIVERY_LOG_MAX;

/// Where events are wanted: the collections with a webhook, and every collection when a replica
/// publishes to MQTT.
#[derive(Debug, Default)]
struct Destinations {
    every: bool,
    collections: HashSet<CollectionId>,
}

/// The event queue and the webhooks of each collection.
pub struct Events {
    store: Arc<dyn Store>,
    queue: mpsc::Sender<EventData>,
    destinations: Arc<RwLock<Destinations>>,
    addresses: AddressPolicy,
}

/// A webhook as its creator sees it once: with its secret.
#[derive(Debug, Clone)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: WebhookSecret,
}

impl Events {
    /// Starts the writer, the destinations' refresh and the outbox's pruning (on the current
    /// runtime).
    pub(crate) fn start(store: Arc<dyn Store>, addresses: AddressPolicy) -> Self {
        let (queue, pending) = mpsc::channel(QUEUE);
        let destinations = Arc::new(RwLock::new(Destinations::default()));
        tokio::spawn(write_events(Arc::clone(&store), pending));
        tokio::spawn(refresh_destinations(
            Arc::clone(&store),
            Arc::clone(&destinations),
        ));
        tokio::spawn(prune_outbox(Arc::clone(&store)));
        Self {
            store,
            queue,
            destinations,
            addresses,
        }
    }

    /// Whether a decision in this collection becomes an event at all.
    pub(crate) fn wanted(&self, collection: CollectionId) -> bool {
        let destinations = self.destinations.read().unwrap_or_else(|e| e.into_inner());
        destinations.every || destinations.collections.contains(&collection)
    }

    /// Tells what a recognized photo showed: an event per face, or `face.none` when it showed
    /// none; each naming the Frigate event it came from, if any.
    pub fn tell_recognized(
        &self,
        caller: &Caller,
        source: &Source,
        image: &RecognizedImage,
        frigate_event_id: Option<&str>,
    ) {
        if self.wanted(caller.collection_id()) {
            for event in self.events_of(caller, source, image, frigate_event_id) {
                self.emit(event);
            }
        }
    }

    /// Tells events made earlier (the Frigate bridge's, once a Frigate event's attempts end),
    /// where they are wanted.
    pub fn tell(&self, events: Vec<EventData>) {
        for event in events {
            if self.wanted(event.collection.id) {
                self.emit(event);
            }
        }
    }

    /// The events a recognized photo makes: one per face, or `face.none`.
    pub fn events_of(
        &self,
        caller: &Caller,
        source: &Source,
        image: &RecognizedImage,
        frigate_event_id: Option<&str>,
    ) -> Vec<EventData> {
        let mut events: Vec<EventData> = match image.faces.is_empty() {
            true => vec![no_face_event(caller, source)],
            false => image
                .faces
                .iter()
                .map(|f| {
                    Decided::face(
                        &f.face,
                        &f.recognition,
                        &image.calibration,
                        f.unknown.as_ref(),
                        f.capture,
                    )
                    .event(caller, source)
                })
                .collect(),
        };
        for event in &mut events {
            event.frigate_event_id = frigate_event_id.map(str::to_owned);
        }
        events
    }

    /// Queues an event; when the queue is full it is dropped and counted, never waited for.
    pub(crate) fn emit(&self, event: EventData) {
        let kind = event.kind.as_str();
        match self.queue.try_send(event) {
            Ok(()) => {
                metrics::counter!("facerec_events_produced_total", "type" => kind).increment(1)
            }
            Err(_) => {
                metrics::counter!("facerec_events_dropped_total", "reason" => "queue").increment(1)
            }
        }
    }

    /// Creates a webhook for the caller's collection: its URL must be http(s), and an address
    /// written out must be one the operator allows (names are checked where they resolve, at
    /// delivery). The secret is answered here, once.
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        url: &str,
        events: Option<Vec<String>>,
    ) -> AppResult<CreatedWebhook> {
        let url = WebhookUrl::new(url).map_err(invalid)?;
        if let Some(ip) = url.ip_literal() {
            self.addresses
                .check(ip)
                .map_err(AppError::WebhookAddressRefused)?;
        }
        let events = match events {
            Some(names) => EventTypes::try_from(names).map_err(invalid)?,
            None => EventTypes::all(),
        };
        let secret = new_secret()?;
        let new = NewWebhook {
            url,
            events,
            secret: secret.clone(),
        };
        let webhook = self
            .store
            .create_webhook(caller.collection_id(), new)
            .await?;
        self.destinations
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .collections
            .insert(caller.collection_id());
        Ok(CreatedWebhook { webhook, secret })
    }

    pub async fn webhooks(&self, caller: &Caller) -> AppResult<Vec<Webhook>> {
        Ok(self.store.list_webhooks(caller.collection_id()).await?)
    }

    pub async fn webhook(&self, caller: &Caller, id: WebhookId) -> AppResult<Webhook> {
        Ok(self.store.get_webhook(caller.collection_id(), id).await?)
    }

    pub async fn delete_webhook(&self, caller: &Caller, id: WebhookId) -> AppResult<()> {
        Ok(self
            .store
            .delete_webhook(caller.collection_id(), id)
            .await?)
    }

    /// A webhook's deliveries, newest first.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: WebhookId,
        limit: u32,
    ) -> AppResult<Vec<Delivery>> {
        Ok(self
            .store
            .deliveries(caller.collection_id(), id, limit.min(MAX_DELIVERIES))
            .await?)
    }
}

/// What the dispatcher (facerec-integrations) needs of the outbox: the destinations, one lease
/// each, the events after a destination's cursor, and its progress.
impl Events {
    pub async fn sinks(&self) -> AppResult<Vec<Sink>> {
        Ok(self.store.sinks().await?)
    }

    /// This replica publishes to MQTT: the MQTT destination exists from now.
    pub async fn ensure_mqtt_sink(&self) -> AppResult<()> {
        Ok(self.store.ensure_mqtt_sink().await?)
    }

    pub async fn lease(
        &self,
        sink: SinkId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> AppResult<Option<SinkState>> {
        Ok(self.store.lease_sink(sink, owner, until).await?)
    }

    pub async fn pending(&self, sink: &Sink, limit: u32) -> AppResult<(Vec<Event>, i64)> {
        Ok(self.store.events_after(sink, limit).await?)
    }

    pub async fn record(
        &self,
        sink: SinkId,
        owner: &str,
        until: DateTime<Utc>,
        progress: Progress,
    ) -> AppResult<bool> {
        Ok(self
            .store
            .record_progress(sink, owner, until, progress)
            .await?)
    }
}

fn invalid(message: String) -> AppError {
    AppError::Store(facerec_core::StoreError::InvalidWebhook(message))
}

/// `whsec_` and the base64 of 32 random bytes (Standard Webhooks' secret format).
fn new_secret() -> AppResult<WebhookSecret> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| AppError::Internal(format!("no randomness: {e}")))?;
    Ok(WebhookSecret(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )))
}

/// What was decided about one face, as an event tells it.
pub(crate) struct Decided<'a> {
    pub detection: &'a Detection,
    /// The person named, with the similarity that named them; `None`: unknown.
    pub person: Option<(PersonId, String, f32)>,
    /// An unknown face's best similarity with anyone.
    pub best: Option<f32>,
    pub threshold: Threshold,
    pub calibration: &'a Calibration,
    pub unknown: Option<&'a SeenCluster>,
    pub capture: Option<CaptureId>,
}

impl<'a> Decided<'a> {
    /// A recognition of one face of a photo.
    pub(crate) fn face(
        face: &'a AnalyzedFace,
        recognition: &Recognition,
        calibration: &'a Calibration,
        unknown: Option<&'a SeenCluster>,
        capture: Option<CaptureId>,
    ) -> Self {
        Self {
            detection: &face.detection,
            person: recognition
                .matched
                .as_ref()
                .map(|m| (m.person_id, m.name.clone(), m.similarity.value())),
            best: recognition.best().map(|c| c.similarity.value()),
            threshold: recognition.threshold,
            calibration,
            unknown,
            capture,
        }
    }

    pub(crate) fn event(self, caller: &Caller, source: &Source) -> EventData {
        let kind = match self.person {
            Some(_) => EventType::Recognized,
            None => EventType::Unknown,
        };
        let mut event = EventData::new(kind, collection_of(caller), Some(source));
        event.threshold = Some(self.threshold.value());
        event.bbox = Some(self.detection.bbox);
        event.det_score = Some(self.detection.score);
        match self.person {
            Some((id, name, similarity)) => {
                event.person = Some(EventPerson {
                    id,
                    name: Some(name),
                });
                event.similarity = Some(similarity);
                event.estimated_fpir =
                    (!self.calibration.weak).then(|| self.calibration.estimated_fpir(similarity));
            }
            None => event.similarity = self.best,
        }
        if let Some(seen) = self.unknown {
            event.cluster_id = Some(seen.cluster_id);
            event.seen = Some(seen.seen);
        }
        event.capture_id = self.capture;
        event
    }
}

/// The event a photo (or a Frigate snapshot) without a usable face makes.
fn no_face_event(caller: &Caller, source: &Source) -> EventData {
    EventData::new(EventType::NoFace, collection_of(caller), Some(source))
}

fn collection_of(caller: &Caller) -> EventCollection {
    EventCollection {
        id: caller.collection.id,
        name: caller.collection.name.clone(),
    }
}

/// Writes queued events to the outbox, in batches, until the app goes away.
async fn write_events(store: Arc<dyn Store>, mut pending: mpsc::Receiver<EventData>) {
    let mut batch = Vec::with_capacity(BATCH);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let events = std::mem::take(&mut batch);
        let count = events.len() as u64;
        // A database that is briefly busy or failing over costs no event: three tries.
        let mut tries = 0;
        let outcome = loop {
            tries += 1;
            match store.append_events(&events).await {
                Err(e) if tries < 3 => {
                    tracing::debug!(error = %e, "writing events to the outbox failed; again");
                    tokio::time::sleep(Duration::from_millis(250 * tries)).await;
                }
                outcome => break outcome,
            }
        };
        match outcome {
            Ok(dropped) if dropped > 0 => {
                metrics::counter!("facerec_events_dropped_total", "reason" => "outbox_full")
                    .increment(dropped)
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, events = count, "writing events to the outbox failed");
                metrics::counter!("facerec_events_dropped_total", "reason" => "write_failed")
                    .increment(count)
            }
        }
    }
}

async fn refresh_destinations(store: Arc<dyn Store>, into: Arc<RwLock<Destinations>>) {
    let mut tick = tokio::time::interval(DESTINATIONS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.event_destinations().await {
            Ok((every, collections)) => {
                *into.write().unwrap_or_else(|e| e.into_inner()) = Destinations {
                    every,
                    collections: collections.into_iter().collect(),
                }
            }
            Err(e) => tracing::debug!(error = %e, "reading the event destinations failed"),
        }
    }
}

async fn prune_outbox(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.prune_events(chrono::Utc::now()).await {
            Ok(dropped) if dropped > 0 => {
                metrics::counter!("facerec_events_dropped_total", "reason" => "expired")
                    .increment(dropped)
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "pruning the outbox failed"),
        }
    }
}
