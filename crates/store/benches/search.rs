//! Search and registration benchmarks (numbers, not pass/fail).
//!
//! `cargo bench -p facerec-store --bench search` — exact in-memory index at 10k, 100k and 1M faces
//! (random unit vectors): the int8 index beside the f32 scan it replaced, in the same run; with FACEREC_TEST_DATABASE_URL set
//! (`make bench` starts PostgreSQL), pgvector HNSW at 10k and 100k (FACEREC_BENCH_HNSW_SIZES to change)
//! with recall@1 against exact search (FACEREC_BENCH_HNSW_M and FACEREC_BENCH_HNSW_EF_CONSTRUCTION set the
//! index, default the shipped `HnswOptions`; FACEREC_BENCH_HNSW_EF_SEARCH the comma-separated ef_search
//! sweep, FACEREC_BENCH_HNSW_QUERIES the probe count; FACEREC_BENCH_HNSW_KEEP=1 keeps each built index
//! in a database named after it and reuses it in later runs), and registration throughput of both
//! backends. Search within a collection: a 1,000-face collection and the big rest, against the
//! unfiltered search of before, on the exact index at 1M faces (FACEREC_BENCH_COLLECTION_FACES) and
//! on pgvector at 100k (FACEREC_BENCH_COLLECTION_HNSW_FACES), ef_search 100 and 400.
//! FACEREC_BENCH_SKIP_EXACT=1 leaves the exact index's parts out.

use std::sync::Arc;
use std::time::Instant;

use facerec_core::*;
use facerec_store::exact_index::top_persons;
use facerec_store::{testing, ExactIndex, StoreOptions};
use facerec_types::embedding::dot;
use facerec_types::{FaceQuality, NormalizedEmbedding, Similarity};
use rand::{Rng, SeedableRng};

const DIM: usize = EMBEDDING_DIM;

fn random_unit(rng: &mut impl Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.random::<f32>() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The f32 scan the index used before quantization (and the truth it is checked against): every
/// row's exact similarity, split across threads as the index splits its scan; one face per person.
fn f32_scan(vectors: &[f32], probe: &[f32], k: usize) -> Vec<(f32, usize)> {
    let rows = vectors.len() / DIM;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = rows.div_ceil(threads);
    let mut best: Vec<(f32, usize)> = std::thread::scope(|s| {
        (0..threads)
            .map(|t| {
                s.spawn(move || {
                    // The k best so far, best first; a row enters only past the worst of them.
                    let mut top: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
                    let range = t * chunk..((t + 1) * chunk).min(rows);
                    for r in range {
                        let similarity = dot(&vectors[r * DIM..(r + 1) * DIM], probe);
                        if top.len() < k || similarity > top[top.len() - 1].0 {
                            let at = top.partition_point(|e| e.0 >= similarity);
                            top.insert(at, (similarity, r));
                            top.truncate(k);
                        }
                    }
                    top
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    best.sort_by(|a, b| b.0.total_cmp(&a.0));
    best.truncate(k);
    best
}

/// The quantized index beside the f32 scan it replaced, in the same run: time, memory, and whether
/// top-1 and the match decision (at the default threshold) agree on every probe. Probes are random
/// unit vectors (every gallery face about equally far: the bound's worst case, the most
/// candidates) and noisy copies of gallery faces (as real probes are).
fn bench_exact() {
    println!(
        "\nexact in-memory index ({DIM}-d, {} threads): f32 scan (before) vs int8 scan + exact f32 re-scoring of the candidates (now)",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  faces      probes   f32 ms   int8 ms   ratio   candidates   f32 MiB   int8 MiB   top-1 and decision"
    );
    let threshold = Threshold::default().value();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for (n, probes) in [
        (10_000usize, 10_000usize),
        (100_000, 1_000),
        (1_000_000, 100),
    ] {
        let mut index = ExactIndex::new();
        let mut vectors = Vec::with_capacity(n * DIM);
        let mut truth = std::collections::HashMap::with_capacity(n);
        let mut rows = Vec::with_capacity(n);
        for _ in 0..n {
            let (face, person, v) = (FaceId::new(), PersonId::new(), random_unit(&mut rng));
            index.insert("m", face, person, &v);
            vectors.extend_from_slice(&v);
            truth.insert(face, v);
            rows.push((face, person));
        }
        let probes: Vec<Vec<f32>> = (0..probes)
            .map(|i| {
                if i % 2 == 0 {
                    random_unit(&mut rng)
                } else {
                    let near = &vectors[(i * 7919 % n) * DIM..][..DIM];
                    let noisy: Vec<f32> = near
                        .iter()
                        .map(|x| x + 0.06 * (rng.random::<f32>() - 0.5))
                        .collect();
                    NormalizedEmbedding::normalize(&noisy)
                        .unwrap()
                        .0
                        .as_slice()
                        .to_vec()
                }
            })
            .collect();
        let (mut before, mut now, mut candidates, mut agree) = (Vec::new(), Vec::new(), 0, 0);
        for probe in &probes {
            let start = Instant::now();
            let reference = std::hint::black_box(f32_scan(&vectors, probe, 5));
            before.push(start.elapsed().as_secs_f64() * 1e3);
            let start = Instant::now();
            let found = index.candidates("m", probe, 5);
            candidates += found.len();
            let scored = found.into_iter().map(|c| {
                let exact = dot(&truth[&c.face_id], probe);
                (c, Similarity::new(exact))
            });
            let hits = std::hint::black_box(top_persons(scored, 5));
            now.push(start.elapsed().as_secs_f64() * 1e3);
            let (best, row) = reference[0];
            let same_top = hits[0].face_id == rows[row].0;
            let same_decision = (hits[0].similarity.value() >= threshold) == (best >= threshold);
            agree += usize::from(same_top && same_decision);
        }
        before.sort_by(f64::total_cmp);
        now.sort_by(f64::total_cmp);
        let (before, now) = (percentile(&before, 0.5), percentile(&now, 0.5));
        println!(
            "  {n:>9}  {:>7}  {before:>7.2}  {now:>8.2}   {:>4.0}%   {:>10.1}   {:>7.0}   {:>8.0}   {agree}/{} identical",
            probes.len(),
            100.0 * now / before,
            candidates as f64 / probes.len() as f64,
            (n * DIM * 4) as f64 / (1 << 20) as f64,
            index.vector_bytes() as f64 / (1 << 20) as f64,
            probes.len(),
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
        model: ModelId {
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
                            facerec_core::CollectionId::DEFAULT,
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
    collection_of: impl Fn(usize) -> uuid::Uuid,
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
        let collections: Vec<uuid::Uuid> = (base..base + chunk.len()).map(&collection_of).collect();
        sqlx::query(
            "INSERT INTO persons (id, collection_id, name, metadata, consent_given_at, consent_basis, created_at, updated_at)
             SELECT id, c, 'p', '{}', now(), 'bench', now(), now() FROM unnest($1::uuid[], $2::uuid[]) AS t(id, c)",
        )
        .bind(&ids)
        .bind(&collections)
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
            "INSERT INTO faces (id, person_id, collection_id, embedding, det_score, bbox, quality, model_name, model_sha256, image_sha256, created_at)
             SELECT f, p, c, e, 0.8, '[0,0,1,1]', '{}', 'bench', '0', s, now()
             FROM unnest($1::uuid[], $2::uuid[], $3::vector[], $4::text[], $5::uuid[]) AS t(f, p, e, s, c)",
        )
        .bind(&face_ids)
        .bind(&ids)
        .bind(&embeddings)
        .bind(&shas)
        .bind(&collections)
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    let start = Instant::now();
    // One connection for the settings and the build: a SET on a pool could land on another one.
    let mut conn = pool.acquire().await.unwrap();
    // A bulk index build is maintenance: lift the request pool's statement timeout for it.
    for setting in [
        "SET maintenance_work_mem = '6GB'",
        "SET statement_timeout = 0",
    ] {
        sqlx::query(setting).execute(&mut *conn).await.unwrap();
    }
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
            let default = CollectionId::DEFAULT.0;
            load_and_index(&pool, &vectors, |_| default, m, ef_construction).await
        };
        // Persons by vector position, read back so that a kept database is described correctly.
        let persons: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT person_id FROM faces ORDER BY image_sha256::bigint")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(persons.len(), n, "{kept_name} holds another data set");
        let flat: Vec<f32> = vectors.concat();
        let persons_of_rows: Vec<PersonId> = persons.iter().map(|p| PersonId(*p)).collect();
        let model = ModelId {
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
                let truth = f32_scan(&flat, probe.as_slice(), 1)[0].1;
                let truth = persons_of_rows[truth];
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
                read_url: None,
            };
            let store = facerec_store::PostgresStore::open(&url, &options)
                .await
                .unwrap();
            // One pass to load the index pages into PostgreSQL's buffers, then the measured pass.
            for (probe, _) in probes.iter().take(50) {
                store
                    .search(facerec_core::CollectionId::DEFAULT, probe, &model, 1)
                    .await
                    .unwrap();
            }
            let mut times = Vec::new();
            let mut correct = 0;
            for (probe, truth) in &probes {
                let start = Instant::now();
                let hits = store
                    .search(facerec_core::CollectionId::DEFAULT, probe, &model, 1)
                    .await
                    .unwrap();
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
    // The exact index's parts take many minutes; FACEREC_BENCH_SKIP_EXACT=1 runs the rest alone
    // (registrations, pgvector), as when two builds of the store are compared side by side.
    if std::env::var_os("FACEREC_BENCH_SKIP_EXACT").is_none() {
        bench_exact();
        let faces = env_list("FACEREC_BENCH_COLLECTION_FACES", &[1_000_000usize])[0];
        bench_exact_collections(faces, 200);
    }

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
    let faces = env_list("FACEREC_BENCH_COLLECTION_HNSW_FACES", &[100_000usize])[0];
    bench_hnsw_collections(&admin, faces, 200, &[100, 400]).await;
}

/// A probe near a stored vector (as a real probe is near its enrollment photo).
fn near(rng: &mut impl Rng, target: &[f32], noise: f32) -> NormalizedEmbedding {
    let noisy: Vec<f32> = target
        .iter()
        .map(|x| x + noise * (rng.random::<f32>() - 0.5))
        .collect();
    NormalizedEmbedding::normalize(&noisy).unwrap().0
}

/// Search within a collection on the exact index: a 1,000-face collection inside `n` faces, and the
/// big collection (the rest), each against the unsharded index of all `n` (today's search before
/// collections), the same probes, in one run. Recall@1 against an f32 scan of the collection.
fn bench_exact_collections(n: usize, probes: usize) {
    const SMALL: usize = 1_000;
    println!("\nexact index by collection: {SMALL} faces and {} faces in one index of {n}, {probes} probes each", n - SMALL);
    println!("  search                          median ms   p99 ms   recall@1");
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    let (mut sharded, mut whole) = (ExactIndex::new(), ExactIndex::new());
    let mut vectors = Vec::with_capacity(n * DIM);
    let mut rows = Vec::with_capacity(n);
    let mut truth = std::collections::HashMap::with_capacity(n);
    for i in 0..n {
        let (face, person, v) = (FaceId::new(), PersonId::new(), random_unit(&mut rng));
        sharded.insert(
            if i < SMALL { "small/m" } else { "big/m" },
            face,
            person,
            &v,
        );
        whole.insert("m", face, person, &v);
        vectors.extend_from_slice(&v);
        rows.push(person);
        truth.insert(face, v);
    }
    let search = |index: &ExactIndex, shard: &str, probe: &[f32]| {
        let scored = index.candidates(shard, probe, 1).into_iter().map(|c| {
            let exact = dot(&truth[&c.face_id], probe);
            (c, Similarity::new(exact))
        });
        top_persons(scored, 1)
    };
    for (what, shard, range) in [
        ("1,000-face collection", "small/m", 0..SMALL),
        ("big collection", "big/m", SMALL..n),
    ] {
        let probes: Vec<(Vec<f32>, PersonId)> = (0..probes)
            .map(|_| {
                let target = rng.random_range(range.clone());
                let probe = near(&mut rng, &vectors[target * DIM..][..DIM], 0.06);
                let scope = &vectors[range.start * DIM..range.end * DIM];
                let best = f32_scan(scope, probe.as_slice(), 1)[0].1 + range.start;
                (probe.as_slice().to_vec(), rows[best])
            })
            .collect();
        for (label, index, shard) in [
            ("unfiltered (before)", &whole, "m"),
            ("in its collection", &sharded, shard),
        ] {
            let (mut times, mut correct) = (Vec::new(), 0);
            for (probe, expected) in &probes {
                let start = Instant::now();
                let hits = std::hint::black_box(search(index, shard, probe));
                times.push(start.elapsed().as_secs_f64() * 1e3);
                correct += usize::from(hits.first().is_some_and(|h| h.person_id == *expected));
            }
            times.sort_by(f64::total_cmp);
            println!(
                "  {what:<22} {label:<20} {:>8.3}  {:>7.3}   {:>6.3}",
                percentile(&times, 0.5),
                percentile(&times, 0.99),
                correct as f64 / probes.len() as f64
            );
        }
    }
}

/// Filtered HNSW search on PostgreSQL: a 1,000-face collection inside `n` faces and the big
/// collection (the rest), through `Store::search` (the collection filter, pgvector's iterative
/// scan), against the statement of before collections (no filter) in the same run, at each
/// ef_search. Recall@1 against an f32 scan of the collection.
async fn bench_hnsw_collections(admin: &str, n: usize, queries: usize, ef_searches: &[u32]) {
    const SMALL: usize = 1_000;
    let defaults = facerec_store::HnswOptions::default();
    println!(
        "\npgvector HNSW by collection (m={}, ef_construction={}): {SMALL} faces and {} faces in one table of {n}, {queries} queries each",
        defaults.m, defaults.ef_construction, n - SMALL
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| random_unit(&mut rng)).collect();
    let url = testing::create_database(admin, "facerec_bench")
        .await
        .unwrap();
    let store = facerec_store::PostgresStore::open(&url, &StoreOptions::default())
        .await
        .unwrap();
    let pool = store.pool().clone();
    let (small, big) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    for (id, name) in [(small, "small"), (big, "big")] {
        sqlx::query("INSERT INTO collections (id, name, settings, created_at, updated_at) VALUES ($1, $2, '{}', now(), now())")
            .bind(id)
            .bind(name)
            .execute(&pool)
            .await
            .unwrap();
    }
    let build = load_and_index(
        &pool,
        &vectors,
        |i| if i < SMALL { small } else { big },
        defaults.m,
        defaults.ef_construction,
    )
    .await;
    println!("  index built in {build:.1} s");
    let persons: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT person_id FROM faces ORDER BY image_sha256::bigint")
            .fetch_all(&pool)
            .await
            .unwrap();
    let flat: Vec<f32> = vectors.concat();
    let model = ModelId {
        name: "bench".into(),
        sha256: "0".into(),
    };
    // Each collection: what it is, its id, its probes with the person each should find.
    type Probes = Vec<(NormalizedEmbedding, PersonId)>;
    let cases: Vec<(&str, uuid::Uuid, Probes)> = [
        ("1,000-face collection", small, 0..SMALL),
        ("big collection", big, SMALL..n),
    ]
    .into_iter()
    .map(|(what, id, range)| {
        let probes = (0..queries)
            .map(|_| {
                let target = rng.random_range(range.clone());
                let probe = near(&mut rng, &vectors[target], 0.02);
                let scope = &flat[range.start * DIM..range.end * DIM];
                let best = f32_scan(scope, probe.as_slice(), 1)[0].1 + range.start;
                (probe, PersonId(persons[best]))
            })
            .collect();
        (what, id, probes)
    })
    .collect();
    // The search statement before collections: the same, without the filter.
    let unfiltered = "SELECT nearest.person_id FROM (SELECT person_id FROM faces \
        WHERE model_name = $2 AND model_sha256 = $3 ORDER BY embedding <#> $1 LIMIT 16) AS nearest \
        JOIN persons ON persons.id = nearest.person_id";
    println!("  search                          ef_search  median ms   p99 ms   recall@1");
    for &ef_search in ef_searches {
        let options = StoreOptions {
            hnsw: facerec_store::HnswOptions {
                ef_search,
                ..defaults
            },
            max_connections: Some(2),
            read_url: None,
        };
        let store = facerec_store::PostgresStore::open(&url, &options)
            .await
            .unwrap();
        let pool = store.pool().clone();
        for (what, id, probes) in &cases {
            for filtered in [false, true] {
                let run = |probe: &NormalizedEmbedding| {
                    let (store, pool, model) = (&store, &pool, &model);
                    let probe = probe.clone();
                    async move {
                        if filtered {
                            let hits = store
                                .search(CollectionId(*id), &probe, model, 1)
                                .await
                                .unwrap();
                            hits.first().map(|h| h.person_id)
                        } else {
                            let rows: Vec<uuid::Uuid> = sqlx::query_scalar(unfiltered)
                                .bind(pgvector::Vector::from(probe.as_slice().to_vec()))
                                .bind(&model.name)
                                .bind(&model.sha256)
                                .fetch_all(pool)
                                .await
                                .unwrap();
                            rows.first().map(|p| PersonId(*p))
                        }
                    }
                };
                for (probe, _) in probes.iter().take(20) {
                    run(probe).await;
                }
                let (mut times, mut correct) = (Vec::new(), 0);
                for (probe, expected) in probes {
                    let start = Instant::now();
                    let found = run(probe).await;
                    times.push(start.elapsed().as_secs_f64() * 1e3);
                    correct += usize::from(found == Some(*expected));
                }
                times.sort_by(f64::total_cmp);
                let label = if filtered {
                    "in its collection"
                } else {
                    "unfiltered (before)"
                };
                println!(
                    "  {what:<22} {label:<20} {ef_search:>4}  {:>9.2}  {:>7.2}   {:>6.3}",
                    percentile(&times, 0.5),
                    percentile(&times, 0.99),
                    correct as f64 / probes.len() as f64
                );
            }
        }
    }
    // Which plan PostgreSQL takes for each collection.
    let mut conn = pool.acquire().await.unwrap();
    for (what, id, probes) in &cases {
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN SELECT id FROM faces WHERE collection_id = $4 AND model_name = $2 AND model_sha256 = $3 \
             ORDER BY embedding <#> $1 LIMIT 16",
        )
        .bind(pgvector::Vector::from(probes[0].0.as_slice().to_vec()))
        .bind(&model.name)
        .bind(&model.sha256)
        .bind(id)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        let uses = if plan.iter().any(|l| l.contains("faces_embedding_hnsw")) {
            "the HNSW index (filtered, iterative scan)"
        } else if plan.iter().any(|l| l.contains("faces_collection")) {
            "the collection's B-tree, then an exact sort"
        } else {
            "a sequential scan"
        };
        println!("  plan for the {what}: {uses}");
    }
}
