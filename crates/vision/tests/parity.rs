//! Parity with InsightFace: our pipeline against the numbers its Python package produced for the same
//! photos (boxes, landmarks, scores, embeddings).

mod support;

use std::path::Path;

use facerec_vision::{Analysis, FaceAnalyzer, IngestLimits};
use serde::Deserialize;

/// Faces whose reference score is this close to the detector threshold (0.5) may come and go with
/// rounding; above it, every face must be found and no extra one may appear.
const FIRM_SCORE: f32 = 0.55;
const MIN_IOU: f32 = 0.9;
const MAX_SCORE_DIFF: f32 = 0.02;
const MIN_COSINE: f32 = 0.99;
const MIN_MEDIAN_COSINE: f32 = 0.995;

#[derive(Deserialize)]
struct Reference {
    path: String,
    width: u32,
    height: u32,
    faces: Vec<ReferenceFace>,
}

#[derive(Deserialize)]
struct ReferenceFace {
    bbox: [f32; 4],
    kps: [[f32; 2]; 5],
    det_score: f32,
    embedding: Vec<f32>,
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

/// Compares one image; returns the cosines of matched faces and pushes every violation.
fn compare(reference: &Reference, ours: &Analysis, problems: &mut Vec<String>) -> Vec<f32> {
    let path = &reference.path;
    if (ours.width, ours.height) != (reference.width, reference.height) {
        problems.push(format!(
            "{path}: size {}x{}, reference {}x{}",
            ours.width, ours.height, reference.width, reference.height
        ));
    }
    let mut cosines = Vec::new();
    let mut matched = vec![false; ours.faces.len()];
    for (r_index, r) in reference.faces.iter().enumerate() {
        let best = ours
            .faces
            .iter()
            .enumerate()
            .map(|(i, f)| (i, iou(&r.bbox, &f.detection.bbox.to_array())))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, overlap)) = best.filter(|(_, o)| *o >= MIN_IOU) else {
            if r.det_score >= FIRM_SCORE {
                problems.push(format!(
                    "{path}: reference face {r_index} (score {:.3}) not found",
                    r.det_score
                ));
            }
            continue;
        };
        matched[i] = true;
        let face = &ours.faces[i];
        let width = r.bbox[2] - r.bbox[0];
        let tolerance = (0.01 * width).max(1.5);
        for (k, (p, q)) in r
            .kps
            .iter()
            .zip(face.detection.landmarks.iter())
            .enumerate()
        {
            let distance = (p[0] - q[0]).hypot(p[1] - q[1]);
            if distance > tolerance {
                problems.push(format!("{path}: face {r_index} landmark {k} off by {distance:.2} px (> {tolerance:.2})"));
            }
        }
        let score_diff = (face.detection.score - r.det_score).abs();
        if score_diff > MAX_SCORE_DIFF {
            problems.push(format!(
                "{path}: face {r_index} score {:.4} vs {:.4}",
                face.detection.score, r.det_score
            ));
        }
        let cosine: f32 = face
            .embedding
            .as_slice()
            .iter()
            .zip(&r.embedding)
            .map(|(a, b)| a * b)
            .sum();
        if cosine < MIN_COSINE {
            problems.push(format!("{path}: face {r_index} embedding cosine {cosine:.4} < {MIN_COSINE} (IoU {overlap:.3})"));
        }
        cosines.push(cosine);
    }
    for (face, was_matched) in ours.faces.iter().zip(matched) {
        if !was_matched && face.detection.score >= FIRM_SCORE {
            problems.push(format!(
                "{path}: extra face at {:?} with score {:.3}",
                face.detection.bbox.to_array(),
                face.detection.score
            ));
        }
    }
    cosines
}

fn check_set(name: &str, reference_file: &Path, images: &Path) {
    check_set_with(support::analyzer(), name, reference_file, images);
}

fn check_set_with(mut analyzer: FaceAnalyzer, name: &str, reference_file: &Path, images: &Path) {
    let limits = IngestLimits::default();
    let text = std::fs::read_to_string(reference_file).expect("reference file");
    let mut problems = Vec::new();
    let mut cosines = Vec::new();
    let mut n_images = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let reference: Reference = serde_json::from_str(line).expect("reference line");
        let path = images.join(&reference.path);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} — run `make setup-test`", path.display()));
        match analyzer.analyze_bytes(&bytes, &limits) {
            Ok(analysis) => cosines.extend(compare(&reference, &analysis, &mut problems)),
            Err(e) => problems.push(format!("{}: {e}", reference.path)),
        }
        n_images += 1;
    }
    cosines.sort_by(f32::total_cmp);
    let min = cosines.first().copied().unwrap_or(f32::NAN);
    let median = cosines.get(cosines.len() / 2).copied().unwrap_or(f32::NAN);
    eprintln!(
        "parity[{name}]: {n_images} images, {} matched faces, embedding cosine min {min:.5} median {median:.5}",
        cosines.len()
    );
    assert!(
        problems.is_empty(),
        "{} parity problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(!cosines.is_empty(), "no faces compared");
    assert!(
        median >= MIN_MEDIAN_COSINE,
        "median cosine {median} < {MIN_MEDIAN_COSINE}"
    );
}

#[test]
fn matches_insightface_on_registry_photos() {
    let (reference, images) = support::registry_photos();
    check_set("registry", &reference, &images);
}

#[test]
#[ignore = "needs ../shared/faces; `make test` includes it where that folder exists"]
fn matches_insightface_on_shared_faces() {
    let dir = support::shared_faces().expect("../shared/faces");
    check_set("shared", &dir.join("reference.jsonl"), &dir);
}

/// Every pack in `FACEREC_TEST_PACKS=DIR` (a sub-folder each: buffalo_l's files as InsightFace
/// publishes them, or any pack with a pack.json) against InsightFace's own
/// `FaceAnalysis(name=<pack>)`, run here by `scripts/insightface-reference.py` with the Python
/// `FACEREC_INSIGHTFACE_PYTHON` names (one that has the insightface package), on the registry
/// photos and, where present, `../shared/faces`: held to buffalo_s's bounds.
#[test]
#[cfg_attr(
    not(test_packs),
    ignore = "needs FACEREC_TEST_PACKS=DIR with buffalo_l's files (the files cannot be fetched here)"
)]
fn test_packs_match_insightface() {
    let dir = std::env::var_os("FACEREC_TEST_PACKS").expect("FACEREC_TEST_PACKS=DIR");
    let python = std::env::var_os("FACEREC_INSIGHTFACE_PYTHON").unwrap_or("python3".into());
    let mut packs: Vec<_> = std::fs::read_dir(&dir)
        .expect("FACEREC_TEST_PACKS is a folder")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    packs.sort();
    assert!(!packs.is_empty(), "FACEREC_TEST_PACKS holds no pack folder");
    let mut sets = vec![support::registry_photos()];
    if let Some(shared) = support::shared_faces() {
        sets.push((shared.join("reference.jsonl"), shared));
    }
    for folder in packs {
        let pack = facerec_vision::ModelPack::open(&folder).unwrap_or_else(|e| panic!("{e}"));
        for (set_reference, images) in &sets {
            let work = tempfile::tempdir().unwrap();
            let list = work.path().join("photos.txt");
            let paths: Vec<String> = std::fs::read_to_string(set_reference)
                .unwrap()
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Reference>(l).unwrap().path)
                .collect();
            std::fs::write(&list, paths.join("\n")).unwrap();
            let output = std::process::Command::new(&python)
                .arg(support::workspace_root().join("scripts/insightface-reference.py"))
                .args([pack.name.as_str()])
                .arg(&folder)
                .arg(&list)
                .current_dir(images)
                .output()
                .expect("the InsightFace Python runs");
            assert!(
                output.status.success(),
                "insightface-reference.py {} (FACEREC_INSIGHTFACE_PYTHON: a Python with \
                 insightface): {}",
                pack.name,
                String::from_utf8_lossy(&output.stderr)
            );
            let reference = work.path().join("reference.jsonl");
            std::fs::write(&reference, &output.stdout).unwrap();
            let analyzer = FaceAnalyzer::load(&pack.analyzer_config(
                support::runtime(),
                facerec_vision::DetectorConfig::default(),
            ))
            .unwrap_or_else(|e| panic!("{}: {e}", pack.name));
            check_set_with(analyzer, &pack.name, &reference, images);
        }
    }
}
