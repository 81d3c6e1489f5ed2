//! SQLite: the zero-setup default. One file in WAL mode, one writer connection (SQLite has one writer
//! anyway; a single connection avoids lock-upgrade failures), a pool of readers, and the exact
//! in-memory index that search runs on.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use facerec_core::store::{
    apply_patch, check_dimension, face_from_new, person_from_new, StoreResult,
};
use facerec_core::*;
use facerec_vision::NormalizedEmbedding;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection};
use tokio::sync::Mutex;

use crate::codec::*;
use crate::exact_index::ExactIndex;
use crate::{db_error, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

const PERSON_COLUMNS: &str =
    "id, name, external_id, metadata, consent_given_at, consent_basis, created_at, updated_at";
const FACE_COLUMNS: &str =
    "id, person_id, embedding, det_score, bbox, quality, model_name, model_sha256, image_sha256, created_at";

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<SqliteConnection>,
    readers: SqlitePool,
    index: Arc<RwLock<ExactIndex>>,
    /// Held for the store's lifetime: a second process on the same file is refused.
    _lock: File,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, applies migrations and loads the index.
    pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Database(format!("invalid SQLite URL '{url}': {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let path = connect.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
            return Err(StoreError::Database(
                "SQLite needs a file (sqlite://path/to/facerec.db); in-memory databases would lose registrations".into(),
            ));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Database(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let lock = acquire_lock(&path)?;

        let mut writer = SqliteConnection::connect_with(&connect)
            .await
            .map_err(db_error)?;
        MIGRATOR
            .run(&mut writer)
            .await
            .map_err(|e| StoreError::Database(format!("migrating {}: {e}", path.display())))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(4))
            .connect_with(connect.read_only(true))
            .await
            .map_err(db_error)?;

        let store = Self {
            path,
            writer: Mutex::new(writer),
            readers,
            index: Arc::new(RwLock::new(ExactIndex::new())),
            _lock: lock,
        };
        store.load_index().await?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn load_index(&self) -> StoreResult<()> {
        let rows =
            sqlx::query("SELECT id, person_id, model_name, model_sha256, embedding FROM faces")
                .fetch_all(&self.readers)
                .await
                .map_err(db_error)?;
        let mut index = ExactIndex::new();
        for row in &rows {
            let model = ModelRef {
                name: row.get("model_name"),
                sha256: row.get("model_sha256"),
            };
            let embedding = embedding_from_bytes(row.get::<&[u8], _>("embedding"))?;
            index.insert(
                &model.key(),
                parse_id(row, "id")?,
                parse_id(row, "person_id")?,
                embedding.as_slice(),
            );
        }
        tracing::info!(faces = index.len(), path = %self.path.display(), "loaded the exact index");
        *self.index.write().expect("index lock") = index;
        Ok(())
    }

    fn index_write(&self) -> std::sync::RwLockWriteGuard<'_, ExactIndex> {
        self.index.write().expect("index lock poisoned")
    }
}

/// `<file>.lock`, locked exclusively: SQLite's own locks allow several processes, but each would
/// hold its own in-memory index and miss the others' writes.
fn acquire_lock(path: &Path) -> StoreResult<File> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| StoreError::Database(format!("cannot open {}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked(format!(
            "{} is open in another facerec process; stop it, or use PostgreSQL to run several",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::Database(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

fn parse_id<T: FromStr>(row: &SqliteRow, column: &str) -> StoreResult<T> {
    let text: String = row.try_get(column).map_err(db_error)?;
    text.parse()
        .map_err(|_| StoreError::Database(format!("invalid id in {column}: {text}")))
}

fn parse_json(row: &SqliteRow, column: &str) -> StoreResult<serde_json::Value> {
    let text: String = row.try_get(column).map_err(db_error)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::Database(format!("invalid JSON in {column}: {e}")))
}

fn person_from_row(row: &SqliteRow) -> StoreResult<Person> {
    Ok(Person {
        id: parse_id(row, "id")?,
        name: row.try_get("name").map_err(db_error)?,
        external_id: row.try_get("external_id").map_err(db_error)?,
        metadata: parse_json(row, "metadata")?,
        consent: Consent {
            given_at: row.try_get("consent_given_at").map_err(db_error)?,
            basis: row.try_get("consent_basis").map_err(db_error)?,
        },
        created_at: row.try_get("created_at").map_err(db_error)?,
        updated_at: row.try_get("updated_at").map_err(db_error)?,
    })
}

fn face_from_row(row: &SqliteRow) -> StoreResult<Face> {
    Ok(Face {
        id: parse_id(row, "id")?,
        person_id: parse_id(row, "person_id")?,
        embedding: embedding_from_bytes(row.try_get::<&[u8], _>("embedding").map_err(db_error)?)?,
        det_score: row.try_get("det_score").map_err(db_error)?,
        bbox: bbox_from_json(parse_json(row, "bbox")?)?,
        quality: quality_from_json(parse_json(row, "quality")?)?,
        model: ModelRef {
            name: row.try_get("model_name").map_err(db_error)?,
            sha256: row.try_get("model_sha256").map_err(db_error)?,
        },
        image_sha256: row.try_get("image_sha256").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
    })
}

/// Unique violations on `external_id` become their own error.
fn write_error(err: sqlx::Error, external_id: Option<&str>) -> StoreError {
    if let (Some(db), Some(ext)) = (err.as_database_error(), external_id) {
        if db.is_unique_violation() && db.message().contains("external_id") {
            return StoreError::DuplicateExternalId(ext.to_owned());
        }
    }
    db_error(err)
}

async fn insert_audit(
    conn: &mut SqliteConnection,
    event: NewAuditEvent,
    actor: &Actor,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_events (at, action, person_id, face_id, actor, details) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(Utc::now())
        .bind(event.action.as_str())
        .bind(event.person_id.map(|p| p.to_string()))
        .bind(event.face_id.map(|f| f.to_string()))
        .bind(&actor.0)
        .bind(event.details.to_string())
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn insert_person(
    conn: &mut SqliteConnection,
    new: &NewPerson,
    now: DateTime<Utc>,
) -> StoreResult<Person> {
    let person = person_from_new(new, now)?;
    sqlx::query(&format!(
        "INSERT INTO persons ({PERSON_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(person.id.to_string())
    .bind(&person.name)
    .bind(&person.external_id)
    .bind(person.metadata.to_string())
    .bind(person.consent.given_at)
    .bind(&person.consent.basis)
    .bind(person.created_at)
    .bind(person.updated_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| write_error(e, person.external_id.as_deref()))?;
    Ok(person)
}

async fn insert_face(
    conn: &mut SqliteConnection,
    person: PersonId,
    new: NewFace,
    now: DateTime<Utc>,
) -> StoreResult<Face> {
    let face = face_from_new(person, new, now)?;
    sqlx::query(&format!(
        "INSERT INTO faces ({FACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(face.id.to_string())
    .bind(person.to_string())
    .bind(embedding_to_bytes(&face.embedding))
    .bind(face.det_score)
    .bind(to_json(&face.bbox).to_string())
    .bind(to_json(&face.quality).to_string())
    .bind(&face.model.name)
    .bind(&face.model.sha256)
    .bind(&face.image_sha256)
    .bind(face.created_at)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(face)
}

async fn select_person(conn: &mut SqliteConnection, id: PersonId) -> StoreResult<Person> {
    let row = sqlx::query(&format!(
        "SELECT {PERSON_COLUMNS} FROM persons WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(person_from_row)
        .transpose()?
        .ok_or(StoreError::PersonNotFound(id))
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.readers)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn create_person(&self, new: NewPerson, actor: &Actor) -> StoreResult<Person> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let person = insert_person(&mut tx, &new, Utc::now()).await?;
        insert_audit(&mut tx, NewAuditEvent::person_created(person.id), actor).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(person)
    }

    async fn register(
        &self,
        new: NewPerson,
        face: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Person, Face)> {
        check_dimension(&face.embedding)?;
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let now = Utc::now();
        let person = insert_person(&mut tx, &new, now).await?;
        let face = insert_face(&mut tx, person.id, face, now).await?;
        insert_audit(&mut tx, NewAuditEvent::person_created(person.id), actor).await?;
        insert_audit(
            &mut tx,
            NewAuditEvent::face_added(person.id, face.id),
            actor,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.index_write().insert(
            &face.model.key(),
            face.id,
            person.id,
            face.embedding.as_slice(),
        );
        Ok((person, face))
    }

    async fn get_person(&self, id: PersonId) -> StoreResult<Person> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        select_person(&mut conn, id).await
    }

    async fn find_person_by_external_id(&self, external_id: &str) -> StoreResult<Option<Person>> {
        let row = sqlx::query(&format!(
            "SELECT {PERSON_COLUMNS} FROM persons WHERE external_id = ?"
        ))
        .bind(external_id)
        .fetch_optional(&self.readers)
        .await
        .map_err(db_error)?;
        row.as_ref().map(person_from_row).transpose()
    }

    async fn list_persons(&self, page: &PageRequest) -> StoreResult<Page<Person>> {
        let pattern = page.name_contains.as_deref().map(like_pattern);
        let filter = "(?1 IS NULL OR lower(name) LIKE ?1 ESCAPE '\\')";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM persons WHERE {filter}"))
                .bind(&pattern)
                .fetch_one(&self.readers)
                .await
                .map_err(db_error)?;
        let rows = sqlx::query(&format!(
            "SELECT {PERSON_COLUMNS} FROM persons WHERE {filter} ORDER BY created_at, id LIMIT ?2 OFFSET ?3"
        ))
        .bind(&pattern)
        .bind(i64::from(page.limit))
        .bind(page.offset as i64)
        .fetch_all(&self.readers)
        .await
        .map_err(db_error)?;
        Ok(Page {
            items: rows
                .iter()
                .map(person_from_row)
                .collect::<StoreResult<_>>()?,
            total: total as u64,
        })
    }

    async fn update_person(
        &self,
        id: PersonId,
        patch: PersonPatch,
        actor: &Actor,
    ) -> StoreResult<Person> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let mut person = select_person(&mut tx, id).await?;
        let changed = apply_patch(&mut person, patch, Utc::now())?;
        sqlx::query("UPDATE persons SET name = ?, external_id = ?, metadata = ?, updated_at = ? WHERE id = ?")
            .bind(&person.name)
            .bind(&person.external_id)
            .bind(person.metadata.to_string())
            .bind(person.updated_at)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, person.external_id.as_deref()))?;
        insert_audit(&mut tx, NewAuditEvent::person_updated(id, &changed), actor).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(person)
    }

    async fn delete_person(&self, id: PersonId, actor: &Actor) -> StoreResult<DeletedPerson> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let person = select_person(&mut tx, id).await?;
        let face_ids: Vec<String> = sqlx::query_scalar("SELECT id FROM faces WHERE person_id = ?")
            .bind(id.to_string())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query("DELETE FROM persons WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(
            &mut tx,
            NewAuditEvent::person_deleted(id, face_ids.len() as u64),
            actor,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        let mut index = self.index_write();
        for face in &face_ids {
            if let Ok(face) = face.parse() {
                index.remove_face(face);
            }
        }
        Ok(DeletedPerson {
            person,
            faces_deleted: face_ids.len() as u64,
        })
    }

    async fn add_face(
        &self,
        person: PersonId,
        new: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Face, Added)> {
        check_dimension(&new.embedding)?;
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await.map_err(db_error)?;
        select_person(&mut tx, person).await?;
        let existing = sqlx::query(&format!(
            "SELECT {FACE_COLUMNS} FROM faces
             WHERE person_id = ? AND model_name = ? AND model_sha256 = ? AND image_sha256 = ?"
        ))
        .bind(person.to_string())
        .bind(&new.model.name)
        .bind(&new.model.sha256)
        .bind(&new.image_sha256)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        if let Some(row) = existing {
            return Ok((face_from_row(&row)?, Added::AlreadyPresent));
        }
        let face = insert_face(&mut tx, person, new, Utc::now()).await?;
        insert_audit(&mut tx, NewAuditEvent::face_added(person, face.id), actor).await?;
        tx.commit().await.map_err(db_error)?;
        self.index_write().insert(
            &face.model.key(),
            face.id,
            person,
            face.embedding.as_slice(),
        );
        Ok((face, Added::Created))
    }

    async fn get_face(&self, id: FaceId) -> StoreResult<Face> {
        let row = sqlx::query(&format!("SELECT {FACE_COLUMNS} FROM faces WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.readers)
            .await
            .map_err(db_error)?;
        row.as_ref()
            .map(face_from_row)
            .transpose()?
            .ok_or(StoreError::FaceNotFound(id))
    }

    async fn list_faces(&self, person: PersonId) -> StoreResult<Vec<Face>> {
        let mut conn = self.readers.acquire().await.map_err(db_error)?;
        select_person(&mut conn, person).await?;
        let rows = sqlx::query(&format!(
            "SELECT {FACE_COLUMNS} FROM faces WHERE person_id = ? ORDER BY created_at, id"
        ))
        .bind(person.to_string())
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter().map(face_from_row).collect()
    }

    async fn delete_face(&self, id: FaceId, actor: &Actor) -> StoreResult<Face> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin().await.map_err(db_error)?;
        let row = sqlx::query(&format!("SELECT {FACE_COLUMNS} FROM faces WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let face = row
            .as_ref()
            .map(face_from_row)
            .transpose()?
            .ok_or(StoreError::FaceNotFound(id))?;
        sqlx::query("DELETE FROM faces WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(
            &mut tx,
            NewAuditEvent::face_deleted(face.person_id, id),
            actor,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        self.index_write().remove_face(id);
        Ok(face)
    }

    async fn count_faces(&self) -> StoreResult<u64> {
        Ok(self.index.read().expect("index lock").len() as u64)
    }

    async fn search(
        &self,
        probe: &NormalizedEmbedding,
        model: &ModelRef,
        k: usize,
    ) -> StoreResult<Vec<PersonHit>> {
        check_dimension(probe)?;
        let index = Arc::clone(&self.index);
        let (probe, key) = (probe.clone(), model.key());
        // A scan of a large index takes milliseconds: off the async runtime's threads.
        tokio::task::spawn_blocking(move || {
            index
                .read()
                .expect("index lock")
                .search(&key, probe.as_slice(), k)
        })
        .await
        .map_err(|e| StoreError::Database(format!("search task failed: {e}")))
    }

    async fn audit_events(
        &self,
        person: Option<PersonId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, action, person_id, face_id, actor, details FROM audit_events
             WHERE (?1 IS NULL OR person_id = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(person.map(|p| p.to_string()))
        .bind(i64::from(limit))
        .fetch_all(&self.readers)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let action: String = row.try_get("action").map_err(db_error)?;
                let person: Option<String> = row.try_get("person_id").map_err(db_error)?;
                let face: Option<String> = row.try_get("face_id").map_err(db_error)?;
                Ok(AuditEvent {
                    id: row.try_get("id").map_err(db_error)?,
                    at: row.try_get("at").map_err(db_error)?,
                    action: AuditAction::parse(&action).ok_or_else(|| {
                        StoreError::Database(format!("unknown audit action {action}"))
                    })?,
                    person_id: person.and_then(|p| p.parse().ok()),
                    face_id: face.and_then(|f| f.parse().ok()),
                    actor: Actor(row.try_get("actor").map_err(db_error)?),
                    details: parse_json(row, "details")?,
                })
            })
            .collect()
    }
}
