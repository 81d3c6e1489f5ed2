use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{In, StoreResult};
use crate::domain::CollectionId;
use crate::events::*;

/// The event outbox and its destinations. Events are appended in one order (`seq`) that every
/// destination follows with a cursor; a destination is driven by one replica at a time (a lease),
/// so each event is delivered once by one of them, at least once across restarts.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Appends events (in order); beyond [`OUTBOX_MAX`] the oldest are dropped: how many.
    async fn append_events(&self, events: &[EventData]) -> StoreResult<u64>;

    /// The events after a destination's cursor in its collection (every type: the destination
    /// skips those it does not take), oldest first, at most `limit`; and the outbox's head, the
    /// newest event committed: a destination given fewer than `limit` has seen all up to it.
    async fn events_after(&self, sink: &Sink, limit: u32) -> StoreResult<(Vec<Event>, i64)>;

    /// Deletes the events every destination has taken, and those past [`OUTBOX_MAX_AGE`]: how many
    /// of them no destination had taken (dropped).
    async fn prune_events(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// The collections with a webhook, and whether a destination takes every collection's events
    /// (MQTT): where a decision becomes an event at all.
    async fn event_destinations(&self) -> StoreResult<(bool, Vec<CollectionId>)>;

    /// Every destination, for the dispatcher.
    async fn sinks(&self) -> StoreResult<Vec<Sink>>;

    /// Makes sure the MQTT destination exists (its cursor starting at the newest event).
    async fn ensure_mqtt_sink(&self) -> StoreResult<()>;

    /// Takes (or renews) a destination's lease for `owner` until `until`; its state when taken,
    /// `None` when another replica holds it, or it was deleted.
    async fn lease_sink(
        &self,
        sink: SinkId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<SinkState>>;

    /// Records what the dispatcher did (the new state and the log's new entries) and renews the
    /// lease until `until`, while `owner` still holds it: `false` when it no longer does (nothing
    /// was recorded).
    async fn record_progress(
        &self,
        sink: SinkId,
        owner: &str,
        until: DateTime<Utc>,
        progress: Progress,
    ) -> StoreResult<bool>;

    /// Creates a webhook, its cursor at the newest event (it receives what happens from now).
    async fn create_webhook(&self, collection: In, new: NewWebhook) -> StoreResult<Webhook>;

    async fn list_webhooks(&self, collection: In) -> StoreResult<Vec<Webhook>>;

    async fn get_webhook(&self, collection: In, id: WebhookId) -> StoreResult<Webhook>;

    /// Deletes a webhook and its delivery log.
    async fn delete_webhook(&self, collection: In, id: WebhookId) -> StoreResult<()>;

    /// A webhook's delivery log, newest first.
    async fn deliveries(
        &self,
        collection: In,
        id: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>>;
}
