//! The dispatcher: drives every destination through the outbox, in order, at least once. Each
//! destination is one task holding its lease (so with several replicas one of them drives it);
//! an event that fails is retried with backoff and jitter, holding the ones after it (order per
//! destination), until [`RETRY_FOR`] has passed, then logged as failed and passed over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use facerec_core::events::*;
use facerec_service::App;
use tokio::task::JoinHandle;

use crate::mqtt::Mqtt;
use crate::webhook::WebhookSender;

/// How long a lease holds without being renewed; a replica that dies frees its destinations
/// after this.
const LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// How often the destinations are looked for, and an idle destination for new events.
const POLL: Duration = Duration::from_millis(100);
const DESTINATIONS_EVERY: Duration = Duration::from_secs(1);
/// Events read at once per destination.
const BATCH: u32 = 64;
/// Progress is recorded at least this often while a batch is delivered.
const RECORD_EVERY: Duration = Duration::from_millis(250);

/// What the dispatcher delivers to.
#[derive(Clone)]
pub struct Deliverers {
    pub webhooks: WebhookSender,
    pub mqtt: Option<Arc<Mqtt>>,
}

/// Runs until the process ends.
pub async fn run(app: Arc<App>, deliverers: Deliverers) {
    let owner = uuid::Uuid::new_v4().to_string();
    if deliverers.mqtt.is_some() {
        while let Err(e) = app.events().ensure_mqtt_sink().await {
            tracing::warn!(error = %e, "cannot register the MQTT destination; trying again");
            tokio::time::sleep(DESTINATIONS_EVERY).await;
        }
    }
    let mut running: HashMap<SinkId, JoinHandle<()>> = HashMap::new();
    let mut tick = tokio::time::interval(DESTINATIONS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        running.retain(|_, task| !task.is_finished());
        let sinks = match app.events().sinks().await {
            Ok(sinks) => sinks,
            Err(e) => {
                tracing::debug!(error = %e, "reading the event destinations failed");
                continue;
            }
        };
        // A destination deleted meanwhile (a webhook) stops being driven.
        running.retain(|id, task| {
            let listed = sinks.iter().any(|s| s.id == *id);
            if !listed {
                task.abort();
            }
            listed
        });
        for sink in sinks {
            if running.contains_key(&sink.id) {
                continue;
            }
            let deliverer = match (&sink.webhook, &deliverers.mqtt) {
                (Some(webhook), _) => {
                    Deliverer::Webhook(deliverers.webhooks.clone(), Box::new(webhook.clone()))
                }
                (None, Some(mqtt)) if sink.id == SinkId::Mqtt => Deliverer::Mqtt(Arc::clone(mqtt)),
                // The MQTT destination, on a replica without MQTT.
                _ => continue,
            };
            let task = tokio::spawn(drive(
                Arc::clone(&app),
                owner.clone(),
                sink.clone(),
                deliverer,
            ));
            running.insert(sink.id, task);
        }
    }
}

enum Deliverer {
    Webhook(WebhookSender, Box<Webhook>),
    Mqtt(Arc<Mqtt>),
}

impl Deliverer {
    /// Delivers the events a destination takes, in order: how many of them went (a prefix), and
    /// why the next did not. A webhook takes one request per event; MQTT one batch for all.
    async fn deliver(&self, events: &[&Event]) -> (usize, Option<String>) {
        match self {
            Self::Webhook(sender, webhook) => {
                for (done, event) in events.iter().enumerate() {
                    if let Err(why) = sender.send(webhook, event).await {
                        return (done, Some(why));
                    }
                }
                (events.len(), None)
            }
            Self::Mqtt(mqtt) => match mqtt.send(events).await {
                Ok(()) => (events.len(), None),
                Err(why) => (0, Some(why)),
            },
        }
    }

    /// Events delivered at once, at most: a webhook's are recorded as they go.
    fn batch(&self) -> usize {
        match self {
            Self::Webhook(..) => 1,
            Self::Mqtt(_) => BATCH as usize,
        }
    }
}

/// Drives one destination while this replica holds its lease (it ends when another holds it, or
/// the destination is deleted; the next look for destinations tries again). The lease is renewed
/// with each record of progress, and taken again once half of it has passed: an idle destination
/// costs a read every [`POLL`], not a write.
async fn drive(app: Arc<App>, owner: String, mut sink: Sink, deliverer: Deliverer) {
    let kind = sink.id.kind();
    let mut held_until: Option<DateTime<Utc>> = None;
    loop {
        if held_until.is_none_or(|until| until - Utc::now() < LEASE / 2) {
            let until = Utc::now() + LEASE;
            match app.events().lease(sink.id, &owner, until).await {
                Ok(Some(state)) => {
                    sink.state = state;
                    held_until = Some(until);
                }
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "leasing an event destination failed");
                    tokio::time::sleep(DESTINATIONS_EVERY).await;
                    continue;
                }
            }
        }
        if let Some(next) = sink.state.next_attempt_at {
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            if !wait.is_zero() {
                tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                continue;
            }
        }
        let (events, head) = match app.events().pending(&sink, BATCH).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "reading the outbox failed");
                tokio::time::sleep(DESTINATIONS_EVERY).await;
                continue;
            }
        };
        let saw_all = events.len() < BATCH as usize;
        if events.is_empty() {
            // Nothing after the cursor: it moves to the head; a failure whose event is gone
            // (pruned, or its person deleted) is over.
            if head > sink.state.cursor || sink.state.attempts > 0 {
                let state = SinkState {
                    cursor: head.max(sink.state.cursor),
                    ..SinkState::default()
                };
                let progress = Progress {
                    state: state.clone(),
                    log: Vec::new(),
                };
                match record(&app, &sink, &owner, progress).await {
                    Some(until) => held_until = Some(until),
                    None => return,
                }
                sink.state = state;
            }
            tokio::time::sleep(POLL).await;
            continue;
        }
        let mut state = sink.state.clone();
        let mut log = Vec::new();
        let mut recorded_at = tokio::time::Instant::now();
        let mut stopped = false;
        let mut pending = events.iter().peekable();
        while pending.peek().is_some() {
            // The next events it takes (skipping, and passing over, those it does not).
            let mut chunk: Vec<&Event> = Vec::new();
            while let Some(event) = pending.peek() {
                if !sink.events.contains(event.data.kind) {
                    if chunk.is_empty() {
                        state.cursor = event.seq;
                        pending.next();
                        continue;
                    }
                    break;
                }
                if chunk.len() == deliverer.batch() {
                    break;
                }
                chunk.push(event);
                pending.next();
            }
            if chunk.is_empty() {
                break;
            }
            // Failures counted for an event that is gone are not this one's.
            if state.attempts > 0 && state.failing_seq != Some(chunk[0].seq) {
                state = SinkState {
                    cursor: state.cursor,
                    ..SinkState::default()
                };
            }
            let now = Utc::now();
            let (done, failure) = deliverer.deliver(&chunk).await;
            for event in &chunk[..done] {
                let latency = (Utc::now() - event.data.time).num_milliseconds().max(0);
                metrics::histogram!("facerec_event_delivery_seconds", "sink" => kind)
                    .record(latency as f64 / 1000.0);
                metrics::counter!("facerec_events_delivered_total", "sink" => kind).increment(1);
                log.push(entry(
                    event,
                    DeliveryStatus::Delivered,
                    state.attempts + 1,
                    None,
                ));
                state = SinkState {
                    cursor: event.seq,
                    ..SinkState::default()
                };
            }
            if let Some(reason) = failure {
                let event = chunk[done];
                let first = *state.first_failed_at.get_or_insert(now);
                state.attempts += 1;
                state.failing_seq = Some(event.seq);
                if now - first >= RETRY_FOR {
                    tracing::warn!(sink = %sink.id.key(), event = %event.data.id, %reason, "giving up on an event");
                    metrics::counter!("facerec_events_failed_total", "sink" => kind).increment(1);
                    log.push(entry(
                        event,
                        DeliveryStatus::Failed,
                        state.attempts,
                        Some(reason),
                    ));
                    state = SinkState {
                        cursor: event.seq,
                        ..SinkState::default()
                    };
                } else {
                    tracing::debug!(sink = %sink.id.key(), %reason, attempts = state.attempts, "delivery failed; retrying later");
                    metrics::counter!("facerec_events_retried_total", "sink" => kind).increment(1);
                    state.next_attempt_at = Some(now + backoff(state.attempts, rand::random()));
                    state.last_error = Some(reason);
                    stopped = true;
                    break;
                }
            }
            if recorded_at.elapsed() >= RECORD_EVERY {
                let progress = Progress {
                    state: state.clone(),
                    log: std::mem::take(&mut log),
                };
                if record(&app, &sink, &owner, progress).await.is_none() {
                    return;
                }
                recorded_at = tokio::time::Instant::now();
            }
        }
        if !stopped && saw_all && state.attempts == 0 {
            state.cursor = state.cursor.max(head);
        }
        let progress = Progress {
            state: state.clone(),
            log,
        };
        match record(&app, &sink, &owner, progress).await {
            Some(until) => held_until = Some(until),
            None => return,
        }
        sink.state = state;
    }
}

fn entry(event: &Event, status: DeliveryStatus, attempts: u32, reason: Option<String>) -> Delivery {
    Delivery {
        seq: event.seq,
        event_id: event.data.id,
        event_type: event.data.kind,
        status,
        attempts,
        reason,
        at: Utc::now(),
    }
}

/// Records progress and renews the lease: until when it is held, or `None` when this replica lost
/// it (or the destination is gone) and should stop driving it.
async fn record(app: &App, sink: &Sink, owner: &str, progress: Progress) -> Option<DateTime<Utc>> {
    let until = Utc::now() + LEASE;
    for _ in 0..3 {
        match app
            .events()
            .record(sink.id, owner, until, progress.clone())
            .await
        {
            Ok(held) => return held.then_some(until),
            Err(e) => {
                tracing::warn!(error = %e, "recording an event destination's progress failed");
                tokio::time::sleep(DESTINATIONS_EVERY).await;
            }
        }
    }
    // Not recorded: the events after the last recorded cursor are delivered again (at least once).
    None
}
