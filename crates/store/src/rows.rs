//! How rows become domain values, the same on both backends ([`crate::columns`] knows how each
//! stores an id and an embedding).

use chrono::{DateTime, Utc};
use facerec_core::capture::{Capture, CaptureStatus, Source};
use facerec_core::{
    Actor, ApiKey, AuditAction, AuditEvent, Collection, Consent, Face, FaceEntry, FaceId,
    ModelBinding, ModelId, Person, PersonId, Scopes, StoreError,
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
    model_pack: String,
    recognizer: String,
    recognizer_sha256: String,
    detector_pack: String,
    detector_sha256: String,
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
            model: ModelBinding {
                pack: row.model_pack,
                recognizer: ModelId {
                    name: row.recognizer,
                    sha256: row.recognizer_sha256,
                },
                detector_pack: row.detector_pack,
                detector_sha256: row.detector_sha256,
            },
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

#[derive(FromRow)]
pub(crate) struct SinkRow {
    id: String,
    kind: String,
    collection_id: Option<Id>,
    url: Option<String>,
    events: Json<facerec_core::events::EventTypes>,
    secret: Option<String>,
    created_at: DateTime<Utc>,
    #[sqlx(flatten)]
    state: StateRow,
}

/// A destination's state: the columns of `event_sinks` the dispatcher moves (`LEASE_SINK`
/// returns them alone).
#[derive(FromRow)]
pub(crate) struct StateRow {
    cursor: i64,
    failing_seq: Option<i64>,
    attempts: i64,
    first_failed_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
}

impl From<StateRow> for facerec_core::events::SinkState {
    fn from(row: StateRow) -> Self {
        Self {
            cursor: row.cursor,
            failing_seq: row.failing_seq,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            first_failed_at: row.first_failed_at,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
        }
    }
}

impl TryFrom<SinkRow> for facerec_core::events::Sink {
    type Error = StoreError;
    fn try_from(row: SinkRow) -> Result<Self, StoreError> {
        use facerec_core::events::*;
        let corrupt = |what: &str| StoreError::Database(format!("event sink {}: {what}", row.id));
        let id = SinkId::parse(&row.id).ok_or_else(|| corrupt("unknown id"))?;
        let state = SinkState::from(row.state);
        let webhook = match (id, row.kind.as_str()) {
            (SinkId::Webhook(webhook), "webhook") => Some(Webhook {
                id: webhook,
                collection: row
                    .collection_id
                    .ok_or_else(|| corrupt("a webhook without a collection"))?
                    .into(),
                url: WebhookUrl::new(row.url.as_deref().unwrap_or_default())
                    .map_err(|e| corrupt(&e))?,
                events: row.events.0.clone(),
                secret: WebhookSecret(row.secret.clone().unwrap_or_default()),
                created_at: row.created_at,
                state: state.clone(),
            }),
            (SinkId::Mqtt, "mqtt") => None,
            _ => return Err(corrupt("its kind does not match its id")),
        };
        Ok(Sink {
            id,
            collection: row.collection_id.map(Into::into),
            events: row.events.0,
            webhook,
            state,
        })
    }
}

#[derive(FromRow)]
pub(crate) struct DeliveryRow {
    seq: i64,
    event_id: Id,
    event_type: String,
    status: String,
    attempts: i64,
    reason: Option<String>,
    at: DateTime<Utc>,
}

impl TryFrom<DeliveryRow> for facerec_core::events::Delivery {
    type Error = StoreError;
    fn try_from(row: DeliveryRow) -> Result<Self, StoreError> {
        use facerec_core::events::*;
        Ok(Delivery {
            seq: row.seq,
            event_id: row.event_id.0,
            event_type: EventType::parse(&row.event_type).ok_or_else(|| {
                StoreError::Database(format!("a delivery of unknown type '{}'", row.event_type))
            })?,
            status: DeliveryStatus::parse(&row.status).ok_or_else(|| {
                StoreError::Database(format!("a delivery of unknown status '{}'", row.status))
            })?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            reason: row.reason,
            at: row.at,
        })
    }
}
