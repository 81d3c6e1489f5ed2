//! Thin handlers: parse the request, call the application, shape the answer.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::{Extension, Json};
use facerec_core::retry::IdempotencyKey;
use facerec_core::{Added, Caller, FaceId, PageRequest, PersonId, PersonPatch, Scope, Threshold};
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::*;
use super::error::{ApiError, ErrorBody};
use super::form::Form;
use super::state::AppState;
use facerec_core::ErrorCode;
use facerec_service::access;
use facerec_service::ranges;
use facerec_service::{
    CaptureContext, FacePick, RecognizeOptions, Registered, Registration, RegistrationTarget,
};

/// Where a photo came from (a camera, a client), for the captures of a collection that keeps
/// them; the form's `source` field says the same.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SourceQuery {
    /// 1–64 letters, digits, `-`, `_` and `.` (default: the key's label).
    source: Option<String>,
}

type ApiResult<T> = Result<T, ApiError>;

/// A number within its documented range (`facerec_service::ranges`), or a 400 that says the range.
fn face_pick(form: &Form) -> ApiResult<FacePick> {
    let refused = |other: &str| {
        ApiError::bad_request(format!(
            "field 'face' must be 'largest', a face's index (0, 1, …, in the order /v1/detect \
             answers), or a box 'x1,y1,x2,y2' in the photo's pixels, not '{other}'"
        ))
    };
    match form.text("face") {
        None => Ok(FacePick::Only),
        Some("largest") => Ok(FacePick::Largest),
        Some(other) if other.contains(',') => {
            let corners: Vec<f32> = other
                .split(',')
                .map(|v| v.trim().parse::<f32>())
                .collect::<Result<_, _>>()
                .map_err(|_| refused(other))?;
            match corners[..] {
                [x1, y1, x2, y2] if corners.iter().all(|v| v.is_finite()) && x2 > x1 && y2 > y1 => {
                    Ok(FacePick::Box(facerec_vision::BoundingBox {
                        x1,
                        y1,
                        x2,
                        y2,
                    }))
                }
                _ => Err(refused(other)),
            }
        }
        Some(other) => other
            .parse::<usize>()
            .map(FacePick::Index)
            .map_err(|_| refused(other)),
    }
}

fn threshold(form: &Form) -> ApiResult<Option<Threshold>> {
    form.parse::<f32>("threshold")?
        .map(|t| Threshold::new(t).map_err(ApiError::bad_request))
        .transpose()
}

fn person_id(text: &str) -> ApiResult<PersonId> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("'{text}' is not a person id (UUID)")))
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations",
    responses((status = 200, description = "The process is alive", body = HealthResponse)))]
pub async fn health() -> Json<HealthResponse> {
    Json(HealthResponse { status: "ok" })
}

/// Readiness: the database, the model and the workers.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, description = "Models loaded and database reachable", body = ReadyResponse),
              (status = 503, description = "Not ready", body = ErrorBody)))]
pub async fn ready(State(state): State<Arc<AppState>>) -> ApiResult<Json<ReadyResponse>> {
    let readiness = state.app.readiness().await?;
    Ok(Json(ReadyResponse {
        status: "ready",
        database: readiness.database,
        model: readiness.default_pack().recognizer.to_string(),
        default_pack: readiness.default_pack().pack.name.clone(),
        packs: readiness.packs.iter().map(Into::into).collect(),
        workers: readiness.workers,
    }))
}

/// Register a person from a photo, or add the photo to a registered person.
#[utoipa::path(post, path = "/v1/register", tag = "registration",
    request_body(content = RegisterForm, content_type = "multipart/form-data"),
    responses((status = 201, description = "Registered", body = RegisteredDto),
              (status = 200, description = "This photo was already registered for this person", body = RegisteredDto),
              (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "external_id taken (details.person_id: who holds it)", body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody),
              (status = 422, description = "no_face, multiple_faces, poor_quality, consent_required or idempotency_key_reused", body = ErrorBody),
              (status = 503, body = ErrorBody)),
    params(IdempotencyHeader),
    security(("bearer" = [])))]
pub async fn register(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    mut form: Form,
) -> ApiResult<(StatusCode, HeaderMap, Json<RegisteredDto>)> {
    let target = match (form.text("person_id"), form.text("name")) {
        (Some(id), _) => RegistrationTarget::Existing(person_id(id)?),
        (None, Some(name)) => RegistrationTarget::NewPerson {
            name: name.to_owned(),
            external_id: form.text("external_id").map(str::to_owned),
            metadata: match form.text("metadata") {
                None => serde_json::json!({}),
                Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                    Ok(v @ serde_json::Value::Object(_)) => v,
                    _ => {
                        return Err(ApiError::bad_request(
                            "field 'metadata' must be a JSON object",
                        ))
                    }
                },
            },
        },
        (None, None) => {
            return Err(ApiError::bad_request(
                "give 'name' for a new person, or 'person_id'",
            ))
        }
    };
    let request = Registration {
        image: form.image("image")?,
        target,
        consent: form.flag("consent")?,
        consent_basis: form.text("consent_basis").map(str::to_owned),
        consent_expires_at: form
            .text("consent_expires_at")
            .map(|text| {
                chrono::DateTime::parse_from_rfc3339(text.trim())
                    .map(|at| at.to_utc())
                    .map_err(|_| {
                        ApiError::bad_request("field 'consent_expires_at' must be an RFC 3339 time")
                    })
            })
            .transpose()?,
        pick: face_pick(&form)?,
        idempotency_key: idempotency_key(&headers)?,
    };
    registered(state.app.register(request, &caller).await?)
}

/// Add a photo of a registered person.
#[utoipa::path(post, path = "/v1/persons/{id}/faces", tag = "persons",
    params(("id" = uuid::Uuid, Path, description = "Person id")),
    request_body(content = AddFaceForm, content_type = "multipart/form-data"),
    responses((status = 201, body = RegisteredDto), (status = 200, body = RegisteredDto),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    params(IdempotencyHeader),
    security(("bearer" = [])))]
pub async fn add_face(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    mut form: Form,
) -> ApiResult<(StatusCode, HeaderMap, Json<RegisteredDto>)> {
    let person = person_id(&id)?;
    let request = Registration {
        image: form.image("image")?,
        target: RegistrationTarget::Existing(person),
        consent: form.flag("consent")?,
        consent_basis: None,
        consent_expires_at: None,
        pick: face_pick(&form)?,
        idempotency_key: idempotency_key(&headers)?,
    };
    registered(state.app.register(request, &caller).await?)
}

/// `Idempotency-Key`: a retry under the same key answers what the first attempt answered.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct IdempotencyHeader {
    /// The client's name for this attempt (1 to 255 visible ASCII characters, e.g. a UUID): a
    /// retry with the same key within a day answers what the first attempt answered (with
    /// `Idempotent-Replayed: true`) and registers nothing more; the same key for another request
    /// is 422 `idempotency_key_reused`.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
}

const IDEMPOTENCY_KEY: &str = "idempotency-key";

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<IdempotencyKey>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("the Idempotency-Key header is not text"))?;
    IdempotencyKey::new(text)
        .map(Some)
        .map_err(ApiError::bad_request)
}

fn registered(r: Registered) -> ApiResult<(StatusCode, HeaderMap, Json<RegisteredDto>)> {
    let status = if r.added == Added::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut headers = HeaderMap::new();
    if r.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok((
        status,
        headers,
        Json(RegisteredDto {
            person: r.person.into(),
            face: r.face.into(),
            created: r.added == Added::Created,
        }),
    ))
}

/// Recognize every face of a photo.
#[utoipa::path(post, path = "/v1/recognize", tag = "recognition",
    request_body(content = RecognizeForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "Every face with its verdict (an image without faces gives an empty list)", body = RecognizeResponse),
              (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    params(SourceQuery),
    security(("bearer" = [])))]
pub async fn recognize(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<SourceQuery>,
    mut form: Form,
) -> ApiResult<Json<RecognizeResponse>> {
    let source = (form.text("source"))
        .or(query.source.as_deref())
        .map(|s| facerec_core::capture::Source::new(s).map_err(ApiError::bad_request))
        .transpose()?;
    let options = RecognizeOptions {
        threshold: threshold(&form)?,
        top_k: ranges::TOP_K.check("top_k", form.parse("top_k")?)? as usize,
        max_faces: ranges::MAX_FACES.check("max_faces", form.parse("max_faces")?)? as usize,
        capture: CaptureContext {
            source,
            route: "/v1/recognize",
        },
        tell: true,
    };
    let result = state
        .app
        .recognize(&caller, form.image("image")?, &options)
        .await?;
    let calibration = &result.calibration;
    Ok(Json(RecognizeResponse {
        faces: result
            .faces
            .iter()
            .map(|f| {
                RecognizedFaceDto::new(&f.face, &f.recognition, calibration)
                    .with_capture(f.capture, f.unknown)
            })
            .collect(),
        threshold: result.threshold.value(),
        estimate_weak: calibration.weak,
        image: ImageSizeDto {
            width: result.width,
            height: result.height,
        },
    }))
}

/// Compare a face with another photo or with a registered person (1:1).
#[utoipa::path(post, path = "/v1/verify", tag = "recognition",
    request_body(content = VerifyForm, content_type = "multipart/form-data"),
    responses((status = 200, body = VerifyResponse), (status = 404, body = ErrorBody),
              (status = 422, description = "no face in an image", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    mut form: Form,
) -> ApiResult<Json<VerifyResponse>> {
    let threshold = threshold(&form)?;
    let image = form.image("image")?;
    let verdict = match (form.take_image("image2"), form.text("person_id")) {
        (Some(second), None) => {
            state
                .app
                .verify_images(&caller, image, second, threshold)
                .await?
        }
        (None, Some(id)) => {
            state
                .app
                .verify_person(&caller, image, person_id(id)?, threshold)
                .await?
        }
        _ => {
            return Err(ApiError::bad_request(
                "give either 'image2' or 'person_id' beside 'image'",
            ))
        }
    };
    let calibration = &verdict.calibration;
    Ok(Json(VerifyResponse {
        similarity: verdict.similarity.value(),
        threshold: verdict.threshold.value(),
        same_person: verdict.same_person,
        estimated_fmr: verdict.estimated_fmr,
        estimate_weak: calibration.weak,
    }))
}

/// The match threshold in force and the evidence it rests on.
#[utoipa::path(get, path = "/v1/calibration", tag = "recognition",
    responses((status = 200, description = "The match threshold in force and the evidence it rests on", body = CalibrationDto)),
    security(("bearer" = [])))]
pub async fn calibration(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<CalibrationDto>> {
    let (calibration, observed) = state.app.calibration_evidence(&caller).await?;
    Ok(Json(CalibrationDto {
        observed_false_matches: observed,
        ..CalibrationDto::from(&*calibration)
    }))
}

/// Recalibrate the match threshold now.
#[utoipa::path(post, path = "/v1/calibration", tag = "recognition",
    description = "Requests for one collection while its calibration runs share its answer; \
        another within a minute of the last is refused (429 with Retry-After). One calibration \
        computes at a time on the server.",
    responses((status = 200, description = "Recalibrated now from the gallery", body = CalibrationDto),
              (status = 429, description = "calibrated less than a minute ago", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn recalibrate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<CalibrationDto>> {
    let calibrator = state.app.calibrator();
    calibrator.calibrate_on_demand(&caller.collection).await?;
    let (calibration, observed) = state.app.calibration_evidence(&caller).await?;
    Ok(Json(CalibrationDto {
        observed_false_matches: observed,
        ..CalibrationDto::from(&*calibration)
    }))
}

/// Detect the faces of a photo, without matching them.
#[utoipa::path(post, path = "/v1/detect", tag = "recognition",
    request_body(content = DetectForm, content_type = "multipart/form-data"),
    responses((status = 200, body = DetectResponse), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn detect(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    mut form: Form,
) -> ApiResult<Json<DetectResponse>> {
    let with_embeddings = form.flag("embeddings")?;
    if with_embeddings {
        access::require(&caller, Scope::Embeddings)?;
    }
    let max_faces = ranges::MAX_FACES.check("max_faces", form.parse("max_faces")?)?;
    let analysis = state
        .app
        .detect(&caller, form.image("image")?, max_faces as usize)
        .await?;
    Ok(Json(DetectResponse {
        faces: analysis
            .faces
            .iter()
            .map(|f| DetectedFaceDto::new(f, with_embeddings))
            .collect(),
        image: ImageSizeDto {
            width: analysis.width,
            height: analysis.height,
        },
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListQuery {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
    #[param(minimum = 0, maximum = 1_000_000_000)]
    offset: Option<u64>,
    /// Case-insensitive part of the name.
    name: Option<String>,
    /// Only persons whose consent expires at or before this time (RFC 3339; `+` written `%2B`).
    expires_before: Option<chrono::DateTime<chrono::Utc>>,
    /// Only the person with this external id (at most one: they are unique).
    external_id: Option<String>,
}

/// List persons (paged; by name, consent expiry or external id).
#[utoipa::path(get, path = "/v1/persons", tag = "persons", params(ListQuery),
    responses((status = 200, body = PersonsPage)), security(("bearer" = [])))]
pub async fn list_persons(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<PersonsPage>> {
    let page = PageRequest {
        limit: ranges::PAGE_SIZE.check("limit", q.limit.map(u64::from))? as u32,
        offset: ranges::OFFSET.check("offset", q.offset)?,
        name_contains: q.name.filter(|n| !n.trim().is_empty()),
        expires_before: q.expires_before,
        external_id: q.external_id,
    };
    let result = state.app.persons().persons(&caller, &page).await?;
    Ok(Json(PersonsPage {
        items: result.items.into_iter().map(Into::into).collect(),
        total: result.total,
        limit: page.limit,
        offset: page.offset,
    }))
}

/// Read a person.
#[utoipa::path(get, path = "/v1/persons/{id}", tag = "persons",
    params(("id" = uuid::Uuid, Path)), responses((status = 200, body = PersonDto), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_person(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<PersonDto>> {
    Ok(Json(
        state
            .app
            .persons()
            .person(&caller, person_id(&id)?)
            .await?
            .into(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// Include each face's embedding (only where the server allows raw embeddings).
    include_embeddings: Option<bool>,
}

/// Export all that is held about a person.
#[utoipa::path(get, path = "/v1/persons/{id}/export", tag = "persons",
    params(("id" = uuid::Uuid, Path), ExportQuery),
    responses((status = 200, description = "All that is held about the person (GDPR art. 15 and 20)", body = PersonExportDto),
              (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_person(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<ExportQuery>,
) -> ApiResult<Json<PersonExportDto>> {
    let with_embeddings = q.include_embeddings.unwrap_or(false);
    if with_embeddings {
        access::require(&caller, Scope::Embeddings)?;
    }
    let export = state
        .app
        .persons()
        .export_person(&caller, person_id(&id)?)
        .await?;
    let faces = export.faces.into_iter().map(|face| ExportedFaceDto {
        image_sha256: face.image_sha256.clone(),
        embedding: with_embeddings.then(|| face.embedding.as_slice().to_vec()),
        face: face.into(),
    });
    Ok(Json(PersonExportDto {
        exported_at: chrono::Utc::now(),
        person: export.person.into(),
        faces: faces.collect(),
        audit_events: export.audit_events.into_iter().map(Into::into).collect(),
        audit_events_truncated: export.audit_events_truncated,
        captures: export.captures.into_iter().map(Into::into).collect(),
    }))
}

/// Update a person's name, external id, metadata or consent expiry.
#[utoipa::path(patch, path = "/v1/persons/{id}", tag = "persons", params(("id" = uuid::Uuid, Path)),
    request_body = PersonPatchDto,
    responses((status = 200, body = PersonDto), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_person(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    patch: super::error::Body<PersonPatchDto>,
) -> ApiResult<Json<PersonDto>> {
    let patch = super::error::body(patch)?;
    if matches!(&patch.metadata, Some(m) if !m.is_object()) {
        return Err(ApiError::bad_request("'metadata' must be a JSON object"));
    }
    let patch = PersonPatch {
        name: patch.name,
        external_id: patch.external_id,
        metadata: patch.metadata,
        consent_expires_at: patch.consent_expires_at,
    };
    Ok(Json(
        state
            .app
            .persons()
            .update_person(person_id(&id)?, patch, &caller)
            .await?
            .into(),
    ))
}

/// Delete a person and all their faces.
#[utoipa::path(delete, path = "/v1/persons/{id}", tag = "persons", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, description = "The person and all their faces are gone for good", body = DeletedPersonDto),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_person(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeletedPersonDto>> {
    let deleted = state
        .app
        .persons()
        .delete_person(person_id(&id)?, &caller)
        .await?;
    Ok(Json(DeletedPersonDto {
        person: deleted.person.into(),
        faces_deleted: deleted.faces_deleted,
    }))
}

/// List a person's faces (never their embeddings).
#[utoipa::path(get, path = "/v1/persons/{id}/faces", tag = "persons", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = FacesList), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn list_faces(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<FacesList>> {
    let faces = state.app.persons().faces(&caller, person_id(&id)?).await?;
    Ok(Json(FacesList {
        items: faces.into_iter().map(Into::into).collect(),
    }))
}

/// Delete one face.
#[utoipa::path(delete, path = "/v1/faces/{id}", tag = "persons", params(("id" = uuid::Uuid, Path)),
    responses((status = 200, body = DeletedFaceDto), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
pub async fn delete_face(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeletedFaceDto>> {
    let face_id: FaceId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{id}' is not a face id (UUID)")))?;
    let face = state.app.persons().delete_face(face_id, &caller).await?;
    Ok(Json(DeletedFaceDto { face: face.into() }))
}

pub async fn route_not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route")
}
