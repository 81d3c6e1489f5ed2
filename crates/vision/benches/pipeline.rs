//! Per-stage timing of the face pipeline beside bare ONNX Runtime runs on the same inputs.
//!
//! `cargo bench -p facerec-vision --bench pipeline` (or `make bench`). Photos: `../shared/faces/images`
//! when present, else the registry photos fetched by `make setup-test`. Prints medians in milliseconds.

use std::path::{Path, PathBuf};
use std::time::Instant;

use facerec_vision::runtime::open_session;
use facerec_vision::{
    align_face, decode_image, AnalyzerConfig, Device, FaceAnalyzer, IngestLimits, RuntimeConfig,
};
use ort::value::TensorRef;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn photos() -> Vec<PathBuf> {
    let shared = root().join("../shared/faces/images");
    let dir = if shared.is_dir() {
        shared
    } else {
        root().join("vendor/fixtures/registry")
    };
    let mut files = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("photo folder").flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let vendor = root().join("vendor");
    let runtime = RuntimeConfig {
        library: vendor.join("onnxruntime/libonnxruntime.so.1.32.0"),
        device: std::env::var("FACEREC_DEVICE")
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(Device::Cpu),
        intra_threads: 1,
    };
    let config = AnalyzerConfig::with_models_dir(&vendor.join("models"), runtime.clone());
    let mut analyzer = FaceAnalyzer::load(&config).expect("models (run `make setup-test`)");
    let mut bare_detector = open_session(&config.detector_model, &runtime).unwrap();
    let mut bare_embedder = open_session(&config.embedder_model, &runtime).unwrap();
    let limits = IngestLimits::default();
    let files = photos();
    // Real-looking values (zeros can run faster through some kernels).
    let det_input: Vec<f32> = (0..3 * 640 * 640)
        .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
        .collect();

    let (mut decode, mut detect, mut align, mut embed, mut total, mut bare) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let mut faces_seen = 0;
    for round in 0..2 {
        for path in &files {
            let bytes = std::fs::read(path).unwrap();
            let Ok(_) = decode_image(&bytes, &limits) else {
                continue;
            };

            let t = Instant::now();
            let image = decode_image(&bytes, &limits).unwrap();
            let t_decode = ms(t);
            let t = Instant::now();
            let detections = analyzer.detect(&image).unwrap();
            let t_detect = ms(t);
            let t = Instant::now();
            let chips: Vec<_> = detections
                .iter()
                .map(|d| align_face(&image, &d.landmarks))
                .collect();
            let t_align = ms(t);
            let t = Instant::now();
            analyzer.embed_chips(&chips).unwrap();
            let t_embed = ms(t);
            let t = Instant::now();
            analyzer.analyze_bytes(&bytes, &limits).unwrap();
            let t_total = ms(t);

            // The two models alone on inputs of the same shapes.
            let t = Instant::now();
            let input =
                TensorRef::from_array_view(([1usize, 3, 640, 640], det_input.as_slice())).unwrap();
            drop(bare_detector.run(ort::inputs![input]).unwrap());
            if !chips.is_empty() {
                let batch: Vec<f32> = (0..chips.len() * 3 * 112 * 112)
                    .map(|i| ((i * 7919) % 255) as f32 / 128.0 - 1.0)
                    .collect();
                let input =
                    TensorRef::from_array_view(([chips.len(), 3, 112, 112], batch.as_slice()))
                        .unwrap();
                drop(bare_embedder.run(ort::inputs![input]).unwrap());
            }
            let t_bare = ms(t);

            if round == 1 {
                // The first round warms caches and ORT's allocators.
                decode.push(t_decode);
                detect.push(t_detect);
                align.push(t_align);
                embed.push(t_embed);
                total.push(t_total);
                bare.push(t_bare);
                faces_seen += chips.len();
            }
        }
    }
    let ratio: Vec<f64> = total.iter().zip(&bare).map(|(t, b)| t / b).collect();
    println!(
        "pipeline over {} photos ({faces_seen} faces), device {}, 1 intra-op thread",
        total.len(),
        runtime.device
    );
    println!("  stage            median ms");
    println!("  decode           {:>8.2}", median(decode));
    println!("  detect           {:>8.2}", median(detect));
    println!("  align            {:>8.2}", median(align));
    println!("  embed            {:>8.2}", median(embed));
    println!("  end to end       {:>8.2}", median(total.clone()));
    println!(
        "  bare ORT runs    {:>8.2}  (detector + embedder batch, same shapes)",
        median(bare.clone())
    );
    println!(
        "  end-to-end / bare, median per photo: {:.3}x",
        median(ratio)
    );
}
