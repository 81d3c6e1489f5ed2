//! Collections, keys and the audit log: thin handlers over `facerec_service::access` and the
//! store's audit log. Which key may call which is the route table's (`router::keyed_routes`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use facerec_core::{
    ApiKey, AuditFilter, Caller, Collection, CollectionPatch, CollectionRef, CollectionSettings,
    KeyId, PersonId, Scopes,
};
use facerec_service::access::AuditOf;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::dto::AuditEventDto;
use super::error::{body, ApiError, Body, ErrorBody};
use super::state::AppState;

type ApiResult<T> = Result<T, ApiError>;

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionDto {
    /// The collection's id (UUID).
    pub id: Uuid,
    /// 1 to 64 of a-z, 0-9, '-' and '_'; unique.
    pub name: String,
    /// The models it is bound to since it was created: its faces are embedded by this pack's
    /// recognizer only, and compared with no other's.
    pub model_pack: ModelPackDto,
    /// What the collection sets for itself (`match_threshold`, `target_fpir`, `retention_days`,
    /// `max_streams`, `capture`, `capture_retention_hours`, `capture_max`, `detection_size`); an
    /// unset one is the server's.
    #[schema(value_type = Object)]
    pub settings: CollectionSettings,
    /// When it was created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// When it was last changed (RFC 3339).
    pub updated_at: DateTime<Utc>,
}

/// A collection's model pack.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelPackDto {
    /// The pack whose recognizer embeds its faces.
    pub name: String,
    /// That recognizer's name (`<pack>/<file stem>`).
    pub recognizer: String,
    /// That recognizer's file's sha256: the collection is served only where it is loaded.
    pub recognizer_sha256: String,
    /// The pack whose detector finds its faces (by default the same).
    pub detector_pack: String,
    /// That detector's file's sha256 when the collection was created.
    pub detector_sha256: String,
}

impl From<&Collection> for CollectionDto {
    fn from(c: &Collection) -> Self {
        Self {
            id: c.id.0,
            name: c.name.clone(),
            model_pack: ModelPackDto {
                name: c.model.pack.clone(),
                recognizer: c.model.recognizer.name.clone(),
                recognizer_sha256: c.model.recognizer.sha256.clone(),
                detector_pack: c.model.detector_pack.clone(),
                detector_sha256: c.model.detector_sha256.clone(),
            },
            settings: c.settings,
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCollectionDto {
    /// 1 to 64 of a-z, 0-9, '-' and '_'.
    pub name: String,
    /// The model pack whose recognizer embeds its faces, for good (`GET /ready` lists those
    /// loaded); default: the server's default pack. Moving to another pack later means enrolling
    /// its persons again in a new collection.
    #[serde(default)]
    pub model_pack: Option<String>,
    /// The pack whose detector finds its faces; default: `model_pack`'s.
    #[serde(default)]
    pub detector_pack: Option<String>,
    /// `match_threshold` (0–1), `target_fpir` (0–1), `retention_days` (1–36,500), `max_streams`,
    /// `capture`, `capture_retention_hours`, `capture_max`, `detection_size` (a multiple of 32
    /// within 160–1920; default `--det-size`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<CollectionSettings>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionPatchDto {
    /// A new name: 1 to 64 of a-z, 0-9, '-' and '_' (`default` keeps its name).
    pub name: Option<String>,
    /// Replaces every setting (an unset one goes back to the server's).
    #[schema(value_type = Option<Object>)]
    pub settings: Option<CollectionSettings>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionsList {
    /// Every collection, oldest first.
    pub items: Vec<CollectionDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedCollectionDto {
    pub collection: CollectionDto,
    /// Persons deleted with it.
    pub persons_deleted: u64,
    /// Faces deleted with it.
    pub faces_deleted: u64,
    /// API keys deleted with it.
    pub keys_deleted: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeDto {
    /// Who the audit log names for this key.
    pub actor: String,
    /// The key's id, for a key kept in the database.
    pub key_id: Option<Uuid>,
    pub collection: CollectionDto,
    #[schema(value_type = Vec<String>)]
    pub scopes: Scopes,
}

/// What the key is: its collection and scopes.
#[utoipa::path(get, path = "/v1/me", tag = "collections",
    responses((status = 200, description = "The key's collection and scopes", body = MeDto)),
    security(("bearer" = [])))]
pub async fn me(Extension(caller): Extension<Caller>) -> Json<MeDto> {
    Json(MeDto {
        actor: caller.actor.0.clone(),
        key_id: caller.key.map(|k| k.0),
        collection: (&*caller.collection).into(),
        scopes: caller.scopes,
    })
}

/// Create a collection.
#[utoipa::path(post, path = "/v1/collections", tag = "collections", request_body = NewCollectionDto,
    responses((status = 201, body = CollectionDto), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_collection(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    new: Body<NewCollectionDto>,
) -> ApiResult<(StatusCode, Json<CollectionDto>)> {
    let new = body(new)?;
    let created = state
        .app
        .create_collection(
            new.name,
            new.model_pack.as_deref(),
            new.detector_pack.as_deref(),
            new.settings.unwrap_or_default(),
            &caller,
        )
        .await?;
    Ok((StatusCode::CREATED, Json((&created).into())))
}

/// List the collections.
#[utoipa::path(get, path = "/v1/collections", tag = "collections",
    responses((status = 200, body = CollectionsList)), security(("bearer" = [])))]
pub async fn list_collections(
    State(state): State<Arc<AppState>>,
) -> ApiResult<Json<CollectionsList>> {
    let items = state.app.access().collections().await?;
    Ok(Json(CollectionsList {
        items: items.iter().map(Into::into).collect(),
    }))
}

/// Read a collection.
#[utoipa::path(get, path = "/v1/collections/{id}", tag = "collections",
    params(("id" = String, Path, description = "The collection's id or name")),
    responses((status = 200, body = CollectionDto), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_collection(
    State(state): State<Arc<AppState>>,
    Path(id): Path<CollectionRef>,
) -> ApiResult<Json<CollectionDto>> {
    Ok(Json((&*state.app.access().collection(&id).await?).into()))
}

/// Rename a collection or replace its settings.
#[utoipa::path(patch, path = "/v1/collections/{id}", tag = "collections",
    params(("id" = String, Path, description = "The collection's id or name")),
    request_body = CollectionPatchDto,
    responses((status = 200, body = CollectionDto), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_collection(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<CollectionRef>,
    patch: Body<CollectionPatchDto>,
) -> ApiResult<Json<CollectionDto>> {
    let patch = body(patch)?;
    let patch = CollectionPatch {
        name: patch.name,
        settings: patch.settings,
    };
    let updated = state.app.update_collection(&id, patch, &caller).await?;
    Ok(Json((&updated).into()))
}

/// Delete a collection with everything in it.
#[utoipa::path(delete, path = "/v1/collections/{id}", tag = "collections",
    params(("id" = String, Path, description = "The collection's id or name")),
    responses((status = 200, description = "The collection, its persons, faces and keys are gone for good", body = DeletedCollectionDto),
              (status = 404, body = ErrorBody), (status = 422, description = "the collection `default`", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_collection(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<CollectionRef>,
) -> ApiResult<Json<DeletedCollectionDto>> {
    let deleted = state.app.access().delete_collection(&id, &caller).await?;
    state.app.calibrator().forget(deleted.collection.id);
    Ok(Json(DeletedCollectionDto {
        collection: (&deleted.collection).into(),
        persons_deleted: deleted.persons_deleted,
        faces_deleted: deleted.faces_deleted,
        keys_deleted: deleted.keys_deleted,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyDto {
    /// The key's id (UUID); the audit log names the key `key:<id>`.
    pub id: Uuid,
    /// The collection the key acts in (UUID).
    pub collection_id: Uuid,
    /// What the key is for, 1 to 200 characters.
    pub label: String,
    #[schema(value_type = Vec<String>)]
    pub scopes: Scopes,
    /// When it was created (RFC 3339).
    pub created_at: DateTime<Utc>,
    /// When it stops working (RFC 3339); null: never.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked (RFC 3339); null: not revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// To within ten minutes.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<&ApiKey> for KeyDto {
    fn from(k: &ApiKey) -> Self {
        Self {
            id: k.id.0,
            collection_id: k.collection_id.0,
            label: k.label.clone(),
            scopes: k.scopes,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKeyDto {
    #[serde(flatten)]
    pub key: KeyDto,
    /// The secret: shown this once, stored only as a hash.
    #[serde(rename = "key")]
    pub secret: String,
    /// The collection's name.
    pub collection: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyDto {
    /// The collection's name or id.
    #[schema(value_type = String)]
    pub collection: CollectionRef,
    /// Of `recognize`, `enroll`, `manage`, `embeddings`, `admin`.
    #[schema(value_type = Vec<String>)]
    pub scopes: Scopes,
    /// What the key is for, shown in listings: 1 to 200 characters.
    pub label: String,
    /// When it stops working (RFC 3339, in the future); absent or null: never.
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeysList {
    /// The keys, oldest first, never their secrets.
    pub items: Vec<KeyDto>,
}

/// Create an API key (its secret is shown this once).
#[utoipa::path(post, path = "/v1/keys", tag = "collections", request_body = NewKeyDto,
    responses((status = 201, description = "The key, with its secret shown once", body = CreatedKeyDto),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    new: Body<NewKeyDto>,
) -> ApiResult<(StatusCode, Json<CreatedKeyDto>)> {
    let new = body(new)?;
    let created = state
        .app
        .access()
        .create_key(
            &new.collection,
            new.scopes,
            new.label,
            new.expires_at,
            &caller,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKeyDto {
            key: (&created.key).into(),
            secret: created.secret,
            collection: created.collection.name,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct KeysQuery {
    /// Only this collection's keys (name or id).
    #[param(value_type = Option<String>)]
    collection: Option<CollectionRef>,
}

/// List the API keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "collections", params(KeysQuery),
    responses((status = 200, description = "Every key, never a secret", body = KeysList)),
    security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<KeysQuery>,
) -> ApiResult<Json<KeysList>> {
    let keys = state
        .app
        .access()
        .keys(q.collection.as_ref(), &caller)
        .await?;
    Ok(Json(KeysList {
        items: keys.iter().map(Into::into).collect(),
    }))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "collections",
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "Revoked (on every replica within a second: keys are trusted for 1 s)", body = KeyDto),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<KeyDto>> {
    let id: KeyId = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("'{id}' is not a key id (UUID)")))?;
    Ok(Json(
        (&state.app.access().revoke_key(id, &caller).await?).into(),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only the events about this person.
    person_id: Option<Uuid>,
    /// Only events at or after this time.
    since: Option<DateTime<Utc>>,
    /// The next page: events older than this id (the last one of the previous page).
    before_id: Option<i64>,
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// With an `admin` key: every collection's events (`all`), or one collection's (name or id).
    collection: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEventDto>,
    /// Pass as `before_id` for the next page; absent on the last.
    pub next_before_id: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "persons", params(AuditQuery),
    responses((status = 200, description = "The audit log of the key's collection (an admin key: any, or all)", body = AuditPage)),
    security(("bearer" = [])))]
pub async fn audit(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
    let limit = facerec_service::ranges::AUDIT_PAGE.check("limit", q.limit.map(u64::from))? as u32;
    let filter = AuditFilter {
        person: q.person_id.map(PersonId),
        before_id: q.before_id,
        since: q.since,
        limit,
        // Decided by the caller's scopes.
        key_events: false,
    };
    let events = state
        .app
        .access()
        .audit_events(&caller, &AuditOf::parse(q.collection.as_deref()), &filter)
        .await?;
    let next_before_id = (events.len() == limit as usize)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        items: events.into_iter().map(Into::into).collect(),
        next_before_id,
    }))
}
