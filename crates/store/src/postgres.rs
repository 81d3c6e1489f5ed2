//! PostgreSQL + pgvector: the production backend. Embeddings live in a `vector(512)` column with an
//! HNSW index for inner product; search happens in SQL, nothing is cached in the process, so API
//! replicas can share one database.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use facerec_core::store::{
    apply_patch, check_dimension, face_from_new, person_from_new, StoreResult,
};
use facerec_core::*;
use facerec_vision::{NormalizedEmbedding, Similarity};
use pgvector::Vector;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::Row;
use uuid::Uuid;

use crate::codec::*;
use crate::{db_error, redact, StoreOptions};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

const PERSON_COLUMNS: &str =
    "id, name, external_id, metadata, consent_given_at, consent_basis, created_at, updated_at";
const FACE_COLUMNS: &str =
    "id, person_id, embedding, det_score, bbox, quality, model_name, model_sha256, \
                            image_sha256, created_at";

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
        // deployments hold far fewer than 1M faces; larger ones raise it (README, Limits).
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

pub struct PostgresStore {
    pool: PgPool,
    hnsw: HnswOptions,
}

impl PostgresStore {
    pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let ef_search = options.hnsw.ef_search.max(1);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(8))
            .acquire_timeout(Duration::from_secs(10))
            // Search settings live on the connection, so a search is one statement (one round trip).
            // Iterative scans keep walking the graph when the model filter leaves too few rows.
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    sqlx::query(&format!("SET hnsw.ef_search = {ef_search}"))
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("SET hnsw.iterative_scan = relaxed_order")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|e| StoreError::Database(format!("connecting to {}: {e}", redact(url))))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(format!("migrating: {e}")))?;
        let store = Self {
            pool,
            hnsw: options.hnsw,
        };
        store.ensure_hnsw_index().await?;
        Ok(store)
    }

    /// Builds the HNSW index with the configured parameters when it is missing; warns when the
    /// existing one was built with others (rebuilding a large index is an operator's decision).
    async fn ensure_hnsw_index(&self) -> StoreResult<()> {
        let existing: Option<Vec<String>> = sqlx::query_scalar(
            "SELECT coalesce(c.reloptions, '{}') FROM pg_class c WHERE c.relname = 'faces_embedding_hnsw'",
        )
        .fetch_optional(&self.pool)
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
                .execute(&self.pool)
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
        .fetch_one(&self.pool)
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

fn person_from_row(row: &PgRow) -> StoreResult<Person> {
    Ok(Person {
        id: PersonId(row.try_get("id").map_err(db_error)?),
        name: row.try_get("name").map_err(db_error)?,
        external_id: row.try_get("external_id").map_err(db_error)?,
        metadata: row.try_get("metadata").map_err(db_error)?,
        consent: Consent {
            given_at: row.try_get("consent_given_at").map_err(db_error)?,
            basis: row.try_get("consent_basis").map_err(db_error)?,
        },
        created_at: row.try_get("created_at").map_err(db_error)?,
        updated_at: row.try_get("updated_at").map_err(db_error)?,
    })
}

fn face_from_row(row: &PgRow) -> StoreResult<Face> {
    let embedding: Vector = row.try_get("embedding").map_err(db_error)?;
    Ok(Face {
        id: FaceId(row.try_get("id").map_err(db_error)?),
        person_id: PersonId(row.try_get("person_id").map_err(db_error)?),
        embedding: NormalizedEmbedding::from_unit_vector(embedding.to_vec())?,
        det_score: row.try_get("det_score").map_err(db_error)?,
        bbox: bbox_from_json(row.try_get("bbox").map_err(db_error)?)?,
        quality: quality_from_json(row.try_get("quality").map_err(db_error)?)?,
        model: ModelRef {
            name: row.try_get("model_name").map_err(db_error)?,
            sha256: row.try_get("model_sha256").map_err(db_error)?,
        },
        image_sha256: row.try_get("image_sha256").map_err(db_error)?,
        created_at: row.try_get("created_at").map_err(db_error)?,
    })
}

fn write_error(err: sqlx::Error, external_id: Option<&str>) -> StoreError {
    if let (Some(db), Some(ext)) = (err.as_database_error(), external_id) {
        if db.is_unique_violation() && db.constraint().is_some_and(|c| c.contains("external_id")) {
            return StoreError::DuplicateExternalId(ext.to_owned());
        }
    }
    db_error(err)
}

async fn insert_audit(
    conn: &mut PgConnection,
    event: NewAuditEvent,
    actor: &Actor,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_events (at, action, person_id, face_id, actor, details) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(Utc::now())
        .bind(event.action.as_str())
        .bind(event.person_id.map(|p| p.0))
        .bind(event.face_id.map(|f| f.0))
        .bind(&actor.0)
        .bind(event.details)
        .execute(conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn insert_person(
    conn: &mut PgConnection,
    new: &NewPerson,
    now: DateTime<Utc>,
) -> StoreResult<Person> {
    let person = person_from_new(new, now)?;
    sqlx::query(&format!(
        "INSERT INTO persons ({PERSON_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(person.id.0)
    .bind(&person.name)
    .bind(&person.external_id)
    .bind(&person.metadata)
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
    conn: &mut PgConnection,
    person: PersonId,
    new: NewFace,
    now: DateTime<Utc>,
) -> StoreResult<Face> {
    let face = face_from_new(person, new, now)?;
    sqlx::query(&format!(
        "INSERT INTO faces ({FACE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    ))
    .bind(face.id.0)
    .bind(person.0)
    .bind(Vector::from(face.embedding.as_slice().to_vec()))
    .bind(face.det_score)
    .bind(to_json(&face.bbox))
    .bind(to_json(&face.quality))
    .bind(&face.model.name)
    .bind(&face.model.sha256)
    .bind(&face.image_sha256)
    .bind(face.created_at)
    .execute(conn)
    .await
    .map_err(db_error)?;
    Ok(face)
}

async fn select_person(conn: &mut PgConnection, id: PersonId, lock: bool) -> StoreResult<Person> {
    let suffix = if lock { " FOR UPDATE" } else { "" };
    let row = sqlx::query(&format!(
        "SELECT {PERSON_COLUMNS} FROM persons WHERE id = $1{suffix}"
    ))
    .bind(id.0)
    .fetch_optional(conn)
    .await
    .map_err(db_error)?;
    row.as_ref()
        .map(person_from_row)
        .transpose()?
        .ok_or(StoreError::PersonNotFound(id))
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn create_person(&self, new: NewPerson, actor: &Actor) -> StoreResult<Person> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
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
        Ok((person, face))
    }

    async fn get_person(&self, id: PersonId) -> StoreResult<Person> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        select_person(&mut conn, id, false).await
    }

    async fn find_person_by_external_id(&self, external_id: &str) -> StoreResult<Option<Person>> {
        let row = sqlx::query(&format!(
            "SELECT {PERSON_COLUMNS} FROM persons WHERE external_id = $1"
        ))
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error)?;
        row.as_ref().map(person_from_row).transpose()
    }

    async fn list_persons(&self, page: &PageRequest) -> StoreResult<Page<Person>> {
        let pattern = page.name_contains.as_deref().map(like_pattern);
        let filter = "($1::text IS NULL OR lower(name) LIKE $1 ESCAPE '\\')";
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM persons WHERE {filter}"))
                .bind(&pattern)
                .fetch_one(&self.pool)
                .await
                .map_err(db_error)?;
        let rows = sqlx::query(&format!(
            "SELECT {PERSON_COLUMNS} FROM persons WHERE {filter} ORDER BY created_at, id LIMIT $2 OFFSET $3"
        ))
        .bind(&pattern)
        .bind(i64::from(page.limit))
        .bind(page.offset as i64)
        .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let mut person = select_person(&mut tx, id, true).await?;
        let changed = apply_patch(&mut person, patch, Utc::now())?;
        sqlx::query("UPDATE persons SET name = $1, external_id = $2, metadata = $3, updated_at = $4 WHERE id = $5")
            .bind(&person.name)
            .bind(&person.external_id)
            .bind(&person.metadata)
            .bind(person.updated_at)
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(e, person.external_id.as_deref()))?;
        insert_audit(&mut tx, NewAuditEvent::person_updated(id, &changed), actor).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(person)
    }

    async fn delete_person(&self, id: PersonId, actor: &Actor) -> StoreResult<DeletedPerson> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let person = select_person(&mut tx, id, true).await?;
        let faces_deleted = sqlx::query("DELETE FROM faces WHERE person_id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?
            .rows_affected();
        sqlx::query("DELETE FROM persons WHERE id = $1")
            .bind(id.0)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        insert_audit(
            &mut tx,
            NewAuditEvent::person_deleted(id, faces_deleted),
            actor,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(DeletedPerson {
            person,
            faces_deleted,
        })
    }

    async fn add_face(
        &self,
        person: PersonId,
        new: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Face, Added)> {
        check_dimension(&new.embedding)?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        // Locking the person serializes concurrent adds for them, so the idempotency check holds.
        select_person(&mut tx, person, true).await?;
        let existing = sqlx::query(&format!(
            "SELECT {FACE_COLUMNS} FROM faces
             WHERE person_id = $1 AND model_name = $2 AND model_sha256 = $3 AND image_sha256 = $4"
        ))
        .bind(person.0)
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
        Ok((face, Added::Created))
    }

    async fn get_face(&self, id: FaceId) -> StoreResult<Face> {
        let row = sqlx::query(&format!("SELECT {FACE_COLUMNS} FROM faces WHERE id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_error)?;
        row.as_ref()
            .map(face_from_row)
            .transpose()?
            .ok_or(StoreError::FaceNotFound(id))
    }

    async fn list_faces(&self, person: PersonId) -> StoreResult<Vec<Face>> {
        let mut conn = self.pool.acquire().await.map_err(db_error)?;
        select_person(&mut conn, person, false).await?;
        let rows = sqlx::query(&format!(
            "SELECT {FACE_COLUMNS} FROM faces WHERE person_id = $1 ORDER BY created_at, id"
        ))
        .bind(person.0)
        .fetch_all(&mut *conn)
        .await
        .map_err(db_error)?;
        rows.iter().map(face_from_row).collect()
    }

    async fn delete_face(&self, id: FaceId, actor: &Actor) -> StoreResult<Face> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let row = sqlx::query(&format!(
            "DELETE FROM faces WHERE id = $1 RETURNING {FACE_COLUMNS}"
        ))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?;
        let face = row
            .as_ref()
            .map(face_from_row)
            .transpose()?
            .ok_or(StoreError::FaceNotFound(id))?;
        insert_audit(
            &mut tx,
            NewAuditEvent::face_deleted(face.person_id, id),
            actor,
        )
        .await?;
        tx.commit().await.map_err(db_error)?;
        Ok(face)
    }

    async fn count_faces(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM faces")
            .fetch_one(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    async fn search(
        &self,
        probe: &NormalizedEmbedding,
        model: &ModelRef,
        k: usize,
    ) -> StoreResult<Vec<PersonHit>> {
        check_dimension(probe)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let limit = (k as u32)
            .saturating_mul(self.hnsw.candidates_per_person)
            .max(16);
        // The limit is written into the statement: with it as a parameter, PostgreSQL's cached generic
        // plan cannot see it is small and falls back to a sequential scan and sort (30 ms at 10k faces).
        let rows = sqlx::query(&format!(
            "SELECT id, person_id, (embedding <#> $1) * -1 AS similarity FROM faces
             WHERE model_name = $2 AND model_sha256 = $3
             ORDER BY embedding <#> $1 LIMIT {limit}"
        ))
        .bind(Vector::from(probe.as_slice().to_vec()))
        .bind(&model.name)
        .bind(&model.sha256)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;

        // The index finds candidates approximately; their similarities are exact. Group by person
        // (best face) and rank exactly.
        let mut best: HashMap<PersonId, PersonHit> = HashMap::new();
        for row in &rows {
            let hit = PersonHit {
                person_id: PersonId(row.try_get::<Uuid, _>("person_id").map_err(db_error)?),
                face_id: FaceId(row.try_get::<Uuid, _>("id").map_err(db_error)?),
                similarity: Similarity::new(
                    row.try_get::<f64, _>("similarity").map_err(db_error)? as f32
                ),
            };
            best.entry(hit.person_id)
                .and_modify(|h| {
                    if hit.similarity.value() > h.similarity.value() {
                        *h = hit;
                    }
                })
                .or_insert(hit);
        }
        let mut hits: Vec<PersonHit> = best.into_values().collect();
        hits.sort_by(|a, b| b.similarity.value().total_cmp(&a.similarity.value()));
        hits.truncate(k);
        Ok(hits)
    }

    async fn audit_events(
        &self,
        person: Option<PersonId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = sqlx::query(
            "SELECT id, at, action, person_id, face_id, actor, details FROM audit_events
             WHERE ($1::uuid IS NULL OR person_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(person.map(|p| p.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_error)?;
        rows.iter()
            .map(|row| {
                let action: String = row.try_get("action").map_err(db_error)?;
                Ok(AuditEvent {
                    id: row.try_get("id").map_err(db_error)?,
                    at: row.try_get("at").map_err(db_error)?,
                    action: AuditAction::parse(&action).ok_or_else(|| {
                        StoreError::Database(format!("unknown audit action {action}"))
                    })?,
                    person_id: row
                        .try_get::<Option<Uuid>, _>("person_id")
                        .map_err(db_error)?
                        .map(PersonId),
                    face_id: row
                        .try_get::<Option<Uuid>, _>("face_id")
                        .map_err(db_error)?
                        .map(FaceId),
                    actor: Actor(row.try_get("actor").map_err(db_error)?),
                    details: row.try_get("details").map_err(db_error)?,
                })
            })
            .collect()
    }
}
