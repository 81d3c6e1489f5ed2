//! SQLite: the zero-setup default. One file in WAL mode, one writer connection (SQLite has one writer
//! anyway; a single connection avoids lock-upgrade failures), a pool of readers, and the exact
//! in-memory index that search runs on. The statements and operations are shared with PostgreSQL
//! (`crate::statements`, `ops/`).

use std::collections::HashMap;
use std::fs::File;
use std::ops::DerefMut;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use facerec_core::capture::{Capture, Neighbour};
use facerec_core::store::StoreResult;
use facerec_core::{Candidate, CaptureId, CollectionId, FaceId, ModelId, PersonId, StoreError};
use facerec_types::embedding::dot;
use facerec_types::{NormalizedEmbedding, Similarity};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite, SqliteConnection};
use tokio::sync::Mutex;

use crate::backend::{Change, Hooks};
use crate::capture_index::CaptureIndex;
use crate::columns::{Embedding, Id};
use crate::error::db_error;
use crate::exact_index::{top_persons, ExactIndex};
use crate::rows::CaptureRow;
use crate::statements::{SELECT_COLLECTION, SELECT_PERSON};
use crate::StoreOptions;

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

// The operations both backends share (`ops/`, see the crate's documentation), compiled for this
// one: they are written over these names.
type DB = Sqlite;
type This = SqliteStore;
const NAME: &str = "sqlite";
/// One writer connection: nothing else can change the row before the transaction ends.
const SELECT_PERSON_FOR_WRITE: &str = SELECT_PERSON;
/// One writer: nothing else writes before the transaction ends.
const SELECT_COLLECTION_FOR_WRITE: &str = SELECT_COLLECTION;
/// One writer: registrations by name are serialized without a lock.
const LOCK_NAME: Option<&str> = None;
/// SQLite in WAL mode with `synchronous = NORMAL` already commits without waiting for a flush.
/// SQLite has one writer: events commit in `seq` order by themselves.
const LOCK_EVENTS: Option<&str> = None;
const CAPTURE_COMMIT: Option<&str> = None;
#[path = "ops/bind.rs"]
mod bind;
#[path = "ops/captures.rs"]
mod captures;
#[path = "ops/catalogue.rs"]
mod catalogue;
#[path = "ops/gallery.rs"]
mod gallery;
#[cfg(feature = "testing")]
#[path = "ops/inspect.rs"]
mod inspect;
#[path = "ops/outbox.rs"]
mod outbox;
#[path = "ops/store.rs"]
mod store;
#[path = "ops/write.rs"]
mod write;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<SqliteConnection>,
    /// How the writer connects, to replace it after a transaction SQLite ended on its own.
    connect: SqliteConnectOptions,
    readers: SqlitePool,
    index: Arc<RwLock<ExactIndex>>,
    /// The captured faces' embeddings, for grouping and searching them.
    captures: RwLock<CaptureIndex>,
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
            // Deleted rows are overwritten with zeros, not just unlinked: a deleted person's
            // embedding must not stay readable in the file.
            .pragma("secure_delete", "ON")
            .busy_timeout(Duration::from_secs(10));
        if options.read_url.is_some() {
            return Err(StoreError::Database(
                "a read URL is for a PostgreSQL standby; SQLite has one file".into(),
            ));
        }
        let path = connect.get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path.to_string_lossy().contains(":memory:") {
            return Err(StoreError::Database(
                "SQLite needs a file (sqlite://path/to/facerec.db); in-memory databases would lose registrations".into(),
            ));
        }
        let lock = prepare_files(&path)?;
        let mut writer = SqliteConnection::connect_with(&connect)
            .await
            .map_err(db_error)?;
        store::migrate(&mut writer, &MIGRATOR)
            .await
            .map_err(|e| in_file(e, &path))?;
        let readers = SqlitePoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(4))
            .connect_with(connect.clone().read_only(true))
            .await
            .map_err(db_error)?;

        let store = Self {
            path,
            writer: Mutex::new(writer),
            connect,
            readers,
            index: Arc::new(RwLock::new(ExactIndex::new())),
            captures: RwLock::new(CaptureIndex::default()),
            _lock: lock,
        };
        store.fold_missing_names().await?;
        store.load_index().await?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn load_index(&self) -> StoreResult<()> {
        let rows: Vec<(Id, Id, Id, String, String, Embedding)> = sqlx::query_as(
            "SELECT id, person_id, collection_id, model_name, model_sha256, embedding FROM faces",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(db_error)?;
        let mut index = ExactIndex::new();
        for (face, person, collection, name, sha256, embedding) in rows {
            let model = ModelId { name, sha256 };
            index.insert(
                &shard(collection.into(), &model),
                face.into(),
                person.into(),
                embedding.0.as_slice(),
            );
        }
        tracing::info!(faces = index.len(), path = %self.path.display(), "loaded the exact index");
        *self.index.write().expect("index lock") = index;
        let rows: Vec<(Id, Id, String, String, Embedding)> = sqlx::query_as(
            "SELECT id, collection_id, model_name, model_sha256, embedding FROM captures",
        )
        .fetch_all(&self.readers)
        .await
        .map_err(db_error)?;
        let mut captures = CaptureIndex::default();
        for (id, collection, name, sha256, embedding) in rows {
            let model = ModelId { name, sha256 };
            captures.insert(
                &shard(collection.into(), &model),
                id.into(),
                embedding.0.as_slice(),
            );
        }
        *self.captures.write().expect("capture index lock") = captures;
        Ok(())
    }
}

impl Hooks for SqliteStore {
    type DB = Sqlite;

    /// The one writer connection, held for the whole write.
    async fn writer(&self) -> StoreResult<impl DerefMut<Target = SqliteConnection> + Send> {
        let mut writer = self.writer.lock().await;
        if writer.is_in_transaction() {
            // The rollback of a transaction dropped on an error is queued on the connection; a
            // statement runs after it.
            let _ = sqlx::query("SELECT 1").execute(&mut *writer).await;
        }
        if writer.is_in_transaction() {
            // SQLite ended the transaction itself (a full disk, an I/O error), so the rollback
            // failed and sqlx still counts it open: the next BEGIN would become a SAVEPOINT that
            // never commits. A new connection starts clean.
            tracing::warn!("replacing the SQLite writer connection after a failed transaction");
            *writer = SqliteConnection::connect_with(&self.connect)
                .await
                .map_err(db_error)?;
        }
        Ok(writer)
    }

    fn readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// Readers see every committed write here: one file.
    fn fresh_readers(&self) -> &SqlitePool {
        &self.readers
    }

    /// Brings the index up to date after a commit. The writer is still held, so changes reach the
    /// index in commit order.
    fn committed(&self, change: Change) {
        let mut index = self.index.write().expect("index lock poisoned");
        match change {
            Change::FaceAdded(collection, face) => index.insert(
                &shard(collection, &face.model),
                face.id,
                face.person_id,
                face.embedding.as_slice(),
            ),
            Change::FacesRemoved(faces) => {
                for face in faces {
                    index.remove_face(face);
                }
            }
            Change::CaptureStored(collection, id, model, embedding) => self
                .captures
                .write()
                .expect("capture index lock")
                .insert(&shard(collection, &model), id, embedding.as_slice()),
            Change::CapturesRemoved(ids) => {
                let mut captures = self.captures.write().expect("capture index lock");
                for id in ids {
                    captures.remove(id);
                }
            }
            Change::ChipsErased => {}
        }
    }

    /// After a deletion: the WAL still holds the pages as they were before (the embedding with
    /// them), so it is checkpointed into the (zeroed) database file and truncated to nothing.
    async fn erase(&self, writer: &mut SqliteConnection) {
        let checkpoint: Result<(i64, i64, i64), _> =
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(writer)
                .await;
        match checkpoint {
            Ok((0, _, _)) => {}
            Ok(_) => tracing::warn!(
                "the WAL could not be checkpointed after a deletion (a reader held it); it will be \
                 at the next deletion or checkpoint"
            ),
            Err(e) => tracing::error!(error = %e, "checkpointing the WAL after a deletion failed"),
        }
    }

    async fn face_count(&self, collection: Option<CollectionId>) -> StoreResult<u64> {
        match collection {
            None => Ok(self.index.read().expect("index lock").len() as u64),
            Some(_) => {
                let n = bind::select_face_count(collection)
                    .fetch_one(&self.readers)
                    .await
                    .map_err(db_error)?;
                Ok(n as u64)
            }
        }
    }

    /// An exact scan of the in-memory index, then the names of the persons found.
    async fn candidates(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
        except: Option<PersonId>,
    ) -> StoreResult<Vec<Candidate>> {
        let index = Arc::clone(&self.index);
        let (scan_probe, key) = (probe.clone(), shard(collection, model));
        // A few more than asked: persons whose consent has expired are no candidates; and the
        // person left out is at most one of the others (the scan ranks persons, not faces).
        let wanted = k + EXPIRED_SLACK + usize::from(except.is_some());
        // A scan of a large index takes milliseconds: off the async runtime's threads.
        let candidates = tokio::task::spawn_blocking(move || {
            index
                .read()
                .expect("index lock")
                .candidates(&key, scan_probe.as_slice(), wanted)
        })
        .await
        .map_err(|e| StoreError::Database(format!("search task failed: {e}")))?;
        // The candidates' exact similarities, from the f32 embeddings in the database (a face
        // deleted since the scan is simply no candidate).
        let ids: Vec<FaceId> = candidates.iter().map(|c| c.face_id).collect();
        let mut embeddings = self.embeddings(&ids).await?;
        let scored = candidates.into_iter().filter_map(|candidate| {
            let embedding = embeddings.remove(&candidate.face_id)?;
            let similarity = dot(embedding.as_slice(), probe.as_slice());
            Some((candidate, Similarity::new(similarity)))
        });
        let hits = top_persons(scored, wanted);
        let ids: Vec<PersonId> = hits.iter().map(|h| h.person_id).collect();
        let mut names = self.names_of_consenting(&ids).await?;
        // A person deleted between the scan and the lookup is simply no candidate.
        Ok(hits
            .into_iter()
            .filter(|hit| Some(hit.person_id) != except)
            .filter_map(|hit| {
                Some(Candidate {
                    name: names.remove(&hit.person_id)?,
                    person_id: hit.person_id,
                    face_id: hit.face_id,
                    similarity: hit.similarity,
                })
            })
            .take(k)
            .collect())
    }

    async fn capture_neighbours(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        min: f32,
        limit: usize,
    ) -> StoreResult<Vec<Neighbour>> {
        self.nearest_captures(collection, probe, model, min, limit)
            .await
    }
}

impl SqliteStore {
    /// The nearest captures in memory, then their rows; a capture whose row is gone (deleted with
    /// its person or collection, which the index does not see) leaves the index here.
    async fn nearest_captures(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        min: f32,
        limit: usize,
    ) -> StoreResult<Vec<Neighbour>> {
        let hits = self.captures.read().expect("capture index lock").nearest(
            &shard(collection, model),
            probe.as_slice(),
            min,
            limit,
        );
        let ids: Vec<CaptureId> = hits.iter().map(|h| h.0).collect();
        let rows: Vec<CaptureRow> = self
            .by_ids(
                concat!(crate::statements::capture_columns!(), " FROM captures"),
                &ids,
            )
            .await?;
        let mut rows: HashMap<CaptureId, Capture> = rows
            .into_iter()
            .map(|row| Capture::try_from(row).map(|c| (c.id, c)))
            .collect::<StoreResult<_>>()?;
        let mut neighbours = Vec::with_capacity(hits.len());
        let mut gone = Vec::new();
        for (id, similarity) in hits {
            match rows.remove(&id) {
                Some(capture) => neighbours.push(Neighbour {
                    capture,
                    similarity: Similarity::new(similarity),
                }),
                None => gone.push(id),
            }
        }
        if !gone.is_empty() {
            let mut captures = self.captures.write().expect("capture index lock");
            for id in gone {
                captures.remove(id);
            }
        }
        Ok(neighbours)
    }

    /// The stored embeddings of the faces that still exist among `ids`.
    async fn embeddings(
        &self,
        ids: &[FaceId],
    ) -> StoreResult<HashMap<FaceId, NormalizedEmbedding>> {
        let rows: Vec<(Id, Embedding)> = self.by_ids("id, embedding FROM faces", ids).await?;
        Ok(rows.into_iter().map(|(id, e)| (id.into(), e.0)).collect())
    }

    /// Names of the persons among `ids` that still exist and whose consent has not expired.
    async fn names_of_consenting(
        &self,
        ids: &[PersonId],
    ) -> StoreResult<HashMap<PersonId, String>> {
        let rows: Vec<(Id, String, Option<chrono::DateTime<chrono::Utc>>)> = self
            .by_ids("id, name, consent_expires_at FROM persons", ids)
            .await?;
        let now = chrono::Utc::now();
        Ok(rows
            .into_iter()
            .filter(|(_, _, expires)| expires.is_none_or(|at| at > now))
            .map(|(id, name, _)| (id.into(), name))
            .collect())
    }

    /// `SELECT {what} WHERE id IN (ids)`, a query per thousand ids (SQLite binds at most 32,766
    /// parameters per statement).
    async fn by_ids<T, K>(&self, what: &str, ids: &[K]) -> StoreResult<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
        K: Copy + Into<Id>,
    {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(1_000) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT {what} WHERE id IN ({})", placeholders.join(", "));
            let mut query = sqlx::query_as::<_, T>(&sql);
            for id in chunk {
                query = query.bind((*id).into());
            }
            found.extend(query.fetch_all(&self.readers).await.map_err(db_error)?);
        }
        Ok(found)
    }
}

/// The folder, the lock and the database file, before SQLite opens it. Biometric data: a folder
/// facerec creates is its user's alone (0700), and so are the files (0600; SQLite gives its -wal and
/// -shm files the database file's mode), whatever the umask. Returns the held lock.
fn prepare_files(path: &Path) -> StoreResult<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io_error("cannot create", dir, e))?;
    }
    let lock = acquire_lock(path)?;
    if !path.exists() {
        private_file()
            .open(path)
            .map_err(|e| io_error("cannot create", path, e))?;
    }
    // SQLite would quietly open a file it cannot write read-only, and the first registration would
    // fail; say so at start instead.
    File::options()
        .write(true)
        .open(path)
        .map_err(|e| io_error("cannot write to", path, e))?;
    Ok(lock)
}

/// A migration's failure names the file it was in.
fn in_file(err: StoreError, path: &Path) -> StoreError {
    match err {
        StoreError::Database(message) => {
            StoreError::Database(format!("{}: {message}", path.display()))
        }
        other => other,
    }
}

/// Opens (creating when missing, mode 0600) a file for writing, never truncating it.
fn private_file() -> std::fs::OpenOptions {
    let mut options = File::options();
    options.create(true).truncate(false).write(true).mode(0o600);
    options
}

/// `<file>.lock`, locked exclusively: SQLite's own locks allow several processes, but each would
/// hold its own in-memory index and miss the others' writes.
pub(crate) fn acquire_lock(path: &Path) -> StoreResult<File> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = private_file()
        .open(&lock_path)
        .map_err(|e| io_error("cannot open", &lock_path, e))?;
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

/// A failed file operation on the database or its folder; a read-only file system or a missing
/// permission is `ReadOnly`, with what to fix.
fn io_error(what: &str, path: &Path, err: std::io::Error) -> StoreError {
    use std::io::ErrorKind;
    let message = format!("{what} {}: {err}", path.display());
    match err.kind() {
        ErrorKind::ReadOnlyFilesystem | ErrorKind::PermissionDenied => {
            StoreError::ReadOnly(format!(
                "{message}; facerec writes to its database file and to the folder that holds it"
            ))
        }
        _ => StoreError::Database(message),
    }
}

/// Persons asked of the index beyond the `k` a search wants: those whose consent has expired (and
/// who wait for the next sweep) are no candidates, and the others must still fill `k`.
const EXPIRED_SLACK: usize = 4;

/// The index's shard for one collection's faces of one model: a search scans only its own.
fn shard(collection: CollectionId, model: &ModelId) -> String {
    format!("{collection}/{}", model.key())
}
