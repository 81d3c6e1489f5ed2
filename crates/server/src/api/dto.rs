//! The JSON the API speaks. Domain types stay in facerec-core; these are their public shapes.

use chrono::{DateTime, Utc};
use facerec_core::calibration::{Calibration, Method, FNIR_WARNING_LEVEL};
use facerec_core::{Candidate, Face, ListedPerson, Person, Recognition};
use facerec_vision::{AnalyzedFace, FaceQuality};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentDto {
    /// When the consent was recorded: the person's registration (RFC 3339).
    pub given_at: DateTime<Utc>,
    /// How consent was obtained: the registration's `consent_basis`, a statement that
    /// `consent=true` was sent, or the operator's `--compat-consent-basis`.
    pub basis: String,
    /// When the consent runs out and the person is deleted (`null`: until deleted).
    pub expires_at: Option<DateTime<Utc>>,
    /// It has run out: the person is matched and compared with no more, and the next retention
    /// sweep deletes them.
    pub expired: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonDto {
    /// The person's id (UUID).
    pub id: Uuid,
    /// The person's name, 1 to 200 characters.
    pub name: String,
    /// The caller's own id for the person, unique in the collection (null: none).
    pub external_id: Option<String>,
    /// The JSON object the caller attached: `{}` when none (null for a person registered through
    /// a compatible API).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub consent: ConsentDto,
    /// When the person was registered (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// When the person was last updated (RFC 3339); `created_at` until then.
    pub updated_at: DateTime<Utc>,
}

/// A person in a listing: with their number of faces.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListedPersonDto {
    #[serde(flatten)]
    pub person: PersonDto,
    /// Faces registered for them.
    pub faces: u64,
}

impl From<ListedPerson> for ListedPersonDto {
    fn from(listed: ListedPerson) -> Self {
        Self {
            person: listed.person.into(),
            faces: listed.faces,
        }
    }
}

impl From<Person> for PersonDto {
    fn from(p: Person) -> Self {
        Self {
            id: p.id.0,
            name: p.name,
            external_id: p.external_id,
            metadata: p.metadata,
            consent: ConsentDto {
                expired: p.consent.has_expired(Utc::now()),
                given_at: p.consent.given_at,
                basis: p.consent.basis,
                expires_at: p.consent.expires_at,
            },
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QualityDto {
    /// Shorter side of the face box, pixels.
    pub face_size_px: f32,
    /// Distance between the two eye landmarks, pixels.
    pub interocular_px: f32,
    /// 1 = frontal, 0 = profile.
    pub frontality: f32,
    /// Raw ArcFace feature norm (low = blurred or occluded).
    pub embedding_norm: f32,
}

impl From<FaceQuality> for QualityDto {
    fn from(q: FaceQuality) -> Self {
        Self {
            face_size_px: q.face_size_px,
            interocular_px: q.interocular_px,
            frontality: q.frontality,
            embedding_norm: q.embedding_norm,
        }
    }
}

/// A stored face. Its embedding is never returned.
#[derive(Debug, Serialize, ToSchema)]
pub struct FaceDto {
    /// The face's id (UUID).
    pub id: Uuid,
    /// Whose face it is (UUID).
    pub person_id: Uuid,
    /// The detector's confidence in [0, 1].
    pub det_score: f32,
    /// `[x1, y1, x2, y2]` in the source image's pixels.
    pub bbox: [f32; 4],
    pub quality: QualityDto,
    /// The embedding model, e.g. `buffalo_s/w600k_mbf`.
    pub model: String,
    /// sha256 of the embedding model's file, lowercase hex.
    pub model_sha256: String,
    /// When the face was added (RFC 3339).
    pub created_at: DateTime<Utc>,
}

impl From<Face> for FaceDto {
    fn from(f: Face) -> Self {
        Self {
            id: f.id.0,
            person_id: f.person_id.0,
            det_score: f.det_score,
            bbox: f.bbox,
            quality: f.quality.into(),
            model: f.model.name,
            model_sha256: f.model.sha256,
            created_at: f.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisteredDto {
    pub person: PersonDto,
    pub face: FaceDto,
    /// False when this photo was already registered for this person (nothing changed).
    pub created: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateDto {
    /// The person's id (UUID).
    pub person_id: Uuid,
    /// The person's name.
    pub name: String,
    /// Cosine similarity in [-1, 1].
    pub similarity: f32,
}

impl From<&Candidate> for CandidateDto {
    fn from(c: &Candidate) -> Self {
        Self {
            person_id: c.person_id.0,
            name: c.name.clone(),
            similarity: c.similarity.value(),
        }
    }
}

/// A detected face's geometry.
#[derive(Debug, Serialize, ToSchema)]
pub struct DetectedFaceDto {
    /// `[x1, y1, x2, y2]` in the source image's pixels.
    pub bbox: [f32; 4],
    /// Left eye, right eye, nose, left and right mouth corners: `[[x, y] x 5]`.
    pub landmarks: [[f32; 2]; 5],
    /// The detector's confidence in [0, 1].
    pub det_score: f32,
    pub quality: QualityDto,
    /// Only with `embeddings=true`: the L2-normalized 512-d embedding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

impl DetectedFaceDto {
    pub fn new(face: &AnalyzedFace, with_embedding: bool) -> Self {
        Self {
            bbox: face.detection.bbox.to_array(),
            landmarks: face.detection.landmarks,
            det_score: face.detection.score,
            quality: face.quality.into(),
            embedding: with_embedding.then(|| face.embedding.as_slice().to_vec()),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecognizedFaceDto {
    /// `[x1, y1, x2, y2]` in the source image's pixels.
    pub bbox: [f32; 4],
    /// Left eye, right eye, nose, left and right mouth corners: `[[x, y] x 5]` in the
    /// source image's pixels.
    pub landmarks: [[f32; 2]; 5],
    /// The detector's confidence in [0, 1].
    pub det_score: f32,
    pub quality: QualityDto,
    /// The best candidate if it clears the threshold; null means unknown.
    #[serde(rename = "match")]
    pub matched: Option<CandidateDto>,
    /// Ranked candidates (best first), whether or not they clear the threshold.
    pub candidates: Vec<CandidateDto>,
    /// The threshold this face was decided at.
    pub threshold: f32,
    /// With a match: the estimated share of strangers who score at least this similarity at this
    /// gallery size (see `GET /v1/calibration`); null for an unknown face, and where the estimate
    /// is weak (`estimate_weak`: the gallery cannot show its target, and a point estimate of such
    /// a gallery, often 0 or 1, would be misread).
    pub estimated_fpir: Option<f64>,
    /// With a match: its 95% upper bound (read this one: the estimate is often exactly 0 at the
    /// threshold); null for an unknown face.
    pub estimated_fpir_upper: Option<f64>,
    /// An unknown face in a collection that captures: the cluster of strangers it joins, how often
    /// it was seen (this time included) and since when. Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<UnknownDto>,
    /// In a collection that captures: the capture kept of this face (`GET /v1/captures/{id}`;
    /// written just after the answer, so it may take a moment to be found). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_id: Option<uuid::Uuid>,
    /// Present (true) when a reviewer's "not this person" changed the answer: the best candidate
    /// was passed over for the runner-up, or for unknown.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub feedback_applied: bool,
}

/// An unknown face's cluster: the stable id of a stranger seen again.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnknownDto {
    /// The cluster (`GET /v1/clusters/{id}`); it stays valid when merged into another.
    pub cluster_id: uuid::Uuid,
    /// Sightings of this stranger, this one included.
    pub seen: u64,
    /// When they were first seen (RFC 3339).
    pub first_seen: chrono::DateTime<chrono::Utc>,
}

impl RecognizedFaceDto {
    /// With the capture kept of the face, and the cluster an unknown face joins, where the
    /// collection captures.
    pub fn with_capture(
        mut self,
        capture: Option<facerec_core::CaptureId>,
        unknown: Option<facerec_core::capture::SeenCluster>,
    ) -> Self {
        self.capture_id = capture.map(|c| c.0);
        self.unknown = unknown.map(|u| UnknownDto {
            cluster_id: u.cluster_id.0,
            seen: u.seen,
            first_seen: u.first_seen,
        });
        self
    }

    pub fn new(face: &AnalyzedFace, recognition: &Recognition, calibration: &Calibration) -> Self {
        Self {
            unknown: None,
            capture_id: None,
            feedback_applied: recognition.overruled,
            threshold: recognition.threshold.value(),
            estimated_fpir: (recognition.matched.as_ref())
                .filter(|_| !calibration.weak)
                .map(|m| calibration.estimated_fpir(m.similarity.value())),
            estimated_fpir_upper: recognition
                .matched
                .as_ref()
                .map(|m| calibration.estimated_fpir_upper(m.similarity.value())),
            bbox: face.detection.bbox.to_array(),
            landmarks: face.detection.landmarks,
            det_score: face.detection.score,
            quality: face.quality.into(),
            matched: recognition.matched.as_ref().map(CandidateDto::from),
            candidates: recognition
                .candidates
                .iter()
                .map(CandidateDto::from)
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImageSizeDto {
    /// Width of the image turned upright (EXIF orientation applied), pixels.
    pub width: u32,
    /// Height of the image turned upright (EXIF orientation applied), pixels.
    pub height: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecognizeResponse {
    /// Every face found (at most `max_faces`), strongest detection first; empty for none.
    pub faces: Vec<RecognizedFaceDto>,
    /// The similarity threshold used.
    pub threshold: f32,
    /// The calibration cannot show its target on this gallery: the estimates are weak, and the
    /// threshold is where the least risk was seen (see `GET /v1/calibration`).
    pub estimate_weak: bool,
    pub image: ImageSizeDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DetectResponse {
    /// Every face found (at most `max_faces`), strongest detection first; empty for none.
    pub faces: Vec<DetectedFaceDto>,
    pub image: ImageSizeDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Cosine similarity in [-1, 1] of the two faces (with `person_id`: the best of theirs).
    pub similarity: f32,
    /// The threshold decided at (cosine similarity): the request's, else the calibrated one.
    pub threshold: f32,
    /// `similarity` is at least `threshold`.
    pub same_person: bool,
    /// With `person_id`: the estimated share of strangers who would score at least this
    /// similarity against that person (the 1:1 false-match rate of the gallery's impostor pairs,
    /// over the person's faces). Null for two photos, which no gallery speaks for, and where no
    /// pair was measured.
    pub estimated_fmr: Option<f64>,
    /// The collection's calibration is weak (see `GET /v1/calibration`).
    pub estimate_weak: bool,
}

/// `GET /v1/calibration`: the threshold in force and the evidence it rests on.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalibrationDto {
    /// The threshold every decision uses (unless a request names its own).
    pub effective_threshold: f32,
    /// Matches reviewers said were wrong ("not this person" on a captured face), while those
    /// captures are held: false matches observed in this collection, beside the estimate.
    pub observed_false_matches: u64,
    /// `--match-threshold`: never gone below.
    pub floor_threshold: f32,
    /// `--target-fpir`: the share of strangers that may be named.
    pub target_fpir: f64,
    /// At the effective threshold.
    pub estimated_fpir: f64,
    /// Its 95% upper bound (Clopper–Pearson).
    pub estimated_fpir_upper: f64,
    /// Share of a registered person's photos missed at the effective threshold (null: no person
    /// has two faces).
    pub estimated_fnir: Option<f64>,
    /// The miss rate above which the calibration warns (`fnir_warning`).
    pub fnir_warning_level: f64,
    /// `estimated_fnir` is above `fnir_warning_level`: the threshold the strangers demand costs
    /// recognition dearly (look-alikes in the gallery, or a strict target).
    pub fnir_warning: bool,
    /// The bound cannot reach the target at any threshold: the threshold is the lowest at or above
    /// the floor where the least risk was seen (above every stranger score, as a rule).
    pub weak: bool,
    /// `direct` (strangers searched at the gallery's size, persons as the unit) or
    /// `extrapolated` (the rate over pairs of persons, 1 − (1 − R)^C over the C persons a search
    /// compares).
    pub method: String,
    /// The model whose faces were measured.
    pub model: String,
    /// Persons in the collection when computed.
    pub persons: u64,
    /// Faces in the collection when computed.
    pub faces: u64,
    /// Persons sampled for the measurement (at most `--calibration-max-persons`).
    pub persons_sampled: u64,
    /// Sampled persons searched as strangers: the unit of the direct bound.
    pub stranger_persons: u64,
    /// Faces of sampled persons (up to five each) searched against everyone else.
    pub stranger_probes: u64,
    /// Faces (up to five a person) compared with their own person's other faces: the unit
    /// of `estimated_fnir`.
    pub genuine_probes: u64,
    /// Pairs of faces of two different sampled persons compared (at most 2,000,000): the unit of
    /// `fmr`.
    pub impostor_pairs: u64,
    /// Pairs of sampled persons compared: the unit of the extrapolated bound.
    pub person_pairs: u64,
    /// The persons a search compares (one more per five faces beyond the first five): the
    /// extrapolation's exponent.
    pub search_chances: u64,
    /// When it was computed (RFC 3339).
    pub computed_at: DateTime<Utc>,
    /// The estimates at each threshold from 0 to 1 in steps of 0.005, lowest first.
    pub curve: Vec<CurvePointDto>,
    pub histograms: HistogramsDto,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CurvePointDto {
    /// Cosine similarity.
    pub threshold: f32,
    /// Estimated share of strangers named at this threshold.
    pub fpir: f64,
    /// Its 95% upper bound (Clopper–Pearson).
    pub fpir_upper: f64,
    /// Share of genuine probes below this threshold; null without persons of two faces.
    pub fnir: Option<f64>,
    /// Share of impostor pairs (faces of two different persons) at or above it; null without
    /// pairs.
    pub fmr: Option<f64>,
}

/// Counts of genuine and stranger scores in `bins` equal bins over [-1, 1].
#[derive(Debug, Serialize, ToSchema)]
pub struct HistogramsDto {
    /// Number of bins (100).
    pub bins: usize,
    /// Per bin: genuine probes by their best similarity to their own person's other faces.
    pub genuine: Vec<u32>,
    /// Per bin: stranger probes by their best similarity to anyone else in the gallery.
    pub stranger: Vec<u32>,
}

impl From<&Calibration> for CalibrationDto {
    fn from(c: &Calibration) -> Self {
        Self {
            observed_false_matches: 0,
            effective_threshold: c.effective_threshold.value(),
            floor_threshold: c.floor_threshold.value(),
            target_fpir: c.target_fpir,
            estimated_fpir: c.estimated_fpir,
            estimated_fpir_upper: c.estimated_fpir_upper,
            estimated_fnir: c.estimated_fnir,
            fnir_warning_level: FNIR_WARNING_LEVEL,
            fnir_warning: c.misses_too_many(),
            weak: c.weak,
            model: c.model.name.clone(),
            stranger_persons: c.stranger_persons,
            method: match c.method {
                Method::Direct => "direct",
                Method::Extrapolated => "extrapolated",
            }
            .to_owned(),
            persons: c.persons,
            faces: c.faces,
            persons_sampled: c.persons_sampled,
            stranger_probes: c.stranger_probes,
            genuine_probes: c.genuine_probes,
            impostor_pairs: c.impostor_pairs,
            person_pairs: c.person_pairs,
            search_chances: c.search_chances,
            computed_at: c.computed_at,
            curve: c
                .curve
                .iter()
                .map(|p| CurvePointDto {
                    threshold: p.threshold,
                    fpir: p.fpir,
                    fpir_upper: p.fpir_upper,
                    fnir: p.fnir,
                    fmr: p.fmr,
                })
                .collect(),
            histograms: HistogramsDto {
                bins: c.histograms.bins,
                genuine: c.histograms.genuine.clone(),
                stranger: c.histograms.stranger.clone(),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PersonsPage {
    /// This page's persons, oldest first.
    pub items: Vec<ListedPersonDto>,
    /// Persons matching the filters, over all pages.
    pub total: u64,
    /// The page size used, 1 to 500.
    pub limit: u32,
    /// Persons skipped before this page.
    pub offset: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FacesList {
    /// The person's faces, oldest first.
    pub items: Vec<FaceDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedPersonDto {
    pub person: PersonDto,
    /// Faces deleted with the person.
    pub faces_deleted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedFaceDto {
    pub face: FaceDto,
}

/// A partial update: only the fields present change. `external_id: null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonPatchDto {
    /// A new name, 1 to 200 characters.
    pub name: Option<String>,
    /// A new external id (1 to 200 bytes, unique in the collection), or `null` to clear it.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// A JSON object that replaces the metadata whole (at most 64 KiB as JSON text).
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// A renewed consent expiry (RFC 3339, in the future), or `null` for none.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub consent_expires_at: Option<Option<DateTime<Utc>>>,
}

/// Tells "absent" (None) from "null" (Some(None)).
fn present_or_null<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

/// `GET /v1/persons/{id}/export`: all that is held about one person.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonExportDto {
    /// When the export was made (RFC 3339).
    pub exported_at: DateTime<Utc>,
    /// The person, with their consent record.
    pub person: PersonDto,
    /// Their faces' metadata (photos are never kept; embeddings only when asked for and allowed).
    pub faces: Vec<ExportedFaceDto>,
    /// Every audit event about the person, newest first.
    pub audit_events: Vec<AuditEventDto>,
    /// More events exist than one export holds (10,000).
    pub audit_events_truncated: bool,
    /// The captured faces named for the person or rejected for them, newest first (at most 500;
    /// their chips at `GET /v1/captures/{id}/image` while held).
    pub captures: Vec<super::captures::CaptureDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedFaceDto {
    #[serde(flatten)]
    pub face: FaceDto,
    /// sha256 of the photo the face came from (the photo itself is not kept).
    pub image_sha256: String,
    /// The L2-normalized embedding; only with `include_embeddings=true` on a server that allows
    /// raw embeddings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventDto {
    /// The event's number, increasing with time: pass as `before_id` to page back.
    pub id: i64,
    /// When it happened (RFC 3339).
    pub at: DateTime<Utc>,
    /// The collection it happened in.
    pub collection_id: Uuid,
    /// `person_created`, `person_updated`, `person_deleted`, `face_added`, `face_deleted`,
    /// `face_compared`, `collection_created`, `collection_updated`, `collection_deleted`,
    /// `key_created` or `key_revoked`.
    pub action: String,
    /// The person it concerns (null for collection and key events).
    pub person_id: Option<Uuid>,
    /// The face it concerns with `face_added`, `face_deleted` and `face_compared`; else null.
    pub face_id: Option<Uuid>,
    /// Who: an API key's id (`key:<id>`; never the secret), `local`, or `retention-sweep`.
    pub actor: String,
    /// The action's facts, never biometric data (e.g. changed `fields`, `faces_deleted`,
    /// `key_id`, `comparisons`); `{}` when none.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<facerec_core::AuditEvent> for AuditEventDto {
    fn from(e: facerec_core::AuditEvent) -> Self {
        Self {
            id: e.id,
            at: e.at,
            collection_id: e.collection_id.0,
            action: e.action.as_str().to_owned(),
            person_id: e.person_id.map(|p| p.0),
            face_id: e.face_id.map(|f| f.0),
            actor: e.actor.0,
            details: e.details,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// Always `ok`.
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// Always `ready` (not ready is a 503).
    pub status: &'static str,
    /// The database backend: `sqlite` or `postgres`.
    pub database: &'static str,
    /// The default pack's recognizer: `<name>@sha256:<hex>`.
    pub model: String,
    /// The pack a new collection is bound to when it names none.
    pub default_pack: String,
    /// Every model pack loaded (each once per worker), the built-in first.
    pub packs: Vec<PackDto>,
    /// Inference workers alive (at least 1).
    pub workers: usize,
}

/// A model pack this server has loaded.
#[derive(Debug, Serialize, ToSchema)]
pub struct PackDto {
    /// The pack's name, as `model_pack` names it.
    pub name: String,
    /// Its recognizer's name (`<pack>/<file stem>`): stored beside every embedding it makes.
    pub recognizer: String,
    /// The sha256 of its recognizer's file (hex).
    pub recognizer_sha256: String,
    /// The sha256 of its detector's file (hex).
    pub detector_sha256: String,
    /// The length of its embeddings.
    pub embedding_size: usize,
    /// The input side its detector's model fixes, if it fixes one.
    pub fixed_detection_size: Option<u32>,
    /// Who may use its weights, and how (InsightFace's: non-commercial research only).
    pub licence: String,
}

impl From<&facerec_service::LoadedPack> for PackDto {
    fn from(p: &facerec_service::LoadedPack) -> Self {
        Self {
            name: p.pack.name.clone(),
            recognizer: p.recognizer.name.clone(),
            recognizer_sha256: p.recognizer.sha256.clone(),
            detector_sha256: p.pack.detector.sha256.clone(),
            embedding_size: p.pack.embedding_size,
            fixed_detection_size: p.fixed_detection_size,
            licence: p.pack.licence.clone(),
        }
    }
}

/// Multipart fields of `POST /v1/register` (for the API documentation).
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RegisterForm {
    /// JPEG, PNG, WebP or BMP.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Name of a new person (or give `person_id`).
    name: Option<String>,
    /// Add this photo to an existing person instead.
    person_id: Option<Uuid>,
    /// Must be `true`: the person consented to being registered.
    consent: bool,
    /// The operator's words on how consent was obtained.
    consent_basis: Option<String>,
    /// RFC 3339, in the future: when the consent runs out and the person is deleted (default: the
    /// server's `--retention-days`, else never).
    consent_expires_at: Option<DateTime<Utc>>,
    /// The caller's own id for a new person: 1 to 200 bytes, unique in the collection.
    external_id: Option<String>,
    /// A JSON object.
    metadata: Option<String>,
    /// Which face of a group photo: `largest`, its 0-based index in the order `/v1/detect`
    /// answers for the same photo (strongest detection first), or a box `x1,y1,x2,y2` (pixels)
    /// around it (the face overlapping it most, at least 0.3 intersection over union).
    face: Option<String>,
}

/// Multipart fields of `POST /v1/persons/{id}/faces`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct AddFaceForm {
    /// JPEG, PNG, WebP or BMP.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Must be `true`: the person consented to this photo being added.
    consent: bool,
    /// Which face of a group photo: `largest`, its 0-based index in the order `/v1/detect`
    /// answers for the same photo (strongest detection first), or a box `x1,y1,x2,y2` (pixels)
    /// around it (the face overlapping it most, at least 0.3 intersection over union).
    face: Option<String>,
}

/// Multipart fields of `POST /v1/recognize`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct RecognizeForm {
    /// JPEG, PNG, WebP or BMP.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// Cosine similarity a match needs (default: the calibrated one, `GET /v1/calibration`).
    #[schema(minimum = -1.0, maximum = 1.0)]
    threshold: Option<f32>,
    /// Candidates per face (default 3).
    #[schema(minimum = 1, maximum = 20)]
    top_k: Option<u32>,
    /// Faces recognized, strongest first (default 100).
    #[schema(minimum = 1, maximum = 100)]
    max_faces: Option<u32>,
    /// The camera or client the photo came from, kept with its captures where the collection
    /// captures: 1–64 letters, digits, `-`, `_` and `.` (default: the key's label). The query
    /// parameter `source` says the same.
    source: Option<String>,
}

/// Multipart fields of `POST /v1/verify`: `image` and `image2`, or `image` and `person_id`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct VerifyForm {
    /// JPEG, PNG, WebP or BMP; its largest face is compared.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// A second photo, whose largest face is compared (instead of `person_id`).
    #[schema(value_type = Option<String>, format = Binary)]
    image2: Option<Vec<u8>>,
    /// A registered person (UUID) to compare with, by their most similar face (instead of
    /// `image2`).
    person_id: Option<Uuid>,
    /// Cosine similarity `same_person` needs (default: the calibrated one).
    #[schema(minimum = -1.0, maximum = 1.0)]
    threshold: Option<f32>,
}

/// Multipart fields of `POST /v1/detect`.
#[allow(dead_code)]
#[derive(ToSchema)]
pub struct DetectForm {
    /// JPEG, PNG, WebP or BMP.
    #[schema(value_type = String, format = Binary)]
    image: Vec<u8>,
    /// `true` to include each face's embedding.
    embeddings: Option<bool>,
    /// Faces returned, strongest first (default 100).
    #[schema(minimum = 1, maximum = 100)]
    max_faces: Option<u32>,
}
