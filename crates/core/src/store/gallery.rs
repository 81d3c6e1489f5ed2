use async_trait::async_trait;
use facerec_types::NormalizedEmbedding;

use super::{In, StoreResult};
use crate::domain::*;
use crate::matching::Candidate;
use crate::retry::{Attempt, IdempotencyKey, Remembered};

/// What a collection holds: persons and their faces, the search over them, the calibrations
/// computed on them and the audit log of what happened to them.
#[async_trait]
pub trait Gallery: Send + Sync {
    /// Creates a person together with their first face, atomically: both or neither.
    async fn register(
        &self,
        collection: In,
        person: NewPerson,
        face: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Person, Face)>;

    async fn get_person(&self, collection: In, id: PersonId) -> StoreResult<Person>;

    /// The persons whose name folds to the same as `name` ([`fold_name`]), oldest first, at most
    /// `limit`; read where the latest write is seen.
    async fn persons_named(
        &self,
        collection: In,
        name: &str,
        limit: u32,
    ) -> StoreResult<Vec<Person>>;

    /// In one transaction, serialized with every other registration by the same (folded) name in
    /// the collection: the one person called `person.name`, created from `person` when nobody
    /// is, then `faces` added to them (each idempotent, as [`Gallery::add_face`]): all or nothing.
    /// Two or more persons of that name are [`StoreError::AmbiguousName`].
    async fn register_named(
        &self,
        collection: In,
        person: NewPerson,
        faces: Vec<NewFace>,
        actor: &Actor,
    ) -> StoreResult<RegisteredNamed>;

    /// [`Gallery::register`], remembering the attempt under its key in the same transaction: a
    /// key remembered meanwhile is [`StoreError::IdempotencyKeyTaken`], and nothing is written.
    async fn register_once(
        &self,
        collection: In,
        new: NewPerson,
        face: NewFace,
        actor: &Actor,
        attempt: &Attempt,
    ) -> StoreResult<(Person, Face)>;

    /// [`Gallery::add_face`], remembering the attempt as [`Gallery::register_once`] does.
    async fn add_face_once(
        &self,
        collection: In,
        person: PersonId,
        face: NewFace,
        actor: &Actor,
        attempt: &Attempt,
    ) -> StoreResult<(Face, Added)>;

    /// What the attempt under this key registered, while remembered.
    async fn remembered(
        &self,
        collection: In,
        key: &IdempotencyKey,
    ) -> StoreResult<Option<Remembered>>;

    /// Forgets the attempts remembered before `before` (of every collection): how many.
    async fn forget_attempts(&self, before: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;

    async fn list_persons(&self, collection: In, page: &PageRequest) -> StoreResult<Page<Person>>;

    /// The number of faces of each person on that page (a person without faces is absent).
    async fn faces_per_person(
        &self,
        collection: In,
        page: &PageRequest,
    ) -> StoreResult<std::collections::HashMap<PersonId, u64>>;

    async fn update_person(
        &self,
        collection: In,
        id: PersonId,
        patch: PersonPatch,
        actor: &Actor,
    ) -> StoreResult<Person>;

    /// Removes the person and all their faces for good; the audit log keeps only that it happened.
    async fn delete_person(
        &self,
        collection: In,
        id: PersonId,
        actor: &Actor,
    ) -> StoreResult<DeletedPerson>;

    /// Deletes, as [`Gallery::delete_person`] does, at most `limit` persons (of any collection)
    /// whose consent expired at or before `now`, each in a transaction of its own (an interrupted
    /// sweep loses nothing that had not expired; the next one goes on), with an audit event
    /// saying why.
    async fn delete_expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
        actor: &Actor,
    ) -> StoreResult<Vec<DeletedPerson>>;

    /// Adds a face; the same image (by sha256) for the same person and model is stored once.
    async fn add_face(
        &self,
        collection: In,
        person: PersonId,
        face: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Face, Added)>;

    async fn get_face(&self, collection: In, id: FaceId) -> StoreResult<Face>;

    async fn list_faces(&self, collection: In, person: PersonId) -> StoreResult<Vec<Face>>;

    async fn delete_face(&self, collection: In, id: FaceId, actor: &Actor) -> StoreResult<Face>;

    /// Faces in the collection (`None`: in all).
    async fn count_faces(&self, collection: Option<CollectionId>) -> StoreResult<u64>;

    /// Every face of the collection, in the order they were added, a page at a time, with whose it is.
    async fn list_all_faces(
        &self,
        collection: In,
        limit: u32,
        offset: u64,
    ) -> StoreResult<Page<FaceEntry>>;

    /// The `k` persons of the collection whose best face (of this model) is most similar to the
    /// probe, best first, each with their name (one search answers a recognition without further
    /// lookups).
    async fn search(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
    ) -> StoreResult<Vec<Candidate>>;

    /// The same search with one person left out (a calibration's stranger probe: however many
    /// faces its own person has, the `k` others are found).
    async fn search_others(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        except: PersonId,
        k: usize,
    ) -> StoreResult<Vec<Candidate>>;

    /// Every face (of this model) of at most `max_persons` persons of the collection drawn at random.
    async fn sample_faces(
        &self,
        collection: In,
        max_persons: u32,
        model: &ModelId,
    ) -> StoreResult<Vec<Face>>;

    /// Records a collection's calibration (a JSON document), keeping its newest few.
    async fn save_calibration(
        &self,
        collection: In,
        computed_at: chrono::DateTime<chrono::Utc>,
        faces: u64,
        document: serde_json::Value,
    ) -> StoreResult<()>;

    /// The collection's newest calibration, if any.
    /// The collection's recorded calibrations, newest first (the few kept: replicas computing for
    /// different settings each find theirs among them).
    async fn recent_calibrations(&self, collection: In) -> StoreResult<Vec<serde_json::Value>>;

    /// Records an event that changed nothing (a comparison with a stored face).
    async fn record(&self, collection: In, event: NewAuditEvent, actor: &Actor) -> StoreResult<()>;

    /// The audit log, newest first: of one collection (`None`: all), optionally only the events
    /// about one person, before an event id (paging), at or after a time.
    async fn audit_events(
        &self,
        collection: Option<CollectionId>,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>>;
}

/// Which audit events to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    pub person: Option<PersonId>,
    /// Only events older than this id (the previous page's last).
    pub before_id: Option<i64>,
    /// Only events at or after this time.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: u32,
    /// Include the events about keys (`key_created`, `key_revoked`): an `admin`'s to read, since
    /// they name every key's id and scopes.
    pub key_events: bool,
}

impl AuditFilter {
    /// The newest `limit` events, optionally of one person.
    pub fn newest(person: Option<PersonId>, limit: u32) -> Self {
        Self {
            person,
            before_id: None,
            since: None,
            limit,
            key_events: false,
        }
    }
}
