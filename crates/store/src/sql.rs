//! What both SQL backends do the same way, written once: the statements, how domain values are
//! bound, how rows become domain values, and which statements make up each change.
//!
//! SQLite accepts PostgreSQL's `$n` placeholders, and [`Id`] and [`Embedding`] know how each backend
//! stores them, so one statement text and one row type serve both. The backends keep only what their
//! dialects do differently: connections and locking, search, and the in-memory index of SQLite.

use chrono::{DateTime, Utc};
use facerec_core::store::fold_name;
use facerec_core::{
    Actor, Consent, Face, ModelId, NewAuditEvent, PageRequest, Person, PersonId, StoreError,
};
use facerec_types::FaceQuality;
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::types::Json;
use sqlx::{Database, Decode, Encode, FromRow, IntoArguments, Type};

use crate::columns::{Embedding, Id};

macro_rules! person_columns {
    () => {
        "id, name, external_id, metadata, consent_given_at, consent_basis, created_at, updated_at"
    };
}
macro_rules! face_columns {
    () => {
        "id, person_id, embedding, det_score, bbox, quality, model_name, model_sha256, image_sha256, \
         created_at"
    };
}
/// `$1`: a LIKE pattern over the folded name, or NULL for every person.
macro_rules! name_filter {
    () => {
        "(CAST($1 AS TEXT) IS NULL OR name_folded LIKE $1 ESCAPE '\\')"
    };
}
pub(crate) use person_columns;

pub(crate) const SELECT_PERSON: &str =
    concat!("SELECT ", person_columns!(), " FROM persons WHERE id = $1");
const INSERT_PERSON: &str = concat!(
    "INSERT INTO persons (",
    person_columns!(),
    ", name_folded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
const UPDATE_PERSON: &str = "UPDATE persons SET name = $1, external_id = $2, metadata = $3, \
                             updated_at = $4, name_folded = $6 WHERE id = $5";
const SELECT_UNFOLDED_NAMES: &str = "SELECT id, name FROM persons WHERE name_folded IS NULL";
const SET_FOLDED_NAME: &str = "UPDATE persons SET name_folded = $1 WHERE id = $2";
const DELETE_PERSON: &str = "DELETE FROM persons WHERE id = $1";
const SELECT_PERSONS_NAMED: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE name_folded = $1 ORDER BY created_at, id LIMIT $2"
);
const COUNT_PERSONS: &str = concat!("SELECT count(*) FROM persons WHERE ", name_filter!());
const LIST_PERSONS: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE ",
    name_filter!(),
    " ORDER BY created_at, id LIMIT $2 OFFSET $3"
);

const INSERT_FACE: &str = concat!(
    "INSERT INTO faces (",
    face_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
const SELECT_FACE_OF_IMAGE: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE person_id = $1 AND model_name = $2 AND model_sha256 = $3 AND image_sha256 = $4"
);
const SELECT_FACE: &str = concat!("SELECT ", face_columns!(), " FROM faces WHERE id = $1");
const SELECT_FACES_OF_PERSON: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE person_id = $1 ORDER BY created_at, id"
);
const DELETE_FACE: &str = concat!(
    "DELETE FROM faces WHERE id = $1 RETURNING ",
    face_columns!()
);
const DELETE_FACES_OF_PERSON: &str = "DELETE FROM faces WHERE person_id = $1 RETURNING id";
const COUNT_FACES: &str = "SELECT count(*) FROM faces";
const LIST_FACE_ENTRIES: &str = "SELECT f.id, f.person_id, p.name FROM faces f \
    JOIN persons p ON p.id = f.person_id ORDER BY f.created_at, f.id LIMIT $1 OFFSET $2";
const DELETE_EXPIRED_TICKETS: &str = "DELETE FROM stream_tickets WHERE expires_at <= $1";
const COUNT_TICKETS: &str = "SELECT count(*) FROM stream_tickets";
const INSERT_TICKET: &str =
    "INSERT INTO stream_tickets (ticket_sha256, actor, expires_at) VALUES ($1, $2, $3)";
const SELECT_TICKET: &str =
    "SELECT actor FROM stream_tickets WHERE ticket_sha256 = $1 AND expires_at > $2";
const REDEEM_TICKET: &str =
    "DELETE FROM stream_tickets WHERE ticket_sha256 = $1 AND expires_at > $2 RETURNING actor";

const INSERT_AUDIT: &str =
    "INSERT INTO audit_events (at, action, person_id, face_id, actor, details) \
                            VALUES ($1, $2, $3, $4, $5, $6)";

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

#[derive(FromRow)]
pub(crate) struct PersonRow {
    id: Id,
    name: String,
    external_id: Option<String>,
    metadata: Json<serde_json::Value>,
    consent_given_at: DateTime<Utc>,
    consent_basis: String,
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
            },
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[derive(FromRow)]
pub(crate) struct FaceEntryRow {
    id: Id,
    person_id: Id,
    name: String,
}

impl From<FaceEntryRow> for facerec_core::FaceEntry {
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
    id: Id,
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

/// The statements of both backends. Implemented for `Sqlite` and `Postgres`; only the constants differ.
pub(crate) trait Backend: Database
where
    for<'q> Self::Arguments<'q>: IntoArguments<'q, Self>,
    Id: Column<Self>,
    Option<Id>: Column<Self>,
    Embedding: Column<Self>,
    String: Column<Self>,
    Option<String>: Column<Self>,
    f32: Column<Self>,
    i64: Column<Self>,
    DateTime<Utc>: Column<Self>,
    Json<serde_json::Value>: Column<Self>,
    Json<[f32; 4]>: Column<Self>,
    Json<FaceQuality>: Column<Self>,
    PersonRow: for<'r> FromRow<'r, Self::Row>,
    FaceRow: for<'r> FromRow<'r, Self::Row>,
    FaceEntryRow: for<'r> FromRow<'r, Self::Row>,
    (Id,): for<'r> FromRow<'r, Self::Row>,
    (Id, String): for<'r> FromRow<'r, Self::Row>,
    (i64,): for<'r> FromRow<'r, Self::Row>,
    (String,): for<'r> FromRow<'r, Self::Row>,
{
    /// Reads a person inside a write transaction and holds their row until it ends, so that
    /// concurrent changes to one person are serialized (idempotent face adds rely on it).
    const SELECT_PERSON_FOR_WRITE: &'static str;

    /// Serializes write transactions that look a name up and may create it, until they end (SQLite
    /// has one writer, so needs none).
    const LOCK_NAME: Option<&'static str>;

    fn lock_name(name: &str) -> Option<Statement<Self>> {
        Self::LOCK_NAME.map(|lock| sqlx::query(lock).bind(fold_name(name)))
    }

    fn select_persons_named(name: &str, limit: u32) -> Select<Self, PersonRow> {
        sqlx::query_as(SELECT_PERSONS_NAMED)
            .bind(fold_name(name.trim()))
            .bind(i64::from(limit))
    }

    fn select_person(id: PersonId) -> Select<Self, PersonRow> {
        sqlx::query_as(SELECT_PERSON).bind(Id::from(id))
    }

    fn select_person_for_write(id: PersonId) -> Select<Self, PersonRow> {
        sqlx::query_as(Self::SELECT_PERSON_FOR_WRITE).bind(Id::from(id))
    }

    fn count_persons(page: &PageRequest) -> Scalar<Self, i64> {
        sqlx::query_scalar(COUNT_PERSONS).bind(name_pattern(page))
    }

    fn list_persons(page: &PageRequest) -> Select<Self, PersonRow> {
        sqlx::query_as(LIST_PERSONS)
            .bind(name_pattern(page))
            .bind(i64::from(page.limit))
            // Validated by the caller; a larger offset than i64 can hold finds nothing anyway.
            .bind(i64::try_from(page.offset).unwrap_or(i64::MAX))
    }

    fn insert_person(person: &Person) -> Statement<Self> {
        sqlx::query(INSERT_PERSON)
            .bind(Id::from(person.id))
            .bind(person.name.clone())
            .bind(person.external_id.clone())
            .bind(Json(person.metadata.clone()))
            .bind(person.consent.given_at)
            .bind(person.consent.basis.clone())
            .bind(person.created_at)
            .bind(person.updated_at)
            .bind(fold_name(&person.name))
    }

    fn update_person(person: &Person) -> Statement<Self> {
        sqlx::query(UPDATE_PERSON)
            .bind(person.name.clone())
            .bind(person.external_id.clone())
            .bind(Json(person.metadata.clone()))
            .bind(person.updated_at)
            .bind(Id::from(person.id))
            .bind(fold_name(&person.name))
    }

    /// Persons whose folded name is missing (rows from before migration 0002).
    fn select_unfolded_names() -> Select<Self, (Id, String)> {
        sqlx::query_as(SELECT_UNFOLDED_NAMES)
    }

    fn set_folded_name(id: Id, name: &str) -> Statement<Self> {
        sqlx::query(SET_FOLDED_NAME).bind(fold_name(name)).bind(id)
    }

    fn delete_person(id: PersonId) -> Statement<Self> {
        sqlx::query(DELETE_PERSON).bind(Id::from(id))
    }

    fn insert_face(face: &Face) -> Statement<Self> {
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
    }

    /// The face already stored for this photo of this person with this model (idempotency).
    fn select_face_of_image(
        person: PersonId,
        face: &facerec_core::NewFace,
    ) -> Select<Self, FaceRow> {
        sqlx::query_as(SELECT_FACE_OF_IMAGE)
            .bind(Id::from(person))
            .bind(face.model.name.clone())
            .bind(face.model.sha256.clone())
            .bind(face.image_sha256.clone())
    }

    fn select_face(id: facerec_core::FaceId) -> Select<Self, FaceRow> {
        sqlx::query_as(SELECT_FACE).bind(Id::from(id))
    }

    fn select_faces_of_person(person: PersonId) -> Select<Self, FaceRow> {
        sqlx::query_as(SELECT_FACES_OF_PERSON).bind(Id::from(person))
    }

    fn delete_face(id: facerec_core::FaceId) -> Select<Self, FaceRow> {
        sqlx::query_as(DELETE_FACE).bind(Id::from(id))
    }

    /// Deletes a person's faces explicitly (not by cascade), answering their ids, so that both
    /// backends count them the same way and SQLite can drop them from its index.
    fn delete_faces_of_person(person: PersonId) -> Scalar<Self, Id> {
        sqlx::query_scalar(DELETE_FACES_OF_PERSON).bind(Id::from(person))
    }

    fn count_faces() -> Scalar<Self, i64> {
        sqlx::query_scalar(COUNT_FACES)
    }

    fn list_face_entries(limit: u32, offset: u64) -> Select<Self, FaceEntryRow> {
        sqlx::query_as(LIST_FACE_ENTRIES)
            .bind(i64::from(limit))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    fn delete_expired_tickets(now: DateTime<Utc>) -> Statement<Self> {
        sqlx::query(DELETE_EXPIRED_TICKETS).bind(now)
    }

    fn count_tickets() -> Scalar<Self, i64> {
        sqlx::query_scalar(COUNT_TICKETS)
    }

    fn insert_ticket(
        ticket_sha256: &str,
        actor: &Actor,
        expires_at: DateTime<Utc>,
    ) -> Statement<Self> {
        sqlx::query(INSERT_TICKET)
            .bind(ticket_sha256.to_owned())
            .bind(actor.0.clone())
            .bind(expires_at)
    }

    fn select_ticket(ticket_sha256: &str, now: DateTime<Utc>) -> Scalar<Self, String> {
        sqlx::query_scalar(SELECT_TICKET)
            .bind(ticket_sha256.to_owned())
            .bind(now)
    }

    fn redeem_ticket(ticket_sha256: &str, now: DateTime<Utc>) -> Scalar<Self, String> {
        sqlx::query_scalar(REDEEM_TICKET)
            .bind(ticket_sha256.to_owned())
            .bind(now)
    }

    fn audit(event: NewAuditEvent, actor: &Actor) -> Statement<Self> {
        sqlx::query(INSERT_AUDIT)
            .bind(Utc::now())
            .bind(event.action.as_str().to_owned())
            .bind(event.person_id.map(Id::from))
            .bind(event.face_id.map(Id::from))
            .bind(actor.0.clone())
            .bind(Json(event.details))
    }

    /// A new person with their first face: both rows and both audit events, or nothing.
    fn register(person: &Person, face: &Face, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_person(person),
            Self::insert_face(face),
            Self::audit(NewAuditEvent::person_created(person.id), actor),
            Self::audit(NewAuditEvent::face_added(person.id, face.id), actor),
        ]
    }

    /// A new person without faces yet: the row and its audit event.
    fn create(person: &Person, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_person(person),
            Self::audit(NewAuditEvent::person_created(person.id), actor),
        ]
    }

    fn add_face(face: &Face, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_face(face),
            Self::audit(NewAuditEvent::face_added(face.person_id, face.id), actor),
        ]
    }

    fn update(person: &Person, changed: &[&str], actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::update_person(person),
            Self::audit(NewAuditEvent::person_updated(person.id, changed), actor),
        ]
    }
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
        let escaped = fold_name(contains)
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

/// A failed write; a unique violation on `external_id` becomes its own error.
pub(crate) fn write_error(err: sqlx::Error, external_id: Option<&str>) -> StoreError {
    if let (Some(db), Some(ext)) = (err.as_database_error(), external_id) {
        // PostgreSQL names the constraint; SQLite names the column in its message.
        let names_external_id = db.constraint().is_some_and(|c| c.contains("external_id"))
            || db.message().contains("external_id");
        if db.is_unique_violation() && names_external_id {
            return StoreError::DuplicateExternalId(ext.to_owned());
        }
    }
    db_error(err)
}
