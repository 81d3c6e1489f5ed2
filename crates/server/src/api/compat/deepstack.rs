//! DeepStack's face API, as Double Take (`api/src/util/detectors/deepstack.js`), Home Assistant's
//! DeepStack face component and `deepstack-python` 0.9 call it: forms with an `image` (or
//! `image1`, `image2`, …) file, a `userid`, `min_confidence`, and the key as the `api_key` form
//! field. Confidences are [`facerec_core::Matcher::compat_score`]s.
//!
//! Unlike DeepStack, `register` adds faces to a person and never throws earlier ones away.

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use bytes::Bytes;
use facerec_core::{Caller, Matcher};
use facerec_service::{ranges, RecognizeOptions};
use facerec_vision::AnalyzedFace;
use serde_json::{json, Map, Value};

use super::registration;
use crate::api::admission::PREAUTH_READ_DEADLINE;
use crate::api::auth::{authorize, client_ip, key_only_in_body, RouteScope};
use crate::api::error::{ApiError, ErrorInfo};
use crate::api::form::Form;
use crate::api::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// Fields that carry images even without a file name: DeepStack's `image`, and numbered ones for
/// `register` and `match`.
const FILE_FIELDS: [&str; 11] = [
    "image", "image1", "image2", "image3", "image4", "image5", "image6", "image7", "image8",
    "image9", "image10",
];

/// Images one request may carry (as many as `image`, `image1`…`image10`): any part naming a file
/// is one, beside the named fields above (DeepStack's own server takes every file of the form, so
/// clients name their fields freely).
pub const MAX_IMAGES: usize = 11;

/// DeepStack's own default `min_confidence` for face recognition.
const DEFAULT_MIN_CONFIDENCE: f32 = 0.67;

/// An error as DeepStack answers it: `{"success": false, "error"}`, with the status the code table
/// gives DeepStack's clients (it has no 415 or 422: a bad image or no usable face is a 400).
pub fn error_body(status: StatusCode, info: &ErrorInfo) -> (StatusCode, Value) {
    let status = super::client_status(status, info.code, info.code.deepstack_status());
    (
        status,
        json!({ "success": false, "error": info.message, "facerec_code": info.code.as_str() }),
    )
}

/// A DeepStack request: its form (multipart or URL-encoded), and who sent it. The key is read from
/// the `api_key` field when no key header is sent, so this authenticates after reading the form
/// (whose size the router bounds like any other).
pub(crate) struct DeepStackForm {
    form: Form,
    caller: Caller,
}

impl FromRequest<Arc<AppState>> for DeepStackForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &Arc<AppState>) -> ApiResult<Self> {
        let RouteScope(scope) = *request
            .extensions()
            .get::<RouteScope>()
            .expect("every DeepStack route declares its scope (router::keyed_routes)");
        // A key in a header (or no keys configured) is checked before the body is read.
        if !key_only_in_body(state, request.headers()).await {
            let client = client_ip(request.extensions());
            let caller = authorize(state, request.headers(), client, scope).await?;
            let form = Form::read_any(request, state, &FILE_FIELDS, Some(MAX_IMAGES)).await?;
            return Ok(Self { form, caller });
        }
        let mut headers: HeaderMap = request.headers().clone();
        let client = client_ip(request.extensions());
        // Unauthenticated until the form is read: within a deadline of its own.
        let form = tokio::time::timeout(
            PREAUTH_READ_DEADLINE,
            Form::read_any(request, state, &FILE_FIELDS, Some(MAX_IMAGES)),
        )
        .await
        .map_err(|_| {
            ApiError::bad_request(format!(
                "the form did not arrive within {} s (a key sent as a header has no such deadline)",
                PREAUTH_READ_DEADLINE.as_secs()
            ))
        })??;
        if let Some(key) = form
            .text("api_key")
            .and_then(|k| HeaderValue::from_str(k).ok())
        {
            headers.insert("x-api-key", key);
        }
        let caller = authorize(state, &headers, client, scope).await?;
        Ok(Self { form, caller })
    }
}

impl DeepStackForm {
    fn image(&mut self, name: &str) -> ApiResult<Bytes> {
        self.form
            .take_image(name)
            .ok_or_else(|| ApiError::bad_request(format!("No valid image file in field '{name}'")))
    }

    fn min_confidence(&self, default: f32) -> ApiResult<f32> {
        match self.form.parse::<f32>("min_confidence")? {
            Some(c) if !(0.0..=1.0).contains(&c) => Err(ApiError::bad_request(format!(
                "'min_confidence' must be between 0 and 1, not {c}"
            ))),
            c => Ok(c.unwrap_or(default)),
        }
    }

    fn userid(&self) -> ApiResult<String> {
        self.form
            .text("userid")
            .map(|u| u.trim().to_owned())
            .ok_or_else(|| ApiError::bad_request("userid not specified"))
    }
}

/// A face's box as DeepStack reports it (whole pixels).
fn with_box(face: &AnalyzedFace, mut out: Map<String, Value>) -> Value {
    let b = face.detection.bbox;
    let px = |v: f32| v.round().max(0.0) as i64;
    out.insert("x_min".into(), json!(px(b.x1)));
    out.insert("y_min".into(), json!(px(b.y1)));
    out.insert("x_max".into(), json!(px(b.x2)));
    out.insert("y_max".into(), json!(px(b.y2)));
    Value::Object(out)
}

/// Every face with the best person's name when its confidence reaches `min_confidence`, else
/// `unknown`. No face is a success with no predictions.
pub(crate) async fn recognize(
    State(state): State<Arc<AppState>>,
    mut request: DeepStackForm,
) -> ApiResult<Json<Value>> {
    let min_confidence = request.min_confidence(DEFAULT_MIN_CONFIDENCE)?;
    let options = RecognizeOptions {
        top_k: 1,
        capture: facerec_service::CaptureContext::route("deepstack"),
        ..RecognizeOptions::default()
    };
    let image = request.image("image")?;
    let result = state
        .app
        .recognize(&request.caller, image, &options)
        .await?;
    let predictions: Vec<Value> = result
        .faces
        .iter()
        .map(|f| {
            let best = f.recognition.best();
            let confidence = best.map_or(0.0, |c| f.recognition.compat_score(c.similarity));
            let userid = match best {
                Some(c) if confidence >= min_confidence => c.name.as_str(),
                _ => "unknown",
            };
            let mut out = Map::new();
            out.insert("confidence".into(), json!(confidence));
            out.insert("userid".into(), json!(userid));
            with_box(&f.face, out)
        })
        .collect();
    Ok(Json(json!({ "success": true, "predictions": predictions })))
}

/// Faces with their detection confidence (on `DetectionScale`, as CompreFace's probability), at or
/// above `min_confidence` when one is sent.
pub(crate) async fn detect(
    State(state): State<Arc<AppState>>,
    mut request: DeepStackForm,
) -> ApiResult<Json<Value>> {
    let min_confidence = request.min_confidence(0.0)?;
    let image = request.image("image")?;
    let analysis = state
        .app
        .detect(&request.caller, image, ranges::MAX_FACES.max as usize)
        .await?;
    let scale = state.app.detection_scale();
    let predictions: Vec<Value> = analysis
        .faces
        .iter()
        .map(|f| (f, scale.probability(f.detection.score)))
        .filter(|(_, confidence)| *confidence >= min_confidence)
        .map(|(f, confidence)| {
            let mut out = Map::new();
            out.insert("confidence".into(), json!(confidence));
            with_box(f, out)
        })
        .collect();
    Ok(Json(json!({ "success": true, "predictions": predictions })))
}

/// Adds the face of every image sent to the person `userid`, creating them when new: all of them
/// or, when one cannot be used, none.
pub(crate) async fn register(
    State(state): State<Arc<AppState>>,
    mut request: DeepStackForm,
) -> ApiResult<Json<Value>> {
    let userid = request.userid()?;
    let images: Vec<Bytes> = request
        .form
        .take_images()
        .into_iter()
        .map(|(_, i)| i)
        .collect();
    if images.is_empty() {
        return Err(ApiError::bad_request("No valid image file"));
    }
    let registration = registration(&state, &userid, images)?;
    state
        .app
        .register_named(registration, &request.caller)
        .await?;
    Ok(Json(json!({ "success": true, "message": "face added" })))
}

pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    request: DeepStackForm,
) -> ApiResult<Json<Value>> {
    let names = state.app.persons().person_names(&request.caller).await?;
    Ok(Json(json!({ "success": true, "faces": names })))
}

/// Deletes the person `userid` and every face of theirs; an unknown userid is a success, as in
/// DeepStack.
pub(crate) async fn delete(
    State(state): State<Arc<AppState>>,
    request: DeepStackForm,
) -> ApiResult<Json<Value>> {
    let userid = request.userid()?;
    state
        .app
        .persons()
        .delete_named(&userid, &request.caller)
        .await?;
    Ok(Json(json!({ "success": true })))
}

/// 1:1: the largest face of `image1` against the largest of `image2`.
pub(crate) async fn match_faces(
    State(state): State<Arc<AppState>>,
    mut request: DeepStackForm,
) -> ApiResult<Json<Value>> {
    let (first, second) = (request.image("image1")?, request.image("image2")?);
    let verdict = state
        .app
        .verify_images(&request.caller, first, second, None)
        .await?;
    Ok(Json(json!({
        "success": true,
        "similarity": Matcher::new(verdict.threshold).compat_score(verdict.similarity),
    })))
}
