//! Persons, faces and what is recorded about them.

use chrono::{DateTime, Utc};
pub use facerec_types::ModelId;
use facerec_types::{FaceQuality, NormalizedEmbedding};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered id (UUIDv7): inserts stay append-mostly in B-tree indexes.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}
pub(crate) use id_type;

id_type!(
    /// Identifies a person.
    PersonId
);
id_type!(
    /// Identifies one stored face (one embedding) of a person.
    FaceId
);
id_type!(
    /// Identifies a collection (a gallery of its own).
    CollectionId
);
id_type!(
    /// Identifies an API key kept in the database (never its secret).
    KeyId
);
id_type!(
    /// Identifies a captured face (`crate::capture`).
    CaptureId
);
id_type!(
    /// Identifies a cluster of unknown captures; a merged cluster's id resolves to the survivor.
    ClusterId
);

impl CollectionId {
    /// The collection `default`, which holds the data from before collections existed (migration
    /// 0006) and serves whoever names no other.
    pub const DEFAULT: Self = Self(Uuid::nil());
}

/// The record of a person's consent to be registered: when, and on what basis (the operator's words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub given_at: DateTime<Utc>,
    pub basis: String,
    /// When the consent runs out: the retention sweep then deletes the person. `None`: until
    /// withdrawn (deleted).
    pub expires_at: Option<DateTime<Utc>>,
}

impl Consent {
    /// Consent given now; the basis must say something.
    pub fn given_now(basis: impl Into<String>) -> Result<Self, crate::StoreError> {
        let basis = basis.into();
        if basis.trim().is_empty() {
            return Err(crate::StoreError::ConsentRequired);
        }
        Ok(Self {
            given_at: Utc::now(),
            basis,
            expires_at: None,
        })
    }

    /// The same consent, running out at `expires_at`.
    pub fn until(self, expires_at: Option<DateTime<Utc>>) -> Self {
        Self { expires_at, ..self }
    }

    /// Whether it has run out by `now`: from then on its person is matched and compared with no
    /// more, and the retention sweep deletes them.
    pub fn has_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub name: String,
    /// The caller's own identifier for this person, unique when given.
    pub external_id: Option<String>,
    /// Free-form JSON the caller attached.
    pub metadata: serde_json::Value,
    pub consent: Consent,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What it takes to create a person: no registration without consent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPerson {
    pub name: String,
    pub external_id: Option<String>,
    pub metadata: serde_json::Value,
    pub consent: Consent,
}

/// A partial update of a person; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonPatch {
    pub name: Option<String>,
    /// `Some(None)` clears the external id.
    pub external_id: Option<Option<String>>,
    pub metadata: Option<serde_json::Value>,
    /// A renewed (or, with `Some(None)`, unlimited) consent expiry.
    pub consent_expires_at: Option<Option<DateTime<Utc>>>,
}

/// A stored face: its embedding and what the detector said. Never the image itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    pub id: FaceId,
    pub person_id: PersonId,
    pub embedding: NormalizedEmbedding,
    pub det_score: f32,
    pub bbox: [f32; 4],
    pub quality: FaceQuality,
    pub model: ModelId,
    /// sha256 of the source image's bytes: sending the same photo again for the same person is a no-op.
    pub image_sha256: String,
    pub created_at: DateTime<Utc>,
}

/// A face to add to a person.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFace {
    pub embedding: NormalizedEmbedding,
    pub det_score: f32,
    pub bbox: [f32; 4],
    pub quality: FaceQuality,
    pub model: ModelId,
    pub image_sha256: String,
}

/// Whether adding a face stored a new one or found the same photo already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    Created,
    AlreadyPresent,
}

/// What a registration by name did: the one person of that name (created when nobody had it) and
/// each face added to them.
#[derive(Debug, Clone)]
pub struct RegisteredNamed {
    pub person: Person,
    pub created: bool,
    pub faces: Vec<(Face, Added)>,
}

/// Which slice of a listing to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u32,
    pub offset: u64,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Only persons whose consent expires at or before this instant.
    pub expires_before: Option<DateTime<Utc>>,
    /// Only the person with this external id.
    pub external_id: Option<String>,
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
            name_contains: None,
            expires_before: None,
            external_id: None,
        }
    }
}

/// A person as a listing shows them: with their number of faces.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedPerson {
    pub person: Person,
    pub faces: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many items match in all pages.
    pub total: u64,
}

/// Who made a change: an API key's id, or a local operator (CLI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor(pub String);

impl Actor {
    pub fn local_operator() -> Self {
        Self("local".into())
    }
}

/// Kinds of change to biometric data, as recorded in the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    PersonCreated,
    PersonUpdated,
    PersonDeleted,
    FaceAdded,
    FaceDeleted,
    /// Something was compared with a stored face (its similarity told to the caller).
    FaceCompared,
    CollectionCreated,
    CollectionUpdated,
    CollectionDeleted,
    KeyCreated,
    KeyRevoked,
    /// Captured faces were reviewed: assigned, rejected, named as a cluster, deleted, searched.
    CapturesReviewed,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PersonCreated => "person_created",
            Self::PersonUpdated => "person_updated",
            Self::PersonDeleted => "person_deleted",
            Self::FaceAdded => "face_added",
            Self::FaceDeleted => "face_deleted",
            Self::FaceCompared => "face_compared",
            Self::CollectionCreated => "collection_created",
            Self::CollectionUpdated => "collection_updated",
            Self::CollectionDeleted => "collection_deleted",
            Self::KeyCreated => "key_created",
            Self::KeyRevoked => "key_revoked",
            Self::CapturesReviewed => "captures_reviewed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::PersonCreated,
            Self::PersonUpdated,
            Self::PersonDeleted,
            Self::FaceAdded,
            Self::FaceDeleted,
            Self::FaceCompared,
            Self::CollectionCreated,
            Self::CollectionUpdated,
            Self::CollectionDeleted,
            Self::KeyCreated,
            Self::KeyRevoked,
            Self::CapturesReviewed,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

/// One entry of the append-only audit log. It names ids, never biometric data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// The collection it happened in.
    pub collection_id: CollectionId,
    pub action: AuditAction,
    pub person_id: Option<PersonId>,
    pub face_id: Option<FaceId>,
    pub actor: Actor,
    pub details: serde_json::Value,
}

/// An audit entry about to be written (the store adds its id, time and actor). Built only by the
/// constructors below, so both backends record the same facts for the same change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAuditEvent {
    pub action: AuditAction,
    pub person_id: Option<PersonId>,
    pub face_id: Option<FaceId>,
    pub details: serde_json::Value,
}

impl NewAuditEvent {
    fn new(action: AuditAction, person: PersonId, face: Option<FaceId>) -> Self {
        Self {
            action,
            person_id: Some(person),
            face_id: face,
            details: serde_json::json!({}),
        }
    }

    pub fn person_created(person: PersonId) -> Self {
        Self::new(AuditAction::PersonCreated, person, None)
    }

    /// `fields`: the names of the changed fields, never their values.
    pub fn person_updated(person: PersonId, fields: &[&str]) -> Self {
        Self {
            details: serde_json::json!({ "fields": fields }),
            ..Self::new(AuditAction::PersonUpdated, person, None)
        }
    }

    pub fn person_deleted(person: PersonId, faces_deleted: u64) -> Self {
        Self {
            details: serde_json::json!({ "faces_deleted": faces_deleted }),
            ..Self::new(AuditAction::PersonDeleted, person, None)
        }
    }

    /// The retention sweep deleted the person: their consent ran out.
    pub fn consent_expired(person: PersonId, faces_deleted: u64) -> Self {
        Self {
            details: serde_json::json!({ "faces_deleted": faces_deleted, "reason": "consent_expired" }),
            ..Self::new(AuditAction::PersonDeleted, person, None)
        }
    }

    pub fn face_added(person: PersonId, face: FaceId) -> Self {
        Self::new(AuditAction::FaceAdded, person, Some(face))
    }

    pub fn face_deleted(person: PersonId, face: FaceId) -> Self {
        Self::new(AuditAction::FaceDeleted, person, Some(face))
    }

    fn about(action: AuditAction, details: serde_json::Value) -> Self {
        Self {
            action,
            person_id: None,
            face_id: None,
            details,
        }
    }

    pub fn collection_created(name: &str) -> Self {
        Self::about(
            AuditAction::CollectionCreated,
            serde_json::json!({ "name": name }),
        )
    }

    pub fn collection_updated(fields: &[&str]) -> Self {
        Self::about(
            AuditAction::CollectionUpdated,
            serde_json::json!({ "fields": fields }),
        )
    }

    pub fn collection_deleted(name: &str, persons_deleted: u64, faces_deleted: u64) -> Self {
        Self::about(
            AuditAction::CollectionDeleted,
            serde_json::json!({ "name": name, "persons_deleted": persons_deleted, "faces_deleted": faces_deleted }),
        )
    }

    pub fn key_created(key: KeyId, scopes: &str) -> Self {
        Self::about(
            AuditAction::KeyCreated,
            serde_json::json!({ "key_id": key, "scopes": scopes }),
        )
    }

    pub fn key_revoked(key: KeyId) -> Self {
        Self::about(
            AuditAction::KeyRevoked,
            serde_json::json!({ "key_id": key }),
        )
    }

    /// A review of captured faces: what was done (`assigned`, `rejected`, `cluster_named`,
    /// `capture_deleted`, `cluster_deleted`, `searched`), to how many captures, for whom.
    pub fn captures_reviewed(what: &str, person: Option<PersonId>, captures: usize) -> Self {
        Self {
            action: AuditAction::CapturesReviewed,
            person_id: person,
            face_id: None,
            details: serde_json::json!({ "what": what, "captures": captures }),
        }
    }

    /// `comparisons`: how many probes (faces of a photo, or client embeddings) were compared.
    pub fn face_compared(person: PersonId, face: FaceId, comparisons: usize) -> Self {
        Self {
            details: serde_json::json!({ "comparisons": comparisons }),
            ..Self::new(AuditAction::FaceCompared, person, Some(face))
        }
    }
}

/// A stored face in a listing of every face: which it is and whose.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceEntry {
    pub face_id: FaceId,
    pub person_id: PersonId,
    pub person_name: String,
}

/// What a deletion removed.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedPerson {
    pub person: Person,
    pub faces_deleted: u64,
}
