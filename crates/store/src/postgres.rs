//! PostgreSQL + pgvector: the production backend. Embeddings live in a `vector(512)` column with an
//! HNSW index for inner product; search happens in SQL, nothing is cached in the process, so API
//! replicas can share one database.

use std::collections::HashMap;
use std::ops::DerefMut;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use facerec_core::capture::{Capture, Neighbour};
use facerec_core::store::StoreResult;
use facerec_core::{Candidate, CollectionId, ModelId, PersonId, StoreError};
use facerec_types::{NormalizedEmbedding, Similarity};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres};
use tokio::sync::Notify;

use crate::backend::{Change, Hooks};
use crate::columns::Id;
use crate::error::db_error;
use crate::rows::CaptureRow;
use crate::statements::{collection_columns, person_columns};
use crate::{redact, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

// The operations both backends share (`ops/`, see the crate's documentation), compiled for this
// one: they are written over these names.
type DB = Postgres;
type This = PostgresStore;
const NAME: &str = "postgres";
/// The row stays locked until the transaction ends: concurrent changes to one person are
/// serialized (idempotent face adds rely on it).
const SELECT_PERSON_FOR_WRITE: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE id = $1 AND collection_id = $2 FOR UPDATE"
);
/// The collection row stays locked until the transaction ends: a registration (whose foreign key
/// takes a share of it) waits for a deletion to end, then finds the collection gone.
const SELECT_COLLECTION_FOR_WRITE: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM collections WHERE id = $1 FOR UPDATE"
);
/// A transaction-scoped advisory lock keyed by the folded name: two replicas registering the same
/// new name one after the other create one person.
const LOCK_NAME: Option<&str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");
/// A capture's commit does not wait for the WAL flush: a crash of PostgreSQL itself may lose the
/// last moment's captures (never a person, a face or anything else), a crash of facerec nothing
/// committed; the flush was half of a capture's time.
/// Taken by every append to the event outbox: events commit in `seq` order (`ops/outbox.rs`).
const LOCK_EVENTS: Option<&str> = Some("SELECT pg_advisory_xact_lock(7202201)");
const CAPTURE_COMMIT: Option<&str> = Some("SET LOCAL synchronous_commit = off");
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

/// HNSW parameters (pgvector). `m` and `ef_construction` shape the index when it is built;
/// `ef_search` and `candidates` trade speed for recall at query time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswOptions {
    pub m: u32,
    pub ef_construction: u32,
    pub ef_search: u32,
    /// Faces fetched from the index per person asked for; they are grouped by person and re-ranked
    /// by exact similarity.
    pub candidates_per_person: u32,
}

impl Default for HnswOptions {
    fn default() -> Self {
        // Measured on random 512-d vectors (docs/BENCHMARKS.md): m 32 / ef_construction 128 gives
        // recall@1 1.000 at 100k from ef_search 100 (9 ms) and 0.994 at 1M with ef_search 400 (43 ms);
        // pgvector's defaults (16 / 64) stay at 0.81 at 1M. ef_search 100 is the default because most
        // deployments hold far fewer than 1M faces; larger ones raise it (docs/CONFIGURATION.md, Limits).
        Self {
            m: 32,
            ef_construction: 128,
            ef_search: 100,
            candidates_per_person: 4,
        }
    }
}

/// From docs/BENCHMARKS.md: past ~300k faces the default ef_search loses recall; 400 keeps recall@1
/// at 0.994 with 1M faces.
const LARGE_INDEX_FACES: u64 = 300_000;
const LARGE_INDEX_EF_SEARCH: u32 = 400;

/// How long a request waits for a database connection: while PostgreSQL is unreachable, requests
/// fail this fast (503 `database_unavailable`) instead of piling up.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest a request's statement may run.
const STATEMENT_TIMEOUT: &str = "10s";

pub struct PostgresStore {
    /// The primary: every write, and the reads that must see the latest write.
    pool: PgPool,
    /// A hot standby for searches and other reads, when configured (`read_url`).
    read_pool: Option<PgPool>,
    /// Wakes the task that vacuums after deletions.
    vacuum: Arc<Notify>,
    hnsw: HnswOptions,
}

/// A pool for requests: a short wait for a connection, a statement timeout, and the search
/// settings on each connection, so that a search is one statement (one round trip). Iterative
/// scans keep walking the graph when the model filter leaves too few rows.
async fn request_pool(
    url: &str,
    connect: PgConnectOptions,
    options: &StoreOptions,
) -> StoreResult<PgPool> {
    let ef_search = options.hnsw.ef_search.max(1);
    PgPoolOptions::new()
        .max_connections(options.max_connections.unwrap_or(8))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                for setting in [
                    format!("SET hnsw.ef_search = {ef_search}"),
                    "SET hnsw.iterative_scan = relaxed_order".to_owned(),
                    format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'"),
                ] {
                    sqlx::query(&setting).execute(&mut *conn).await?;
                }
                Ok(())
            })
        })
        .connect_with(connect)
        .await
        .map_err(|e| StoreError::Unavailable(format!("connecting to {}: {e}", redact(url))))
}

impl PostgresStore {
    pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let connect = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Database(format!("invalid PostgreSQL URL {}: {e}", redact(url)))
        })?;
        // Maintenance (migrations, building the HNSW index) runs on its own connection, without the
        // statement timeout that bounds requests: building a large index takes minutes.
        let mut maintenance = PgConnection::connect_with(&connect)
            .await
            .map_err(|e| StoreError::Unavailable(format!("connecting to {}: {e}", redact(url))))?;
        store::migrate(&mut maintenance, &MIGRATOR).await?;
        let pool = request_pool(url, connect.clone(), options).await?;
        let read_pool = match &options.read_url {
            Some(read_url) => {
                let read_connect = PgConnectOptions::from_str(read_url).map_err(|e| {
                    StoreError::Database(format!(
                        "invalid PostgreSQL URL {}: {e}",
                        redact(read_url)
                    ))
                })?;
                Some(request_pool(read_url, read_connect, options).await?)
            }
            None => None,
        };
        let vacuum = Arc::new(Notify::new());
        tokio::spawn(vacuum_after_deletions(connect, Arc::clone(&vacuum)));
        let store = Self {
            pool,
            read_pool,
            vacuum,
            hnsw: options.hnsw,
        };
        store.fold_missing_names().await?;
        store.ensure_hnsw_index(&mut maintenance).await?;
        Ok(store)
    }

    /// Builds the HNSW index with the configured parameters when it is missing; warns when the
    /// existing one was built with others (rebuilding a large index is an operator's decision).
    async fn ensure_hnsw_index(&self, maintenance: &mut PgConnection) -> StoreResult<()> {
        let existing: Option<Vec<String>> = sqlx::query_scalar(
            "SELECT coalesce(c.reloptions, '{}') FROM pg_class c WHERE c.relname = 'faces_embedding_hnsw'",
        )
        .fetch_optional(&mut *maintenance)
        .await
        .map_err(db_error)?;
        let wanted = vec![
            format!("m={}", self.hnsw.m),
            format!("ef_construction={}", self.hnsw.ef_construction),
        ];
        match existing {
            None => {
                sqlx::query(&format!(
                    "CREATE INDEX IF NOT EXISTS faces_embedding_hnsw ON faces
                     USING hnsw (embedding vector_ip_ops) WITH (m = {}, ef_construction = {})",
                    self.hnsw.m, self.hnsw.ef_construction
                ))
                .execute(&mut *maintenance)
                .await
                .map_err(db_error)?;
            }
            Some(options) if options != wanted => {
                tracing::warn!(
                    ?options,
                    ?wanted,
                    "the HNSW index was built with other parameters; REINDEX to apply them"
                );
            }
            Some(_) => {}
        }
        // The planner's row estimate is enough here, and free (no count over a large table).
        let faces: f32 = sqlx::query_scalar(
            "SELECT greatest(reltuples, 0) FROM pg_class WHERE relname = 'faces'",
        )
        .fetch_one(&mut *maintenance)
        .await
        .map_err(db_error)?;
        if faces >= LARGE_INDEX_FACES as f32 && self.hnsw.ef_search < LARGE_INDEX_EF_SEARCH {
            tracing::warn!(
                faces,
                ef_search = self.hnsw.ef_search,
                "recall drops at this size: consider --hnsw-ef-search {LARGE_INDEX_EF_SEARCH} \
                 (recall@1 0.994 at 1M faces, docs/BENCHMARKS.md)"
            );
        }
        Ok(())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

impl Hooks for PostgresStore {
    type DB = Postgres;

    /// A pooled connection for one write transaction.
    async fn writer(&self) -> StoreResult<impl DerefMut<Target = PgConnection> + Send> {
        self.pool.acquire().await.map_err(db_error)
    }

    /// The standby when there is one: its answers may lag the primary by the replication delay.
    fn readers(&self) -> &PgPool {
        self.read_pool.as_ref().unwrap_or(&self.pool)
    }

    /// Reads that must see the latest write (a ticket just issued by another replica).
    fn fresh_readers(&self) -> &PgPool {
        &self.pool
    }

    /// Nothing is kept beside the database.
    fn committed(&self, _change: Change) {}

    /// A deleted row stays in the table's pages (a dead tuple) until VACUUM; the vacuum task runs it
    /// soon after, for all deletions of that moment at once.
    async fn erase(&self, _conn: &mut PgConnection) {
        self.vacuum.notify_one();
    }

    async fn face_count(&self, collection: Option<CollectionId>) -> StoreResult<u64> {
        let n = bind::select_face_count(collection)
            .fetch_one(self.readers())
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    /// The HNSW index finds candidate faces, joined to their persons' names in the same statement.
    async fn candidates(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
        except: Option<PersonId>,
    ) -> StoreResult<Vec<Candidate>> {
        // The person left out is left out in the scan (not filtered from its answer): however
        // many faces they have, the limit then holds others only.
        let except_clause = if except.is_some() {
            "AND person_id <> $6"
        } else {
            ""
        };
        let limit = (k as u32)
            .saturating_mul(self.hnsw.candidates_per_person)
            .max(16);
        // The limit is written into the statement: with it as a parameter, PostgreSQL's cached generic
        // plan cannot see it is small and falls back to a sequential scan and sort (30 ms at 10k faces).
        // The nearest faces are found first, then joined to their persons' names (one round trip).
        let statement = format!(
            "SELECT nearest.id, nearest.person_id, persons.name, nearest.similarity
             FROM (SELECT id, person_id, (embedding <#> $1) * -1 AS similarity FROM faces
                   WHERE collection_id = $4 AND model_name = $2 AND model_sha256 = $3 {except_clause}
                   ORDER BY embedding <#> $1 LIMIT {limit}) AS nearest
             JOIN persons ON persons.id = nearest.person_id
             WHERE persons.consent_expires_at IS NULL OR persons.consent_expires_at > $5"
        );
        let mut query = sqlx::query_as::<_, (Id, Id, String, f64)>(&statement)
            .bind(pgvector::Vector::from(probe.as_slice().to_vec()))
            .bind(&model.name)
            .bind(&model.sha256)
            .bind(Id::from(collection))
            // A person whose consent has expired is no candidate, whatever the sweep.
            .bind(chrono::Utc::now());
        if let Some(person) = except {
            query = query.bind(Id::from(person));
        }
        let rows = query.fetch_all(self.readers()).await.map_err(db_error)?;

        // The index finds candidates approximately; their similarities are exact. Group by person
        // (best face) and rank exactly.
        let mut best: HashMap<PersonId, Candidate> = HashMap::new();
        for (face, person, name, similarity) in rows {
            let similarity = Similarity::new(similarity as f32);
            let person = PersonId::from(person);
            if best
                .get(&person)
                .is_some_and(|c| c.similarity.value() >= similarity.value())
            {
                continue;
            }
            best.insert(
                person,
                Candidate {
                    person_id: person,
                    face_id: face.into(),
                    name,
                    similarity,
                },
            );
        }
        let mut hits: Vec<Candidate> = best.into_values().collect();
        hits.sort_by(|a, b| b.similarity.value().total_cmp(&a.similarity.value()));
        hits.truncate(k);
        Ok(hits)
    }

    /// The HNSW index over captures finds the nearest; their similarities are exact.
    async fn capture_neighbours(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        min: f32,
        limit: usize,
    ) -> StoreResult<Vec<Neighbour>> {
        // The limit in the text, as for faces: a small literal limit keeps the index scan.
        let statement = format!(
            "SELECT {}, (embedding <#> $1) * -1 AS nearness FROM captures
             WHERE collection_id = $2 AND model_name = $3 AND model_sha256 = $4
             ORDER BY embedding <#> $1 LIMIT {}",
            crate::statements::capture_columns!(),
            limit.max(1)
        );
        // The planner counts no cost for reading each row's embedding out of TOAST, so at a few
        // thousand captures it prefers a sequential scan and a sort (50 ms at 10,000) to the HNSW
        // index (~2 ms): with sorting off for this one statement, only the index can order it.
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // A capture's neighbours need few candidates: a few more than asked for (40 for the
        // writer's 32, 16 for the answer's 8) instead of the faces' 100 (BENCHMARKS.md). Both
        // settings in one round trip: a capture's read is a few of them, each counts.
        sqlx::query(
            "SELECT set_config('enable_sort', 'off', true), \
             set_config('hnsw.ef_search', $1, true)",
        )
        .bind((limit.max(1) + 8).min(1_000).to_string())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let rows = sqlx::query(&statement)
            .bind(pgvector::Vector::from(probe.as_slice().to_vec()))
            .bind(Id::from(collection))
            .bind(&model.name)
            .bind(&model.sha256)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let mut neighbours = Vec::with_capacity(rows.len());
        for row in rows {
            use sqlx::{FromRow, Row};
            let similarity: f64 = row.try_get("nearness").map_err(db_error)?;
            if (similarity as f32) < min {
                continue;
            }
            let capture = Capture::try_from(CaptureRow::from_row(&row).map_err(db_error)?)?;
            neighbours.push(Neighbour {
                capture,
                similarity: Similarity::new(similarity as f32),
            });
        }
        // An iterative scan in relaxed order may answer slightly out of order.
        neighbours.sort_by(|a, b| b.similarity.value().total_cmp(&a.similarity.value()));
        Ok(neighbours)
    }
}

/// Pause before a VACUUM, so that a burst of deletions is vacuumed once.
const VACUUM_BATCH: Duration = Duration::from_secs(2);

/// VACUUMs `faces` and `persons` after deletions, so that deleted embeddings and names leave the
/// table pages (dead tuples) and the HNSW graph. On a connection of its own (VACUUM refuses to run in
/// a transaction, and may outlast the requests' statement timeout); ends with the store.
async fn vacuum_after_deletions(connect: PgConnectOptions, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        // The store is gone when only this task holds the notifier.
        if Arc::strong_count(&wake) == 1 {
            return;
        }
        tokio::time::sleep(VACUUM_BATCH).await;
        let vacuumed = match PgConnection::connect_with(&connect).await {
            Ok(mut conn) => sqlx::query("VACUUM faces, persons, captures")
                .execute(&mut conn)
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        match vacuumed {
            Ok(()) => tracing::debug!("vacuumed after deletions"),
            Err(e) => {
                tracing::warn!(error = %e, "VACUUM after deletions failed; autovacuum will follow")
            }
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Lets the vacuum task see that the store is gone.
        self.vacuum.notify_one();
    }
}
