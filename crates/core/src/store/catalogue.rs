use async_trait::async_trait;

use super::{In, StoreResult};
use crate::collection::*;
use crate::domain::*;

/// Collections, keys and stream tickets: global, what every request is resolved against.
#[async_trait]
pub trait Catalogue: Send + Sync {
    async fn create_collection(&self, new: NewCollection, actor: &Actor)
        -> StoreResult<Collection>;

    async fn get_collection(&self, id: CollectionId) -> StoreResult<Collection>;

    async fn collection_named(&self, name: &str) -> StoreResult<Collection>;

    /// Every collection, oldest first (at most [`Collection::MAX`]).
    async fn list_collections(&self) -> StoreResult<Vec<Collection>>;

    async fn update_collection(
        &self,
        id: CollectionId,
        patch: CollectionPatch,
        actor: &Actor,
    ) -> StoreResult<Collection>;

    /// Deletes the collection, its persons and faces (erased as a person's deletion erases them)
    /// and its keys, in one transaction.
    async fn delete_collection(
        &self,
        id: CollectionId,
        actor: &Actor,
    ) -> StoreResult<DeletedCollection>;

    async fn create_key(&self, new: NewApiKey, actor: &Actor) -> StoreResult<ApiKey>;

    /// Every key, oldest first (at most [`ApiKey::MAX`]); `Some`: only one collection's.
    async fn list_keys(&self, collection: Option<CollectionId>) -> StoreResult<Vec<ApiKey>>;

    /// The key whose secret hashes to this, live or not; read where the latest write is seen.
    async fn key_by_secret(&self, secret_sha256: &str) -> StoreResult<Option<ApiKey>>;

    /// Whether live keys exist at `now`, and live `admin` keys (of any collection).
    async fn keys_in_force(&self, now: chrono::DateTime<chrono::Utc>) -> StoreResult<KeysInForce>;

    /// A key by its id, live or not; read where the latest write is seen.
    async fn get_key(&self, id: KeyId) -> StoreResult<ApiKey>;
    async fn revoke_key(&self, id: KeyId, actor: &Actor) -> StoreResult<ApiKey>;

    /// Notes that a key was used at `at` (callers do so at most every
    /// [`ApiKey::LAST_USED_RESOLUTION`]).
    async fn touch_key(&self, id: KeyId, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;

    /// Records a one-time stream ticket (by its sha256) for `actor` in the collection until
    /// `expires_at`, after dropping expired ones; `false` when the budget's unexpired tickets
    /// already exist (in all, in the collection, or for the actor).
    async fn issue_ticket(
        &self,
        collection: In,
        ticket_sha256: &str,
        actor: &Actor,
        expires_at: chrono::DateTime<chrono::Utc>,
        budget: TicketBudget,
    ) -> StoreResult<bool>;

    /// Who holds an unexpired ticket, and for which collection; the ticket stays valid.
    async fn ticket_holder(
        &self,
        ticket_sha256: &str,
    ) -> StoreResult<Option<(Actor, CollectionId)>>;

    /// Spends an unexpired ticket: `true` exactly once, whichever process asks.
    async fn redeem_ticket(&self, ticket_sha256: &str) -> StoreResult<bool>;
}

/// How many unspent stream tickets may exist at once: in all, in one collection, for one holder
/// (so that one key, or one collection, cannot take every ticket).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TicketBudget {
    pub total: u64,
    pub per_collection: u64,
    pub per_holder: u64,
}

impl TicketBudget {
    /// The same bound everywhere.
    pub fn flat(n: u64) -> Self {
        Self {
            total: n,
            per_collection: n,
            per_holder: n,
        }
    }
}
