//! Model packs side by side: milliseconds per photo (detect + align + embed, decoded image) with
//! one face and with ten, every pack in one process taking turns; then each pack's peak memory,
//! each alone in a child process (`VmHWM`, with the same work).
//!
//! `cargo bench -p facerec-vision --bench packs`: the built-in buffalo_s, and every pack in
//! `FACEREC_TEST_PACKS=DIR` (a sub-folder each: buffalo_l's files, or a pack.json). Prints a table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use facerec_vision::{
    DetectorConfig, Device, FaceAnalyzer, IngestLimits, ModelPack, RgbImage, RuntimeConfig,
};

const ROUNDS: usize = 30;
/// The child process's mode: measure this pack alone.
const ONE_PACK: &str = "FACEREC_BENCH_ONE_PACK";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn runtime() -> RuntimeConfig {
    RuntimeConfig {
        library: root().join("vendor/onnxruntime/libonnxruntime.so.1.32.0"),
        device: Device::Cpu,
        intra_threads: 1,
    }
}

fn packs() -> Vec<(PathBuf, ModelPack)> {
    let models = root().join("vendor/models");
    let mut packs = vec![(
        models.clone(),
        ModelPack::built_in(&models).expect("buffalo_s"),
    )];
    if let Some(dir) = std::env::var_os("FACEREC_TEST_PACKS") {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("FACEREC_TEST_PACKS is a folder")
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for d in dirs {
            let pack = ModelPack::open(&d).unwrap_or_else(|e| panic!("{e}"));
            packs.push((d, pack));
        }
    }
    packs
}

fn load(pack: &ModelPack) -> FaceAnalyzer {
    FaceAnalyzer::load(&pack.analyzer_config(runtime(), DetectorConfig::default()))
        .unwrap_or_else(|e| panic!("{}: {e}", pack.name))
}

/// A registry photo of one face, and ten copies of it side by side (5 x 2).
fn photos() -> (RgbImage, RgbImage) {
    let bytes = std::fs::read(root().join("vendor/fixtures/registry/vectron/yaoming.jpg"))
        .expect("registry photos: run `make setup-test`");
    let one = facerec_vision::decode_image(&bytes, &IngestLimits::default()).unwrap();
    let (w, h) = one.dimensions();
    let mut ten = RgbImage::new(w * 5, h * 2);
    for i in 0..10 {
        image::imageops::replace(
            &mut ten,
            &one,
            i64::from(w * (i % 5)),
            i64::from(h * (i / 5)),
        );
    }
    (one, ten)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// This process's resident memory now and at its peak, in MiB (`/proc/self/status`).
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn child(dir: &Path) {
    let models = root().join("vendor/models");
    let pack = if dir == models {
        ModelPack::built_in(dir).unwrap()
    } else {
        ModelPack::open(dir).unwrap()
    };
    let (one, ten) = photos();
    let mut analyzer = load(&pack);
    let (loaded, _) = memory();
    for _ in 0..5 {
        analyzer.analyze(&one).unwrap();
        analyzer.analyze(&ten).unwrap();
    }
    let (rss, peak) = memory();
    println!("{loaded:.0} {rss:.0} {peak:.0}");
}

fn main() {
    if let Some(dir) = std::env::var_os(ONE_PACK) {
        child(Path::new(&dir));
        return;
    }
    let packs = packs();
    let (one, ten) = photos();
    let mut analyzers: Vec<FaceAnalyzer> = packs.iter().map(|(_, p)| load(p)).collect();
    let faces: Vec<(usize, usize)> = analyzers
        .iter_mut()
        .map(|a| {
            (
                a.analyze(&one).unwrap().faces.len(),
                a.analyze(&ten).unwrap().faces.len(),
            )
        })
        .collect();
    let mut times = vec![(Vec::new(), Vec::new()); packs.len()];
    // Turn by turn, so that a machine's drift touches every pack alike.
    for _ in 0..ROUNDS {
        for (analyzer, (t1, t10)) in analyzers.iter_mut().zip(&mut times) {
            let started = Instant::now();
            analyzer.analyze(&one).unwrap();
            t1.push(started.elapsed().as_secs_f64() * 1e3);
            let started = Instant::now();
            analyzer.analyze(&ten).unwrap();
            t10.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    drop(analyzers);
    let base = median(times[0].0.clone());
    println!(
        "pack | files (MB) | 1 face: ms (x buffalo_s) | 10 faces: ms (faces found) | RSS loaded / peak (MiB, alone)"
    );
    for (((dir, pack), (t1, t10)), (_, n10)) in packs.iter().zip(times).zip(faces) {
        let size = |p: &Path| std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / 1e6);
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .env(ONE_PACK, dir)
            .output()
            .expect("the bench runs itself");
        let memory = String::from_utf8_lossy(&output.stdout);
        let m: Vec<&str> = memory.split_whitespace().collect();
        let (one_ms, ten_ms) = (median(t1), median(t10));
        println!(
            "{} | {:.1} | {one_ms:.1} ({:.2}x) | {ten_ms:.1} ({n10}) | {} / {}",
            pack.name,
            size(&pack.detector.path) + size(&pack.recognizer.path),
            one_ms / base,
            m.first().unwrap_or(&"?"),
            m.get(2).unwrap_or(&"?"),
        );
    }
}
