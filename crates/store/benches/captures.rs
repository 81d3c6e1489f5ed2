//! Captured faces (numbers, not pass/fail): `cargo bench -p facerec-store --bench captures`.
//!
//! Storing a capture — its nearest captures found, a sighting merged or a row written, its cluster
//! joined, linked or started, the collection kept within its bound — with 10,000 captures held in
//! the collection (FACEREC_BENCH_CAPTURES), on SQLite (the in-memory exact scan) and, with
//! FACEREC_TEST_DATABASE_URL set (`make bench` starts PostgreSQL), on PostgreSQL (HNSW); and the
//! read a recognition makes to name an unknown face's cluster (`cluster_for`). Half the probes are
//! a held capture with noise (they join its cluster), half are new faces (they start one).

use std::time::Instant;

use chrono::Utc;
use facerec_core::capture::*;
use facerec_core::*;
use facerec_store::{testing, StoreOptions};
use facerec_types::{BoundingBox, FaceQuality, NormalizedEmbedding};
use rand::{Rng, SeedableRng};

const THRESHOLD: f32 = 0.30;

fn random_unit(rng: &mut impl Rng) -> NormalizedEmbedding {
    let v: Vec<f32> = (0..EMBEDDING_DIM)
        .map(|_| rng.random::<f32>() - 0.5)
        .collect();
    NormalizedEmbedding::normalize(&v).unwrap().0
}

/// `base` moved a little: the same face seen again (cosine ~0.7 with it).
fn near(base: &NormalizedEmbedding, rng: &mut impl Rng) -> NormalizedEmbedding {
    let noise = random_unit(rng);
    let v: Vec<f32> = base
        .as_slice()
        .iter()
        .zip(noise.as_slice())
        .map(|(b, n)| b + n)
        .collect();
    NormalizedEmbedding::normalize(&v).unwrap().0
}

fn capture(embedding: NormalizedEmbedding, model: &ModelId, source: String) -> NewCapture {
    NewCapture {
        embedding,
        model: model.clone(),
        // A chip's typical size (~4 KiB).
        chip: ChipJpeg(vec![0xAB; 4096]),
        det_score: 0.8,
        quality: FaceQuality {
            face_size_px: 100.0,
            interocular_px: 45.0,
            frontality: 0.9,
            embedding_norm: 22.0,
        },
        bbox: BoundingBox {
            x1: 0.0,
            y1: 0.0,
            x2: 100.0,
            y2: 100.0,
        },
        decision: Decision::Unknown { best: None },
        threshold: Threshold::new(THRESHOLD).unwrap(),
        join_at: Threshold::new(THRESHOLD).unwrap(),
        source: Source::new(&source).unwrap(),
        route: "bench",
        seen_at: Utc::now(),
        proposed_cluster: ClusterId::new(),
        proposed_id: CaptureId::new(),
        max: MAX_MAX_CAPTURES,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn run(name: &str, url: &str, held: usize) {
    let store = testing::open(url, &StoreOptions::default()).await.unwrap();
    let model = ModelId {
        name: "bench".into(),
        sha256: "0".repeat(64),
    };
    let collection = CollectionId::DEFAULT;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut bases = Vec::with_capacity(held);
    let started = Instant::now();
    for i in 0..held {
        let e = random_unit(&mut rng);
        bases.push(e.clone());
        store
            .capture(collection, capture(e, &model, format!("fill{i}")))
            .await
            .unwrap();
    }
    let fill = started.elapsed().as_secs_f64();

    let (mut joins, mut reads) = (Vec::new(), Vec::new());
    for i in 0..400 {
        let probe = if i % 2 == 0 {
            near(&bases[rng.random_range(0..held)], &mut rng)
        } else {
            random_unit(&mut rng)
        };
        let t = Instant::now();
        store
            .cluster_for(collection, &probe, &model, THRESHOLD)
            .await
            .unwrap();
        reads.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        store
            .capture(collection, capture(probe, &model, format!("probe{i}")))
            .await
            .unwrap();
        joins.push(t.elapsed().as_secs_f64() * 1e3);
    }
    joins.sort_by(f64::total_cmp);
    reads.sort_by(f64::total_cmp);
    println!(
        "  {name:<10} {held:>7} held ({:.0} captures/s to fill)   store a capture: p50 {:.2} ms  p99 {:.2} ms   cluster_for: p50 {:.2} ms  p99 {:.2} ms",
        held as f64 / fill,
        percentile(&joins, 0.5),
        percentile(&joins, 0.99),
        percentile(&reads, 0.5),
        percentile(&reads, 0.99),
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let held: usize = std::env::var("FACEREC_BENCH_CAPTURES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    println!("Captured faces: storing one (cluster joined or started) and naming a face's cluster, 400 probes (half near a held capture)");
    let dir = tempfile::tempdir().unwrap();
    run(
        "sqlite",
        &format!("sqlite://{}/bench.db", dir.path().display()),
        held,
    )
    .await;
    match std::env::var("FACEREC_TEST_DATABASE_URL") {
        Ok(admin) => {
            let url = testing::create_database(&admin, "facerec_bench")
                .await
                .unwrap();
            run("postgres", &url, held).await;
            // FACEREC_BENCH_KEEP=1 keeps the database (to look at its plans).
            if std::env::var_os("FACEREC_BENCH_KEEP").is_none() {
                testing::drop_database(&admin, &url).await.unwrap();
            } else {
                println!("  kept {url}");
            }
        }
        Err(_) => println!("  postgres   (FACEREC_TEST_DATABASE_URL not set: skipped)"),
    }
}
