//! CompreFace's REST API (recognition, detection and verification services), as its clients call it
//! (`docs/Rest-API-description.md` of exadel-inc/CompreFace, and its Python SDK 0.6.0): subjects are
//! persons named by the subject, `image_id`s are face ids, similarities are
//! [`facerec_core::Matcher::compat_score`]s.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequest, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use facerec_core::{Caller, DetectionScale, ErrorCode, FaceId, Matcher, Scope};
use facerec_service::{ranges, AppError, RecognizeOptions};
use facerec_vision::{AnalyzedFace, Similarity};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{consent_basis, registration, Params};
use crate::api::error::{ApiError, ErrorInfo};
use crate::api::form::Form;
use crate::api::state::AppState;
use facerec_service::access;

type ApiResult<T> = Result<T, ApiError>;

/// Fields that carry images (multipart parts, or base64 strings in a JSON body).
const FILE_FIELDS: [&str; 3] = ["file", "source_image", "target_image"];

/// CompreFace's detection threshold when a client sends none (`det_prob_threshold`, 0.8 in its
/// REST API description).
const DEFAULT_DET_PROB_THRESHOLD: f32 = 0.8;

/// CompreFace's page size when none is asked for.
const DEFAULT_PAGE_SIZE: u64 = 20;

/// The CompreFace service a path belongs to (it names the service when a key is refused).
#[derive(Debug, Clone, Copy)]
pub enum Service {
    Recognition,
    Detection,
    Verification,
}

impl Service {
    pub fn of_path(path: &str) -> Self {
        if path.starts_with("/api/v1/detection") {
            Self::Detection
        } else if path.starts_with("/api/v1/verification") {
            Self::Verification
        } else {
            Self::Recognition
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Recognition => "Recognition",
            Self::Detection => "Detection",
            Self::Verification => "Verification",
        }
    }
}

/// An error as CompreFace answers it: `{"message", "code"}` with its numeric code and status, from
/// the code table.
pub fn error_body(status: StatusCode, info: &ErrorInfo, service: Service) -> (StatusCode, Value) {
    let compreface = info.code.compreface();
    let status = super::client_status(status, info.code, compreface.status);
    let message = compreface.message.map_or_else(
        || info.message.clone(),
        |m| m.replace("{service}", service.name()),
    );
    (
        status,
        json!({ "message": message, "code": compreface.code, "facerec_code": info.code.as_str() }),
    )
}

/// The options every image endpoint takes.
struct FaceOptions {
    /// Faces to process, strongest first (CompreFace: 0 = all).
    limit: usize,
    /// The least detection probability a face is answered with (on `scale`).
    det_prob_threshold: f32,
    scale: DetectionScale,
    prediction_count: usize,
    landmarks: bool,
    embedding: bool,
    status: bool,
}

impl FaceOptions {
    fn from(params: &Params, scale: DetectionScale) -> ApiResult<Self> {
        // CompreFace: 0 is every face.
        let limit = match params.number::<u64>("limit")? {
            Some(0) => None,
            n => n,
        };
        let limit = ranges::MAX_FACES.clamp(limit) as usize;
        // Plugins facerec cannot serve (age, gender, mask, pose; or Double Take's `undefined`) are
        // ignored, as CompreFace ignores plugins it has not loaded.
        let plugins: Vec<&str> = params
            .text("face_plugins")
            .map(|p| p.split(',').map(str::trim).collect())
            .unwrap_or_default();
        Ok(Self {
            limit,
            det_prob_threshold: params
                .probability("det_prob_threshold")?
                .unwrap_or(DEFAULT_DET_PROB_THRESHOLD),
            scale,
            prediction_count: prediction_count(params)?,
            landmarks: plugins.contains(&"landmarks"),
            embedding: plugins.contains(&"calculator"),
            status: params.flag("status")?,
        })
    }

    /// A face's box and the plugins' outputs.
    fn face(&self, face: &AnalyzedFace, started: Instant) -> Map<String, Value> {
        let b = face.detection.bbox;
        let px = |v: f32| v.round().max(0.0) as i64;
        let mut out = Map::new();
        out.insert(
            "box".into(),
            json!({
                "probability": round5(self.scale.probability(face.detection.score)),
                "x_max": px(b.x2), "y_max": px(b.y2), "x_min": px(b.x1), "y_min": px(b.y1),
            }),
        );
        if self.landmarks {
            let points: Vec<[i64; 2]> = face
                .detection
                .landmarks
                .iter()
                .map(|p| [px(p[0]), px(p[1])])
                .collect();
            out.insert("landmarks".into(), json!(points));
        }
        if self.embedding {
            out.insert("embedding".into(), json!(face.embedding.as_slice()));
        }
        if self.status {
            // One pipeline serves every face: its whole time, not a per-plugin split.
            out.insert(
                "execution_time".into(),
                json!({ "total": started.elapsed().as_millis() as f64 }),
            );
        }
        out
    }

    /// The faces a client asked for (those at or above its detection threshold), each with its box,
    /// the plugins' outputs and what `more` adds. None is CompreFace's "no face" error (code 28),
    /// which clients test for.
    fn result<'a, T>(
        &self,
        faces: impl IntoIterator<Item = (&'a AnalyzedFace, T)>,
        started: Instant,
        more: impl Fn(T, &mut Map<String, Value>),
    ) -> ApiResult<Vec<Value>> {
        let result: Vec<Value> = faces
            .into_iter()
            .filter(|(f, _)| self.scale.probability(f.detection.score) >= self.det_prob_threshold)
            .map(|(face, extra)| {
                let mut out = self.face(face, started);
                more(extra, &mut out);
                Value::Object(out)
            })
            .collect();
        if result.is_empty() {
            return Err(AppError::NoFace.into());
        }
        Ok(result)
    }

    fn answer(&self, caller: &Caller, result: Vec<Value>) -> Json<Value> {
        let mut body = json!({ "result": result });
        if self.status {
            let model = &caller.collection.model;
            body["plugins_versions"] = json!({
                "detector": format!("facerec.{}", model.detector_pack),
                "calculator": format!("facerec.{}", model.recognizer.name),
            });
        }
        Json(body)
    }
}

/// Candidates per face: CompreFace's default is one.
fn prediction_count(params: &Params) -> ApiResult<usize> {
    let count = params.number::<u64>("prediction_count")?.unwrap_or(1);
    Ok(ranges::TOP_K.clamp(Some(count)) as usize)
}

/// The scale comparisons are reported on, where no use case decided: the collection's threshold in
/// force, read once per request.
fn compat_scale(state: &AppState, caller: &Caller) -> Matcher {
    state.app.calibrator().matcher(&caller.collection)
}

fn round5(v: f32) -> f64 {
    (f64::from(v) * 1e5).round() / 1e5
}

fn face_id(text: &str) -> ApiResult<FaceId> {
    text.parse().map_err(|_| face_not_found(text))
}

fn face_not_found(id: &str) -> ApiError {
    ApiError::new(ErrorCode::FaceNotFound, format!("Image {id} not found"))
}

/// Store errors about a face, in CompreFace's words.
fn about_face(id: &str) -> impl Fn(facerec_service::AppError) -> ApiError + '_ {
    move |e| match e {
        AppError::Store(facerec_core::StoreError::FaceNotFound(_)) => face_not_found(id),
        e => e.into(),
    }
}

/// A client's form: multipart, or JSON with base64 images.
pub(crate) struct ClientForm(Form);

impl FromRequest<Arc<AppState>> for ClientForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> ApiResult<Self> {
        Form::read_any(request, state, &FILE_FIELDS, None)
            .await
            .map(ClientForm)
    }
}

/// A call on an image: its options (from the query), its form, and when it arrived (`status`).
pub(crate) struct ImageCall {
    started: Instant,
    options: FaceOptions,
    form: ClientForm,
}

impl FromRequest<Arc<AppState>> for ImageCall {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> ApiResult<Self> {
        let started = Instant::now();
        let params = Params::from_query(request.uri().query());
        let options = FaceOptions::from(&params, state.app.detection_scale())?;
        // The calculator plugin answers raw embeddings.
        if options.embedding {
            let caller = request.extensions().get::<Caller>();
            match caller {
                Some(caller) => access::require(caller, Scope::Embeddings)?,
                None => return Err(AppError::InsufficientScope(Scope::Embeddings).into()),
            }
        }
        let form = ClientForm::from_request(request, state).await?;
        Ok(Self {
            started,
            options,
            form,
        })
    }
}

impl ClientForm {
    fn image(&mut self, name: &str) -> ApiResult<bytes::Bytes> {
        self.0.take_image(name).ok_or_else(|| {
            ApiError::bad_request(format!(
                "the image '{name}' is missing (a multipart file, or base64 in a JSON body)"
            ))
        })
    }
}

#[derive(Deserialize)]
pub(crate) struct SubjectBody {
    subject: String,
}

pub(crate) async fn add_subject(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<SubjectBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let basis = consent_basis(&state)?;
    let person = state
        .app
        .create_named(&body.subject, basis, &caller)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "subject": person.name }))))
}

pub(crate) async fn list_subjects(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "subjects": state.app.persons().person_names(&caller, ).await? }),
    ))
}

/// Renames a subject. CompreFace merges into an existing subject of the new name; facerec refuses
/// (each person's consent is their own), with CompreFace's "already exists".
pub(crate) async fn rename_subject(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
    Json(body): Json<SubjectBody>,
) -> ApiResult<Json<Value>> {
    state
        .app
        .persons()
        .rename(&subject, &body.subject, &caller)
        .await?;
    Ok(Json(json!({ "updated": true })))
}

pub(crate) async fn delete_subject(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(subject): Path<String>,
) -> ApiResult<Json<Value>> {
    state
        .app
        .persons()
        .delete_named(&subject, &caller)
        .await?
        .ok_or_else(|| AppError::NameNotFound(subject.clone()))?;
    Ok(Json(json!({ "subject": subject })))
}

pub(crate) async fn delete_all_subjects(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Value>> {
    let (persons, _) = state.app.persons().delete_all_persons(&caller).await?;
    Ok(Json(json!({ "deleted": persons })))
}

/// Adds a face to a subject, creating the subject when it is new (as CompreFace does).
pub(crate) async fn add_face(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    mut form: ClientForm,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let params = Params::from_query(query.as_deref());
    let subject = params
        .text("subject")
        .ok_or_else(|| ApiError::bad_request("the query parameter 'subject' is missing"))?
        .to_owned();
    let request = registration(&state, &subject, vec![form.image("file")?])?;
    let registered = state.app.register_named(request, &caller).await?;
    let image_id = registered
        .faces
        .first()
        .map(|(face, _)| face.id.to_string());
    Ok((
        StatusCode::CREATED,
        Json(json!({ "image_id": image_id, "subject": registered.person.name })),
    ))
}

pub(crate) async fn list_faces(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::from_query(query.as_deref());
    let page = params.number::<u64>("page")?.unwrap_or(0);
    let size = params.number::<u64>("size")?.unwrap_or(DEFAULT_PAGE_SIZE);
    let size = ranges::PAGE_SIZE.clamp(Some(size)) as usize;
    let offset = page.saturating_mul(size as u64);
    let (faces, total): (Vec<Value>, u64) = match params.text("subject") {
        Some(subject) => {
            let person = state.app.persons().require_named(&caller, subject).await?;
            let faces = state.app.persons().faces(&caller, person.id).await?;
            let total = faces.len() as u64;
            let page = faces
                .into_iter()
                .skip(offset.min(total) as usize)
                .take(size)
                .map(|f| json!({ "image_id": f.id.to_string(), "subject": subject }))
                .collect();
            (page, total)
        }
        None => {
            let found = state
                .app
                .persons()
                .all_faces(&caller, size as u32, offset)
                .await?;
            let page = found
                .items
                .into_iter()
                .map(|f| json!({ "image_id": f.face_id.to_string(), "subject": f.person_name }))
                .collect();
            (page, found.total)
        }
    };
    Ok(Json(json!({
        "faces": faces,
        "page_number": page,
        "page_size": size,
        "total_pages": total.div_ceil(size as u64),
        "total_elements": total,
    })))
}

/// Deletes a subject's faces (and with them the subject, as CompreFace does when its last face
/// goes), or every face when no subject is named.
pub(crate) async fn delete_faces(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let params = Params::from_query(query.as_deref());
    let deleted = match params.text("subject") {
        Some(subject) => state
            .app
            .persons()
            .delete_named(subject, &caller)
            .await?
            .map_or(0, |deleted| deleted.faces_deleted),
        None => state.app.persons().delete_all_persons(&caller).await?.1,
    };
    Ok(Json(json!({ "deleted": deleted })))
}

pub(crate) async fn delete_face(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(image_id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = face_id(&image_id)?;
    Ok(Json(
        deleted_face(&state, id, &caller)
            .await
            .map_err(about_face(&image_id))?,
    ))
}

async fn deleted_face(state: &AppState, id: FaceId, caller: &Caller) -> Result<Value, AppError> {
    let (_, person) = state.app.persons().delete_face_of(id, caller).await?;
    let subject = person.map(|p| p.name).unwrap_or_default();
    Ok(json!({ "image_id": id.to_string(), "subject": subject }))
}

/// Deletes the listed faces; ids that do not exist are ignored, as in CompreFace.
pub(crate) async fn delete_face_list(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Json(ids): Json<Vec<String>>,
) -> ApiResult<Json<Value>> {
    let mut deleted = Vec::new();
    for id in ids.iter().filter_map(|id| id.parse::<FaceId>().ok()) {
        match deleted_face(&state, id, &caller).await {
            Ok(face) => deleted.push(face),
            Err(AppError::Store(facerec_core::StoreError::FaceNotFound(_))) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Value::Array(deleted)))
}

pub(crate) async fn recognize(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    call: ImageCall,
) -> ApiResult<Json<Value>> {
    let ImageCall {
        started,
        options,
        mut form,
    } = call;
    let recognize = RecognizeOptions {
        threshold: None,
        top_k: options.prediction_count,
        max_faces: options.limit,
        capture: facerec_service::CaptureContext::route("compreface"),
        tell: true,
    };
    let result = state
        .app
        .recognize(&caller, form.image("file")?, &recognize)
        .await?;
    let faces = result.faces.iter().map(|f| (&f.face, &f.recognition));
    let result = options.result(faces, started, |recognition, out| {
        let subjects = recognition
            .candidates
            .iter()
            .take(options.prediction_count)
            .map(|c| json!({ "subject": c.name, "similarity": recognition.compat_score(c.similarity) }))
            .collect();
        out.insert("subjects".into(), Value::Array(subjects));
    })?;
    Ok(options.answer(&caller, result))
}

pub(crate) async fn detect(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    call: ImageCall,
) -> ApiResult<Json<Value>> {
    let ImageCall {
        started,
        options,
        mut form,
    } = call;
    let analysis = state
        .app
        .detect(&caller, form.image("file")?, options.limit)
        .await?;
    let result = options.result(analysis.faces.iter().map(|f| (f, ())), started, |(), _| {})?;
    Ok(options.answer(&caller, result))
}

/// The faces of a photo compared with one stored face.
pub(crate) async fn verify_with_face(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(image_id): Path<String>,
    call: ImageCall,
) -> ApiResult<Json<Value>> {
    let ImageCall {
        started,
        options,
        mut form,
    } = call;
    let id = face_id(&image_id)?;
    let compared = state
        .app
        .compare_with_face(form.image("file")?, id, options.limit, &caller)
        .await
        .map_err(about_face(&image_id))?;
    let scale = compat_scale(&state, &caller);
    let result = options.result(compared.iter().map(|(f, s)| (f, *s)), started, |s, out| {
        out.insert("similarity".into(), json!(scale.compat_score(s)));
    })?;
    Ok(options.answer(&caller, result))
}

/// The strongest face of `source_image` compared with every face of `target_image`.
pub(crate) async fn verify(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    call: ImageCall,
) -> ApiResult<Json<Value>> {
    let ImageCall {
        started,
        options,
        mut form,
    } = call;
    let (source, target) = (form.image("source_image")?, form.image("target_image")?);
    let compared = state
        .app
        .verify_faces(&caller, source, target, options.limit)
        .await?;
    let targets = compared.targets.iter().map(|(f, s)| (f, *s));
    let scale = compat_scale(&state, &caller);
    let matches = options.result(targets, started, |s, out| {
        out.insert("similarity".into(), json!(scale.compat_score(s)));
    })?;
    let entry = json!({
        "source_image_face": Value::Object(options.face(&compared.source, started)),
        "face_matches": matches,
    });
    Ok(options.answer(&caller, vec![entry]))
}

#[derive(Deserialize)]
pub(crate) struct EmbeddingsBody {
    embeddings: Vec<Vec<f32>>,
}

pub(crate) async fn recognize_embeddings(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
    Json(body): Json<EmbeddingsBody>,
) -> ApiResult<Json<Value>> {
    let params = Params::from_query(query.as_deref());
    let count = prediction_count(&params)?;
    check_count(body.embeddings.len())?;
    let recognitions = state
        .app
        .recognize_embeddings(&caller, &body.embeddings, count)
        .await?;
    let result: Vec<Value> = body
        .embeddings
        .iter()
        .zip(recognitions)
        .map(|(embedding, recognition)| {
            let similarities: Vec<Value> = recognition
                .candidates
                .iter()
                .take(count)
                .map(|c| json!({ "subject": c.name, "similarity": recognition.compat_score(c.similarity) }))
                .collect();
            json!({ "embedding": embedding, "similarities": similarities })
        })
        .collect();
    Ok(Json(json!({ "result": result })))
}

pub(crate) async fn verify_embeddings_with_face(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(image_id): Path<String>,
    Json(body): Json<EmbeddingsBody>,
) -> ApiResult<Json<Value>> {
    let id = face_id(&image_id)?;
    check_count(body.embeddings.len())?;
    let similarities = state
        .app
        .compare_embeddings_with_face(id, &body.embeddings, &caller)
        .await
        .map_err(about_face(&image_id))?;
    Ok(compared(&state, &caller, body.embeddings, similarities))
}

#[derive(Deserialize)]
pub(crate) struct SourceTargets {
    source: Vec<f32>,
    targets: Vec<Vec<f32>>,
}

pub(crate) async fn verify_embeddings(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<SourceTargets>,
) -> ApiResult<Json<Value>> {
    check_count(body.targets.len())?;
    let similarities = state.app.compare_embeddings(&body.source, &body.targets)?;
    Ok(compared(&state, &caller, body.targets, similarities))
}

/// Each embedding with its similarity, as CompreFace answers them.
fn compared(
    state: &AppState,
    caller: &Caller,
    targets: Vec<Vec<f32>>,
    similarities: Vec<Similarity>,
) -> Json<Value> {
    let scale = compat_scale(state, caller);
    let result: Vec<Value> = targets
        .into_iter()
        .zip(similarities)
        .map(|(target, s)| json!({ "embedding": target, "similarity": scale.compat_score(s) }))
        .collect();
    Json(json!({ "result": result }))
}

/// Embeddings per request: as many as faces per photo.
fn check_count(n: usize) -> ApiResult<()> {
    ranges::MAX_FACES
        .check("embeddings", Some(n as u64))
        .map(|_| ())
        .map_err(|e| ApiError::bad_request(e.to_string()))
}
