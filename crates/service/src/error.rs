//! Failures of a use case, each with a stable code. The HTTP layer maps them to statuses once
//! (`facerec_server::api::error`); the CLI prints the code.

use facerec_core::ErrorCode;
use facerec_core::{PoorQuality, Scope, StoreError};
use facerec_vision::{IngestError, RuntimeError, VisionError};

use crate::engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no face was found in the image")]
    NoFace,
    #[error("the image shows {0} faces; send a photo of one person, or ask for face=largest")]
    MultipleFaces(usize),
    /// `face=<n>` named a face the photo does not have.
    #[error("face {index} was asked for, but the photo shows {faces} (counted from 0, in the order /v1/detect answers)")]
    NoSuchFace { index: usize, faces: usize },
    /// `face=<x1>,<y1>,<x2>,<y2>` named a box no detected face overlaps enough.
    #[error("no face of the {faces} the photo shows overlaps the box given (intersection over union at least 0.3)")]
    NoFaceInBox { faces: usize },
    #[error("the face is not good enough to enroll: {0}")]
    PoorQuality(#[from] PoorQuality),
    #[error("registration requires explicit consent (consent=true)")]
    ConsentRequired,
    #[error("several persons are named '{0}': rename all but one, or name them by id")]
    AmbiguousName(String),
    /// A stored face or person that the collection's recognizer cannot be compared with.
    #[error("{0}")]
    OtherModel(String),
    #[error("invalid embedding: {0}")]
    InvalidEmbedding(String),
    #[error("nobody is named '{0}'")]
    NameNotFound(String),
    #[error("somebody is already named '{0}'")]
    NameTaken(String),
    /// From the moment a consent expires its person is compared with no more, whatever the sweep.
    #[error("the consent of person {0} has expired: they are compared with no more")]
    ConsentExpired(facerec_core::PersonId),
    /// The collection was calibrated on request less than `ON_DEMAND_EVERY` ago.
    #[error("this collection was calibrated moments ago: ask again in {} s", .0.as_secs().max(1))]
    CalibrationTooSoon(std::time::Duration),
    /// Another person holds the external id (the one the caller may want to address instead).
    #[error("another person already has external id '{external_id}' (details.person_id)")]
    DuplicateExternalId {
        external_id: String,
        person: facerec_core::PersonId,
    },
    /// The `Idempotency-Key` named an attempt that asked for something else.
    #[error(
        "this Idempotency-Key was used within a day for another request (another photo, person \
         or field): use a new key for a new request"
    )]
    IdempotencyKeyReused,
    /// The caller's key lacks the scope.
    #[error("this needs the scope '{0}', which the key does not have")]
    InsufficientScope(Scope),
    /// A webhook's address is not one the operator allows events to go to.
    #[error("{0}")]
    WebhookAddressRefused(String),
    /// The caller's collection is bound to a model pack this server has not loaded.
    #[error(transparent)]
    ModelUnavailable(#[from] crate::engine::Unavailable),
    /// A new collection named a model pack this server has not loaded.
    #[error("{0}")]
    UnknownPack(String),
    /// A failure of facerec itself (the log has the details).
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// Stable code for clients (HTTP and CLI alike).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Ingest(e) => e.code(),
            Self::Runtime(e) => e.code(),
            Self::Engine(EngineError::Busy) => ErrorCode::Overloaded,
            Self::Engine(EngineError::Stopped) => ErrorCode::Unavailable,
            Self::Engine(EngineError::Failed) => ErrorCode::InferenceFailed,
            Self::Store(e) => e.code(),
            Self::NoFace => ErrorCode::NoFace,
            Self::MultipleFaces(_) => ErrorCode::MultipleFaces,
            Self::NoSuchFace { faces: 0, .. } => ErrorCode::NoFace,
            Self::NoSuchFace { .. } => ErrorCode::InvalidRequest,
            Self::NoFaceInBox { faces: 0 } => ErrorCode::NoFace,
            Self::NoFaceInBox { .. } => ErrorCode::InvalidRequest,
            Self::PoorQuality(_) => ErrorCode::PoorQuality,
            Self::ModelUnavailable(_) => ErrorCode::ModelUnavailable,
            Self::UnknownPack(_) => ErrorCode::InvalidCollection,
            Self::ConsentRequired => ErrorCode::ConsentRequired,
            Self::AmbiguousName(_) => ErrorCode::AmbiguousName,
            Self::OtherModel(_) => ErrorCode::InvalidPerson,
            Self::InvalidEmbedding(_) => ErrorCode::InvalidEmbedding,
            Self::NameNotFound(_) => ErrorCode::PersonNotFound,
            Self::NameTaken(_) => ErrorCode::SubjectExists,
            Self::ConsentExpired(_) => ErrorCode::ConsentExpired,
            Self::InsufficientScope(_) => ErrorCode::InsufficientScope,
            Self::DuplicateExternalId { .. } => ErrorCode::DuplicateExternalId,
            Self::IdempotencyKeyReused => ErrorCode::IdempotencyKeyReused,
            Self::CalibrationTooSoon(_) => ErrorCode::RateLimited,
            Self::WebhookAddressRefused(_) => ErrorCode::WebhookAddressRefused,
            Self::Internal(_) => ErrorCode::InternalError,
        }
    }
}

impl From<VisionError> for AppError {
    fn from(err: VisionError) -> Self {
        match err {
            VisionError::Ingest(e) => Self::Ingest(e),
            VisionError::Runtime(e) => Self::Runtime(e),
        }
    }
}

pub type AppResult<T> = Result<T, AppError>;
