//! The service under load (numbers, not pass/fail): `cargo bench -p facerec-cli --bench service`.
//!
//! 1. HTTP: `/v1/recognize` on a one-face photo with 10,000 registered faces (SQLite + exact index),
//!    at 1, 2 and 4 concurrent clients, beside the pipeline's own end-to-end time for the same photo.
//! 2. Stream: one 640x480 WebSocket stream with one face and with five, tracking on and off.
//! 3. Calibration: `POST /v1/calibration` over 100,000 random faces (FACEREC_BENCH_CALIBRATION_FACES;
//!    plus InsightFace's embeddings of shared/faces where present), timed, while one client keeps
//!    calling `/v1/recognize`: its latency before and during the run. `FACEREC_BENCH_ONLY=calibration`
//!    runs this part alone.
//! 4. Captures: `/v1/recognize` with the collection's `capture` off and `all`, alternating in rounds
//!    on one server (1,000 registered faces), for a one-face photo and a 22-face one, each request
//!    from a new source (every face a new capture); and a five-face stream's fps, likewise.
//!    `FACEREC_BENCH_ONLY=captures` runs this part alone.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use facerec_core::*;
use facerec_store::StoreOptions;
use facerec_vision::{
    AnalyzerConfig, Device, FaceAnalyzer, FaceQuality, IngestLimits, NormalizedEmbedding,
    RuntimeConfig,
};
use futures_util::{SinkExt, StreamExt};
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::Message;

const REGISTERED: usize = 10_000;
const SECONDS_PER_LEVEL: u64 = 8;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn photo(name: &str) -> Vec<u8> {
    std::fs::read(root().join("vendor/fixtures/registry").join(name))
        .expect("run `make setup-test`")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn analyzer() -> FaceAnalyzer {
    let vendor = root().join("vendor");
    FaceAnalyzer::load(&AnalyzerConfig::with_models_dir(
        &vendor.join("models"),
        RuntimeConfig {
            library: vendor.join("onnxruntime/libonnxruntime.so.1.32.0"),
            device: Device::Cpu,
            intra_threads: 1,
        },
    ))
    .unwrap()
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(database_url: &str, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_facerec"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            "--rate-limit-per-minute",
            "0",
        ])
        .args(extra)
        .current_dir(root())
        .env("FACEREC_LOG", "error")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    while !line.starts_with("facerec listening on ") {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
    }
    let url = line
        .trim()
        .trim_start_matches("facerec listening on ")
        .to_owned();
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Server(child, url)
}

fn bench_person(name: &str) -> NewPerson {
    NewPerson {
        name: name.to_owned(),
        external_id: None,
        metadata: serde_json::json!({}),
        consent: Consent::given_now("benchmark").unwrap(),
    }
}

/// A face as registration would store it, for an embedding made by the benchmark.
fn bench_face(embedding: NormalizedEmbedding, model: &ModelId, image_sha256: String) -> NewFace {
    NewFace {
        embedding,
        det_score: 0.8,
        bbox: [0.0, 0.0, 100.0, 100.0],
        quality: FaceQuality {
            face_size_px: 100.0,
            interocular_px: 40.0,
            frontality: 1.0,
            embedding_norm: 20.0,
        },
        model: model.clone(),
        image_sha256,
    }
}

async fn fill(database_url: &str, model: &ModelId, count: usize) {
    let store = facerec_store::open(database_url, &StoreOptions::default())
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for i in 0..count {
        let raw: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|_| rng.random::<f32>() - 0.5)
            .collect();
        let person = bench_person(&format!("person {i}"));
        let embedding = NormalizedEmbedding::normalize(&raw).unwrap().0;
        let face = bench_face(embedding, model, format!("{i}"));
        store
            .register(
                facerec_core::CollectionId::DEFAULT,
                person,
                face,
                &Actor::local_operator(),
            )
            .await
            .unwrap();
    }
}

async fn http_level(url: &str, image: &[u8], clients: usize) -> (f64, Vec<f64>) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(SECONDS_PER_LEVEL);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, image) = (client.clone(), url.to_owned(), image.to_vec());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    latencies.push(recognize_once(&client, &url, &image).await);
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    (all.len() as f64 / elapsed, all)
}

fn frame(image: &image::RgbImage) -> Vec<u8> {
    let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([60, 60, 60]));
    let scale = (640.0 / image.width() as f32)
        .min(480.0 / image.height() as f32)
        .min(1.0);
    let scaled = image::imageops::resize(
        image,
        (image.width() as f32 * scale) as u32,
        (image.height() as f32 * scale) as u32,
        image::imageops::FilterType::Triangle,
    );
    image::imageops::overlay(
        &mut canvas,
        &scaled,
        ((640 - scaled.width()) / 2).into(),
        ((480 - scaled.height()) / 2).into(),
    );
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(canvas)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}

async fn stream_run(
    url: &str,
    frame: &[u8],
    tracking: bool,
    frames: usize,
) -> (f64, f64, f64, usize) {
    let query = if tracking { "" } else { "?tracking=off" };
    let (mut socket, _) = tokio_tungstenite::connect_async(format!(
        "{}/v1/stream{query}",
        url.replacen("http", "ws", 1)
    ))
    .await
    .unwrap();
    let mut latencies = Vec::new();
    let mut embedded = 0u64;
    let mut faces = 0;
    let started = Instant::now();
    for _ in 0..frames {
        let t = Instant::now();
        socket
            .send(Message::Binary(frame.to_vec().into()))
            .await
            .unwrap();
        loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                embedded += v["embedded"].as_u64().unwrap_or(0);
                faces = v["faces"].as_array().map_or(0, Vec::len);
                break;
            }
        }
        latencies.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let fps = frames as f64 / started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    (
        fps,
        percentile(&latencies, 0.5),
        embedded as f64 / frames as f64,
        faces,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let yao = photo("vectron/yaoming.jpg");
    let mut analyzer = analyzer();
    let model = analyzer.model_id().clone();
    // FACEREC_BENCH_ONLY=calibration: the third part alone (two builds timed side by side).
    if std::env::var("FACEREC_BENCH_ONLY").is_ok_and(|only| only == "calibration") {
        drop(analyzer);
        bench_calibration(&model, &yao).await;
        return;
    }
    if std::env::var("FACEREC_BENCH_ONLY").is_ok_and(|only| only == "captures") {
        drop(analyzer);
        bench_captures(&model).await;
        return;
    }
    let limits = IngestLimits::default();
    let mut pipeline: Vec<f64> = (0..60)
        .map(|_| {
            let t = Instant::now();
            analyzer.analyze_bytes(&yao, &limits).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .skip(10)
        .collect();
    pipeline.sort_by(f64::total_cmp);
    let pipeline_ms = percentile(&pipeline, 0.5);
    drop(analyzer);

    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/bench.db", dir.path().display());
    fill(&database_url, &model, REGISTERED).await;
    let server = start_server(
        &database_url,
        &[
            "--workers",
            "2",
            "--queue",
            "64",
            "--stream-max-fps",
            "1000",
        ],
    );
    // Measured once the calibration at start is done (it searches the gallery a thousand times).
    wait_calibrated(&server.1).await;
    http_level(&server.1, &yao, 1).await; // warm-up
    println!("POST /v1/recognize, one-face photo (yaoming.jpg, 233x287), {REGISTERED} registered faces, 2 workers");
    println!("pipeline alone (in process, 1 thread): median {pipeline_ms:.2} ms");
    println!(
        "  clients   req/s    p50 ms   p90 ms   p99 ms   p50 / pipeline   speed-up vs 1 client"
    );
    let mut single = 0.0;
    for clients in [1, 2, 4] {
        let (rps, latencies) = http_level(&server.1, &yao, clients).await;
        if clients == 1 {
            single = rps;
        }
        println!(
            "  {clients:>7}  {rps:>6.1}  {:>7.2}  {:>7.2}  {:>7.2}   {:>14.3}x   {:>19.2}x",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            percentile(&latencies, 0.5) / pipeline_ms,
            rps / single
        );
    }

    let one = image::load_from_memory(&yao).unwrap().to_rgb8();
    let t1 = image::load_from_memory(&photo("insightface/t1.jpg")).unwrap();
    let five = t1.crop_imm(0, 40, 1060, 460).to_rgb8();
    println!("\nWebSocket stream, one 640x480 client sending the next frame when the last is answered, 120 frames");
    println!("  scene        tracking   faces   fps    p50 latency ms   embeddings per frame");
    for (label, image) in [("one face", &one), ("five faces", &five)] {
        let frame = frame(image);
        for tracking in [false, true] {
            let (fps, p50, per_frame, faces) = stream_run(&server.1, &frame, tracking, 120).await;
            println!(
                "  {label:<11}  {:<9}  {faces:>5}  {fps:>5.1}  {p50:>15.1}  {per_frame:>21.2}",
                if tracking { "on" } else { "off" }
            );
        }
    }
    drop(server);
    bench_calibration(&model, &yao).await;
}

/// InsightFace's embeddings of shared/faces' photos (each photo's first face), by identity.
fn shared_embeddings() -> Vec<(String, NormalizedEmbedding)> {
    let Ok(text) = std::fs::read_to_string(root().join("../shared/faces/reference.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let photo: serde_json::Value = serde_json::from_str(line).ok()?;
            let identity = photo["path"]
                .as_str()?
                .strip_prefix("images/")?
                .split('/')
                .next()?;
            let values: Vec<f32> =
                serde_json::from_value(photo["faces"][0]["embedding"].clone()).ok()?;
            Some((
                identity.to_owned(),
                NormalizedEmbedding::normalize(&values).ok()?.0,
            ))
        })
        .collect()
}

async fn add_shared(database_url: &str, model: &ModelId) -> usize {
    let store = facerec_store::open(database_url, &StoreOptions::default())
        .await
        .unwrap();
    let shared = shared_embeddings();
    for (i, (identity, embedding)) in shared.iter().enumerate() {
        let person = bench_person(identity);
        let face = bench_face(embedding.clone(), model, format!("shared {i}"));
        // One person per identity: later photos join the first.
        let named = store
            .persons_named(facerec_core::CollectionId::DEFAULT, identity, 1)
            .await
            .unwrap();
        match named.first() {
            Some(p) => drop(
                store
                    .add_face(
                        facerec_core::CollectionId::DEFAULT,
                        p.id,
                        face,
                        &Actor::local_operator(),
                    )
                    .await
                    .unwrap(),
            ),
            None => drop(
                store
                    .register(
                        facerec_core::CollectionId::DEFAULT,
                        person,
                        face,
                        &Actor::local_operator(),
                    )
                    .await
                    .unwrap(),
            ),
        }
    }
    shared.len()
}

/// The server calibrates once at start (nothing is recorded yet): waits until it has.
async fn wait_calibrated(url: &str) {
    let client = reqwest::Client::new();
    loop {
        let calibration: serde_json::Value = client
            .get(format!("{url}/v1/calibration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if calibration["persons"].as_u64() > Some(0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One `/v1/recognize` of `image`: its latency in ms.
async fn recognize_once(client: &reqwest::Client, url: &str, image: &[u8]) -> f64 {
    recognize_from(client, url, image, None).await
}

/// One `/v1/recognize` of `image` from `source`: its latency in ms.
async fn recognize_from(
    client: &reqwest::Client,
    url: &str,
    image: &[u8],
    source: Option<String>,
) -> f64 {
    let mut form = reqwest::multipart::Form::new().part(
        "image",
        reqwest::multipart::Part::bytes(image.to_vec()).file_name("y.jpg"),
    );
    if let Some(source) = source {
        form = form.text("source", source);
    }
    let started = Instant::now();
    let response = client
        .post(format!("{url}/v1/recognize"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    started.elapsed().as_secs_f64() * 1e3
}

async fn bench_calibration(model: &ModelId, yao: &[u8]) {
    let faces: usize = std::env::var("FACEREC_BENCH_CALIBRATION_FACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/calibration.db", dir.path().display());
    fill(&database_url, model, faces).await;
    let shared = add_shared(&database_url, model).await;
    let server = start_server(
        &database_url,
        &["--workers", "2", "--calibration-check-secs", "86400"],
    );
    let client = reqwest::Client::new();
    let first = Instant::now();
    wait_calibrated(&server.1).await;
    let startup = first.elapsed().as_secs_f64();
    let mut idle = Vec::new();
    for _ in 0..40 {
        idle.push(recognize_once(&client, &server.1, yao).await);
    }
    let started = Instant::now();
    let run = {
        let (client, url) = (client.clone(), server.1.clone());
        tokio::spawn(async move {
            let response = client
                .post(format!("{url}/v1/calibration"))
                .send()
                .await
                .unwrap();
            let body: serde_json::Value = response.json().await.unwrap();
            (started.elapsed().as_secs_f64(), body)
        })
    };
    let mut during = Vec::new();
    while !run.is_finished() {
        during.push(recognize_once(&client, &server.1, yao).await);
    }
    let (took, calibration) = run.await.unwrap();
    idle.sort_by(f64::total_cmp);
    during.sort_by(f64::total_cmp);
    println!(
        "\nPOST /v1/calibration over {} faces ({faces} random + {shared} of shared/faces), 2 workers, SQLite",
        faces + shared
    );
    println!(
        "  took {took:.1} s (the one at start: {startup:.1} s); {} persons sampled, {} stranger probes, \
         {} impostor pairs, method {}, threshold {}",
        calibration["persons_sampled"],
        calibration["stranger_probes"],
        calibration["impostor_pairs"],
        calibration["method"],
        calibration["effective_threshold"]
    );
    println!(
        "  /v1/recognize (one client): before p50 {:.1} ms p99 {:.1} ms; during p50 {:.1} ms p99 {:.1} ms ({} requests)",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
        percentile(&during, 0.5),
        percentile(&during, 0.99),
        during.len()
    );
}

/// `/v1/recognize` with capture off and all, alternating on one server: p50 and p90 of each.
async fn bench_captures(model: &ModelId) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/captures.db", dir.path().display());
    fill(&database_url, model, 1_000).await;
    let server = start_server(&database_url, &["--workers", "2"]);
    wait_calibrated(&server.1).await;
    let client = reqwest::Client::new();
    let set = |mode: &'static str| {
        let (client, url) = (client.clone(), server.1.clone());
        async move {
            let body = serde_json::json!({ "settings": { "capture": mode } });
            let response = client
                .patch(format!("{url}/v1/collections/default"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            // A collection's settings are trusted for a second by each request's lookup.
            tokio::time::sleep(Duration::from_millis(1_200)).await;
        }
    };
    println!("\nPOST /v1/recognize with capture off and all (alternating rounds of 30, 1 client, 2 workers, SQLite, 1,000 registered)");
    println!("  photo                  capture   p50 ms   p90 ms   p50 vs off");
    let mut source = 0u64;
    for (name, photo) in [
        ("yaoming.jpg (1 face)", photo("vectron/yaoming.jpg")),
        ("players.jpg (22 faces)", photo("vectron/players.jpg")),
    ] {
        for _ in 0..5 {
            recognize_once(&client, &server.1, &photo).await; // warm-up
        }
        let (mut off, mut all) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            for (mode, latencies) in [("off", &mut off), ("all", &mut all)] {
                set(mode).await;
                for _ in 0..30 {
                    source += 1;
                    let from = Some(format!("bench{source}"));
                    latencies.push(recognize_from(&client, &server.1, &photo, from).await);
                }
            }
        }
        off.sort_by(f64::total_cmp);
        all.sort_by(f64::total_cmp);
        let base = percentile(&off, 0.5);
        for (mode, latencies) in [("off", &off), ("all", &all)] {
            println!(
                "  {name:<22} {mode:<7} {:>7.2}  {:>7.2}   {:>9.3}x",
                percentile(latencies, 0.5),
                percentile(latencies, 0.9),
                percentile(latencies, 0.5) / base
            );
        }
    }
    // A stream: the collection's capture setting is read when a stream opens, so each round opens
    // its own.
    let t1 = image::load_from_memory(&photo("insightface/t1.jpg")).unwrap();
    let five = frame(&t1.crop_imm(0, 40, 1060, 460).to_rgb8());
    println!(
        "\nWebSocket stream with capture off and all (alternating rounds of 60 frames, five faces)"
    );
    println!("  tracking   capture     fps   p50 ms   fps vs off");
    for tracking in [true, false] {
        let (mut off, mut all) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            for (mode, runs) in [("off", &mut off), ("all", &mut all)] {
                set(mode).await;
                runs.push(stream_run(&server.1, &five, tracking, 60).await);
            }
        }
        let mean = |runs: &[(f64, f64, f64, usize)]| {
            let n = runs.len() as f64;
            (
                runs.iter().map(|r| r.0).sum::<f64>() / n,
                runs.iter().map(|r| r.1).sum::<f64>() / n,
            )
        };
        let (base, _) = mean(&off);
        for (mode, runs) in [("off", &off), ("all", &all)] {
            let (fps, p50) = mean(runs);
            println!(
                "  {:<9}  {mode:<7}  {fps:>6.1}  {p50:>7.1}   {:>9.3}x",
                if tracking { "on" } else { "off" },
                fps / base
            );
        }
    }
    let captures: serde_json::Value = client
        .get(format!("{}/v1/captures?limit=500", server.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "  captures held afterwards (listing capped at 500): {}",
        captures["items"].as_array().map_or(0, Vec::len)
    );
}
