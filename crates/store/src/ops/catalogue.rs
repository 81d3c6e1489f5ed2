//! [`Catalogue`]: collections, keys and stream tickets. Compiled once per backend (see
//! `crate::ops`).

use chrono::{DateTime, Utc};
use facerec_core::events::{EventCollection, EventData, EventType};
use facerec_core::store::{In, StoreResult};
use facerec_core::{
    Actor, ApiKey, Catalogue, Collection, CollectionId, CollectionPatch, DeletedCollection, FaceId,
    KeyId, KeysInForce, NewApiKey, NewAuditEvent, NewCollection, StoreError, TicketBudget,
};

use super::bind;
use super::This;
use crate::backend::{Change, Hooks};
use crate::error::{db_error, Taken};
use crate::statements::*;

#[async_trait::async_trait]
impl Catalogue for This {
    async fn create_collection(
        &self,
        new: NewCollection,
        actor: &Actor,
    ) -> StoreResult<Collection> {
        let collection = Collection::create(new, Utc::now())?;
        self.write(async |tx| {
            let count = bind::count_collections()
                .fetch_one(tx.conn())
                .await
                .map_err(db_error)?;
            Collection::check_room(count as u64)?;
            let event = NewAuditEvent::collection_created(&collection.name);
            let statements = [
                bind::insert_collection(&collection),
                bind::audit(collection.id, event, actor),
            ];
            tx.run(statements, Taken::CollectionName(&collection.name))
                .await
        })
        .await?;
        Ok(collection)
    }

    async fn get_collection(&self, id: CollectionId) -> StoreResult<Collection> {
        bind::select_collection(id)
            .fetch_optional(self.fresh_readers())
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::CollectionNotFound(id.to_string()))?
            .try_into()
    }

    async fn collection_named(&self, name: &str) -> StoreResult<Collection> {
        bind::select_collection_named(name)
            .fetch_optional(self.fresh_readers())
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))?
            .try_into()
    }

    async fn list_collections(&self) -> StoreResult<Vec<Collection>> {
        bind::list_collections()
            .fetch_all(self.fresh_readers())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Collection::try_from)
            .collect()
    }

    async fn update_collection(
        &self,
        id: CollectionId,
        patch: CollectionPatch,
        actor: &Actor,
    ) -> StoreResult<Collection> {
        self.write(async |tx| {
            let mut collection = collection_for_write(tx, id, Lock::Row).await?;
            let old_name = collection.name.clone();
            let changed = collection.apply(patch, Utc::now())?;
            let statements = [
                bind::update_collection_row(&collection),
                bind::audit(id, NewAuditEvent::collection_updated(&changed), actor),
            ];
            tx.run(statements, Taken::CollectionName(&collection.name))
                .await?;
            if changed.contains(&"name") {
                // The destinations are told to forget what they hold under the old name (MQTT's
                // retained topics), after every event sent under it.
                let mut renamed = EventData::new(
                    EventType::CollectionRenamed,
                    EventCollection {
                        id,
                        name: collection.name.clone(),
                    },
                    None,
                );
                renamed.renamed_from = Some(old_name);
                super::outbox::append_in(tx, &[renamed]).await?;
            }
            Ok(collection)
        })
        .await
    }

    async fn delete_collection(
        &self,
        id: CollectionId,
        actor: &Actor,
    ) -> StoreResult<DeletedCollection> {
        Collection::check_deletable(id)?;
        self.write(async |tx| {
            let collection = collection_for_write(tx, id, Lock::Row).await?;
            let mut deleted = Vec::with_capacity(4);
            // Captures first: those named for a person would go with them anyway.
            for statement in [
                DELETE_CAPTURES_OF_COLLECTION,
                DELETE_FACES_OF_COLLECTION,
                DELETE_PERSONS_OF_COLLECTION,
                DELETE_KEYS_OF_COLLECTION,
            ] {
                let ids = bind::delete_ids_of_collection(statement, id)
                    .fetch_all(tx.conn())
                    .await
                    .map_err(db_error)?;
                deleted.push(ids);
            }
            let [captures, faces, persons, keys] =
                <[_; 4]>::try_from(deleted).expect("four statements");
            let faces: Vec<FaceId> = faces.into_iter().map(FaceId::from).collect();
            let deleted = DeletedCollection {
                persons_deleted: persons.len() as u64,
                faces_deleted: faces.len() as u64,
                keys_deleted: keys.len() as u64,
                collection,
            };
            let event = NewAuditEvent::collection_deleted(
                &deleted.collection.name,
                deleted.persons_deleted,
                deleted.faces_deleted,
            );
            // Its events go, and the destinations are told to forget it (MQTT's retained topics).
            super::outbox::lock_events(tx).await?;
            let events = bind::by_collection(crate::statements::DELETE_EVENTS_OF_COLLECTION, id);
            tx.run([events], Taken::Nothing).await?;
            let forget = EventData::new(
                EventType::CollectionDeleted,
                EventCollection {
                    id,
                    name: deleted.collection.name.clone(),
                },
                None,
            );
            super::outbox::append_locked(tx, &[forget]).await?;
            let statements = [
                bind::by_collection(DELETE_CALIBRATIONS_OF_COLLECTION, id),
                bind::by_collection(DELETE_TICKETS_OF_COLLECTION, id),
                bind::by_collection(DELETE_COLLECTION, id),
                bind::audit(id, event, actor),
            ];
            tx.run(statements, Taken::Nothing).await?;
            tx.changed(Change::FacesRemoved(faces));
            tx.changed(Change::CapturesRemoved(
                captures
                    .into_iter()
                    .map(facerec_core::CaptureId::from)
                    .collect(),
            ));
            Ok(deleted)
        })
        .await
    }

    async fn create_key(&self, new: NewApiKey, actor: &Actor) -> StoreResult<ApiKey> {
        let now = Utc::now();
        let key = ApiKey::create(&new, now)?;
        self.write(async |tx| {
            collection_for_write(tx, key.collection_id, Lock::None).await?;
            tx.run([bind::prune_ended_keys(now)], Taken::Nothing)
                .await?;
            let count = bind::count_live_keys(now)
                .fetch_one(tx.conn())
                .await
                .map_err(db_error)?;
            ApiKey::check_room(count as u64)?;
            let event = NewAuditEvent::key_created(key.id, &key.scopes.to_text());
            let statements = [
                bind::insert_key(&key, &new.secret_sha256),
                bind::audit(key.collection_id, event, actor),
            ];
            tx.run(statements, Taken::Nothing).await
        })
        .await?;
        Ok(key)
    }

    async fn list_keys(&self, collection: Option<CollectionId>) -> StoreResult<Vec<ApiKey>> {
        bind::list_keys(collection)
            .fetch_all(self.fresh_readers())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(ApiKey::try_from)
            .collect()
    }

    async fn key_by_secret(&self, secret_sha256: &str) -> StoreResult<Option<ApiKey>> {
        bind::select_key_by_secret(secret_sha256)
            .fetch_optional(self.fresh_readers())
            .await
            .map_err(db_error)?
            .map(ApiKey::try_from)
            .transpose()
    }

    async fn keys_in_force(&self, now: DateTime<Utc>) -> StoreResult<KeysInForce> {
        let (any, admin) = bind::keys_in_force(now)
            .fetch_one(self.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(KeysInForce { any, admin })
    }

    async fn get_key(&self, id: KeyId) -> StoreResult<ApiKey> {
        bind::select_key(id)
            .fetch_optional(self.fresh_readers())
            .await
            .map_err(db_error)?
            .ok_or(StoreError::KeyNotFound(id))?
            .try_into()
    }

    async fn revoke_key(&self, id: KeyId, actor: &Actor) -> StoreResult<ApiKey> {
        self.write(async |tx| {
            let key: ApiKey = bind::revoke_key(id, Utc::now())
                .fetch_optional(tx.conn())
                .await
                .map_err(db_error)?
                .ok_or(StoreError::KeyNotFound(id))?
                .try_into()?;
            let event = NewAuditEvent::key_revoked(id);
            tx.run(
                [bind::audit(key.collection_id, event, actor)],
                Taken::Nothing,
            )
            .await?;
            Ok(key)
        })
        .await
    }

    async fn touch_key(&self, id: KeyId, at: DateTime<Utc>) -> StoreResult<()> {
        self.write(async |tx| tx.run([bind::touch_key(id, at)], Taken::Nothing).await)
            .await
    }

    async fn issue_ticket(
        &self,
        collection: In,
        ticket_sha256: &str,
        actor: &Actor,
        expires_at: DateTime<Utc>,
        budget: TicketBudget,
    ) -> StoreResult<bool> {
        self.write(async |tx| {
            // Tickets name their collection without a foreign key: it must exist now.
            collection_for_write(tx, collection, Lock::None).await?;
            tx.run([bind::delete_expired_tickets(Utc::now())], Taken::Nothing)
                .await?;
            let limits = [budget.total, budget.per_collection, budget.per_holder];
            for (count, limit) in bind::count_tickets(collection, actor)
                .into_iter()
                .zip(limits)
            {
                let outstanding = count.fetch_one(tx.conn()).await.map_err(db_error)?;
                if outstanding as u64 >= limit {
                    return Ok(false);
                }
            }
            let insert = bind::insert_ticket(collection, ticket_sha256, actor, expires_at);
            tx.run([insert], Taken::Nothing).await?;
            Ok(true)
        })
        .await
    }

    async fn ticket_holder(
        &self,
        ticket_sha256: &str,
    ) -> StoreResult<Option<(Actor, CollectionId)>> {
        let holder = bind::select_ticket(ticket_sha256, Utc::now())
            .fetch_optional(self.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(holder.map(|(actor, collection)| (Actor(actor), collection.into())))
    }

    async fn redeem_ticket(&self, ticket_sha256: &str) -> StoreResult<bool> {
        self.write(async |tx| {
            let redeemed = bind::delete_live_ticket(ticket_sha256, Utc::now())
                .fetch_optional(tx.conn())
                .await
                .map_err(db_error)?;
            Ok(redeemed.is_some())
        })
        .await
    }
}

/// Whether a write holds the collection's row.
enum Lock {
    /// Held until the transaction ends (the collection itself changes, or goes).
    Row,
    /// Only read (what is written beside it checks it through its foreign key).
    None,
}

/// The collection, read inside a write transaction.
async fn collection_for_write(
    tx: &mut super::write::Tx<'_>,
    id: CollectionId,
    lock: Lock,
) -> StoreResult<Collection> {
    let select = match lock {
        Lock::Row => bind::select_collection_for_write(id),
        Lock::None => bind::select_collection(id),
    };
    select
        .fetch_optional(tx.conn())
        .await
        .map_err(db_error)?
        .ok_or_else(|| StoreError::CollectionNotFound(id.to_string()))?
        .try_into()
}
