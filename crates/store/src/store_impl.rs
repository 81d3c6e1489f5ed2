//! The one implementation of [`facerec_core::Store`] for both SQL backends. The steps of every
//! operation are the same on SQLite and PostgreSQL, so they are written once, generically, as the
//! operations of [`Backend`](crate::sql::Backend) over the [`Hooks`] a backend's store provides.
//!
//! What stays a macro is the `Store` impl itself, one line per method forwarding to those
//! operations: `Store` is an `async_trait` (it is used as `dyn Store`), whose futures must be
//! `Send`, and a generic `impl<S: Hooks<DB>> Store` cannot prove that for sqlx's executor futures
//! over an unknown database (and the orphan rule forbids the blanket impl anyway). Expanded for a
//! concrete store, the compiler sees through the generic futures and the bound holds.

use std::ops::DerefMut;

use facerec_core::store::StoreResult;
use facerec_core::{Candidate, CollectionId, Face, FaceId, ModelId};
use facerec_types::NormalizedEmbedding;
use sqlx::{Database, Pool};

/// What a committed write changed, for a backend that keeps state beside the database.
pub(crate) enum Committed<'a> {
    FaceAdded(CollectionId, &'a Face),
    FacesRemoved(&'a [FaceId]),
}

/// What each backend's store does its own way; every operation is written over these.
pub(crate) trait Hooks<DB: Database>: Sync {
    /// The connection a write transaction begins on (SQLite: its one writer, held until the end
    /// of the write; PostgreSQL: a pooled connection).
    async fn writer(&self) -> StoreResult<impl DerefMut<Target = DB::Connection> + Send>;
    /// Where reads run (PostgreSQL: a standby, when configured).
    fn readers(&self) -> &Pool<DB>;
    /// Where reads that must see the latest write run.
    fn fresh_readers(&self) -> &Pool<DB>;
    /// Called after each commit, while the writer is still held (SQLite updates its in-memory
    /// index; PostgreSQL has nothing to do).
    fn committed(&self, change: Committed<'_>);
    /// Called after a deletion commits, so that the deleted rows become unreadable in the
    /// database files too (SQLite: a WAL checkpoint; PostgreSQL: a batched VACUUM).
    async fn erase(&self, writer: &mut DB::Connection);
    async fn face_count(&self, collection: Option<CollectionId>) -> StoreResult<u64>;
    /// The nearest faces' persons within the collection, each backend searching its own way.
    async fn candidates(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
    ) -> StoreResult<Vec<Candidate>>;
}

/// `impl Store for $store`, each method forwarding to the operation of the same name.
macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        $crate::store_impl::forward! { $store, $db, $backend;
            ping() -> ();
            create_collection(new: NewCollection, actor: &Actor) -> Collection;
            get_collection(id: CollectionId) -> Collection;
            collection_named(name: &str) -> Collection;
            list_collections() -> Vec<Collection>;
            update_collection(id: CollectionId, patch: CollectionPatch, actor: &Actor) -> Collection;
            delete_collection(id: CollectionId, actor: &Actor) -> DeletedCollection;
            create_key(new: NewApiKey, actor: &Actor) -> ApiKey;
            list_keys(collection: Option<CollectionId>) -> Vec<ApiKey>;
            key_by_secret(secret_sha256: &str) -> Option<ApiKey>;
            revoke_key(id: KeyId, actor: &Actor) -> ApiKey;
            touch_key(id: KeyId, at: chrono::DateTime<chrono::Utc>) -> ();
            register(c: CollectionId, new: NewPerson, face: NewFace, actor: &Actor) -> (Person, Face);
            get_person(c: CollectionId, id: PersonId) -> Person;
            persons_named(c: CollectionId, name: &str, limit: u32) -> Vec<Person>;
            register_named(c: CollectionId, new: NewPerson, faces: Vec<NewFace>, actor: &Actor)
                -> RegisteredNamed;
            list_persons(c: CollectionId, page: &PageRequest) -> Page<Person>;
            update_person(c: CollectionId, id: PersonId, patch: PersonPatch, actor: &Actor) -> Person;
            delete_person(c: CollectionId, id: PersonId, actor: &Actor) -> DeletedPerson;
            delete_expired(now: chrono::DateTime<chrono::Utc>, limit: u32, actor: &Actor)
                -> Vec<DeletedPerson>;
            audit_events(c: Option<CollectionId>, filter: &AuditFilter) -> Vec<AuditEvent>;
            sample_faces(c: CollectionId, max_persons: u32, model: &ModelId) -> Vec<Face>;
            save_calibration(
                c: CollectionId,
                computed_at: chrono::DateTime<chrono::Utc>,
                faces: u64,
                document: serde_json::Value
            ) -> ();
            latest_calibration(c: CollectionId) -> Option<serde_json::Value>;
            add_face(c: CollectionId, person: PersonId, new: NewFace, actor: &Actor) -> (Face, Added);
            get_face(c: CollectionId, id: FaceId) -> Face;
            list_faces(c: CollectionId, person: PersonId) -> Vec<Face>;
            delete_face(c: CollectionId, id: FaceId, actor: &Actor) -> Face;
            record(c: CollectionId, event: NewAuditEvent, actor: &Actor) -> ();
            count_faces(c: Option<CollectionId>) -> u64;
            list_all_faces(c: CollectionId, limit: u32, offset: u64) -> Page<FaceEntry>;
            search(c: CollectionId, probe: &NormalizedEmbedding, model: &ModelId, k: usize)
                -> Vec<Candidate>;
            issue_ticket(
                c: CollectionId,
                ticket_sha256: &str,
                actor: &Actor,
                expires_at: chrono::DateTime<chrono::Utc>,
                max_outstanding: u64
            ) -> bool;
            ticket_holder(ticket_sha256: &str) -> Option<(Actor, CollectionId)>;
            redeem_ticket(ticket_sha256: &str) -> bool;
        }
    };
}
pub(crate) use impl_store;

macro_rules! forward {
    ($store:ty, $db:ty, $backend:literal;
     $($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait::async_trait]
        impl facerec_core::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }
            $(
                async fn $name(&self, $($arg: $ty),*) -> StoreResult<$out> {
                    <$db as $crate::sql::Backend>::$name(self, $($arg),*).await
                }
            )*
        }
    };
}
pub(crate) use forward;
