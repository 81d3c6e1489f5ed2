//! Drop-in APIs for the clients of other face services, so that their users change a URL and keep
//! everything else: CompreFace's (`/api/v1/…`, used by Double Take and the CompreFace SDKs) and
//! DeepStack's face API (`/v1/vision/face…`, used by Double Take, Home Assistant and
//! `deepstack-python`).
//!
//! Each route translates the client's request into the same use cases as `/v1` and the answer into
//! the client's shapes; the limits, keys, origin and host checks, metrics and audit log are the
//! router's, shared with `/v1`. Handlers fail with [`ApiError`]s like every other handler, and
//! [`dialect`] answers them once, in each client's error format. Similarities are reported on the
//! scale of [`facerec_core::Matcher::compat_score`], so that clients' own cut-offs decide as the
//! server's threshold does.

pub mod compreface;
pub mod deepstack;

use std::collections::HashMap;

use axum::extract::Request;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use facerec_core::ErrorCode;
use facerec_service::{FacePick, NamedRegistration};

use super::error::{ApiError, ErrorInfo};
use super::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// Where the compatible APIs live, for the error [`dialect`].
const COMPREFACE_PREFIX: &str = "/api/v1/";
const DEEPSTACK_PREFIX: &str = "/v1/vision/";

/// What the consent refusal says, in either client's format.
const CONSENT_REFUSAL: &str = "facerec refuses to register faces through this API until the \
    operator states how consent is collected: start it with --compat-consent-basis \"…\" \
    (FACEREC_COMPAT_CONSENT_BASIS); that statement is recorded on every person registered this way";

/// The consent statement to record on persons created through a compatible API, or the refusal.
fn consent_basis(state: &AppState) -> Result<String, ApiError> {
    state
        .compat_consent_basis
        .clone()
        .ok_or_else(|| ApiError::new(ErrorCode::ConsentRequired, CONSENT_REFUSAL))
}

/// Photos of the person a client names (CompreFace's subject, DeepStack's userid), to add to them
/// or to register them with, recorded with the operator's consent statement.
fn registration(state: &AppState, name: &str, images: Vec<Bytes>) -> ApiResult<NamedRegistration> {
    Ok(NamedRegistration {
        name: name.to_owned(),
        images,
        consent_basis: consent_basis(state)?,
        metadata: serde_json::json!({}),
        pick: FacePick::Only,
    })
}

/// Query parameters as clients send them: unknown ones ignored, empty pairs (the CompreFace SDK's
/// `?&limit=0`) skipped, the last of repeated ones kept.
#[derive(Debug, Default)]
struct Params(HashMap<String, String>);

impl Params {
    fn from_query(query: Option<&str>) -> Self {
        Self(
            form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        self.text(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    ApiError::bad_request(format!("'{name}' has an invalid value '{v}'"))
                })
            })
            .transpose()
    }

    /// `true`/`false` in any case (Python clients send `True`).
    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ApiError::bad_request(format!(
                "'{name}' must be true or false, not '{v}'"
            ))),
        }
    }

    /// A probability in [0, 1].
    fn probability(&self, name: &str) -> Result<Option<f32>, ApiError> {
        match self.number::<f32>(name)? {
            Some(p) if !(0.0..=1.0).contains(&p) => Err(ApiError::bad_request(format!(
                "'{name}' must be between 0.0 and 1.0, not {p}"
            ))),
            p => Ok(p),
        }
    }
}

/// Answers every error of a compatible route in its client's format: `{"message", "code"}` with
/// CompreFace's numeric codes and statuses, or DeepStack's `{"success": false, "error"}`. Runs
/// outermost, so the access guard's, the body limit's and the timeout's refusals are translated
/// too. facerec's own code stays in `facerec_code`.
pub async fn dialect(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let dialect = if path.starts_with(COMPREFACE_PREFIX) {
        Dialect::CompreFace(compreface::Service::of_path(path))
    } else if path.starts_with(DEEPSTACK_PREFIX) {
        Dialect::DeepStack
    } else {
        return next.run(request).await;
    };
    let response = next.run(request).await;
    let Some(info) = response.extensions().get::<ErrorInfo>().cloned() else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    let (status, body) = match dialect {
        Dialect::CompreFace(service) => compreface::error_body(parts.status, &info, service),
        Dialect::DeepStack => deepstack::error_body(parts.status, &info),
    };
    // The error's other headers (Retry-After, the request id) stay; the body is the dialect's.
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// The status a compatible client receives: the code table's where it translates the code's
/// status, else the answer's own (one of axum's rejections keeps its status), except that neither
/// client knows 415 or 422 (a request it could not use is a 400 there).
fn client_status(answered: StatusCode, code: ErrorCode, client: u16) -> StatusCode {
    if client != code.status() {
        return StatusCode::from_u16(client).unwrap_or(answered);
    }
    match answered {
        StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY => {
            StatusCode::BAD_REQUEST
        }
        s => s,
    }
}

enum Dialect {
    CompreFace(compreface::Service),
    DeepStack,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_skip_empty_pairs_and_read_python_booleans() {
        let p = Params::from_query(Some("&limit=0&&status=True&face_plugins=undefined&x="));
        assert_eq!(p.number::<u32>("limit").unwrap(), Some(0));
        assert!(p.flag("status").unwrap());
        assert_eq!(p.text("x"), None);
        assert!(p.flag("face_plugins").is_err());
        assert!(Params::from_query(Some("det_prob_threshold=1.5"))
            .probability("det_prob_threshold")
            .is_err());
    }
}
