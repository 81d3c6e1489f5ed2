//! How rows become domain values, the same on both backends ([`crate::columns`] knows how each
//! stores an id and an embedding).

use chrono::{DateTime, Utc};
use facerec_core::capture::{Capture, CaptureStatus, Source};
use facerec_core::{
    Actor, ApiKey, AuditAction, AuditEvent, Collection, Consent, Face, FaceEntry, FaceId, ModelId,
    Person, PersonId, Scopes, StoreError,
};
use facerec_types::{BoundingBox, FaceQuality};
use sqlx::types::Json;
use sqlx::FromRow;

use crate::columns::{Embedding, Id};

#[derive(FromRow)]
pub(crate) struct PersonRow {
    pub(crate) id: Id,
    name: String,
    external_id: Option<String>,
    metadata: Json<serde_json::Value>,
    consent_given_at: DateTime<Utc>,
    consent_basis: String,
    consent_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PersonRow> for Person {
    fn from(row: PersonRow) -> Self {
        Person {
            id: row.id.into(),
            name: row.name,
            external_id: row.external_id,
            metadata: row.metadata.0,
            consent: Consent {
                given_at: row.consent_given_at,
                basis: row.consent_basis,
                expires_at: row.consent_expires_at,
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct FaceEntryRow {
    pub(crate) id: Id,
    person_id: Id,
    name: String,
}

impl From<FaceEntryRow> for FaceEntry {
    fn from(row: FaceEntryRow) -> Self {
        Self {
            face_id: row.id.into(),
            person_id: row.person_id.into(),
            person_name: row.name,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct FaceRow {
    pub(crate) id: Id,
    person_id: Id,
    embedding: Embedding,
    det_score: f32,
    bbox: Json<[f32; 4]>,
    quality: Json<FaceQuality>,
    model_name: String,
    model_sha256: String,
    image_sha256: String,
    created_at: DateTime<Utc>,
}

impl From<FaceRow> for Face {
    fn from(row: FaceRow) -> Self {
        Face {
            id: row.id.into(),
            person_id: row.person_id.into(),
            embedding: row.embedding.0,
            det_score: row.det_score,
            bbox: row.bbox.0,
            quality: row.quality.0,
            model: ModelId {
                name: row.model_name,
                sha256: row.model_sha256,
            },
            image_sha256: row.image_sha256,
            created_at: row.created_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct AuditRow {
    id: i64,
    at: DateTime<Utc>,
    collection_id: Id,
    action: String,
    person_id: Option<Id>,
    face_id: Option<Id>,
    actor: String,
    details: Json<serde_json::Value>,
}

impl TryFrom<AuditRow> for AuditEvent {
    type Error = StoreError;

    fn try_from(row: AuditRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            id: row.id,
            at: row.at,
            collection_id: row.collection_id.into(),
            action: AuditAction::parse(&row.action).ok_or_else(|| {
                StoreError::Database(format!("unknown audit action {}", row.action))
            })?,
            person_id: row.person_id.map(PersonId::from),
            face_id: row.face_id.map(FaceId::from),
            actor: Actor(row.actor),
            details: row.details.0,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct CollectionRow {
    id: Id,
    name: String,
    settings: Json<serde_json::Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<CollectionRow> for Collection {
    type Error = StoreError;

    fn try_from(row: CollectionRow) -> Result<Self, StoreError> {
        Ok(Collection {
            id: row.id.into(),
            settings: serde_json::from_value(row.settings.0).map_err(|e| {
                StoreError::Database(format!("collection {}'s settings: {e}", row.name))
            })?,
            name: row.name,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct ApiKeyRow {
    id: Id,
    collection_id: Id,
    label: String,
    scopes: String,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = StoreError;

    fn try_from(row: ApiKeyRow) -> Result<Self, StoreError> {
        Ok(ApiKey {
            id: row.id.into(),
            collection_id: row.collection_id.into(),
            label: row.label,
            scopes: Scopes::parse_list(&row.scopes).map_err(StoreError::Database)?,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct CaptureRow {
    pub(crate) id: Id,
    status: String,
    person_id: Option<Id>,
    rejected_person_id: Option<Id>,
    cluster_id: Option<Id>,
    similarity: Option<f32>,
    threshold: f32,
    estimated_fpir: Option<f64>,
    source: String,
    route: String,
    first_seen: DateTime<Utc>,
    seen_at: DateTime<Utc>,
    sightings: i64,
    det_score: f32,
    quality: Json<FaceQuality>,
    bbox: Json<[f32; 4]>,
    has_chip: bool,
}

impl TryFrom<CaptureRow> for Capture {
    type Error = StoreError;
    fn try_from(row: CaptureRow) -> Result<Self, StoreError> {
        let status = CaptureStatus::parse(&row.status).ok_or_else(|| {
            StoreError::Database(format!("capture with unknown status '{}'", row.status))
        })?;
        let [x1, y1, x2, y2] = row.bbox.0;
        Ok(Capture {
            id: row.id.into(),
            status,
            person_id: row.person_id.map(Into::into),
            rejected_person_id: row.rejected_person_id.map(Into::into),
            cluster_id: row.cluster_id.map(Into::into),
            similarity: row.similarity,
            threshold: row.threshold,
            estimated_fpir: row.estimated_fpir,
            // Written checked; a source that no longer checks is shown as what it became.
            source: Source::new(&row.source).unwrap_or_else(|_| Source::from_label(&row.source)),
            route: row.route,
            first_seen: row.first_seen,
            seen_at: row.seen_at,
            sightings: u32::try_from(row.sightings).unwrap_or(u32::MAX),
            det_score: row.det_score,
            quality: row.quality.0,
            bbox: BoundingBox { x1, y1, x2, y2 },
            has_chip: row.has_chip,
        })
    }
}
