//! Search and registration benchmarks (numbers, not pass/fail).
//!
//! `cargo bench -p facerec-store --bench search` — exact in-memory index at 10k, 100k and 1M faces
//! (random unit vectors), beside this machine's memory bandwidth; with FACEREC_TEST_DATABASE_URL set
//! (`make bench` starts PostgreSQL), pgvector HNSW at 10k and 100k (FACEREC_BENCH_HNSW_SIZES to change)
//! with recall@1 against exact search (FACEREC_BENCH_HNSW_M and FACEREC_BENCH_HNSW_EF_CONSTRUCTION set the
//! index, default the shipped `HnswOptions`; FACEREC_BENCH_HNSW_EF_SEARCH the comma-separated ef_search
//! sweep, FACEREC_BENCH_HNSW_QUERIES the probe count; FACEREC_BENCH_HNSW_KEEP=1 keeps each built index
//! in a database named after it and reuses it in later runs), and registration throughput of both
//! backends.

use std::sync::Arc;
use std::time::Instant;

use facerec_core::*;
use facerec_store::{testing, ExactIndex, StoreOptions};
use facerec_vision::{FaceQuality, NormalizedEmbedding};
use rand::{Rng, SeedableRng};

const DIM: usize = EMBEDDING_DIM;
const QUERIES: usize = 200;

fn random_unit(rng: &mut impl Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Sequential read bandwidth (best of three): sum a 1 GiB buffer with the same thread layout the
/// index uses.
fn memory_bandwidth_gib_s() -> f64 {
    let data = vec![1.0f32; 256 << 20];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut best = 0.0f64;
    for _ in 0..3 {
        let start = Instant::now();
        let sum: f32 = std::thread::scope(|s| {
            data.chunks(data.len().div_ceil(threads))
                .map(|chunk| {
                    s.spawn(move || {
                        let mut acc = [0.0f32; 16];
                        for c in chunk.chunks_exact(16) {
                            for i in 0..16 {
                                acc[i] += c[i];
                            }
                        }
                        acc.iter().sum::<f32>()
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum()
        });
        std::hint::black_box(sum);
        best = best.max(1.0 / start.elapsed().as_secs_f64());
    }
    best
}

fn bench_exact() {
    println!(
        "\nexact in-memory index ({DIM}-d f32, {} threads)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  faces      median ms   p99 ms   scan GiB/s   bandwidth GiB/s   ratio   index MiB   process RSS MiB"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for n in [10_000usize, 100_000, 1_000_000] {
        let mut index = ExactIndex::new();
        for _ in 0..n {
            // One face per person: the worst case for the per-person bookkeeping.
            index.insert("m", FaceId::new(), PersonId::new(), &random_unit(&mut rng));
        }
        let probes: Vec<Vec<f32>> = (0..QUERIES.min(if n >= 1_000_000 { 50 } else { QUERIES }))
            .map(|_| random_unit(&mut rng))
            .collect();
        let mut times = Vec::new();
        for p in &probes {
            let start = Instant::now();
            std::hint::black_box(index.search("m", p, 5));
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let median = percentile(&times, 0.5);
        // Measured beside each scan: this shared machine's bandwidth drifts between minutes.
        let bandwidth = memory_bandwidth_gib_s();
        let gib_s = (n * DIM * 4) as f64 / (1u64 << 30) as f64 / (median / 1e3);
        println!(
            "  {n:>9}  {median:>9.2}  {:>7.2}  {gib_s:>10.1}   {bandwidth:>15.1}   {:>4.0}%   {:>9.0}   {:>15.0}",
            percentile(&times, 0.99),
            100.0 * gib_s / bandwidth,
            index.vector_bytes() as f64 / (1 << 20) as f64,
            rss_mib()
        );
    }
}

fn face(embedding: Vec<f32>, i: usize) -> NewFace {
    NewFace {
        embedding: NormalizedEmbedding::from_unit_vector(embedding).unwrap(),
        det_score: 0.8,
        bbox: [0.0, 0.0, 100.0, 100.0],
        quality: FaceQuality {
            face_size_px: 100.0,
            interocular_px: 40.0,
            frontality: 1.0,
            embedding_norm: 20.0,
        },
        model: ModelRef {
            name: "bench".into(),
            sha256: "0".into(),
        },
        image_sha256: format!("{i}"),
    }
}

fn person(i: usize) -> NewPerson {
    NewPerson {
        name: format!("person {i}"),
        external_id: None,
        metadata: serde_json::json!({}),
        consent: Consent::given_now("benchmark").unwrap(),
    }
}

/// Registrations per second with `tasks` concurrent writers.
async fn registration_throughput(store: Arc<dyn Store>, total: usize, tasks: usize) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
                for i in (t..total).step_by(tasks) {
                    store
                        .register(
                            person(i),
                            face(random_unit(&mut rng), i),
                            &Actor::local_operator(),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn env_list<T: std::str::FromStr + Clone>(name: &str, default: &[T]) -> Vec<T> {
    std::env::var(name)
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| default.to_vec())
}

/// Loads `vectors` (one person each, image_sha256 = the vector's position) without the index, as a
/// migration of existing data would, then builds the index. Returns the build time in seconds.
async fn load_and_index(
    pool: &sqlx::PgPool,
    vectors: &[Vec<f32>],
    m: u32,
    ef_construction: u32,
) -> f64 {
    sqlx::query("DROP INDEX faces_embedding_hnsw")
        .execute(pool)
        .await
        .unwrap();
    for (chunk_i, chunk) in vectors.chunks(2000).enumerate() {
        let mut tx = pool.begin().await.unwrap();
        let base = chunk_i * 2000;
        let ids: Vec<uuid::Uuid> = (0..chunk.len()).map(|_| uuid::Uuid::now_v7()).collect();
        sqlx::query(
            "INSERT INTO persons (id, name, metadata, consent_given_at, consent_basis, created_at, updated_at)
             SELECT id, 'p', '{}', now(), 'bench', now(), now() FROM unnest($1::uuid[]) AS id",
        )
        .bind(&ids)
        .execute(&mut *tx)
        .await
        .unwrap();
        let embeddings: Vec<pgvector::Vector> = chunk
            .iter()
            .map(|v| pgvector::Vector::from(v.clone()))
            .collect();
        let face_ids: Vec<uuid::Uuid> = (0..chunk.len()).map(|_| uuid::Uuid::now_v7()).collect();
        let shas: Vec<String> = (0..chunk.len()).map(|i| format!("{}", base + i)).collect();
        sqlx::query(
            "INSERT INTO faces (id, person_id, embedding, det_score, bbox, quality, model_name, model_sha256, image_sha256, created_at)
             SELECT f, p, e, 0.8, '[0,0,1,1]', '{}', 'bench', '0', s, now()
             FROM unnest($1::uuid[], $2::uuid[], $3::vector[], $4::text[]) AS t(f, p, e, s)",
        )
        .bind(&face_ids)
        .bind(&ids)
        .bind(&embeddings)
        .bind(&shas)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let start = Instant::now();
    // One connection for both statements: a SET on a pool could land on another connection.
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET maintenance_work_mem = '6GB'")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(&format!(
        "CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_ip_ops) \
         WITH (m = {m}, ef_construction = {ef_construction})"
    ))
    .execute(&mut *conn)
    .await
    .unwrap();
    drop(conn);
    let build = start.elapsed().as_secs_f64();
    // What autovacuum would do after a bulk load: without statistics the planner takes the table
    // for tiny and prefers a sequential scan over the index.
    sqlx::query("ANALYZE faces").execute(pool).await.unwrap();
    build
}

async fn bench_hnsw(admin: &str, sizes: &[usize]) {
    let env_u32 = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // The shipped defaults unless overridden, so the numbers describe what users get.
    let defaults = facerec_store::HnswOptions::default();
    let (m, ef_construction) = (
        env_u32("FACEREC_BENCH_HNSW_M", defaults.m),
        env_u32(
            "FACEREC_BENCH_HNSW_EF_CONSTRUCTION",
            defaults.ef_construction,
        ),
    );
    let ef_searches: Vec<u32> = env_list("FACEREC_BENCH_HNSW_EF_SEARCH", &[40, 100, 200, 400]);
    let queries = env_u32("FACEREC_BENCH_HNSW_QUERIES", 200) as usize;
    // A 1M-face index takes ~40 minutes to build here: KEEP names the database after its contents
    // and leaves it in place, and a later run with KEEP measures it again without rebuilding.
    let keep = std::env::var_os("FACEREC_BENCH_HNSW_KEEP").is_some();
    println!("\npgvector HNSW (m={m}, ef_construction={ef_construction}), top-1 person, {queries} queries");
    println!("  faces      build s  ef_search  median ms   p99 ms  recall@1   table+index MiB");
    for &n in sizes {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let vectors: Vec<Vec<f32>> = (0..n).map(|_| random_unit(&mut rng)).collect();
        let kept_name = format!("facerec_bench_hnsw_{n}_m{m}_efc{ef_construction}");
        let kept: bool = keep
            && sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&kept_name)
                .fetch_one(
                    &mut <sqlx::PgConnection as sqlx::Connection>::connect(admin)
                        .await
                        .unwrap(),
                )
                .await
                .unwrap();
        let url = match (keep, kept) {
            (true, true) => testing::database_url(admin, &kept_name),
            (true, false) => testing::create_named_database(admin, &kept_name)
                .await
                .unwrap(),
            (false, _) => testing::create_database(admin, "facerec_bench")
                .await
                .unwrap(),
        };
        let store = facerec_store::PostgresStore::open(&url, &StoreOptions::default())
            .await
            .unwrap();
        let pool = store.pool().clone();
        let build = if kept {
            f64::NAN
        } else {
            load_and_index(&pool, &vectors, m, ef_construction).await
        };
        // Persons by vector position, read back so that a kept database is described correctly.
        let persons: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT person_id FROM faces ORDER BY image_sha256::bigint")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(persons.len(), n, "{kept_name} holds another data set");
        let mut exact = ExactIndex::new();
        for (v, p) in vectors.iter().zip(&persons) {
            exact.insert("bench@0", FaceId::new(), PersonId(*p), v);
        }
        let model = ModelRef {
            name: "bench".into(),
            sha256: "0".into(),
        };
        // Probes near a stored face, as real probes are near their enrollment photo; the same probes for
        // every ef_search (and the first ones the same for every probe count).
        let probes: Vec<(NormalizedEmbedding, PersonId)> = (0..queries)
            .map(|_| {
                let target = &vectors[rng.random_range(0..n)];
                let noisy: Vec<f32> = target
                    .iter()
                    .map(|x| x + 0.02 * (rng.random::<f32>() - 0.5))
                    .collect();
                let probe = NormalizedEmbedding::normalize(&noisy).unwrap().0;
                let truth = exact.search("bench@0", probe.as_slice(), 1)[0].person_id;
                (probe, truth)
            })
            .collect();
        let size: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('faces')")
            .fetch_one(&pool)
            .await
            .unwrap();
        for &ef_search in &ef_searches {
            let options = StoreOptions {
                hnsw: facerec_store::HnswOptions {
                    m,
                    ef_construction,
                    ef_search,
                    ..Default::default()
                },
                max_connections: Some(2),
            };
            let store = facerec_store::PostgresStore::open(&url, &options)
                .await
                .unwrap();
            // One pass to load the index pages into PostgreSQL's buffers, then the measured pass.
            for (probe, _) in probes.iter().take(50) {
                store.search(probe, &model, 1).await.unwrap();
            }
            let mut times = Vec::new();
            let mut correct = 0;
            for (probe, truth) in &probes {
                let start = Instant::now();
                let hits = store.search(probe, &model, 1).await.unwrap();
                times.push(start.elapsed().as_secs_f64() * 1e3);
                correct += usize::from(hits.first().is_some_and(|h| h.person_id == *truth));
            }
            times.sort_by(f64::total_cmp);
            println!(
                "  {n:>9}  {build:>7.1}  {ef_search:>9}  {:>9.2}  {:>7.2}  {:>8.3}   {:>15.0}",
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                correct as f64 / queries as f64,
                size as f64 / (1 << 20) as f64
            );
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    bench_exact();

    println!("\nregistration throughput (person + face + audit events per transaction)");
    let dir = tempfile::tempdir().unwrap();
    let sqlite = facerec_store::open(
        &format!("sqlite://{}/bench.db", dir.path().display()),
        &StoreOptions::default(),
    )
    .await
    .unwrap();
    println!(
        "  sqlite      4 writers: {:>7.0} registrations/s",
        registration_throughput(sqlite, 2000, 4).await
    );
    let Ok(admin) = std::env::var("FACEREC_TEST_DATABASE_URL") else {
        println!(
            "\nFACEREC_TEST_DATABASE_URL unset: PostgreSQL benchmarks skipped (run `make bench`)"
        );
        return;
    };
    let postgres = facerec_store::open(
        &testing::create_database(&admin, "facerec_bench")
            .await
            .unwrap(),
        &StoreOptions::default(),
    )
    .await
    .unwrap();
    println!(
        "  postgres    4 writers: {:>7.0} registrations/s",
        registration_throughput(postgres, 2000, 4).await
    );
    let sizes: Vec<usize> = env_list("FACEREC_BENCH_HNSW_SIZES", &[10_000, 100_000]);
    bench_hnsw(&admin, &sizes).await;
}
