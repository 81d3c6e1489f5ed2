//! # facerec-core
//!
//! The domain of facerec, free of HTTP and SQL: persons and their faces, consent, the [`Store`] trait
//! that databases implement, the enrollment quality policy and the [`Matcher`], the one place where a
//! similarity becomes "this is X" or "unknown".

pub mod calibration;
pub mod capture;
pub mod collection;
pub mod domain;
pub mod enrollment;
mod error;
pub mod events;
pub mod matching;
pub mod person;
pub mod retry;
pub mod store;
pub mod tracking;

pub use collection::{
    ApiKey, Caller, Collection, CollectionPatch, CollectionRef, CollectionSettings,
    DeletedCollection, KeysInForce, ModelBinding, NewApiKey, NewCollection, Scope, Scopes,
    DETECTION_SIZES,
};
pub use domain::*;
pub use enrollment::{PoorQuality, QualityPolicy};
pub use error::{StoreError, StoreResult};
pub use facerec_types::{error_code, ErrorCode};
pub use matching::{
    Candidate, DetectionScale, Matcher, Recognition, Threshold, DEFAULT_MATCH_THRESHOLD,
};
pub use store::{AuditFilter, Captures, Catalogue, Gallery, Outbox, Store, TicketBudget};

/// Length of the embeddings stored and compared (ArcFace: 512).
pub const EMBEDDING_DIM: usize = 512;
