//! [`Outbox`]: the events waiting for their destinations, the destinations (webhooks, MQTT) with
//! their cursors and leases, and the delivery log. Compiled once per backend (see `crate::ops`).

use chrono::{DateTime, Utc};
use facerec_core::events::*;
use facerec_core::store::{In, StoreResult};
use facerec_core::{CollectionId, Outbox, StoreError};
use sqlx::types::Json;

use super::write::Tx;
use super::This;
use crate::backend::Hooks;
use crate::columns::Id;
use crate::error::{db_error, Taken};
use crate::rows::StateRow;
use crate::rows::{DeliveryRow, SinkRow};
use crate::statements::*;

/// A destination not driven for this long (no replica has MQTT on any more) holds no event back
/// but the deletions it must hear of.
const DRIVEN_LATELY: chrono::Duration = chrono::Duration::hours(1);
/// An MQTT destination not driven for this long is forgotten, and the deletions kept for it go.
const MQTT_FORGOTTEN_AFTER: chrono::Duration = chrono::Duration::days(30);

#[async_trait::async_trait]
impl Outbox for This {
    async fn append_events(&self, events: &[EventData]) -> StoreResult<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        self.write(async |tx| {
            append_in(tx, events).await?;
            let dropped = sqlx::query(DROP_EVENTS_BEYOND)
                .bind(OUTBOX_MAX as i64)
                .execute(tx.conn())
                .await
                .map_err(db_error)?
                .rows_affected();
            Ok(dropped)
        })
        .await
    }

    async fn events_after(&self, sink: &Sink, limit: u32) -> StoreResult<(Vec<Event>, i64)> {
        let mut conn = self.fresh_readers().acquire().await.map_err(db_error)?;
        // The head first: every event up to it has committed (appends commit in `seq` order), so
        // a destination that saw all of them may move its cursor there.
        let head: i64 = sqlx::query_scalar(EVENTS_HEAD)
            .fetch_one(&mut *conn)
            .await
            .map_err(db_error)?;
        let query = match sink.collection {
            Some(_) => EVENTS_AFTER_IN,
            None => EVENTS_AFTER,
        };
        let mut select = sqlx::query_as::<_, (i64, Json<serde_json::Value>)>(query)
            .bind(sink.state.cursor)
            .bind(head)
            .bind(i64::from(limit));
        if let Some(collection) = sink.collection {
            select = select.bind(Id::from(collection));
        }
        let rows = select.fetch_all(&mut *conn).await.map_err(db_error)?;
        // An event this facerec cannot read (a newer replica's, in a rolling upgrade) is passed
        // over, not a stuck destination.
        let events = rows
            .into_iter()
            .filter_map(|(seq, data)| match serde_json::from_value(data.0) {
                Ok(data) => Some(Event { seq, data }),
                Err(e) => {
                    tracing::warn!(seq, error = %e, "an event this facerec cannot read: passed over");
                    None
                }
            })
            .collect();
        Ok((events, head))
    }

    async fn prune_events(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        self.write(async |tx| {
            let forgotten = sqlx::query(DELETE_FORGOTTEN_MQTT).bind(now - MQTT_FORGOTTEN_AFTER);
            let taken = sqlx::query(DELETE_TAKEN_EVENTS).bind(now - DRIVEN_LATELY);
            tx.run(
                [forgotten, taken, sqlx::query(DELETE_TAKEN_DELETIONS)],
                Taken::Nothing,
            )
            .await?;
            let dropped = sqlx::query(DELETE_OLD_EVENTS)
                .bind(now - OUTBOX_MAX_AGE)
                .bind(now - MQTT_FORGOTTEN_AFTER)
                .execute(tx.conn())
                .await
                .map_err(db_error)?
                .rows_affected();
            Ok(dropped)
        })
        .await
    }

    async fn event_destinations(&self) -> StoreResult<(bool, Vec<CollectionId>)> {
        let rows: Vec<(String, Option<Id>)> = sqlx::query_as(EVENT_DESTINATIONS)
            .bind(Utc::now() - DRIVEN_LATELY)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        let every = rows.iter().any(|(kind, _)| kind == "mqtt");
        let collections = rows
            .into_iter()
            .filter_map(|(_, c)| c.map(Into::into))
            .collect();
        Ok((every, collections))
    }

    async fn sinks(&self) -> StoreResult<Vec<Sink>> {
        let rows: Vec<SinkRow> = sqlx::query_as(SELECT_SINKS)
            .fetch_all(self.fresh_readers())
            .await
            .map_err(db_error)?;
        // One row this facerec cannot read stops no other destination.
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Sink::try_from(row)
                    .inspect_err(|e| tracing::warn!(error = %e, "an event destination passed over"))
                    .ok()
            })
            .collect())
    }

    async fn ensure_mqtt_sink(&self) -> StoreResult<()> {
        self.write(async |tx| {
            let insert = sqlx::query(INSERT_SINK)
                .bind(SinkId::Mqtt.key())
                .bind("mqtt")
                .bind(None::<Id>)
                .bind(None::<String>)
                .bind(Json(EventTypes::all()))
                .bind(None::<String>)
                .bind(Utc::now());
            tx.run([insert], Taken::Nothing).await
        })
        .await
    }

    async fn lease_sink(
        &self,
        sink: SinkId,
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<Option<SinkState>> {
        let owner = owner.to_owned();
        self.write(async |tx| {
            let row: Option<StateRow> = sqlx::query_as(LEASE_SINK)
                .bind(sink.key())
                .bind(owner)
                .bind(until)
                .bind(Utc::now())
                .fetch_optional(tx.conn())
                .await
                .map_err(db_error)?;
            Ok(row.map(SinkState::from))
        })
        .await
    }

    async fn record_progress(
        &self,
        sink: SinkId,
        owner: &str,
        until: DateTime<Utc>,
        progress: Progress,
    ) -> StoreResult<bool> {
        let owner = owner.to_owned();
        self.write(async |tx| {
            let state = &progress.state;
            let held = sqlx::query(ADVANCE_SINK)
                .bind(sink.key())
                .bind(owner)
                .bind(state.cursor)
                .bind(i64::from(state.attempts))
                .bind(state.first_failed_at)
                .bind(state.next_attempt_at)
                .bind(state.last_error.clone())
                .bind(until)
                .bind(state.failing_seq)
                .execute(tx.conn())
                .await
                .map_err(db_error)?
                .rows_affected();
            if held == 0 {
                return Ok(false);
            }
            if matches!(sink, SinkId::Webhook(_)) && !progress.log.is_empty() {
                let mut entries = Vec::with_capacity(progress.log.len());
                for d in &progress.log {
                    let entry = sqlx::query(INSERT_DELIVERY)
                        .bind(sink.key())
                        .bind(d.seq)
                        .bind(Id(d.event_id))
                        .bind(d.event_type.as_str())
                        .bind(d.status.as_str())
                        .bind(i64::from(d.attempts))
                        .bind(d.reason.clone())
                        .bind(d.at);
                    entries.push(entry);
                }
                tx.run(entries, Taken::Nothing).await?;
                let trim = sqlx::query(TRIM_DELIVERIES)
                    .bind(sink.key())
                    .bind(i64::from(DELIVERY_LOG_MAX) - 1);
                tx.run([trim], Taken::Nothing).await?;
            }
            Ok(true)
        })
        .await
    }

    async fn create_webhook(&self, collection: In, new: NewWebhook) -> StoreResult<Webhook> {
        let id = WebhookId::new();
        self.write(async |tx| {
            // Two creations at once count one after the other.
            if let Some(lock) = super::bind::lock_name(collection, "\u{1}webhooks") {
                tx.run([lock], Taken::Nothing).await?;
            }
            let count: i64 = sqlx::query_scalar(COUNT_WEBHOOKS)
                .bind(Id::from(collection))
                .fetch_one(tx.conn())
                .await
                .map_err(db_error)?;
            if count as u64 >= MAX_WEBHOOKS {
                return Err(StoreError::InvalidWebhook(format!(
                    "this collection holds {MAX_WEBHOOKS} webhooks, the most it may: delete one first"
                )));
            }
            let insert = sqlx::query(INSERT_SINK)
                .bind(id.to_string())
                .bind("webhook")
                .bind(Some(Id::from(collection)))
                .bind(Some(new.url.as_str().to_owned()))
                .bind(Json(new.events.clone()))
                .bind(Some(new.secret.0.clone()))
                .bind(Utc::now());
            tx.run([insert], Taken::Nothing).await?;
            webhook_in(tx, collection, id).await
        })
        .await
    }

    async fn list_webhooks(&self, collection: In) -> StoreResult<Vec<Webhook>> {
        let rows: Vec<SinkRow> = sqlx::query_as(SELECT_WEBHOOKS)
            .bind(Id::from(collection))
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(webhook_of).collect()
    }

    async fn get_webhook(&self, collection: In, id: WebhookId) -> StoreResult<Webhook> {
        let row: Option<SinkRow> = sqlx::query_as(SELECT_WEBHOOK)
            .bind(Id::from(collection))
            .bind(id.to_string())
            .fetch_optional(self.readers())
            .await
            .map_err(db_error)?;
        webhook_of(row.ok_or(StoreError::WebhookNotFound(id))?)
    }

    async fn delete_webhook(&self, collection: In, id: WebhookId) -> StoreResult<()> {
        self.write(async |tx| {
            let deleted = sqlx::query(DELETE_WEBHOOK)
                .bind(Id::from(collection))
                .bind(id.to_string())
                .execute(tx.conn())
                .await
                .map_err(db_error)?
                .rows_affected();
            match deleted {
                0 => Err(StoreError::WebhookNotFound(id)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn deliveries(
        &self,
        collection: In,
        id: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<Delivery>> {
        self.get_webhook(collection, id).await?;
        let rows: Vec<DeliveryRow> = sqlx::query_as(SELECT_DELIVERIES)
            .bind(id.to_string())
            .bind(i64::from(limit))
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(Delivery::try_from).collect()
    }
}

/// Appends events inside a write (a registration's or a deletion's, or the writer task's own),
/// in `seq` order: on PostgreSQL under a transaction-level lock, so that they commit in that order.
pub(super) async fn append_in(tx: &mut Tx<'_>, events: &[EventData]) -> StoreResult<()> {
    lock_events(tx).await?;
    append_locked(tx, events).await
}

/// As [`append_in`], in a write that already holds the events' lock ([`lock_events`]: a deletion
/// that removes events first).
pub(super) async fn append_locked(tx: &mut Tx<'_>, events: &[EventData]) -> StoreResult<()> {
    // An event about a person deleted meanwhile (queued before the deletion, written after it)
    // is not written: nothing about them is told after `person.deleted`.
    // Each person named once (a stream's batch names the same few many times).
    let named: std::collections::BTreeSet<_> = events
        .iter()
        .filter(|e| !e.kind.forgets())
        .filter_map(|e| e.person.as_ref().map(|p| p.id))
        .collect();
    let mut gone = Vec::new();
    for person in named {
        let found: i64 = sqlx::query_scalar(PERSON_EXISTS)
            .bind(Id::from(person))
            .fetch_one(tx.conn())
            .await
            .map_err(db_error)?;
        if found == 0 {
            gone.push(person);
        }
    }
    let mut inserts = Vec::with_capacity(events.len());
    for e in events
        .iter()
        .filter(|e| e.kind.forgets() || e.person.as_ref().is_none_or(|p| !gone.contains(&p.id)))
    {
        let insert = sqlx::query(INSERT_EVENT)
            .bind(Id(e.id))
            .bind(Id::from(e.collection.id))
            .bind(e.kind.as_str())
            .bind(e.person.as_ref().map(|p| Id::from(p.id)))
            .bind(e.time)
            .bind(Json(e.clone()));
        inserts.push(insert);
    }
    tx.run(inserts, Taken::Nothing).await
}

/// Appends and the deletions that remove events wait for each other (PostgreSQL: a transaction-level
/// advisory lock, so that `seq` order is commit order; SQLite's one writer does it there).
pub(super) async fn lock_events(tx: &mut Tx<'_>) -> StoreResult<()> {
    if let Some(lock) = super::LOCK_EVENTS {
        tx.run([sqlx::query(lock)], Taken::Nothing).await?;
    }
    Ok(())
}

async fn webhook_in(tx: &mut Tx<'_>, collection: In, id: WebhookId) -> StoreResult<Webhook> {
    let row: SinkRow = sqlx::query_as(SELECT_WEBHOOK)
        .bind(Id::from(collection))
        .bind(id.to_string())
        .fetch_one(tx.conn())
        .await
        .map_err(db_error)?;
    webhook_of(row)
}

fn webhook_of(row: SinkRow) -> StoreResult<Webhook> {
    let sink = Sink::try_from(row)?;
    sink.webhook
        .ok_or_else(|| StoreError::Database("a webhook row without its url".into()))
}
