//! The storage contract. Implementations: SQLite (embedded default) and PostgreSQL + pgvector
//! (facerec-store). Every method is one transaction: a failure leaves nothing half-written.

use async_trait::async_trait;
use facerec_types::{EmbeddingError, ErrorCode, NormalizedEmbedding};

use crate::collection::*;
use crate::domain::*;
use crate::matching::Candidate;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("person {0} not found")]
    PersonNotFound(PersonId),
    #[error("face {0} not found")]
    FaceNotFound(FaceId),
    /// No collection of this name or id (or none the caller may see).
    #[error("collection '{0}' not found")]
    CollectionNotFound(String),
    #[error("a collection named '{0}' already exists")]
    CollectionExists(String),
    #[error("invalid collection: {0}")]
    InvalidCollection(String),
    #[error("the collection 'default' cannot be deleted or renamed")]
    DefaultCollection,
    #[error("key {0} not found")]
    KeyNotFound(KeyId),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("several persons are named '{0}': rename all but one, or name them by id")]
    AmbiguousName(String),
    #[error("another person already has external id '{0}'")]
    DuplicateExternalId(String),
    #[error("registration requires recorded consent with a basis")]
    ConsentRequired,
    #[error("invalid person: {0}")]
    InvalidPerson(String),
    #[error("embedding has {actual} dimensions, expected {expected}")]
    EmbeddingDimension { expected: usize, actual: usize },
    #[error("invalid embedding: {0}")]
    InvalidEmbedding(#[from] EmbeddingError),
    /// The schema was written by a newer facerec: nothing was migrated or changed.
    #[error(
        "the database's schema is version {database}, newer than this facerec knows (up to \
         {binary}): run the facerec that wrote it, or restore a backup made for this version; \
         nothing was changed"
    )]
    TooNew { database: i64, binary: i64 },
    #[error("the database is in use by another facerec process ({0})")]
    Locked(String),
    #[error("the database cannot be reached: {0}")]
    Unavailable(String),
    /// The disk (or the database's own size limit) is full: nothing was written.
    #[error("the database's storage is full: {0}")]
    StorageFull(String),
    /// The database refuses writes (a read-only file or mount, a hot standby): nothing was written.
    #[error("the database is read-only: {0}")]
    ReadOnly(String),
    #[error("database error: {0}")]
    Database(String),
}

impl StoreError {
    /// Stable code for API clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::PersonNotFound(_) => ErrorCode::PersonNotFound,
            Self::FaceNotFound(_) => ErrorCode::FaceNotFound,
            Self::CollectionNotFound(_) => ErrorCode::CollectionNotFound,
            Self::CollectionExists(_) => ErrorCode::CollectionExists,
            Self::InvalidCollection(_) | Self::DefaultCollection => ErrorCode::InvalidCollection,
            Self::KeyNotFound(_) => ErrorCode::KeyNotFound,
            Self::InvalidKey(_) => ErrorCode::InvalidKey,
            Self::AmbiguousName(_) => ErrorCode::AmbiguousName,
            Self::DuplicateExternalId(_) => ErrorCode::DuplicateExternalId,
            Self::ConsentRequired => ErrorCode::ConsentRequired,
            Self::InvalidPerson(_) => ErrorCode::InvalidPerson,
            Self::EmbeddingDimension { .. } | Self::InvalidEmbedding(_) => {
                ErrorCode::InvalidEmbedding
            }
            Self::Locked(_) => ErrorCode::DatabaseLocked,
            Self::TooNew { .. } => ErrorCode::DatabaseTooNew,
            Self::Unavailable(_) => ErrorCode::DatabaseUnavailable,
            Self::StorageFull(_) => ErrorCode::StorageFull,
            Self::ReadOnly(_) => ErrorCode::DatabaseReadOnly,
            Self::Database(_) => ErrorCode::DatabaseError,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The collection a store call acts in: every read and write of persons, faces, the audit log,
/// tickets and calibrations is confined to it (an id from another collection is not found).
pub type In = CollectionId;

#[async_trait]
pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Cheap liveness check of the database.
    async fn ping(&self) -> StoreResult<()>;

    // Collections and keys: global, the catalogue every request starts from.

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
    async fn revoke_key(&self, id: KeyId, actor: &Actor) -> StoreResult<ApiKey>;
    /// Notes that a key was used at `at` (callers do so at most every
    /// [`ApiKey::LAST_USED_RESOLUTION`]).
    async fn touch_key(&self, id: KeyId, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()>;

    // Persons and faces, within a collection.

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
    /// is, then `faces` added to them (each idempotent, as [`Store::add_face`]). All or nothing;
    /// two or more persons of that name are [`StoreError::AmbiguousName`].
    async fn register_named(
        &self,
        collection: In,
        person: NewPerson,
        faces: Vec<NewFace>,
        actor: &Actor,
    ) -> StoreResult<RegisteredNamed>;
    async fn list_persons(&self, collection: In, page: &PageRequest) -> StoreResult<Page<Person>>;
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
    /// Deletes, as [`Store::delete_person`] does, at most `limit` persons (of any collection)
    /// whose consent expired at or before `now`, each in a transaction of its own (an interrupted
    /// sweep loses nothing that had not expired; the next one goes on), with an audit event
    /// saying why.
    async fn delete_expired(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
        actor: &Actor,
    ) -> StoreResult<Vec<DeletedPerson>>;
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
    async fn latest_calibration(&self, collection: In) -> StoreResult<Option<serde_json::Value>>;
    /// The audit log, newest first: of one collection (`None`: all), optionally only the events
    /// about one person, before an event id (paging), at or after a time.
    async fn audit_events(
        &self,
        collection: Option<CollectionId>,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>>;

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
    /// Records an event that changed nothing (a comparison with a stored face).
    async fn record(&self, collection: In, event: NewAuditEvent, actor: &Actor) -> StoreResult<()>;
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

    /// Records a one-time stream ticket (by its sha256) for `actor` in the collection until
    /// `expires_at`, after dropping expired ones; `false` when `max_outstanding` unexpired tickets
    /// already exist.
    async fn issue_ticket(
        &self,
        collection: In,
        ticket_sha256: &str,
        actor: &Actor,
        expires_at: chrono::DateTime<chrono::Utc>,
        max_outstanding: u64,
    ) -> StoreResult<bool>;

    /// Who holds an unexpired ticket, and for which collection; the ticket stays valid.
    async fn ticket_holder(
        &self,
        ticket_sha256: &str,
    ) -> StoreResult<Option<(Actor, CollectionId)>>;

    /// Spends an unexpired ticket: `true` exactly once, whichever process asks.
    async fn redeem_ticket(&self, ticket_sha256: &str) -> StoreResult<bool>;
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
}

impl AuditFilter {
    /// The newest `limit` events, optionally of one person.
    pub fn newest(person: Option<PersonId>, limit: u32) -> Self {
        Self {
            person,
            before_id: None,
            since: None,
            limit,
        }
    }
}

/// Checks an embedding's length before it reaches a database.
pub fn check_dimension(embedding: &NormalizedEmbedding) -> StoreResult<()> {
    if embedding.dim() != crate::EMBEDDING_DIM {
        return Err(StoreError::EmbeddingDimension {
            expected: crate::EMBEDDING_DIM,
            actual: embedding.dim(),
        });
    }
    Ok(())
}

/// The largest metadata object a person may carry, as JSON text: every read of the person parses
/// it. The same as a form's text field (an upload's metadata field is bounded there first).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Checks a person's metadata: a JSON object (or nothing) of at most [`MAX_METADATA_BYTES`].
pub fn check_metadata(metadata: &serde_json::Value) -> StoreResult<()> {
    if !(metadata.is_object() || metadata.is_null()) {
        return Err(StoreError::InvalidPerson(
            "metadata must be a JSON object".into(),
        ));
    }
    let len = serde_json::to_string(metadata).map_or(usize::MAX, |t| t.len());
    if len > MAX_METADATA_BYTES {
        return Err(StoreError::InvalidPerson(format!(
            "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON, not {len}"
        )));
    }
    Ok(())
}

/// Checks a new person's fields.
pub fn check_new_person(person: &NewPerson) -> StoreResult<()> {
    check_name(&person.name)?;
    check_metadata(&person.metadata)?;
    if person.consent.basis.trim().is_empty() {
        return Err(StoreError::ConsentRequired);
    }
    if let Some(ext) = &person.external_id {
        check_external_id(ext)?;
    }
    Ok(())
}

/// A name as case-insensitive search compares it: Unicode lowercase (`str::to_lowercase`, no locale),
/// so "ÉMILE", "Émile" and "émile" are one. Both backends store it beside the name and fold the
/// search text the same way (a database's own `lower()` may fold ASCII only).
pub fn fold_name(name: &str) -> String {
    name.to_lowercase()
}

pub fn check_name(name: &str) -> StoreResult<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(StoreError::InvalidPerson(
            "name must have 1 to 200 characters".into(),
        ));
    }
    Ok(())
}

pub fn check_external_id(external_id: &str) -> StoreResult<()> {
    if external_id.is_empty() || external_id.len() > 200 {
        return Err(StoreError::InvalidPerson(
            "external_id must have 1 to 200 bytes".into(),
        ));
    }
    Ok(())
}

/// A consent may run out later, never already.
pub fn check_expiry(
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<()> {
    match expires_at {
        Some(at) if at <= now => Err(StoreError::InvalidPerson(
            "consent_expires_at must be in the future".into(),
        )),
        _ => Ok(()),
    }
}

/// A new person as stored: validated, with a fresh id and timestamps.
pub fn person_from_new(new: &NewPerson, now: chrono::DateTime<chrono::Utc>) -> StoreResult<Person> {
    check_new_person(new)?;
    check_expiry(new.consent.expires_at, now)?;
    Ok(Person {
        id: PersonId::new(),
        name: new.name.trim().to_owned(),
        external_id: new.external_id.clone(),
        metadata: new.metadata.clone(),
        consent: new.consent.clone(),
        created_at: now,
        updated_at: now,
    })
}

/// A new face as stored: dimension checked, with a fresh id.
pub fn face_from_new(
    person: PersonId,
    new: NewFace,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Face> {
    check_dimension(&new.embedding)?;
    Ok(Face {
        id: FaceId::new(),
        person_id: person,
        embedding: new.embedding,
        det_score: new.det_score,
        bbox: new.bbox,
        quality: new.quality,
        model: new.model,
        image_sha256: new.image_sha256,
        created_at: now,
    })
}

/// Applies a validated patch; returns the names of the fields it changed (for the audit log).
pub fn apply_patch(
    person: &mut Person,
    patch: PersonPatch,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Vec<&'static str>> {
    let mut changed = Vec::new();
    if let Some(name) = patch.name {
        check_name(&name)?;
        person.name = name.trim().to_owned();
        changed.push("name");
    }
    if let Some(external_id) = patch.external_id {
        if let Some(ext) = &external_id {
            check_external_id(ext)?;
        }
        person.external_id = external_id;
        changed.push("external_id");
    }
    if let Some(metadata) = patch.metadata {
        check_metadata(&metadata)?;
        person.metadata = metadata;
        changed.push("metadata");
    }
    if let Some(expires_at) = patch.consent_expires_at {
        check_expiry(expires_at, now)?;
        person.consent.expires_at = expires_at;
        changed.push("consent_expires_at");
    }
    person.updated_at = now;
    Ok(changed)
}
