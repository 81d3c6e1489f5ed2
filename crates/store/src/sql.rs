//! What both SQL backends do the same way, written once: the statements, how domain values are
//! bound, which statements make up each change, and every operation of `Store` (the provided
//! methods of [`Backend`], over the [`Hooks`] of a backend's store).
//!
//! SQLite accepts PostgreSQL's `$n` placeholders, and [`Id`] and [`Embedding`] know how each backend
//! stores them, so one statement text and one row type serve both. The backends keep only what their
//! dialects do differently: connections and locking, search, and the in-memory index of SQLite.
//! The operations live in the trait itself because its where-clauses (what each column type and
//! row needs of the database) hold inside it but are not implied for a generic `DB: Backend`.

use chrono::{DateTime, Utc};
use facerec_core::store::{self, In, StoreResult};
use facerec_core::{
    Actor, Added, ApiKey, AuditEvent, AuditFilter, Candidate, Collection, CollectionId,
    CollectionPatch, CollectionSettings, DeletedCollection, DeletedPerson, Face, FaceEntry, FaceId,
    KeyId, ModelId, NewApiKey, NewAuditEvent, NewCollection, NewFace, NewPerson, Page, PageRequest,
    Person, PersonId, PersonPatch, RegisteredNamed, StoreError,
};
use facerec_types::{FaceQuality, NormalizedEmbedding};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::types::Json;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use crate::columns::{Embedding, Id};
use crate::rows::{ApiKeyRow, AuditRow, CollectionRow, FaceEntryRow, FaceRow, PersonRow};
use crate::store_impl::{Committed, Hooks};

macro_rules! person_columns {
    () => {
        "id, name, external_id, metadata, consent_given_at, consent_basis, consent_expires_at, created_at, \
         updated_at"
    };
}
macro_rules! face_columns {
    () => {
        "id, person_id, embedding, det_score, bbox, quality, model_name, model_sha256, image_sha256, \
         created_at"
    };
}
/// `$1`: the collection; `$2`: a LIKE pattern over the folded name, or NULL for every person;
/// `$3`: the latest consent expiry to list, or NULL for every person.
macro_rules! person_filter {
    () => {
        "collection_id = $1 AND (CAST($2 AS TEXT) IS NULL OR name_folded LIKE $2 ESCAPE '\\') \
         AND ($3 IS NULL OR consent_expires_at <= $3)"
    };
}
pub(crate) use person_columns;

/// `$1`: the person, `$2`: the collection it must be in.
pub(crate) const SELECT_PERSON: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE id = $1 AND collection_id = $2"
);
const INSERT_PERSON: &str = concat!(
    "INSERT INTO persons (",
    person_columns!(),
    ", name_folded, collection_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
const UPDATE_PERSON: &str = "UPDATE persons SET name = $1, external_id = $2, metadata = $3, \
                             updated_at = $4, name_folded = $6, consent_expires_at = $7 WHERE id = $5";
const SELECT_UNFOLDED_NAMES: &str = "SELECT id, name FROM persons WHERE name_folded IS NULL";
const SET_FOLDED_NAME: &str = "UPDATE persons SET name_folded = $1 WHERE id = $2";
const DELETE_PERSON: &str = "DELETE FROM persons WHERE id = $1";
const SELECT_PERSONS_NAMED: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE collection_id = $3 AND name_folded = $1 ORDER BY created_at, id LIMIT $2"
);
const COUNT_PERSONS: &str = concat!("SELECT count(*) FROM persons WHERE ", person_filter!());
const LIST_PERSONS: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE ",
    person_filter!(),
    " ORDER BY created_at, id LIMIT $4 OFFSET $5"
);

const INSERT_FACE: &str = concat!(
    "INSERT INTO faces (",
    face_columns!(),
    ", collection_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
const SELECT_FACE_OF_IMAGE: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE person_id = $1 AND model_name = $2 AND model_sha256 = $3 AND image_sha256 = $4"
);
const SELECT_FACE: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE id = $1 AND collection_id = $2"
);
const SELECT_FACES_OF_PERSON: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE person_id = $1 ORDER BY created_at, id"
);
const DELETE_FACE: &str = concat!(
    "DELETE FROM faces WHERE id = $1 AND collection_id = $2 RETURNING ",
    face_columns!()
);
const DELETE_FACES_OF_PERSON: &str = "DELETE FROM faces WHERE person_id = $1 RETURNING id";
const SELECT_EXPIRED: &str =
    "SELECT id, collection_id FROM persons WHERE consent_expires_at <= $1 \
                              ORDER BY consent_expires_at, id LIMIT $2";
const SAMPLE_FACES: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE collection_id = $4 AND model_name = $1 AND model_sha256 = $2 \
     AND person_id IN (SELECT id FROM persons WHERE collection_id = $4 ORDER BY random() LIMIT $3)"
);
/// Calibrations kept per collection (the newest is in force; the others are history for the
/// operator).
const CALIBRATIONS_KEPT: i64 = 10;
const INSERT_CALIBRATION: &str = "INSERT INTO calibrations (computed_at, faces, document, \
                                  collection_id) VALUES ($1, $2, $3, $4)";
const PRUNE_CALIBRATIONS: &str = "DELETE FROM calibrations WHERE collection_id = $1 AND id NOT IN \
     (SELECT id FROM calibrations WHERE collection_id = $1 ORDER BY id DESC LIMIT $2)";
const SELECT_CALIBRATION: &str =
    "SELECT document FROM calibrations WHERE collection_id = $1 ORDER BY id DESC LIMIT 1";
const SELECT_AUDIT: &str =
    "SELECT id, at, collection_id, action, person_id, face_id, actor, details \
     FROM audit_events WHERE (CAST($1 AS TEXT) IS NULL OR collection_id = $1) \
     AND (CAST($2 AS TEXT) IS NULL OR person_id = $2) AND ($3 IS NULL OR id < $3) \
     AND ($4 IS NULL OR at >= $4) ORDER BY id DESC LIMIT $5";
const COUNT_FACES: &str = "SELECT count(*) FROM faces";
const COUNT_FACES_IN: &str = "SELECT count(*) FROM faces WHERE collection_id = $1";
const LIST_FACE_ENTRIES: &str = "SELECT f.id, f.person_id, p.name FROM faces f \
    JOIN persons p ON p.id = f.person_id WHERE f.collection_id = $3 \
    ORDER BY f.created_at, f.id LIMIT $1 OFFSET $2";
const DELETE_EXPIRED_TICKETS: &str = "DELETE FROM stream_tickets WHERE expires_at <= $1";
const COUNT_TICKETS: &str = "SELECT count(*) FROM stream_tickets";
const INSERT_TICKET: &str = "INSERT INTO stream_tickets (ticket_sha256, actor, expires_at, \
                             collection_id) VALUES ($1, $2, $3, $4)";
const SELECT_TICKET: &str = "SELECT actor, collection_id FROM stream_tickets \
                             WHERE ticket_sha256 = $1 AND expires_at > $2";
const REDEEM_TICKET: &str =
    "DELETE FROM stream_tickets WHERE ticket_sha256 = $1 AND expires_at > $2 RETURNING actor";

const INSERT_AUDIT: &str =
    "INSERT INTO audit_events (at, action, person_id, face_id, actor, details, collection_id) \
                            VALUES ($1, $2, $3, $4, $5, $6, $7)";

macro_rules! collection_columns {
    () => {
        "id, name, settings, created_at, updated_at"
    };
}
const INSERT_COLLECTION: &str = concat!(
    "INSERT INTO collections (",
    collection_columns!(),
    ") VALUES ($1, $2, $3, $4, $5)"
);
const SELECT_COLLECTION: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM collections WHERE id = $1"
);
const SELECT_COLLECTION_NAMED: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM collections WHERE name = $1"
);
const LIST_COLLECTIONS: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM collections ORDER BY created_at, id LIMIT $1"
);
const COUNT_COLLECTIONS: &str = "SELECT count(*) FROM collections";
const UPDATE_COLLECTION: &str =
    "UPDATE collections SET name = $2, settings = $3, updated_at = $4 WHERE id = $1";
const DELETE_FACES_OF_COLLECTION: &str = "DELETE FROM faces WHERE collection_id = $1 RETURNING id";
const DELETE_PERSONS_OF_COLLECTION: &str =
    "DELETE FROM persons WHERE collection_id = $1 RETURNING id";
const DELETE_KEYS_OF_COLLECTION: &str =
    "DELETE FROM api_keys WHERE collection_id = $1 RETURNING id";
const DELETE_CALIBRATIONS_OF_COLLECTION: &str = "DELETE FROM calibrations WHERE collection_id = $1";
const DELETE_TICKETS_OF_COLLECTION: &str = "DELETE FROM stream_tickets WHERE collection_id = $1";
const DELETE_COLLECTION: &str = "DELETE FROM collections WHERE id = $1";

macro_rules! key_columns {
    () => {
        "id, collection_id, label, scopes, created_at, expires_at, revoked_at, last_used_at"
    };
}
const INSERT_KEY: &str = concat!(
    "INSERT INTO api_keys (",
    key_columns!(),
    ", secret_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
const LIST_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE (CAST($1 AS TEXT) IS NULL OR collection_id = $1) \
     ORDER BY created_at, id LIMIT $2"
);
const COUNT_KEYS: &str = "SELECT count(*) FROM api_keys";
const SELECT_KEY_BY_SECRET: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE secret_sha256 = $1"
);
const REVOKE_KEY: &str = concat!(
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING ",
    key_columns!()
);
const TOUCH_KEY: &str = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1";

/// A statement with its values bound, ready to run on either backend.
pub(crate) type Statement<DB> = Query<'static, DB, <DB as Database>::Arguments<'static>>;
/// A query whose rows map onto `R`.
pub(crate) type Select<DB, R> = QueryAs<'static, DB, R, <DB as Database>::Arguments<'static>>;
/// A query answering one value per row.
pub(crate) type Scalar<DB, T> = QueryScalar<'static, DB, T, <DB as Database>::Arguments<'static>>;

/// A column value both backends can bind and read.
pub(crate) trait Column<DB: Database>:
    for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + 'static
{
}
impl<DB: Database, T> Column<DB> for T where
    T: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB> + Send + 'static
{
}

/// The statements and operations of both backends. Implemented for `Sqlite` and `Postgres`; only
/// the constants differ.
pub(crate) trait Backend: Database
where
    for<'q> Self::Arguments<'q>: IntoArguments<'q, Self>,
    for<'c> &'c mut Self::Connection: Executor<'c, Database = Self>,
    Id: Column<Self>,
    Option<Id>: Column<Self>,
    Embedding: Column<Self>,
    String: Column<Self>,
    Option<String>: Column<Self>,
    f32: Column<Self>,
    i64: Column<Self>,
    DateTime<Utc>: Column<Self>,
    Option<DateTime<Utc>>: Column<Self>,
    Option<i64>: Column<Self>,
    Json<serde_json::Value>: Column<Self>,
    Json<[f32; 4]>: Column<Self>,
    Json<FaceQuality>: Column<Self>,
    PersonRow: for<'r> FromRow<'r, Self::Row>,
    FaceRow: for<'r> FromRow<'r, Self::Row>,
    FaceEntryRow: for<'r> FromRow<'r, Self::Row>,
    AuditRow: for<'r> FromRow<'r, Self::Row>,
    CollectionRow: for<'r> FromRow<'r, Self::Row>,
    ApiKeyRow: for<'r> FromRow<'r, Self::Row>,
    (Id,): for<'r> FromRow<'r, Self::Row>,
    (Id, Id): for<'r> FromRow<'r, Self::Row>,
    (Id, String): for<'r> FromRow<'r, Self::Row>,
    (String, Id): for<'r> FromRow<'r, Self::Row>,
    (i64,): for<'r> FromRow<'r, Self::Row>,
    (String,): for<'r> FromRow<'r, Self::Row>,
    (Json<serde_json::Value>,): for<'r> FromRow<'r, Self::Row>,
{
    /// Reads a person of a collection inside a write transaction and holds their row until it
    /// ends, so that concurrent changes to one person are serialized (idempotent face adds rely
    /// on it).
    const SELECT_PERSON_FOR_WRITE: &'static str;

    /// Serializes write transactions that look a name up and may create it, until they end (SQLite
    /// has one writer, so needs none).
    const LOCK_NAME: Option<&'static str>;

    /// The lock is per collection and folded name.
    fn lock_name(collection: In, name: &str) -> Option<Statement<Self>> {
        Self::LOCK_NAME
            .map(|lock| sqlx::query(lock).bind(format!("{collection}/{}", store::fold_name(name))))
    }

    fn select_persons_named(collection: In, name: &str, limit: u32) -> Select<Self, PersonRow> {
        sqlx::query_as(SELECT_PERSONS_NAMED)
            .bind(store::fold_name(name.trim()))
            .bind(i64::from(limit))
            .bind(Id::from(collection))
    }

    fn select_person(collection: In, id: PersonId) -> Select<Self, PersonRow> {
        sqlx::query_as(SELECT_PERSON)
            .bind(Id::from(id))
            .bind(Id::from(collection))
    }

    fn select_person_for_write(collection: In, id: PersonId) -> Select<Self, PersonRow> {
        sqlx::query_as(Self::SELECT_PERSON_FOR_WRITE)
            .bind(Id::from(id))
            .bind(Id::from(collection))
    }

    fn count_persons(collection: In, page: &PageRequest) -> Scalar<Self, i64> {
        sqlx::query_scalar(COUNT_PERSONS)
            .bind(Id::from(collection))
            .bind(name_pattern(page))
            .bind(page.expires_before)
    }

    fn select_persons_page(collection: In, page: &PageRequest) -> Select<Self, PersonRow> {
        sqlx::query_as(LIST_PERSONS)
            .bind(Id::from(collection))
            .bind(name_pattern(page))
            .bind(page.expires_before)
            .bind(i64::from(page.limit))
            // Validated by the caller; a larger offset than i64 can hold finds nothing anyway.
            .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
    }

    fn insert_person(collection: In, person: &Person) -> Statement<Self> {
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
            .bind(store::fold_name(&person.name))
            .bind(Id::from(collection))
    }

    fn update_person_row(person: &Person) -> Statement<Self> {
        sqlx::query(UPDATE_PERSON)
            .bind(person.name.clone())
            .bind(person.external_id.clone())
            .bind(Json(person.metadata.clone()))
            .bind(person.updated_at)
            .bind(Id::from(person.id))
            .bind(store::fold_name(&person.name))
            .bind(person.consent.expires_at)
    }

    /// Persons whose folded name is missing (rows from before migration 0002).
    fn select_unfolded_names() -> Select<Self, (Id, String)> {
        sqlx::query_as(SELECT_UNFOLDED_NAMES)
    }

    fn set_folded_name(id: Id, name: &str) -> Statement<Self> {
        sqlx::query(SET_FOLDED_NAME)
            .bind(store::fold_name(name))
            .bind(id)
    }

    fn delete_person_row(id: PersonId) -> Statement<Self> {
        sqlx::query(DELETE_PERSON).bind(Id::from(id))
    }

    fn insert_face(collection: In, face: &Face) -> Statement<Self> {
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
    fn select_face_of_image(person: PersonId, face: &NewFace) -> Select<Self, FaceRow> {
        sqlx::query_as(SELECT_FACE_OF_IMAGE)
            .bind(Id::from(person))
            .bind(face.model.name.clone())
            .bind(face.model.sha256.clone())
            .bind(face.image_sha256.clone())
    }

    fn select_face(collection: In, id: FaceId) -> Select<Self, FaceRow> {
        sqlx::query_as(SELECT_FACE)
            .bind(Id::from(id))
            .bind(Id::from(collection))
    }

    fn select_faces_of_person(person: PersonId) -> Select<Self, FaceRow> {
        sqlx::query_as(SELECT_FACES_OF_PERSON).bind(Id::from(person))
    }

    fn delete_face_row(collection: In, id: FaceId) -> Select<Self, FaceRow> {
        sqlx::query_as(DELETE_FACE)
            .bind(Id::from(id))
            .bind(Id::from(collection))
    }

    /// Deletes a person's faces explicitly (not by cascade), answering their ids, so that both
    /// backends count them the same way and SQLite can drop them from its index.
    fn delete_faces_of_person(person: PersonId) -> Scalar<Self, Id> {
        sqlx::query_scalar(DELETE_FACES_OF_PERSON).bind(Id::from(person))
    }

    fn select_expired(now: DateTime<Utc>, limit: u32) -> Select<Self, (Id, Id)> {
        sqlx::query_as(SELECT_EXPIRED)
            .bind(now)
            .bind(i64::from(limit))
    }

    fn sample_faces_of(collection: In, max_persons: u32, model: &ModelId) -> Select<Self, FaceRow> {
        sqlx::query_as(SAMPLE_FACES)
            .bind(model.name.clone())
            .bind(model.sha256.clone())
            .bind(i64::from(max_persons))
            .bind(Id::from(collection))
    }

    fn insert_calibration(
        collection: In,
        computed_at: DateTime<Utc>,
        faces: u64,
        document: serde_json::Value,
    ) -> Statement<Self> {
        sqlx::query(INSERT_CALIBRATION)
            .bind(computed_at)
            .bind(i64::try_from(faces).unwrap_or(i64::MAX))
            .bind(Json(document))
            .bind(Id::from(collection))
    }

    fn select_audit(
        collection: Option<CollectionId>,
        filter: &AuditFilter,
    ) -> Select<Self, AuditRow> {
        sqlx::query_as(SELECT_AUDIT)
            .bind(collection.map(Id::from))
            .bind(filter.person.map(Id::from))
            .bind(filter.before_id)
            .bind(filter.since)
            .bind(i64::from(filter.limit))
    }

    fn select_face_count(collection: Option<CollectionId>) -> Scalar<Self, i64> {
        match collection {
            Some(c) => sqlx::query_scalar(COUNT_FACES_IN).bind(Id::from(c)),
            None => sqlx::query_scalar(COUNT_FACES),
        }
    }

    fn list_face_entries(collection: In, limit: u32, offset: u64) -> Select<Self, FaceEntryRow> {
        sqlx::query_as(LIST_FACE_ENTRIES)
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .bind(Id::from(collection))
    }

    fn delete_expired_tickets(now: DateTime<Utc>) -> Statement<Self> {
        sqlx::query(DELETE_EXPIRED_TICKETS).bind(now)
    }

    fn count_tickets() -> Scalar<Self, i64> {
        sqlx::query_scalar(COUNT_TICKETS)
    }

    fn insert_ticket(
        collection: In,
        ticket_sha256: &str,
        actor: &Actor,
        expires_at: DateTime<Utc>,
    ) -> Statement<Self> {
        sqlx::query(INSERT_TICKET)
            .bind(ticket_sha256.to_owned())
            .bind(actor.0.clone())
            .bind(expires_at)
            .bind(Id::from(collection))
    }

    fn select_ticket(ticket_sha256: &str, now: DateTime<Utc>) -> Select<Self, (String, Id)> {
        sqlx::query_as(SELECT_TICKET)
            .bind(ticket_sha256.to_owned())
            .bind(now)
    }

    fn delete_live_ticket(ticket_sha256: &str, now: DateTime<Utc>) -> Scalar<Self, String> {
        sqlx::query_scalar(REDEEM_TICKET)
            .bind(ticket_sha256.to_owned())
            .bind(now)
    }

    fn audit(collection: In, event: NewAuditEvent, actor: &Actor) -> Statement<Self> {
        sqlx::query(INSERT_AUDIT)
            .bind(Utc::now())
            .bind(event.action.as_str().to_owned())
            .bind(event.person_id.map(Id::from))
            .bind(event.face_id.map(Id::from))
            .bind(actor.0.clone())
            .bind(Json(event.details))
            .bind(Id::from(collection))
    }

    fn insert_collection(collection: &Collection) -> Statement<Self> {
        sqlx::query(INSERT_COLLECTION)
            .bind(Id::from(collection.id))
            .bind(collection.name.clone())
            .bind(Json(settings_json(&collection.settings)))
            .bind(collection.created_at)
            .bind(collection.updated_at)
    }

    fn update_collection_row(collection: &Collection) -> Statement<Self> {
        sqlx::query(UPDATE_COLLECTION)
            .bind(Id::from(collection.id))
            .bind(collection.name.clone())
            .bind(Json(settings_json(&collection.settings)))
            .bind(collection.updated_at)
    }

    fn select_collection(id: CollectionId) -> Select<Self, CollectionRow> {
        sqlx::query_as(SELECT_COLLECTION).bind(Id::from(id))
    }

    fn by_collection(statement: &'static str, id: CollectionId) -> Statement<Self> {
        sqlx::query(statement).bind(Id::from(id))
    }

    fn insert_key(key: &ApiKey, secret_sha256: &str) -> Statement<Self> {
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
    fn registration(
        collection: In,
        person: &Person,
        face: &Face,
        actor: &Actor,
    ) -> Vec<Statement<Self>> {
        vec![
            Self::insert_person(collection, person),
            Self::insert_face(collection, face),
            Self::audit(collection, NewAuditEvent::person_created(person.id), actor),
            Self::audit(
                collection,
                NewAuditEvent::face_added(person.id, face.id),
                actor,
            ),
        ]
    }

    /// A new person without faces yet: the row and its audit event.
    fn creation(collection: In, person: &Person, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_person(collection, person),
            Self::audit(collection, NewAuditEvent::person_created(person.id), actor),
        ]
    }

    fn face_addition(collection: In, face: &Face, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_face(collection, face),
            Self::audit(
                collection,
                NewAuditEvent::face_added(face.person_id, face.id),
                actor,
            ),
        ]
    }

    fn person_update(
        collection: In,
        person: &Person,
        changed: &[&str],
        actor: &Actor,
    ) -> Vec<Statement<Self>> {
        vec![
            Self::update_person_row(person),
            Self::audit(
                collection,
                NewAuditEvent::person_updated(person.id, changed),
                actor,
            ),
        ]
    }

    // The operations of `Store`, written once over a store's hooks (`store_impl::impl_store!`
    // forwards each `Store` method here).

    /// Runs a change's statements on an open transaction; a unique violation on what the caller
    /// chose (`taken`) becomes its own error.
    async fn execute(
        tx: &mut Self::Connection,
        statements: Vec<Statement<Self>>,
        taken: Taken<'_>,
    ) -> StoreResult<()> {
        for statement in statements {
            statement
                .execute(&mut *tx)
                .await
                .map_err(|e| write_error(e, taken))?;
        }
        Ok(())
    }

    /// The person of the collection, read (and, where the dialect can, locked) inside a write
    /// transaction.
    async fn person_for_write(
        tx: &mut Self::Connection,
        collection: In,
        id: PersonId,
    ) -> StoreResult<Person> {
        Self::select_person_for_write(collection, id)
            .fetch_optional(tx)
            .await
            .map_err(db_error)?
            .map(Person::from)
            .ok_or(StoreError::PersonNotFound(id))
    }

    /// Adds a face to a person held by this write transaction, unless the same photo is already
    /// theirs (by sha256, for this model).
    async fn add_face_in(
        tx: &mut Self::Connection,
        collection: In,
        person: PersonId,
        new: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Face, Added)> {
        let existing = Self::select_face_of_image(person, &new)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        if let Some(row) = existing {
            return Ok((row.into(), Added::AlreadyPresent));
        }
        let face = store::face_from_new(person, new, Utc::now())?;
        Self::execute(
            tx,
            Self::face_addition(collection, &face, actor),
            Taken::Nothing,
        )
        .await?;
        Ok((face, Added::Created))
    }

    /// Fills in the folded names that migration 0002 could not compute (SQL's `lower()` folds
    /// differently); a no-op once done.
    async fn fold_missing_names(store: &impl Hooks<Self>) -> StoreResult<()> {
        let rows = Self::select_unfolded_names()
            .fetch_all(store.fresh_readers())
            .await
            .map_err(db_error)?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let statements: Vec<_> = rows
            .iter()
            .map(|(id, name)| Self::set_folded_name(*id, name))
            .collect();
        Self::execute(&mut tx, statements, Taken::Nothing).await?;
        tx.commit().await.map_err(db_error)?;
        tracing::info!(persons = rows.len(), "folded the names of existing persons");
        Ok(())
    }

    async fn ping(store: &impl Hooks<Self>) -> StoreResult<()> {
        for pool in [store.fresh_readers(), store.readers()] {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }

    async fn create_collection(
        store: &impl Hooks<Self>,
        new: NewCollection,
        actor: &Actor,
    ) -> StoreResult<Collection> {
        facerec_core::collection::check_collection_name(&new.name)?;
        new.settings.check()?;
        let now = Utc::now();
        let collection = Collection {
            id: CollectionId::new(),
            name: new.name,
            settings: new.settings,
            created_at: now,
            updated_at: now,
        };
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let count = sqlx::query_scalar::<_, i64>(COUNT_COLLECTIONS)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if count >= i64::from(Collection::MAX) {
            return Err(StoreError::InvalidCollection(format!(
                "a server holds at most {} collections",
                Collection::MAX
            )));
        }
        let statements = vec![
            Self::insert_collection(&collection),
            Self::audit(
                collection.id,
                NewAuditEvent::collection_created(&collection.name),
                actor,
            ),
        ];
        Self::execute(&mut tx, statements, Taken::CollectionName(&collection.name)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(collection)
    }

    async fn get_collection(store: &impl Hooks<Self>, id: CollectionId) -> StoreResult<Collection> {
        Self::select_collection(id)
            .fetch_optional(store.fresh_readers())
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::CollectionNotFound(id.to_string()))?
            .try_into()
    }

    async fn collection_named(store: &impl Hooks<Self>, name: &str) -> StoreResult<Collection> {
        sqlx::query_as::<_, CollectionRow>(SELECT_COLLECTION_NAMED)
            .bind(name.to_owned())
            .fetch_optional(store.fresh_readers())
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::CollectionNotFound(name.to_owned()))?
            .try_into()
    }

    async fn list_collections(store: &impl Hooks<Self>) -> StoreResult<Vec<Collection>> {
        sqlx::query_as::<_, CollectionRow>(LIST_COLLECTIONS)
            .bind(i64::from(Collection::MAX))
            .fetch_all(store.fresh_readers())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(Collection::try_from)
            .collect()
    }

    async fn update_collection(
        store: &impl Hooks<Self>,
        id: CollectionId,
        patch: CollectionPatch,
        actor: &Actor,
    ) -> StoreResult<Collection> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let mut collection: Collection = Self::select_collection(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::CollectionNotFound(id.to_string()))?
            .try_into()?;
        let mut changed = Vec::new();
        if let Some(name) = patch.name.filter(|n| *n != collection.name) {
            if id == CollectionId::DEFAULT {
                return Err(StoreError::DefaultCollection);
            }
            facerec_core::collection::check_collection_name(&name)?;
            collection.name = name;
            changed.push("name");
        }
        if let Some(settings) = patch.settings {
            settings.check()?;
            collection.settings = settings;
            changed.push("settings");
        }
        collection.updated_at = Utc::now();
        let statements = vec![
            Self::update_collection_row(&collection),
            Self::audit(id, NewAuditEvent::collection_updated(&changed), actor),
        ];
        Self::execute(&mut tx, statements, Taken::CollectionName(&collection.name)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(collection)
    }

    async fn delete_collection(
        store: &impl Hooks<Self>,
        id: CollectionId,
        actor: &Actor,
    ) -> StoreResult<DeletedCollection> {
        if id == CollectionId::DEFAULT {
            return Err(StoreError::DefaultCollection);
        }
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let collection: Collection = Self::select_collection(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::CollectionNotFound(id.to_string()))?
            .try_into()?;
        let faces: Vec<FaceId> = sqlx::query_scalar::<_, Id>(DELETE_FACES_OF_COLLECTION)
            .bind(Id::from(id))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(FaceId::from)
            .collect();
        let mut deleted = Vec::with_capacity(2);
        for statement in [DELETE_PERSONS_OF_COLLECTION, DELETE_KEYS_OF_COLLECTION] {
            let ids = sqlx::query_scalar::<_, Id>(statement)
                .bind(Id::from(id))
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
            deleted.push(ids.len() as u64);
        }
        let (persons, keys) = (deleted[0], deleted[1]);
        let event =
            NewAuditEvent::collection_deleted(&collection.name, persons, faces.len() as u64);
        let statements = vec![
            Self::by_collection(DELETE_CALIBRATIONS_OF_COLLECTION, id),
            Self::by_collection(DELETE_TICKETS_OF_COLLECTION, id),
            Self::by_collection(DELETE_COLLECTION, id),
            Self::audit(id, event, actor),
        ];
        Self::execute(&mut tx, statements, Taken::Nothing).await?;
        tx.commit().await.map_err(db_error)?;
        store.committed(Committed::FacesRemoved(&faces));
        store.erase(&mut writer).await;
        Ok(DeletedCollection {
            collection,
            persons_deleted: persons,
            faces_deleted: faces.len() as u64,
            keys_deleted: keys,
        })
    }

    async fn create_key(
        store: &impl Hooks<Self>,
        new: NewApiKey,
        actor: &Actor,
    ) -> StoreResult<ApiKey> {
        let now = Utc::now();
        if new.scopes.is_empty() {
            return Err(StoreError::InvalidKey(
                "a key needs at least one scope".into(),
            ));
        }
        if new.label.trim().is_empty() || new.label.chars().count() > 200 {
            return Err(StoreError::InvalidKey(
                "label must have 1 to 200 characters".into(),
            ));
        }
        if new.expires_at.is_some_and(|at| at <= now) {
            return Err(StoreError::InvalidKey(
                "expires_at must be in the future".into(),
            ));
        }
        let key = ApiKey {
            id: KeyId::new(),
            collection_id: new.collection_id,
            label: new.label.trim().to_owned(),
            scopes: new.scopes,
            created_at: now,
            expires_at: new.expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        Self::select_collection(key.collection_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or_else(|| StoreError::CollectionNotFound(key.collection_id.to_string()))?;
        let count = sqlx::query_scalar::<_, i64>(COUNT_KEYS)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if count >= i64::from(ApiKey::MAX) {
            return Err(StoreError::InvalidKey(format!(
                "a server holds at most {} keys: revoke (delete) unused ones",
                ApiKey::MAX
            )));
        }
        let event = NewAuditEvent::key_created(key.id, &key.scopes.to_text());
        let statements = vec![
            Self::insert_key(&key, &new.secret_sha256),
            Self::audit(key.collection_id, event, actor),
        ];
        Self::execute(&mut tx, statements, Taken::Nothing).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(key)
    }

    async fn list_keys(
        store: &impl Hooks<Self>,
        collection: Option<CollectionId>,
    ) -> StoreResult<Vec<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>(LIST_KEYS)
            .bind(collection.map(Id::from))
            .bind(i64::from(ApiKey::MAX))
            .fetch_all(store.fresh_readers())
            .await
            .map_err(db_error)?
            .into_iter()
            .map(ApiKey::try_from)
            .collect()
    }

    async fn key_by_secret(
        store: &impl Hooks<Self>,
        secret_sha256: &str,
    ) -> StoreResult<Option<ApiKey>> {
        sqlx::query_as::<_, ApiKeyRow>(SELECT_KEY_BY_SECRET)
            .bind(secret_sha256.to_owned())
            .fetch_optional(store.fresh_readers())
            .await
            .map_err(db_error)?
            .map(ApiKey::try_from)
            .transpose()
    }

    async fn revoke_key(store: &impl Hooks<Self>, id: KeyId, actor: &Actor) -> StoreResult<ApiKey> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let key: ApiKey = sqlx::query_as::<_, ApiKeyRow>(REVOKE_KEY)
            .bind(Id::from(id))
            .bind(Utc::now())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?
            .ok_or(StoreError::KeyNotFound(id))?
            .try_into()?;
        let audit = Self::audit(key.collection_id, NewAuditEvent::key_revoked(id), actor);
        Self::execute(&mut tx, vec![audit], Taken::Nothing).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(key)
    }

    async fn touch_key(store: &impl Hooks<Self>, id: KeyId, at: DateTime<Utc>) -> StoreResult<()> {
        let mut writer = store.writer().await?;
        sqlx::query(TOUCH_KEY)
            .bind(Id::from(id))
            .bind(at)
            .execute(&mut *writer)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn register(
        store: &impl Hooks<Self>,
        collection: In,
        new: NewPerson,
        face: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Person, Face)> {
        let now = Utc::now();
        let person = store::person_from_new(&new, now)?;
        let face = store::face_from_new(person.id, face, now)?;
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let statements = Self::registration(collection, &person, &face, actor);
        Self::execute(
            &mut tx,
            statements,
            Taken::external_id(person.external_id.as_deref()),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        store.committed(Committed::FaceAdded(collection, &face));
        Ok((person, face))
    }

    async fn get_person(
        store: &impl Hooks<Self>,
        collection: In,
        id: PersonId,
    ) -> StoreResult<Person> {
        let row = Self::select_person(collection, id)
            .fetch_optional(store.readers())
            .await
            .map_err(db_error)?;
        row.map(Person::from).ok_or(StoreError::PersonNotFound(id))
    }

    async fn persons_named(
        store: &impl Hooks<Self>,
        collection: In,
        name: &str,
        limit: u32,
    ) -> StoreResult<Vec<Person>> {
        let rows = Self::select_persons_named(collection, name, limit)
            .fetch_all(store.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Person::from).collect())
    }

    async fn register_named(
        store: &impl Hooks<Self>,
        collection: In,
        new: NewPerson,
        faces: Vec<NewFace>,
        actor: &Actor,
    ) -> StoreResult<RegisteredNamed> {
        let candidate = store::person_from_new(&new, Utc::now())?;
        for face in &faces {
            store::check_dimension(&face.embedding)?;
        }
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        Self::execute(
            &mut tx,
            Self::lock_name(collection, &candidate.name)
                .into_iter()
                .collect(),
            Taken::Nothing,
        )
        .await?;
        let mut named = Self::select_persons_named(collection, &candidate.name, 2)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        if named.len() > 1 {
            return Err(StoreError::AmbiguousName(candidate.name));
        }
        let (person, created) = match named.pop() {
            Some(row) => (
                Self::person_for_write(&mut tx, collection, row.id.into()).await?,
                false,
            ),
            None => {
                let statements = Self::creation(collection, &candidate, actor);
                let taken = Taken::external_id(candidate.external_id.as_deref());
                Self::execute(&mut tx, statements, taken).await?;
                (candidate, true)
            }
        };
        let mut added = Vec::with_capacity(faces.len());
        for face in faces {
            added.push(Self::add_face_in(&mut tx, collection, person.id, face, actor).await?);
        }
        tx.commit().await.map_err(db_error)?;
        for (face, _) in added.iter().filter(|(_, a)| *a == Added::Created) {
            store.committed(Committed::FaceAdded(collection, face));
        }
        Ok(RegisteredNamed {
            person,
            created,
            faces: added,
        })
    }

    async fn list_persons(
        store: &impl Hooks<Self>,
        collection: In,
        page: &PageRequest,
    ) -> StoreResult<Page<Person>> {
        let total = Self::count_persons(collection, page)
            .fetch_one(store.readers())
            .await
            .map_err(db_error)?;
        let rows = Self::select_persons_page(collection, page)
            .fetch_all(store.readers())
            .await
            .map_err(db_error)?;
        Ok(Page {
            items: rows.into_iter().map(Person::from).collect(),
            total: total as u64,
        })
    }

    async fn update_person(
        store: &impl Hooks<Self>,
        collection: In,
        id: PersonId,
        patch: PersonPatch,
        actor: &Actor,
    ) -> StoreResult<Person> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let mut person = Self::person_for_write(&mut tx, collection, id).await?;
        let changed = store::apply_patch(&mut person, patch, Utc::now())?;
        let statements = Self::person_update(collection, &person, &changed, actor);
        Self::execute(
            &mut tx,
            statements,
            Taken::external_id(person.external_id.as_deref()),
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(person)
    }

    async fn delete_person(
        store: &impl Hooks<Self>,
        collection: In,
        id: PersonId,
        actor: &Actor,
    ) -> StoreResult<DeletedPerson> {
        Self::delete_person_for(store, collection, id, Deletion::OnRequest, actor)
            .await?
            .ok_or(StoreError::PersonNotFound(id))
    }

    async fn delete_expired(
        store: &impl Hooks<Self>,
        now: DateTime<Utc>,
        limit: u32,
        actor: &Actor,
    ) -> StoreResult<Vec<DeletedPerson>> {
        let expired = Self::select_expired(now, limit)
            .fetch_all(store.fresh_readers())
            .await
            .map_err(db_error)?;
        let mut deleted = Vec::with_capacity(expired.len());
        for (id, collection) in expired {
            let why = Deletion::ConsentExpiredBy(now);
            match Self::delete_person_for(store, collection.into(), id.into(), why, actor).await {
                Ok(Some(person)) => deleted.push(person),
                // Renewed meanwhile.
                Ok(None) => {}
                // Deleted meanwhile (by a caller, or another replica's sweep).
                Err(StoreError::PersonNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    async fn sample_faces(
        store: &impl Hooks<Self>,
        collection: In,
        max_persons: u32,
        model: &ModelId,
    ) -> StoreResult<Vec<Face>> {
        let rows = Self::sample_faces_of(collection, max_persons, model)
            .fetch_all(store.readers())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Face::from).collect())
    }

    async fn save_calibration(
        store: &impl Hooks<Self>,
        collection: In,
        computed_at: DateTime<Utc>,
        faces: u64,
        document: serde_json::Value,
    ) -> StoreResult<()> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let statements = vec![
            Self::insert_calibration(collection, computed_at, faces, document),
            sqlx::query(PRUNE_CALIBRATIONS)
                .bind(Id::from(collection))
                .bind(CALIBRATIONS_KEPT),
        ];
        Self::execute(&mut tx, statements, Taken::Nothing).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn latest_calibration(
        store: &impl Hooks<Self>,
        collection: In,
    ) -> StoreResult<Option<serde_json::Value>> {
        let document: Option<Json<serde_json::Value>> = sqlx::query_scalar(SELECT_CALIBRATION)
            .bind(Id::from(collection))
            .fetch_optional(store.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(document.map(|d| d.0))
    }

    async fn audit_events(
        store: &impl Hooks<Self>,
        collection: Option<CollectionId>,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = Self::select_audit(collection, filter)
            .fetch_all(store.readers())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    /// Deletes a person and their faces and records why, in one transaction; `None` when the
    /// reason no longer holds (a consent renewed since it was found expired).
    async fn delete_person_for(
        store: &impl Hooks<Self>,
        collection: In,
        id: PersonId,
        why: Deletion,
        actor: &Actor,
    ) -> StoreResult<Option<DeletedPerson>> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let person = Self::person_for_write(&mut tx, collection, id).await?;
        let event = match why {
            Deletion::OnRequest => NewAuditEvent::person_deleted,
            Deletion::ConsentExpiredBy(now) => {
                if person.consent.expires_at.is_none_or(|at| at > now) {
                    return Ok(None);
                }
                NewAuditEvent::consent_expired
            }
        };
        let faces: Vec<FaceId> = Self::delete_faces_of_person(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?
            .into_iter()
            .map(FaceId::from)
            .collect();
        let faces_deleted = faces.len() as u64;
        let statements = vec![
            Self::delete_person_row(id),
            Self::audit(collection, event(id, faces_deleted), actor),
        ];
        Self::execute(&mut tx, statements, Taken::Nothing).await?;
        tx.commit().await.map_err(db_error)?;
        store.committed(Committed::FacesRemoved(&faces));
        store.erase(&mut writer).await;
        Ok(Some(DeletedPerson {
            person,
            faces_deleted,
        }))
    }

    async fn add_face(
        store: &impl Hooks<Self>,
        collection: In,
        person: PersonId,
        new: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Face, Added)> {
        store::check_dimension(&new.embedding)?;
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        // Holding the person's row serializes concurrent adds for them, so the idempotency check
        // holds.
        Self::person_for_write(&mut tx, collection, person).await?;
        let (face, added) = Self::add_face_in(&mut tx, collection, person, new, actor).await?;
        if added == Added::Created {
            tx.commit().await.map_err(db_error)?;
            store.committed(Committed::FaceAdded(collection, &face));
        }
        Ok((face, added))
    }

    async fn get_face(store: &impl Hooks<Self>, collection: In, id: FaceId) -> StoreResult<Face> {
        Self::select_face(collection, id)
            .fetch_optional(store.readers())
            .await
            .map_err(db_error)?
            .map(Face::from)
            .ok_or(StoreError::FaceNotFound(id))
    }

    async fn list_faces(
        store: &impl Hooks<Self>,
        collection: In,
        person: PersonId,
    ) -> StoreResult<Vec<Face>> {
        let mut conn = store.readers().acquire().await.map_err(db_error)?;
        Self::select_person(collection, person)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?
            .ok_or(StoreError::PersonNotFound(person))?;
        let rows = Self::select_faces_of_person(person)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Face::from).collect())
    }

    async fn delete_face(
        store: &impl Hooks<Self>,
        collection: In,
        id: FaceId,
        actor: &Actor,
    ) -> StoreResult<Face> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let row = Self::delete_face_row(collection, id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let face = row.map(Face::from).ok_or(StoreError::FaceNotFound(id))?;
        let event = NewAuditEvent::face_deleted(face.person_id, id);
        Self::execute(
            &mut tx,
            vec![Self::audit(collection, event, actor)],
            Taken::Nothing,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        store.committed(Committed::FacesRemoved(&[id]));
        store.erase(&mut writer).await;
        Ok(face)
    }

    async fn record(
        store: &impl Hooks<Self>,
        collection: In,
        event: NewAuditEvent,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        Self::execute(
            &mut tx,
            vec![Self::audit(collection, event, actor)],
            Taken::Nothing,
        )
        .await?;
        tx.commit().await.map_err(db_error)
    }

    async fn count_faces(
        store: &impl Hooks<Self>,
        collection: Option<CollectionId>,
    ) -> StoreResult<u64> {
        store.face_count(collection).await
    }

    async fn list_all_faces(
        store: &impl Hooks<Self>,
        collection: In,
        limit: u32,
        offset: u64,
    ) -> StoreResult<Page<FaceEntry>> {
        let total = Self::select_face_count(Some(collection))
            .fetch_one(store.readers())
            .await
            .map_err(db_error)?;
        let rows = Self::list_face_entries(collection, limit, offset)
            .fetch_all(store.readers())
            .await
            .map_err(db_error)?;
        Ok(Page {
            items: rows.into_iter().map(FaceEntry::from).collect(),
            total: total as u64,
        })
    }

    async fn search(
        store: &impl Hooks<Self>,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
    ) -> StoreResult<Vec<Candidate>> {
        store::check_dimension(probe)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        store.candidates(collection, probe, model, k).await
    }

    async fn issue_ticket(
        store: &impl Hooks<Self>,
        collection: In,
        ticket_sha256: &str,
        actor: &Actor,
        expires_at: DateTime<Utc>,
        max_outstanding: u64,
    ) -> StoreResult<bool> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let expired = Self::delete_expired_tickets(Utc::now());
        Self::execute(&mut tx, vec![expired], Taken::Nothing).await?;
        let outstanding = Self::count_tickets()
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if outstanding as u64 >= max_outstanding {
            return Ok(false);
        }
        let insert = Self::insert_ticket(collection, ticket_sha256, actor, expires_at);
        Self::execute(&mut tx, vec![insert], Taken::Nothing).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn ticket_holder(
        store: &impl Hooks<Self>,
        ticket_sha256: &str,
    ) -> StoreResult<Option<(Actor, CollectionId)>> {
        let holder = Self::select_ticket(ticket_sha256, Utc::now())
            .fetch_optional(store.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(holder.map(|(actor, collection)| (Actor(actor), collection.into())))
    }

    async fn redeem_ticket(store: &impl Hooks<Self>, ticket_sha256: &str) -> StoreResult<bool> {
        let mut writer = store.writer().await?;
        let redeemed = Self::delete_live_ticket(ticket_sha256, Utc::now())
            .fetch_optional(&mut *writer)
            .await
            .map_err(db_error)?;
        Ok(redeemed.is_some())
    }
}

/// A collection's settings as stored: JSON, without the unset ones.
fn settings_json(settings: &CollectionSettings) -> serde_json::Value {
    serde_json::to_value(settings).unwrap_or_else(|_| serde_json::json!({}))
}

/// Why a person is deleted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Deletion {
    OnRequest,
    /// By the retention sweep: their consent had expired at this instant (checked again on the
    /// locked row).
    ConsentExpiredBy(DateTime<Utc>),
}

/// The newest schema version recorded in a database (`None`: a new database).
pub(crate) const SELECT_SCHEMA_VERSION: &str = "SELECT MAX(version) FROM _sqlx_migrations";

/// Refuses, before any migration runs, a database whose schema is newer than this binary's
/// migrations: migrating it would fail halfway or, worse, run an old binary over a new layout.
pub(crate) fn check_schema_version(
    applied: Option<i64>,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), StoreError> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match applied {
        Some(database) if database > known => Err(StoreError::TooNew {
            database,
            binary: known,
        }),
        _ => Ok(()),
    }
}

/// The listing's name filter as a LIKE pattern (wildcards in the name match literally).
fn name_pattern(page: &PageRequest) -> Option<String> {
    page.name_contains.as_deref().map(|contains| {
        let escaped = store::fold_name(contains)
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    })
}

/// A database failure, told apart: the database could not be reached (no connection in time, the
/// connection broke, the server is shutting down or starting) or it failed a statement.
pub(crate) fn db_error(err: sqlx::Error) -> StoreError {
    let unreachable = match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08: connection exceptions; 57P01-57P03: shut down, crashed, starting.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&&*c)),
        _ => false,
    };
    // SQLite reports its (extended) result code, PostgreSQL its SQLSTATE.
    let code = err
        .as_database_error()
        .and_then(|db| db.code())
        .unwrap_or_default();
    let full = code == "13" || code == "53100"; // SQLITE_FULL; disk_full
                                                // SQLITE_READONLY and its extended codes (8 + n*256); read_only_sql_transaction (a standby).
    let read_only = code.parse::<u32>().is_ok_and(|c| c & 0xFF == 8) || code == "25006";
    if unreachable {
        StoreError::Unavailable(err.to_string())
    } else if full {
        StoreError::StorageFull(err.to_string())
    } else if read_only {
        StoreError::ReadOnly(err.to_string())
    } else {
        StoreError::Database(err.to_string())
    }
}

/// What a unique violation means in a write: a value the caller chose is taken.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Taken<'a> {
    /// Nothing the caller chose is unique: a violation is a failure.
    Nothing,
    /// A person's external id (when it has one).
    ExternalId(&'a str),
    /// A collection's name.
    CollectionName(&'a str),
}

impl<'a> Taken<'a> {
    pub(crate) fn external_id(external_id: Option<&'a str>) -> Self {
        external_id.map_or(Self::Nothing, Self::ExternalId)
    }
}

/// A failed write; a unique violation on what the caller chose becomes its own error.
pub(crate) fn write_error(err: sqlx::Error, taken: Taken<'_>) -> StoreError {
    if let Some(db) = err
        .as_database_error()
        .filter(|db| db.is_unique_violation())
    {
        // PostgreSQL names the constraint; SQLite names the column in its message.
        let names = |column: &str| {
            db.constraint().is_some_and(|c| c.contains(column)) || db.message().contains(column)
        };
        match taken {
            Taken::ExternalId(ext) if names("external_id") => {
                return StoreError::DuplicateExternalId(ext.to_owned())
            }
            Taken::CollectionName(name) if names("name") => {
                return StoreError::CollectionExists(name.to_owned())
            }
            _ => {}
        }
    }
    db_error(err)
}
