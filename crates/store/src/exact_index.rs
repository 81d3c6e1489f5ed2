//! Exact nearest-person search in memory: embeddings in one contiguous f32 buffer per model, scanned
//! with a vectorized dot product. At 512 dimensions a scan reads 2 KiB per face, so its speed is the
//! machine's memory bandwidth; large indexes are split across threads.

use std::collections::HashMap;

use facerec_core::{FaceId, PersonId};
use facerec_vision::embedding::dot;
use facerec_vision::Similarity;

/// Below this many rows one thread scans faster than several can be started.
const PARALLEL_MIN_ROWS: usize = 32_768;

/// A person's best face for a probe (highest similarity first); the store adds the name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonHit {
    pub person_id: PersonId,
    pub face_id: FaceId,
    pub similarity: Similarity,
}

#[derive(Debug, Default)]
pub struct ExactIndex {
    models: HashMap<String, ModelIndex>,
    face_model: HashMap<FaceId, String>,
}

#[derive(Debug, Default)]
struct ModelIndex {
    dim: usize,
    /// Row-major: row `r` is `vectors[r * dim..(r + 1) * dim]`.
    vectors: Vec<f32>,
    row_face: Vec<FaceId>,
    /// Each row's person, as a slot into `persons` (dense, so per-person maxima fit in a Vec).
    row_person: Vec<u32>,
    face_row: HashMap<FaceId, usize>,
    persons: Vec<PersonId>,
    person_slot: HashMap<PersonId, u32>,
}

impl ExactIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of faces held, over all models.
    pub fn len(&self) -> usize {
        self.face_model.len()
    }

    pub fn is_empty(&self) -> bool {
        self.face_model.is_empty()
    }

    /// Bytes held by the embedding buffers.
    pub fn vector_bytes(&self) -> usize {
        self.models.values().map(|m| m.vectors.capacity() * 4).sum()
    }

    /// Adds a face (or replaces it, if the id is already present).
    pub fn insert(&mut self, model: &str, face: FaceId, person: PersonId, embedding: &[f32]) {
        self.remove_face(face);
        let index = self
            .models
            .entry(model.to_owned())
            .or_insert_with(|| ModelIndex {
                dim: embedding.len(),
                ..ModelIndex::default()
            });
        assert_eq!(
            index.dim,
            embedding.len(),
            "one model, one embedding length"
        );
        let slot = *index.person_slot.entry(person).or_insert_with(|| {
            index.persons.push(person);
            (index.persons.len() - 1) as u32
        });
        index.face_row.insert(face, index.row_face.len());
        index.row_face.push(face);
        index.row_person.push(slot);
        index.vectors.extend_from_slice(embedding);
        self.face_model.insert(face, model.to_owned());
    }

    /// Removes a face; the last row moves into its place.
    pub fn remove_face(&mut self, face: FaceId) -> bool {
        let Some(model) = self.face_model.remove(&face) else {
            return false;
        };
        let index = self
            .models
            .get_mut(&model)
            .expect("face_model names an existing model");
        let row = index
            .face_row
            .remove(&face)
            .expect("face_row holds every face");
        let last = index.row_face.len() - 1;
        let dim = index.dim;
        if row != last {
            index
                .vectors
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            let moved = index.row_face[last];
            index.row_face[row] = moved;
            index.row_person[row] = index.row_person[last];
            index.face_row.insert(moved, row);
        }
        index.vectors.truncate(last * dim);
        index.row_face.truncate(last);
        index.row_person.truncate(last);
        true
    }

    /// The `k` persons with the most similar best face, best first.
    pub fn search(&self, model: &str, probe: &[f32], k: usize) -> Vec<PersonHit> {
        let Some(index) = self.models.get(model) else {
            return Vec::new();
        };
        if k == 0 || index.row_face.is_empty() || probe.len() != index.dim {
            return Vec::new();
        }
        let best = index.best_per_person(probe);
        let mut hits: Vec<(f32, u32)> = best.into_iter().filter(|(s, _)| s.is_finite()).collect();
        let by_similarity = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0);
        if hits.len() > k {
            hits.select_nth_unstable_by(k - 1, by_similarity);
            hits.truncate(k);
        }
        hits.sort_by(by_similarity);
        hits.into_iter()
            .map(|(similarity, row)| PersonHit {
                person_id: index.persons[index.row_person[row as usize] as usize],
                face_id: index.row_face[row as usize],
                similarity: Similarity::new(similarity),
            })
            .collect()
    }
}

impl ModelIndex {
    /// For every person slot: (best similarity, its row), or -inf for persons without faces.
    fn best_per_person(&self, probe: &[f32]) -> Vec<(f32, u32)> {
        let rows = self.row_face.len();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if rows < PARALLEL_MIN_ROWS || threads == 1 {
            return self.scan(probe, 0..rows);
        }
        let chunk = rows.div_ceil(threads);
        let partials: Vec<Vec<(f32, u32)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let range = t * chunk..((t + 1) * chunk).min(rows);
                    scope.spawn(move || self.scan(probe, range))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("scan thread"))
                .collect()
        });
        let mut partials = partials.into_iter();
        let mut merged = partials.next().expect("at least one scan thread");
        for partial in partials {
            for (m, p) in merged.iter_mut().zip(&partial) {
                if p.0 > m.0 {
                    *m = *p;
                }
            }
        }
        merged
    }

    fn scan(&self, probe: &[f32], rows: std::ops::Range<usize>) -> Vec<(f32, u32)> {
        let mut best = vec![(f32::NEG_INFINITY, 0u32); self.persons.len()];
        let start = rows.start;
        let vectors = &self.vectors[rows.start * self.dim..rows.end * self.dim];
        for (i, row) in vectors.chunks_exact(self.dim).enumerate() {
            let similarity = dot(row, probe);
            let r = start + i;
            let slot = &mut best[self.row_person[r] as usize];
            if similarity > slot.0 {
                *slot = (similarity, r as u32);
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let n = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / n).collect()
    }

    #[test]
    fn ranks_persons_by_their_best_face() {
        let (alice, bob) = (PersonId::new(), PersonId::new());
        let (a1, a2, b1) = (FaceId::new(), FaceId::new(), FaceId::new());
        let mut index = ExactIndex::new();
        index.insert("m", a1, alice, &unit(&[1.0, 0.0, 0.0]));
        index.insert("m", a2, alice, &unit(&[0.0, 1.0, 0.0]));
        index.insert("m", b1, bob, &unit(&[0.7, 0.7, 0.1]));
        let hits = index.search("m", &unit(&[0.9, 0.1, 0.0]), 5);
        assert_eq!(hits.len(), 2, "one hit per person");
        assert_eq!((hits[0].person_id, hits[0].face_id), (alice, a1));
        assert_eq!(hits[1].person_id, bob);
        assert!(index
            .search("other-model", &unit(&[0.9, 0.1, 0.0]), 5)
            .is_empty());
        assert_eq!(index.search("m", &unit(&[0.9, 0.1, 0.0]), 1).len(), 1);
    }

    #[test]
    fn removal_moves_the_last_row_and_keeps_ids_right() {
        let p = PersonId::new();
        let faces: Vec<FaceId> = (0..4).map(|_| FaceId::new()).collect();
        let mut index = ExactIndex::new();
        for (i, f) in faces.iter().enumerate() {
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            index.insert("m", *f, p, &v);
        }
        assert!(index.remove_face(faces[1]));
        assert!(!index.remove_face(faces[1]), "already gone");
        assert_eq!(index.len(), 3);
        let hit = index.search("m", &[0.0, 0.0, 0.0, 1.0], 1);
        assert_eq!(hit[0].face_id, faces[3], "the moved row keeps its id");
        let hit = index.search("m", &[0.0, 1.0, 0.0, 0.0], 1);
        assert_ne!(hit[0].face_id, faces[1]);
        for f in &faces {
            index.remove_face(*f);
        }
        assert!(index.is_empty());
        assert!(
            index.search("m", &[0.0, 1.0, 0.0, 0.0], 1).is_empty(),
            "a person without faces is no hit"
        );
    }
}
