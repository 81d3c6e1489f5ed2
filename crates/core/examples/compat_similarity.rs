//! Prints docs/COMPATIBLE-APIS.md's table of what the CompreFace- and DeepStack-compatible APIs report
//! ([`Matcher::compat_score`]) for a cosine, and the false match and false non-match rates that
//! cosine gives as a threshold on `../shared/faces` (InsightFace's own embeddings of the 282 photos
//! of `images/`, the largest face of each).
//!
//! `cargo run -p facerec-core --example compat_similarity [-- PATH/TO/reference.jsonl]`

use facerec_core::Matcher;
use facerec_types::{NormalizedEmbedding, Similarity};

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/faces/reference.jsonl"
        )
        .to_owned()
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut photos: Vec<(String, NormalizedEmbedding)> = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let path = v["path"].as_str().unwrap_or("");
        let Some(identity) = path
            .strip_prefix("images/")
            .and_then(|p| p.split('/').next())
        else {
            continue;
        };
        let area = |f: &serde_json::Value| {
            let b: Vec<f64> = serde_json::from_value(f["bbox"].clone()).unwrap();
            (b[2] - b[0]) * (b[3] - b[1])
        };
        let Some(face) = v["faces"]
            .as_array()
            .and_then(|faces| faces.iter().max_by(|a, b| area(a).total_cmp(&area(b))))
        else {
            continue;
        };
        let values: Vec<f32> = serde_json::from_value(face["embedding"].clone()).unwrap();
        let (embedding, _) = NormalizedEmbedding::normalize(&values).unwrap();
        photos.push((identity.to_owned(), embedding));
    }
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, (a, ea)) in photos.iter().enumerate() {
        for (b, eb) in &photos[i + 1..] {
            let c = ea.similarity(eb).value();
            if a == b {
                genuine.push(c)
            } else {
                impostor.push(c)
            }
        }
    }
    let matcher = Matcher::default();
    println!(
        "{} photos, {} same-person pairs, {} different-person pairs; server threshold {}",
        photos.len(),
        genuine.len(),
        impostor.len(),
        matcher.threshold().value()
    );
    println!("| cosine | reported similarity / confidence | false non-match at this cut-off | false match at this cut-off |");
    println!("|---|---|---|---|");
    for cosine in [
        -0.2f32, 0.0, 0.1, 0.2, 0.25, 0.29, 0.30, 0.35, 0.40, 0.50, 0.60, 0.70, 0.80,
    ] {
        let rejected = genuine.iter().filter(|&&c| c < cosine).count();
        let accepted = impostor.iter().filter(|&&c| c >= cosine).count();
        let pct = |n: usize, of: usize| 100.0 * n as f64 / of as f64;
        println!(
            "| {cosine:.2} | {:.3} | {rejected} ({:.1}%) | {accepted} ({:.3}%) |",
            matcher.compat_score(Similarity::new(cosine)),
            pct(rejected, genuine.len()),
            pct(accepted, impostor.len()),
        );
    }
}
