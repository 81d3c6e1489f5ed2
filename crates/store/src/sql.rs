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
use facerec_core::store::{self, StoreResult};
use facerec_core::{
    Actor, Added, AuditEvent, Candidate, DeletedPerson, Face, FaceEntry, FaceId, ModelId,
    NewAuditEvent, NewFace, NewPerson, Page, PageRequest, Person, PersonId, PersonPatch,
    RegisteredNamed, StoreError,
};
use facerec_types::{FaceQuality, NormalizedEmbedding};
use sqlx::query::{Query, QueryAs, QueryScalar};
use sqlx::types::Json;
use sqlx::{Connection, Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use crate::columns::{Embedding, Id};
use crate::rows::{AuditRow, FaceEntryRow, FaceRow, PersonRow};
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
/// `$1`: a LIKE pattern over the folded name, or NULL for every person; `$2`: the latest consent
/// expiry to list, or NULL for every person.
macro_rules! person_filter {
    () => {
        "(CAST($1 AS TEXT) IS NULL OR name_folded LIKE $1 ESCAPE '\\') \
         AND ($2 IS NULL OR consent_expires_at <= $2)"
    };
}
pub(crate) use person_columns;

pub(crate) const SELECT_PERSON: &str =
    concat!("SELECT ", person_columns!(), " FROM persons WHERE id = $1");
const INSERT_PERSON: &str = concat!(
    "INSERT INTO persons (",
    person_columns!(),
    ", name_folded) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
const UPDATE_PERSON: &str = "UPDATE persons SET name = $1, external_id = $2, metadata = $3, \
                             updated_at = $4, name_folded = $6, consent_expires_at = $7 WHERE id = $5";
const SELECT_UNFOLDED_NAMES: &str = "SELECT id, name FROM persons WHERE name_folded IS NULL";
const SET_FOLDED_NAME: &str = "UPDATE persons SET name_folded = $1 WHERE id = $2";
const DELETE_PERSON: &str = "DELETE FROM persons WHERE id = $1";
const SELECT_PERSONS_NAMED: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE name_folded = $1 ORDER BY created_at, id LIMIT $2"
);
const COUNT_PERSONS: &str = concat!("SELECT count(*) FROM persons WHERE ", person_filter!());
const LIST_PERSONS: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE ",
    person_filter!(),
    " ORDER BY created_at, id LIMIT $3 OFFSET $4"
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
const SELECT_EXPIRED: &str = "SELECT id FROM persons WHERE consent_expires_at <= $1 \
                              ORDER BY consent_expires_at, id LIMIT $2";
const SAMPLE_FACES: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE model_name = $1 AND model_sha256 = $2 \
     AND person_id IN (SELECT id FROM persons ORDER BY random() LIMIT $3)"
);
/// Calibrations kept (the newest is in force; the others are history for the operator).
const CALIBRATIONS_KEPT: i64 = 10;
const INSERT_CALIBRATION: &str =
    "INSERT INTO calibrations (computed_at, faces, document) VALUES ($1, $2, $3)";
const PRUNE_CALIBRATIONS: &str = "DELETE FROM calibrations WHERE id NOT IN \
     (SELECT id FROM calibrations ORDER BY id DESC LIMIT $1)";
const SELECT_CALIBRATION: &str = "SELECT document FROM calibrations ORDER BY id DESC LIMIT 1";
const SELECT_AUDIT: &str = "SELECT id, at, action, person_id, face_id, actor, details FROM audit_events \
                            WHERE (CAST($1 AS TEXT) IS NULL OR person_id = $1) ORDER BY id DESC LIMIT $2";
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
    (Id,): for<'r> FromRow<'r, Self::Row>,
    (Id, String): for<'r> FromRow<'r, Self::Row>,
    (i64,): for<'r> FromRow<'r, Self::Row>,
    (String,): for<'r> FromRow<'r, Self::Row>,
    (Json<serde_json::Value>,): for<'r> FromRow<'r, Self::Row>,
{
    /// Reads a person inside a write transaction and holds their row until it ends, so that
    /// concurrent changes to one person are serialized (idempotent face adds rely on it).
    const SELECT_PERSON_FOR_WRITE: &'static str;

    /// Serializes write transactions that look a name up and may create it, until they end (SQLite
    /// has one writer, so needs none).
    const LOCK_NAME: Option<&'static str>;

    fn lock_name(name: &str) -> Option<Statement<Self>> {
        Self::LOCK_NAME.map(|lock| sqlx::query(lock).bind(store::fold_name(name)))
    }

    fn select_persons_named(name: &str, limit: u32) -> Select<Self, PersonRow> {
        sqlx::query_as(SELECT_PERSONS_NAMED)
            .bind(store::fold_name(name.trim()))
            .bind(i64::from(limit))
    }

    fn select_person(id: PersonId) -> Select<Self, PersonRow> {
        sqlx::query_as(SELECT_PERSON).bind(Id::from(id))
    }

    fn select_person_for_write(id: PersonId) -> Select<Self, PersonRow> {
        sqlx::query_as(Self::SELECT_PERSON_FOR_WRITE).bind(Id::from(id))
    }

    fn count_persons(page: &PageRequest) -> Scalar<Self, i64> {
        sqlx::query_scalar(COUNT_PERSONS)
            .bind(name_pattern(page))
            .bind(page.expires_before)
    }

    fn select_persons_page(page: &PageRequest) -> Select<Self, PersonRow> {
        sqlx::query_as(LIST_PERSONS)
            .bind(name_pattern(page))
            .bind(page.expires_before)
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
            .bind(person.consent.expires_at)
            .bind(person.created_at)
            .bind(person.updated_at)
            .bind(store::fold_name(&person.name))
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

    fn delete_face_row(id: facerec_core::FaceId) -> Select<Self, FaceRow> {
        sqlx::query_as(DELETE_FACE).bind(Id::from(id))
    }

    /// Deletes a person's faces explicitly (not by cascade), answering their ids, so that both
    /// backends count them the same way and SQLite can drop them from its index.
    fn delete_faces_of_person(person: PersonId) -> Scalar<Self, Id> {
        sqlx::query_scalar(DELETE_FACES_OF_PERSON).bind(Id::from(person))
    }

    fn select_expired(now: DateTime<Utc>, limit: u32) -> Scalar<Self, Id> {
        sqlx::query_scalar(SELECT_EXPIRED)
            .bind(now)
            .bind(i64::from(limit))
    }

    fn sample_faces_of(max_persons: u32, model: &ModelId) -> Select<Self, FaceRow> {
        sqlx::query_as(SAMPLE_FACES)
            .bind(model.name.clone())
            .bind(model.sha256.clone())
            .bind(i64::from(max_persons))
    }

    fn insert_calibration(
        computed_at: DateTime<Utc>,
        faces: u64,
        document: serde_json::Value,
    ) -> Statement<Self> {
        sqlx::query(INSERT_CALIBRATION)
            .bind(computed_at)
            .bind(i64::try_from(faces).unwrap_or(i64::MAX))
            .bind(Json(document))
    }

    fn select_audit(person: Option<PersonId>, limit: u32) -> Select<Self, AuditRow> {
        sqlx::query_as(SELECT_AUDIT)
            .bind(person.map(Id::from))
            .bind(i64::from(limit))
    }

    fn select_face_count() -> Scalar<Self, i64> {
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

    fn delete_live_ticket(ticket_sha256: &str, now: DateTime<Utc>) -> Scalar<Self, String> {
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
    fn registration(person: &Person, face: &Face, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_person(person),
            Self::insert_face(face),
            Self::audit(NewAuditEvent::person_created(person.id), actor),
            Self::audit(NewAuditEvent::face_added(person.id, face.id), actor),
        ]
    }

    /// A new person without faces yet: the row and its audit event.
    fn creation(person: &Person, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_person(person),
            Self::audit(NewAuditEvent::person_created(person.id), actor),
        ]
    }

    fn face_addition(face: &Face, actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::insert_face(face),
            Self::audit(NewAuditEvent::face_added(face.person_id, face.id), actor),
        ]
    }

    fn person_update(person: &Person, changed: &[&str], actor: &Actor) -> Vec<Statement<Self>> {
        vec![
            Self::update_person_row(person),
            Self::audit(NewAuditEvent::person_updated(person.id, changed), actor),
        ]
    }

    // The operations of `Store`, written once over a store's hooks (`store_impl::impl_store!`
    // forwards each `Store` method here).

    /// Runs a change's statements on an open transaction; a unique violation on `external_id`
    /// becomes its own error.
    async fn execute(
        tx: &mut Self::Connection,
        statements: Vec<Statement<Self>>,
        external_id: Option<&str>,
    ) -> StoreResult<()> {
        for statement in statements {
            statement
                .execute(&mut *tx)
                .await
                .map_err(|e| write_error(e, external_id))?;
        }
        Ok(())
    }

    /// The person, read (and, where the dialect can, locked) inside a write transaction.
    async fn person_for_write(tx: &mut Self::Connection, id: PersonId) -> StoreResult<Person> {
        Self::select_person_for_write(id)
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
        Self::execute(tx, Self::face_addition(&face, actor), None).await?;
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
        Self::execute(&mut tx, statements, None).await?;
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

    async fn register(
        store: &impl Hooks<Self>,
        new: NewPerson,
        face: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Person, Face)> {
        let now = Utc::now();
        let person = store::person_from_new(&new, now)?;
        let face = store::face_from_new(person.id, face, now)?;
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let statements = Self::registration(&person, &face, actor);
        Self::execute(&mut tx, statements, person.external_id.as_deref()).await?;
        tx.commit().await.map_err(db_error)?;
        store.committed(Committed::FaceAdded(&face));
        Ok((person, face))
    }

    async fn get_person(store: &impl Hooks<Self>, id: PersonId) -> StoreResult<Person> {
        let row = Self::select_person(id)
            .fetch_optional(store.readers())
            .await
            .map_err(db_error)?;
        row.map(Person::from).ok_or(StoreError::PersonNotFound(id))
    }

    async fn persons_named(
        store: &impl Hooks<Self>,
        name: &str,
        limit: u32,
    ) -> StoreResult<Vec<Person>> {
        let rows = Self::select_persons_named(name, limit)
            .fetch_all(store.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Person::from).collect())
    }

    async fn register_named(
        store: &impl Hooks<Self>,
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
            Self::lock_name(&candidate.name).into_iter().collect(),
            None,
        )
        .await?;
        let mut named = Self::select_persons_named(&candidate.name, 2)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        if named.len() > 1 {
            return Err(StoreError::AmbiguousName(candidate.name));
        }
        let (person, created) = match named.pop() {
            Some(row) => (Self::person_for_write(&mut tx, row.id.into()).await?, false),
            None => {
                let statements = Self::creation(&candidate, actor);
                let external_id = candidate.external_id.as_deref();
                Self::execute(&mut tx, statements, external_id).await?;
                (candidate, true)
            }
        };
        let mut added = Vec::with_capacity(faces.len());
        for face in faces {
            added.push(Self::add_face_in(&mut tx, person.id, face, actor).await?);
        }
        tx.commit().await.map_err(db_error)?;
        for (face, _) in added.iter().filter(|(_, a)| *a == Added::Created) {
            store.committed(Committed::FaceAdded(face));
        }
        Ok(RegisteredNamed {
            person,
            created,
            faces: added,
        })
    }

    async fn list_persons(
        store: &impl Hooks<Self>,
        page: &PageRequest,
    ) -> StoreResult<Page<Person>> {
        let total = Self::count_persons(page)
            .fetch_one(store.readers())
            .await
            .map_err(db_error)?;
        let rows = Self::select_persons_page(page)
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
        id: PersonId,
        patch: PersonPatch,
        actor: &Actor,
    ) -> StoreResult<Person> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let mut person = Self::person_for_write(&mut tx, id).await?;
        let changed = store::apply_patch(&mut person, patch, Utc::now())?;
        let statements = Self::person_update(&person, &changed, actor);
        Self::execute(&mut tx, statements, person.external_id.as_deref()).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(person)
    }

    async fn delete_person(
        store: &impl Hooks<Self>,
        id: PersonId,
        actor: &Actor,
    ) -> StoreResult<DeletedPerson> {
        Self::delete_person_for(store, id, Deletion::OnRequest, actor)
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
        for id in expired {
            let why = Deletion::ConsentExpiredBy(now);
            match Self::delete_person_for(store, id.into(), why, actor).await {
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
        max_persons: u32,
        model: &ModelId,
    ) -> StoreResult<Vec<Face>> {
        let rows = Self::sample_faces_of(max_persons, model)
            .fetch_all(store.readers())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Face::from).collect())
    }

    async fn save_calibration(
        store: &impl Hooks<Self>,
        computed_at: DateTime<Utc>,
        faces: u64,
        document: serde_json::Value,
    ) -> StoreResult<()> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let statements = vec![
            Self::insert_calibration(computed_at, faces, document),
            sqlx::query(PRUNE_CALIBRATIONS).bind(CALIBRATIONS_KEPT),
        ];
        Self::execute(&mut tx, statements, None).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn latest_calibration(
        store: &impl Hooks<Self>,
    ) -> StoreResult<Option<serde_json::Value>> {
        let document: Option<Json<serde_json::Value>> = sqlx::query_scalar(SELECT_CALIBRATION)
            .fetch_optional(store.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(document.map(|d| d.0))
    }

    async fn audit_events(
        store: &impl Hooks<Self>,
        person: Option<PersonId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = Self::select_audit(person, limit)
            .fetch_all(store.readers())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }

    /// Deletes a person and their faces and records why, in one transaction; `None` when the
    /// reason no longer holds (a consent renewed since it was found expired).
    async fn delete_person_for(
        store: &impl Hooks<Self>,
        id: PersonId,
        why: Deletion,
        actor: &Actor,
    ) -> StoreResult<Option<DeletedPerson>> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let person = Self::person_for_write(&mut tx, id).await?;
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
            Self::audit(event(id, faces_deleted), actor),
        ];
        Self::execute(&mut tx, statements, None).await?;
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
        person: PersonId,
        new: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Face, Added)> {
        store::check_dimension(&new.embedding)?;
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        // Holding the person's row serializes concurrent adds for them, so the idempotency check
        // holds.
        Self::person_for_write(&mut tx, person).await?;
        let (face, added) = Self::add_face_in(&mut tx, person, new, actor).await?;
        if added == Added::Created {
            tx.commit().await.map_err(db_error)?;
            store.committed(Committed::FaceAdded(&face));
        }
        Ok((face, added))
    }

    async fn get_face(store: &impl Hooks<Self>, id: FaceId) -> StoreResult<Face> {
        Self::select_face(id)
            .fetch_optional(store.readers())
            .await
            .map_err(db_error)?
            .map(Face::from)
            .ok_or(StoreError::FaceNotFound(id))
    }

    async fn list_faces(store: &impl Hooks<Self>, person: PersonId) -> StoreResult<Vec<Face>> {
        let mut conn = store.readers().acquire().await.map_err(db_error)?;
        Self::select_person(person)
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

    async fn delete_face(store: &impl Hooks<Self>, id: FaceId, actor: &Actor) -> StoreResult<Face> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let row = Self::delete_face_row(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let face = row.map(Face::from).ok_or(StoreError::FaceNotFound(id))?;
        let event = NewAuditEvent::face_deleted(face.person_id, id);
        Self::execute(&mut tx, vec![Self::audit(event, actor)], None).await?;
        tx.commit().await.map_err(db_error)?;
        store.committed(Committed::FacesRemoved(&[id]));
        store.erase(&mut writer).await;
        Ok(face)
    }

    async fn record(
        store: &impl Hooks<Self>,
        event: NewAuditEvent,
        actor: &Actor,
    ) -> StoreResult<()> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        Self::execute(&mut tx, vec![Self::audit(event, actor)], None).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn count_faces(store: &impl Hooks<Self>) -> StoreResult<u64> {
        store.face_count().await
    }

    async fn list_all_faces(
        store: &impl Hooks<Self>,
        limit: u32,
        offset: u64,
    ) -> StoreResult<Page<FaceEntry>> {
        let total = Self::select_face_count()
            .fetch_one(store.readers())
            .await
            .map_err(db_error)?;
        let rows = Self::list_face_entries(limit, offset)
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
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
    ) -> StoreResult<Vec<Candidate>> {
        store::check_dimension(probe)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        store.candidates(probe, model, k).await
    }

    async fn issue_ticket(
        store: &impl Hooks<Self>,
        ticket_sha256: &str,
        actor: &Actor,
        expires_at: DateTime<Utc>,
        max_outstanding: u64,
    ) -> StoreResult<bool> {
        let mut writer = store.writer().await?;
        let mut tx = writer.begin().await.map_err(db_error)?;
        let expired = Self::delete_expired_tickets(Utc::now());
        Self::execute(&mut tx, vec![expired], None).await?;
        let outstanding = Self::count_tickets()
            .fetch_one(&mut *tx)
            .await
            .map_err(db_error)?;
        if outstanding as u64 >= max_outstanding {
            return Ok(false);
        }
        let insert = Self::insert_ticket(ticket_sha256, actor, expires_at);
        Self::execute(&mut tx, vec![insert], None).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn ticket_holder(
        store: &impl Hooks<Self>,
        ticket_sha256: &str,
    ) -> StoreResult<Option<Actor>> {
        let actor = Self::select_ticket(ticket_sha256, Utc::now())
            .fetch_optional(store.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(actor.map(Actor))
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
