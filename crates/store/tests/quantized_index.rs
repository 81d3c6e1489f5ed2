//! The quantized exact index, with its candidates scored exactly, against the plain f32 scan on
//! InsightFace's own embeddings of the shared photos (`../shared/faces/reference.jsonl`): the same
//! top-1 person and the same match/unknown decision for every probe.

use std::collections::HashMap;
use std::path::Path;

use facerec_core::{FaceId, PersonId, Threshold};
use facerec_store::exact_index::{top_persons, CandidateFace};
use facerec_store::ExactIndex;
use facerec_types::embedding::dot;
use facerec_types::Similarity;

#[test]
#[ignore = "needs ../shared/faces; `make test` includes it where that folder exists"]
fn agrees_with_the_f32_scan_on_every_shared_probe() {
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/faces/reference.jsonl");
    let text = std::fs::read_to_string(&reference)
        .unwrap_or_else(|e| panic!("{}: {e}", reference.display()));
    // Gallery: the main face of the first two photos of every identity in images/. Probes: every
    // face of every other photo (the remaining photos, groups, variants, the dog).
    let (mut gallery, mut probes) = (Vec::new(), Vec::new());
    let mut persons: HashMap<String, PersonId> = HashMap::new();
    let mut enrolled: HashMap<String, usize> = HashMap::new();
    for line in text.lines() {
        let photo: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = photo["path"].as_str().unwrap();
        let embeddings: Vec<Vec<f32>> = photo["faces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| serde_json::from_value(f["embedding"].clone()).unwrap())
            .collect();
        let parts: Vec<&str> = path.split('/').collect();
        let count = enrolled.entry(parts[1].to_owned()).or_default();
        if parts[0] == "images" && *count < 2 && !embeddings.is_empty() {
            *count += 1;
            let person = *persons.entry(parts[1].to_owned()).or_default();
            gallery.push((FaceId::new(), person, embeddings[0].clone()));
        } else {
            probes.extend(embeddings);
        }
    }
    assert!(
        gallery.len() > 100 && probes.len() > 100,
        "{} / {}",
        gallery.len(),
        probes.len()
    );

    let mut index = ExactIndex::new();
    let mut truth = HashMap::new();
    for (face, person, embedding) in &gallery {
        index.insert("m", *face, *person, embedding);
        truth.insert(*face, embedding.clone());
    }
    let threshold = Threshold::default().value();
    for (i, probe) in probes.iter().enumerate() {
        let scored = index.candidates("m", probe, 1).into_iter().map(|c| {
            let exact = dot(&truth[&c.face_id], probe);
            (c, Similarity::new(exact))
        });
        let quantized = top_persons(scored, 1);
        let all = gallery.iter().map(|(face_id, person_id, embedding)| {
            let face = CandidateFace {
                face_id: *face_id,
                person_id: *person_id,
            };
            (face, Similarity::new(dot(embedding, probe)))
        });
        let f32_scan = top_persons(all, 1);
        assert_eq!(
            quantized[0].person_id, f32_scan[0].person_id,
            "probe {i}: top-1"
        );
        assert_eq!(
            quantized[0].similarity.value() >= threshold,
            f32_scan[0].similarity.value() >= threshold,
            "probe {i}: decision"
        );
        assert_eq!(
            quantized, f32_scan,
            "probe {i}: the same face and similarity"
        );
    }
}
