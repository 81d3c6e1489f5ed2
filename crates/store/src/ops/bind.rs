//! How domain values are bound to the statements (`crate::statements`), and which statements
//! make up each change (a registration is the person, the face and two audit events). Compiled
//! once per backend (see `crate::ops`).

use chrono::{DateTime, Utc};
use facerec_core::person::fold_name;
use facerec_core::retry::{Attempt, IdempotencyKey};
use facerec_core::store::In;
use facerec_core::{
    Actor, ApiKey, AuditFilter, Collection, CollectionId, CollectionSettings, Face, FaceId,
    ModelId, NewAuditEvent, NewFace, PageRequest, Person, PersonId,
};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::types::Json;
use sqlx::Database;

use super::DB;
use crate::columns::{Embedding, Id};
use crate::rows::{ApiKeyRow, AuditRow, CollectionRow, FaceEntryRow, FaceRow, PersonRow};
use crate::statements::*;

/// A statement with its values bound, ready to run.
pub(super) type Statement = Query<'static, DB, <DB as Database>::Arguments<'static>>;
/// A query whose rows map onto `R`.
pub(super) type Select<R> = QueryAs<'static, DB, R, <DB as Database>::Arguments<'static>>;
/// A query answering one value per row.
pub(super) type Scalar<T> = QueryScalar<'static, DB, T, <DB as Database>::Arguments<'static>>;

/// The lock is per collection and folded name.
pub(super) fn lock_name(collection: In, name: &str) -> Option<Statement> {
    super::LOCK_NAME.map(|lock| sqlx::query(lock).bind(format!("{collection}/{}", fold_name(name))))
}

pub(super) fn select_persons_named(collection: In, name: &str, limit: u32) -> Select<PersonRow> {
    sqlx::query_as(SELECT_PERSONS_NAMED)
        .bind(fold_name(name.trim()))
        .bind(i64::from(limit))
        .bind(Id::from(collection))
}

pub(super) fn select_person(collection: In, id: PersonId) -> Select<PersonRow> {
    sqlx::query_as(SELECT_PERSON)
        .bind(Id::from(id))
        .bind(Id::from(collection))
}

pub(super) fn select_person_for_write(collection: In, id: PersonId) -> Select<PersonRow> {
    sqlx::query_as(super::SELECT_PERSON_FOR_WRITE)
        .bind(Id::from(id))
        .bind(Id::from(collection))
}

pub(super) fn count_persons(collection: In, page: &PageRequest) -> Scalar<i64> {
    sqlx::query_scalar(COUNT_PERSONS)
        .bind(Id::from(collection))
        .bind(name_pattern(page))
        .bind(page.expires_before)
        .bind(page.external_id.clone())
}

/// A statement over one page of persons: the filter's values (`person_filter!`, `$1`–`$4`), then
/// the page's limit and offset (`$5`, `$6`).
macro_rules! bind_page {
    ($query:expr, $collection:expr, $page:expr) => {
        $query
            .bind(Id::from($collection))
            .bind(name_pattern($page))
            .bind($page.expires_before)
            .bind($page.external_id.clone())
            .bind(i64::from($page.limit))
            // Validated by the caller; a larger offset than i64 can hold finds nothing anyway.
            .bind(i64::try_from($page.offset).unwrap_or(i64::MAX))
    };
}

pub(super) fn select_persons_page(collection: In, page: &PageRequest) -> Select<PersonRow> {
    bind_page!(sqlx::query_as(LIST_PERSONS), collection, page)
}

pub(super) fn count_faces_of_page(collection: In, page: &PageRequest) -> Select<(Id, i64)> {
    bind_page!(sqlx::query_as(COUNT_FACES_OF_PAGE), collection, page)
}

pub(super) fn insert_person(collection: In, person: &Person) -> Statement {
    sqlx::query(INSERT_PERSON)
        .bind(Id::from(person.id))
        .bind(person.name.clone())
        .bind(person.external_id.clone())
        .bind(Json(person.metadata.clone()))
        .bind(person.consent.given_at)
        .bind(person.consent.basis.clone())
        .bind(person.consent.expires_at)
        .bind(person.created_at)
        .bind(person.updated_at)
        .bind(fold_name(&person.name))
        .bind(Id::from(collection))
}

pub(super) fn update_person_row(person: &Person) -> Statement {
    sqlx::query(UPDATE_PERSON)
        .bind(person.name.clone())
        .bind(person.external_id.clone())
        .bind(Json(person.metadata.clone()))
        .bind(person.updated_at)
        .bind(Id::from(person.id))
        .bind(fold_name(&person.name))
        .bind(person.consent.expires_at)
}

/// Persons whose folded name is missing (rows from before migration 0002).
pub(super) fn select_unfolded_names() -> Select<(Id, String)> {
    sqlx::query_as(SELECT_UNFOLDED_NAMES)
}

pub(super) fn set_folded_name(id: Id, name: &str) -> Statement {
    sqlx::query(SET_FOLDED_NAME).bind(fold_name(name)).bind(id)
}

pub(super) fn delete_person_row(id: PersonId) -> Statement {
    sqlx::query(DELETE_PERSON).bind(Id::from(id))
}

pub(super) fn insert_face(collection: In, face: &Face) -> Statement {
    sqlx::query(INSERT_FACE)
        .bind(Id::from(face.id))
        .bind(Id::from(face.person_id))
        .bind(Embedding(face.embedding.clone()))
        .bind(face.det_score)
        .bind(Json(face.bbox))
        .bind(Json(face.quality))
        .bind(face.model.name.clone())
        .bind(face.model.sha256.clone())
        .bind(face.image_sha256.clone())
        .bind(face.created_at)
        .bind(Id::from(collection))
}

/// The face already stored for this photo of this person with this model (idempotency).
pub(super) fn select_face_of_image(person: PersonId, face: &NewFace) -> Select<FaceRow> {
    sqlx::query_as(SELECT_FACE_OF_IMAGE)
        .bind(Id::from(person))
        .bind(face.model.name.clone())
        .bind(face.model.sha256.clone())
        .bind(face.image_sha256.clone())
}

pub(super) fn select_face(collection: In, id: FaceId) -> Select<FaceRow> {
    sqlx::query_as(SELECT_FACE)
        .bind(Id::from(id))
        .bind(Id::from(collection))
}

pub(super) fn select_faces_of_person(person: PersonId) -> Select<FaceRow> {
    sqlx::query_as(SELECT_FACES_OF_PERSON).bind(Id::from(person))
}

pub(super) fn delete_face_row(collection: In, id: FaceId) -> Select<FaceRow> {
    sqlx::query_as(DELETE_FACE)
        .bind(Id::from(id))
        .bind(Id::from(collection))
}

/// Deletes a person's faces explicitly (not by cascade), answering their ids, so that both
/// backends count them the same way and SQLite can drop them from its index.
pub(super) fn delete_faces_of_person(person: PersonId) -> Scalar<Id> {
    sqlx::query_scalar(DELETE_FACES_OF_PERSON).bind(Id::from(person))
}

pub(super) fn select_expired(now: DateTime<Utc>, limit: u32) -> Select<(Id, Id)> {
    sqlx::query_as(SELECT_EXPIRED)
        .bind(now)
        .bind(i64::from(limit))
}

pub(super) fn sample_faces_of(
    collection: In,
    max_persons: u32,
    model: &ModelId,
) -> Select<FaceRow> {
    sqlx::query_as(SAMPLE_FACES)
        .bind(model.name.clone())
        .bind(model.sha256.clone())
        .bind(i64::from(max_persons))
        .bind(Id::from(collection))
}

pub(super) fn insert_calibration(
    collection: In,
    computed_at: DateTime<Utc>,
    faces: u64,
    document: serde_json::Value,
) -> Statement {
    sqlx::query(INSERT_CALIBRATION)
        .bind(computed_at)
        .bind(i64::try_from(faces).unwrap_or(i64::MAX))
        .bind(Json(document))
        .bind(Id::from(collection))
}

pub(super) fn select_audit(
    collection: Option<CollectionId>,
    filter: &AuditFilter,
) -> Select<AuditRow> {
    sqlx::query_as(SELECT_AUDIT)
        .bind(collection.map(Id::from))
        .bind(filter.person.map(Id::from))
        .bind(filter.before_id)
        .bind(filter.since)
        .bind(i64::from(filter.limit))
        .bind(filter.key_events)
}

pub(super) fn select_face_count(collection: Option<CollectionId>) -> Scalar<i64> {
    match collection {
        Some(c) => sqlx::query_scalar(COUNT_FACES_IN).bind(Id::from(c)),
        None => sqlx::query_scalar(COUNT_FACES),
    }
}

pub(super) fn list_face_entries(collection: In, limit: u32, offset: u64) -> Select<FaceEntryRow> {
    sqlx::query_as(LIST_FACE_ENTRIES)
        .bind(i64::from(limit))
        .bind(i64::try_from(offset).unwrap_or(i64::MAX))
        .bind(Id::from(collection))
}

pub(super) fn delete_expired_tickets(now: DateTime<Utc>) -> Statement {
    sqlx::query(DELETE_EXPIRED_TICKETS).bind(now)
}

/// Unspent tickets: in all, in the collection, and the actor's.
pub(super) fn count_tickets(collection: In, actor: &Actor) -> [Scalar<i64>; 3] {
    [
        sqlx::query_scalar(COUNT_TICKETS),
        sqlx::query_scalar(COUNT_TICKETS_IN).bind(Id::from(collection)),
        sqlx::query_scalar(COUNT_TICKETS_OF).bind(actor.0.clone()),
    ]
}

pub(super) fn insert_ticket(
    collection: In,
    ticket_sha256: &str,
    actor: &Actor,
    expires_at: DateTime<Utc>,
) -> Statement {
    sqlx::query(INSERT_TICKET)
        .bind(ticket_sha256.to_owned())
        .bind(actor.0.clone())
        .bind(expires_at)
        .bind(Id::from(collection))
}

pub(super) fn select_ticket(ticket_sha256: &str, now: DateTime<Utc>) -> Select<(String, Id)> {
    sqlx::query_as(SELECT_TICKET)
        .bind(ticket_sha256.to_owned())
        .bind(now)
}

pub(super) fn delete_live_ticket(ticket_sha256: &str, now: DateTime<Utc>) -> Scalar<String> {
    sqlx::query_scalar(REDEEM_TICKET)
        .bind(ticket_sha256.to_owned())
        .bind(now)
}

pub(super) fn audit(collection: In, event: NewAuditEvent, actor: &Actor) -> Statement {
    sqlx::query(INSERT_AUDIT)
        .bind(Utc::now())
        .bind(event.action.as_str().to_owned())
        .bind(event.person_id.map(Id::from))
        .bind(event.face_id.map(Id::from))
        .bind(actor.0.clone())
        .bind(Json(event.details))
        .bind(Id::from(collection))
}

pub(super) fn insert_collection(collection: &Collection) -> Statement {
    sqlx::query(INSERT_COLLECTION)
        .bind(Id::from(collection.id))
        .bind(collection.name.clone())
        .bind(Json(settings_json(&collection.settings)))
        .bind(collection.created_at)
        .bind(collection.updated_at)
        .bind(collection.model.pack.clone())
        .bind(collection.model.recognizer.name.clone())
        .bind(collection.model.recognizer.sha256.clone())
        .bind(collection.model.detector_pack.clone())
        .bind(collection.model.detector_sha256.clone())
}

pub(super) fn update_collection_row(collection: &Collection) -> Statement {
    sqlx::query(UPDATE_COLLECTION)
        .bind(Id::from(collection.id))
        .bind(collection.name.clone())
        .bind(Json(settings_json(&collection.settings)))
        .bind(collection.updated_at)
}

/// The collection, locked where the dialect can until the transaction ends (a deletion or a
/// change of it).
pub(super) fn select_collection_for_write(id: CollectionId) -> Select<CollectionRow> {
    sqlx::query_as(super::SELECT_COLLECTION_FOR_WRITE).bind(Id::from(id))
}

pub(super) fn select_collection(id: CollectionId) -> Select<CollectionRow> {
    sqlx::query_as(SELECT_COLLECTION).bind(Id::from(id))
}

pub(super) fn by_collection(statement: &'static str, id: CollectionId) -> Statement {
    sqlx::query(statement).bind(Id::from(id))
}

pub(super) fn insert_key(key: &ApiKey, secret_sha256: &str) -> Statement {
    sqlx::query(INSERT_KEY)
        .bind(Id::from(key.id))
        .bind(Id::from(key.collection_id))
        .bind(key.label.clone())
        .bind(key.scopes.to_text())
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.revoked_at)
        .bind(key.last_used_at)
        .bind(secret_sha256.to_owned())
}

/// A new person with their first face: both rows and both audit events, or nothing.
pub(super) fn registration(
    collection: In,
    person: &Person,
    face: &Face,
    actor: &Actor,
) -> Vec<Statement> {
    vec![
        insert_person(collection, person),
        insert_face(collection, face),
        audit(collection, NewAuditEvent::person_created(person.id), actor),
        audit(
            collection,
            NewAuditEvent::face_added(person.id, face.id),
            actor,
        ),
    ]
}

/// A new person without faces yet: the row and its audit event.
pub(super) fn creation(collection: In, person: &Person, actor: &Actor) -> Vec<Statement> {
    vec![
        insert_person(collection, person),
        audit(collection, NewAuditEvent::person_created(person.id), actor),
    ]
}

pub(super) fn face_addition(collection: In, face: &Face, actor: &Actor) -> Vec<Statement> {
    vec![
        insert_face(collection, face),
        audit(
            collection,
            NewAuditEvent::face_added(face.person_id, face.id),
            actor,
        ),
    ]
}

pub(super) fn person_update(
    collection: In,
    person: &Person,
    changed: &[&str],
    actor: &Actor,
) -> Vec<Statement> {
    vec![
        update_person_row(person),
        audit(
            collection,
            NewAuditEvent::person_updated(person.id, changed),
            actor,
        ),
    ]
}

/// A collection's settings as stored: JSON, without the unset ones.
fn settings_json(settings: &CollectionSettings) -> serde_json::Value {
    serde_json::to_value(settings).unwrap_or_else(|_| serde_json::json!({}))
}

/// The listing's name filter as a LIKE pattern (wildcards in the name match literally).
fn name_pattern(page: &PageRequest) -> Option<String> {
    page.name_contains.as_deref().map(|contains| {
        let escaped = fold_name(contains)
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    })
}

pub(super) fn count_collections() -> Scalar<i64> {
    sqlx::query_scalar(COUNT_COLLECTIONS)
}

pub(super) fn select_collection_named(name: &str) -> Select<CollectionRow> {
    sqlx::query_as(SELECT_COLLECTION_NAMED).bind(name.to_owned())
}

pub(super) fn list_collections() -> Select<CollectionRow> {
    sqlx::query_as(LIST_COLLECTIONS).bind(i64::from(Collection::MAX))
}

/// Deletes a collection's rows of one kind (`DELETE … WHERE collection_id = $1 RETURNING id`),
/// answering their ids.
pub(super) fn delete_ids_of_collection(statement: &'static str, id: CollectionId) -> Scalar<Id> {
    sqlx::query_scalar(statement).bind(Id::from(id))
}

pub(super) fn keys_in_force(now: DateTime<Utc>) -> Select<(bool, bool)> {
    sqlx::query_as(SELECT_KEYS_IN_FORCE).bind(now)
}

pub(super) fn count_live_keys(now: DateTime<Utc>) -> Scalar<i64> {
    sqlx::query_scalar(COUNT_LIVE_KEYS).bind(now)
}

/// Prunes the keys that ended more than [`ApiKey::KEEP_ENDED`] ago, and all but the newest
/// [`ApiKey::MAX`] ended keys.
pub(super) fn prune_ended_keys(now: DateTime<Utc>) -> Statement {
    sqlx::query(PRUNE_ENDED_KEYS)
        .bind(now - ApiKey::KEEP_ENDED)
        .bind(i64::from(ApiKey::MAX))
        .bind(now)
        .bind(i64::MAX)
}

pub(super) fn list_keys(collection: Option<CollectionId>) -> Select<ApiKeyRow> {
    sqlx::query_as(LIST_KEYS)
        .bind(collection.map(Id::from))
        // Live keys and the ended ones still kept.
        .bind(2 * i64::from(ApiKey::MAX))
}

pub(super) fn select_key(id: facerec_core::KeyId) -> Select<ApiKeyRow> {
    sqlx::query_as(SELECT_KEY).bind(Id::from(id))
}

pub(super) fn select_key_by_secret(secret_sha256: &str) -> Select<ApiKeyRow> {
    sqlx::query_as(SELECT_KEY_BY_SECRET).bind(secret_sha256.to_owned())
}

pub(super) fn revoke_key(id: facerec_core::KeyId, at: DateTime<Utc>) -> Select<ApiKeyRow> {
    sqlx::query_as(REVOKE_KEY).bind(Id::from(id)).bind(at)
}

pub(super) fn touch_key(id: facerec_core::KeyId, at: DateTime<Utc>) -> Statement {
    sqlx::query(TOUCH_KEY).bind(Id::from(id)).bind(at)
}

/// Keeps the collection's newest [`CALIBRATIONS_KEPT`] calibrations.
pub(super) fn prune_calibrations(collection: In) -> Statement {
    sqlx::query(PRUNE_CALIBRATIONS)
        .bind(Id::from(collection))
        .bind(CALIBRATIONS_KEPT)
}

/// Remembers an attempt: what it registered, under its key.
pub(super) fn insert_attempt(
    collection: In,
    attempt: &Attempt,
    face: &Face,
    created: bool,
    at: DateTime<Utc>,
) -> Statement {
    sqlx::query(INSERT_ATTEMPT)
        .bind(Id::from(collection))
        .bind(attempt.key.as_str().to_owned())
        .bind(attempt.fingerprint.clone())
        .bind(Id::from(face.person_id))
        .bind(Id::from(face.id))
        .bind(created)
        .bind(at)
}

pub(super) fn select_attempt(
    collection: In,
    key: &IdempotencyKey,
) -> Select<(String, Id, Id, bool)> {
    sqlx::query_as(SELECT_ATTEMPT)
        .bind(Id::from(collection))
        .bind(key.as_str().to_owned())
}

pub(super) fn forget_attempts(before: DateTime<Utc>) -> Statement {
    sqlx::query(FORGET_ATTEMPTS).bind(before)
}

/// The collection's calibrations, newest first.
pub(super) fn select_calibrations(collection: In) -> Scalar<Json<serde_json::Value>> {
    sqlx::query_scalar(SELECT_CALIBRATIONS)
        .bind(Id::from(collection))
        .bind(CALIBRATIONS_KEPT)
}
