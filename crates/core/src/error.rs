//! How a store fails: one error type for both backends, each variant with its stable code.

use facerec_types::{EmbeddingError, ErrorCode};

use crate::domain::{CaptureId, ClusterId, FaceId, KeyId, PersonId};
use crate::events::WebhookId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("person {0} not found")]
    PersonNotFound(PersonId),
    #[error("face {0} not found")]
    FaceNotFound(FaceId),
    #[error("capture {0} not found")]
    CaptureNotFound(CaptureId),
    #[error("cluster {0} not found")]
    ClusterNotFound(ClusterId),
    /// A capture is not in the state an action needs (assigning one already named, rejecting one
    /// that names nobody, a capture whose chip is gone).
    #[error("capture {0}: {1}")]
    CaptureConflict(CaptureId, String),
    #[error("webhook {0} not found")]
    WebhookNotFound(WebhookId),
    #[error("invalid webhook: {0}")]
    InvalidWebhook(String),
    /// No collection of this name or id (or none the caller may see).
    #[error("collection '{0}' not found")]
    CollectionNotFound(String),
    /// The collection was deleted while the request that wrote into it ran.
    #[error("the collection was deleted while this request ran")]
    CollectionDeleted,
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
    /// An attempt under this `Idempotency-Key` was remembered meanwhile (a concurrent retry):
    /// nothing was written; its answer is the one to give.
    #[error("another attempt with this Idempotency-Key was recorded first")]
    IdempotencyKeyTaken,
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
            Self::CaptureNotFound(_) => ErrorCode::CaptureNotFound,
            Self::ClusterNotFound(_) => ErrorCode::ClusterNotFound,
            Self::CaptureConflict(..) => ErrorCode::CaptureConflict,
            Self::WebhookNotFound(_) => ErrorCode::WebhookNotFound,
            Self::InvalidWebhook(_) => ErrorCode::InvalidWebhook,
            Self::CollectionNotFound(_) | Self::CollectionDeleted => ErrorCode::CollectionNotFound,
            Self::CollectionExists(_) => ErrorCode::CollectionExists,
            Self::InvalidCollection(_) | Self::DefaultCollection => ErrorCode::InvalidCollection,
            Self::KeyNotFound(_) => ErrorCode::KeyNotFound,
            Self::InvalidKey(_) => ErrorCode::InvalidKey,
            Self::AmbiguousName(_) => ErrorCode::AmbiguousName,
            Self::DuplicateExternalId(_) => ErrorCode::DuplicateExternalId,
            Self::IdempotencyKeyTaken => ErrorCode::IdempotencyKeyReused,
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
