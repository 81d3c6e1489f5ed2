//! Captured faces and clusters of strangers: thin handlers over `facerec_service::captures`.
//! Which key may call them is the route table's (scope `manage`).

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use facerec_core::capture::{Capture, CaptureFilter, CaptureStatus, Cluster, Neighbour, Source};
use facerec_core::{Caller, CaptureId, ClusterId, PersonId};
use facerec_service::captures::MAX_LIST;
use facerec_service::{ranges, NameTarget, Named};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::dto::PersonDto;
use super::error::{body, path_id as id, ApiError, Body, ErrorBody};
use super::form::Form;
use super::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

/// A page's size: `ranges::PAGE_SIZE` (1 to 500, 50 by default).
fn limit(value: Option<u32>) -> ApiResult<u32> {
    Ok(ranges::PAGE_SIZE.check("limit", value.map(u64::from))? as u32)
}

fn source(text: Option<&str>) -> ApiResult<Option<Source>> {
    text.map(|s| Source::new(s).map_err(ApiError::bad_request))
        .transpose()
}

/// A captured face, without its embedding or chip (`GET /v1/captures/{id}/image`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CaptureDto {
    /// The capture's id (UUID).
    pub id: Uuid,
    /// `known` (named for a person), `unknown` (in a cluster), or `rejected` (a reviewer said "not
    /// this person": in a cluster, and held against that person).
    #[schema(value_type = String, example = "unknown")]
    pub status: CaptureStatus,
    /// Whom it is named for (`known`).
    pub person_id: Option<Uuid>,
    /// Whom a reviewer said it is not (`rejected`).
    pub rejected_person_id: Option<Uuid>,
    /// Its cluster of strangers (`unknown`, `rejected`).
    pub cluster_id: Option<Uuid>,
    /// The similarity of the best candidate when it was recognized.
    pub similarity: Option<f32>,
    /// The threshold it was decided at.
    pub threshold: f32,
    /// With a match: the share of strangers the calibration expected to be named at this
    /// similarity.
    pub estimated_fpir: Option<f64>,
    /// The camera or client it came from.
    #[schema(value_type = String, example = "front-door")]
    pub source: Source,
    /// The route that recognized it.
    pub route: String,
    /// When it was first seen (RFC 3339).
    pub first_seen: DateTime<Utc>,
    /// When it was last seen (RFC 3339): sightings of the same face from the same source within
    /// a minute update one capture.
    pub seen_at: DateTime<Utc>,
    /// How many sightings it stands for.
    pub sightings: u32,
    /// The detector's confidence in [0, 1].
    pub det_score: f32,
    /// `[x1, y1, x2, y2]` in the recognized photo's pixels.
    pub bbox: [f32; 4],
    /// Whether its chip can be fetched (a capture named for a person keeps none).
    pub has_image: bool,
}

impl From<Capture> for CaptureDto {
    fn from(c: Capture) -> Self {
        Self {
            id: c.id.0,
            status: c.status,
            person_id: c.person_id.map(|p| p.0),
            rejected_person_id: c.rejected_person_id.map(|p| p.0),
            cluster_id: c.cluster_id.map(|p| p.0),
            similarity: c.similarity,
            threshold: c.threshold,
            estimated_fpir: c.estimated_fpir,
            source: c.source,
            route: c.route,
            first_seen: c.first_seen,
            seen_at: c.seen_at,
            sightings: c.sightings,
            det_score: c.det_score,
            bbox: c.bbox.to_array(),
            has_image: c.has_chip,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CapturesPage {
    /// Newest first.
    pub items: Vec<CaptureDto>,
    /// Pass as `before` for the next page; null on the last.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CapturesQuery {
    /// `known`, `unknown` or `rejected`.
    status: Option<String>,
    /// Only from this source.
    source: Option<String>,
    /// Only in this cluster.
    cluster_id: Option<Uuid>,
    /// Only named for (or rejected for) this person.
    person_id: Option<Uuid>,
    /// Only seen at or after this time (RFC 3339; `+` written `%2B`).
    since: Option<DateTime<Utc>>,
    /// 1 to 500 (default 50).
    limit: Option<u32>,
    /// Only captures older than this one (the previous page's `next_before`).
    before: Option<Uuid>,
}

/// List captured faces (newest first; by status, source, cluster, person, time).
#[utoipa::path(get, path = "/v1/captures", tag = "captures", params(CapturesQuery),
    responses((status = 200, body = CapturesPage), (status = 400, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_captures(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<CapturesQuery>,
) -> ApiResult<Json<CapturesPage>> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            CaptureStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status must be known, unknown or rejected, not '{s}'"
                ))
            })
        })
        .transpose()?;
    let filter = CaptureFilter {
        status,
        source: source(q.source.as_deref())?,
        cluster: q.cluster_id.map(ClusterId),
        person: q.person_id.map(PersonId),
        since: q.since,
        before: q.before.map(CaptureId),
        limit: limit(q.limit)?,
    };
    let items = state.app.review().list(&caller, &filter).await?;
    let next_before = (items.len() == filter.limit as usize)
        .then(|| items.last().map(|c| c.id.0))
        .flatten();
    Ok(Json(CapturesPage {
        items: items.into_iter().map(Into::into).collect(),
        next_before,
    }))
}

/// Read a captured face.
#[utoipa::path(get, path = "/v1/captures/{id}", tag = "captures",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CaptureDto), (status = 404, description = "capture_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_capture(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(capture): Path<String>,
) -> ApiResult<Json<CaptureDto>> {
    let capture = state
        .app
        .review()
        .get(&caller, id("capture", &capture)?)
        .await?;
    Ok(Json(capture.into()))
}

/// The captured face's chip: the aligned 112×112 face, JPEG (never the photo).
#[utoipa::path(get, path = "/v1/captures/{id}/image", tag = "captures",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The chip", content_type = "image/jpeg", body = Vec<u8>),
              (status = 404, description = "capture_not_found", body = ErrorBody),
              (status = 409, description = "capture_conflict: its chip is gone (named for a person)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn capture_image(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(capture): Path<String>,
) -> ApiResult<Response> {
    let chip = state
        .app
        .review()
        .chip(&caller, id("capture", &capture)?)
        .await?;
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
        // A face: no cache keeps it beyond its retention.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    Ok((headers, chip.0).into_response())
}

/// Delete a captured face for good.
#[utoipa::path(delete, path = "/v1/captures/{id}", tag = "captures",
    params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 404, description = "capture_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_capture(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(capture): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .app
        .review()
        .delete(&caller, id("capture", &capture)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignDto {
    /// The captures to name for the person (1 to 500).
    pub capture_ids: Vec<Uuid>,
    /// The registered person they show.
    pub person_id: Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignedDto {
    pub person: PersonDto,
    /// The captures as they are now (`known`, no chip).
    pub captures: Vec<CaptureDto>,
    /// Faces the person was given from them: those good enough to enroll (the enrollment quality
    /// policy), a cluster's best five at most.
    pub faces_added: usize,
}

impl From<facerec_core::capture::Assigned> for AssignedDto {
    fn from(a: facerec_core::capture::Assigned) -> Self {
        Self {
            person: a.person.into(),
            captures: a.captures.into_iter().map(Into::into).collect(),
            faces_added: a.faces_added,
        }
    }
}

/// Name captured faces for a registered person (training from captured faces, in bulk).
#[utoipa::path(post, path = "/v1/captures/assign", tag = "captures",
    request_body = AssignDto,
    responses((status = 200, body = AssignedDto), (status = 404, description = "capture_not_found or person_not_found", body = ErrorBody),
              (status = 409, description = "capture_conflict: a capture already named for a person", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn assign_captures(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    assign: Body<AssignDto>,
) -> ApiResult<Json<AssignedDto>> {
    let assign = body(assign)?;
    if assign.capture_ids.is_empty() || assign.capture_ids.len() > MAX_LIST as usize {
        return Err(ApiError::bad_request(format!(
            "capture_ids must name 1 to {MAX_LIST} captures"
        )));
    }
    let ids = assign.capture_ids.into_iter().map(CaptureId).collect();
    let assigned = state
        .app
        .name_captures(
            &caller,
            Named::Captures(ids),
            NameTarget::Existing(PersonId(assign.person_id)),
        )
        .await?;
    Ok(Json(assigned.into()))
}

/// Not this person: the capture becomes unknown (in a cluster), and while it is held a face
/// closer to it than to that person's own faces is not named them.
#[utoipa::path(post, path = "/v1/captures/{id}/reject", tag = "captures",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = CaptureDto), (status = 404, description = "capture_not_found", body = ErrorBody),
              (status = 409, description = "capture_conflict: the capture names nobody", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reject_capture(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(capture): Path<String>,
) -> ApiResult<Json<CaptureDto>> {
    let capture = state
        .app
        .reject_capture(&caller, id("capture", &capture)?)
        .await?;
    Ok(Json(capture.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FoundCaptureDto {
    pub capture: CaptureDto,
    /// Its similarity with the face searched for.
    pub similarity: f32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FoundCaptures {
    /// Most similar first.
    pub items: Vec<FoundCaptureDto>,
}

fn found(near: Vec<Neighbour>) -> Json<FoundCaptures> {
    Json(FoundCaptures {
        items: near
            .into_iter()
            .map(|n| FoundCaptureDto {
                similarity: n.similarity.value(),
                capture: n.capture.into(),
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchByPersonDto {
    /// The registered person to look for (any of their faces).
    pub person_id: Uuid,
    /// Only seen at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only from this source.
    pub source: Option<String>,
    /// 1 to 500 (default 50).
    pub limit: Option<u32>,
}

/// Search back in time: when and where a face (a photo's largest, multipart `image`; or a
/// person's, JSON `{"person_id"}`) was seen, within what is held. Audited.
#[utoipa::path(post, path = "/v1/captures/search", tag = "captures",
    request_body(content = SearchByPersonDto, description = "JSON `{person_id}`, or multipart/form-data with `image` (and `since`, `source`, `limit` fields)"),
    responses((status = 200, body = FoundCaptures), (status = 404, description = "person_not_found", body = ErrorBody),
              (status = 422, description = "no_face in the photo", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn search_captures(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> ApiResult<Json<FoundCaptures>> {
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim_start().starts_with("application/json"));
    if is_json {
        let by = <Json<SearchByPersonDto> as axum::extract::FromRequest<_>>::from_request(
            request, &state,
        )
        .await;
        let by = body(by)?;
        let near = state
            .app
            .search_captures_of_person(
                &caller,
                PersonId(by.person_id),
                by.since,
                source(by.source.as_deref())?.as_ref(),
                limit(by.limit)?,
            )
            .await?;
        return Ok(found(near));
    }
    let mut form = <Form as axum::extract::FromRequest<_>>::from_request(request, &state).await?;
    let since = form.parse::<DateTime<Utc>>("since")?;
    let from = source(form.text("source"))?;
    let n = limit(form.parse("limit")?)?;
    let near = state
        .app
        .search_captures_by_photo(&caller, form.image("image")?, since, from.as_ref(), n)
        .await?;
    Ok(found(near))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterDto {
    /// The cluster's id; a cluster merged into this one answers to its old id too.
    pub id: Uuid,
    /// Its captures.
    pub count: u64,
    /// Its sightings.
    pub seen: u64,
    /// When it was first seen (RFC 3339).
    pub first_seen: DateTime<Utc>,
    /// When it was last seen (RFC 3339).
    pub last_seen: DateTime<Utc>,
    /// The sources it was seen from.
    #[schema(value_type = Vec<String>)]
    pub sources: Vec<Source>,
    /// Its best captures first (by detection score), at most 12: their chips show who it is.
    pub capture_ids: Vec<Uuid>,
}

impl From<Cluster> for ClusterDto {
    fn from(c: Cluster) -> Self {
        Self {
            id: c.id.0,
            count: c.count,
            seen: c.seen,
            first_seen: c.first_seen,
            last_seen: c.last_seen,
            sources: c.sources,
            capture_ids: c.capture_ids.into_iter().map(|id| id.0).collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClustersList {
    /// The largest first, then the most recently seen.
    pub items: Vec<ClusterDto>,
    /// The `offset` of the next page, when there is one.
    pub next_offset: Option<u32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClustersQuery {
    /// 1 to 500 (default 50).
    limit: Option<u32>,
    /// Clusters to pass over: a previous page's `next_offset` (0 to 100,000; default 0).
    offset: Option<u32>,
}

/// Clusters are at most as many as a collection's captures.
const MAX_CLUSTER_OFFSET: u32 = facerec_core::capture::MAX_MAX_CAPTURES;

/// List the clusters of strangers (unknown faces grouped by likeness), a page at a time.
#[utoipa::path(get, path = "/v1/clusters", tag = "captures", params(ClustersQuery),
    responses((status = 200, body = ClustersList)), security(("bearer" = [])))]
pub async fn list_clusters(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<ClustersQuery>,
) -> ApiResult<Json<ClustersList>> {
    let offset = q.offset.unwrap_or(0);
    if offset > MAX_CLUSTER_OFFSET {
        return Err(ApiError::bad_request(format!(
            "offset must be at most {MAX_CLUSTER_OFFSET}"
        )));
    }
    let (clusters, next_offset) = state
        .app
        .review()
        .clusters(&caller, limit(q.limit)?, offset)
        .await?;
    Ok(Json(ClustersList {
        items: clusters.into_iter().map(Into::into).collect(),
        next_offset,
    }))
}

/// Read a cluster (by its id, or the id of a cluster merged into it).
#[utoipa::path(get, path = "/v1/clusters/{id}", tag = "captures",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = ClusterDto), (status = 404, description = "cluster_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_cluster(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(cluster): Path<String>,
) -> ApiResult<Json<ClusterDto>> {
    let cluster = state
        .app
        .review()
        .cluster(&caller, id("cluster", &cluster)?)
        .await?;
    Ok(Json(cluster.into()))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedClusterDto {
    /// Captures deleted with it.
    pub captures_deleted: u64,
}

/// Delete a cluster and its captures for good.
#[utoipa::path(delete, path = "/v1/clusters/{id}", tag = "captures",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = DeletedClusterDto), (status = 404, description = "cluster_not_found", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_cluster(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(cluster): Path<String>,
) -> ApiResult<Json<DeletedClusterDto>> {
    let captures_deleted = state
        .app
        .review()
        .delete_cluster(&caller, id("cluster", &cluster)?)
        .await?;
    Ok(Json(DeletedClusterDto { captures_deleted }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameClusterDto {
    /// A new person's name (with `consent` and `consent_basis`)…
    pub name: Option<String>,
    /// …or a registered person's id.
    pub person_id: Option<Uuid>,
    /// A new person: the reviewer's statement that this person consented to be registered.
    #[serde(default)]
    pub consent: bool,
    /// A new person: how the consent was obtained.
    pub consent_basis: Option<String>,
}

/// Name a cluster: a new person (consent attested as on `/v1/register`) or a registered one gets
/// its captures, and its best (at most 5, good enough to enroll) as faces; the chips are deleted.
#[utoipa::path(post, path = "/v1/clusters/{id}/name", tag = "captures",
    params(("id" = Uuid, Path)), request_body = NameClusterDto,
    responses((status = 201, body = AssignedDto), (status = 404, description = "cluster_not_found or person_not_found", body = ErrorBody),
              (status = 422, description = "consent_required, invalid_person (none good enough to enroll)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn name_cluster(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(cluster): Path<String>,
    name: Body<NameClusterDto>,
) -> ApiResult<(StatusCode, Json<AssignedDto>)> {
    let cluster: ClusterId = id("cluster", &cluster)?;
    let NameClusterDto {
        name,
        person_id,
        consent,
        consent_basis,
    } = body(name)?;
    let who = match (name, person_id) {
        (Some(name), None) => NameTarget::New {
            name,
            consent,
            consent_basis,
        },
        (None, Some(person)) => NameTarget::Existing(PersonId(person)),
        _ => {
            return Err(ApiError::bad_request(
                "give 'name' for a new person, or 'person_id' for a registered one",
            ))
        }
    };
    let assigned = state
        .app
        .name_captures(&caller, Named::Cluster(cluster), who)
        .await?;
    Ok((StatusCode::CREATED, Json(assigned.into())))
}
