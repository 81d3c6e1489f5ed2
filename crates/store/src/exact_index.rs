//! Exact nearest-person search in memory, over a quantized copy of the embeddings.
//!
//! The f32 embeddings in the database are the truth; the index keeps each as int8 codes with a
//! per-vector scale (512 bytes plus 12 instead of 2 KiB), so a scan reads a quarter of the memory
//! and multiplies small integers. The quantization error of every row is known, so a scan can say
//! which rows may hold the best face of one of the `k` best persons, whatever the error: those
//! candidates (a handful) are then scored exactly in f32 (`top_persons`) by the store, from the
//! embeddings in the database. The result is the f32 scan's, not an approximation of it.
//!
//! The bound, for a row `v = s·q + e_v` and a probe `p = t·u + e_p` (codes `q`, `u`; scales `s`,
//! `t`): `v·p = (s·q)·(t·u) + (s·q)·e_p + e_v·p`, so by Cauchy-Schwarz the exact similarity is
//! within `‖s·q‖·‖e_p‖ + ‖e_v‖·‖p‖` of the integer estimate.

use std::collections::HashMap;

use facerec_core::{FaceId, PersonId};
use facerec_types::Similarity;
use wide::{i16x16, i32x8, i8x16};

/// Below this many rows one thread scans faster than several can be started.
const PARALLEL_MIN_ROWS: usize = 32_768;
/// Most candidates a search returns for exact scoring. Real galleries give a handful; only
/// thousands of near-identical faces (the same photo registered again and again) reach this, and
/// then the candidates with the highest possible similarity are kept, so the answer is exact
/// unless more than this many faces are all within the quantization error of the best.
pub const MAX_CANDIDATES: usize = 1_024;
/// Added to every error bound for the rounding of the f32 arithmetic (the estimate's products and
/// the exact dot product's sum), orders of magnitude above it.
const ROUNDING: f32 = 1e-4;

/// A person's best face for a probe (highest similarity first); the store adds the name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonHit {
    pub person_id: PersonId,
    pub face_id: FaceId,
    pub similarity: Similarity,
}

/// A face that may be the best face of one of the best persons; its exact similarity decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateFace {
    pub face_id: FaceId,
    pub person_id: PersonId,
}

#[derive(Debug, Default)]
pub struct ExactIndex {
    models: HashMap<String, ModelIndex>,
    face_model: HashMap<FaceId, String>,
}

#[derive(Debug, Default)]
struct ModelIndex {
    dim: usize,
    /// Row-major int8 codes: row `r` is `codes[r * dim..(r + 1) * dim]`.
    codes: Vec<i8>,
    /// Per row: the scale `s` (the row is about `s * codes`), `‖s·q‖` and the error `‖v - s·q‖`.
    rows: Vec<RowScale>,
    row_face: Vec<FaceId>,
    /// Each row's person, as a slot into `persons` (dense, so per-person maxima fit in a Vec).
    row_person: Vec<u32>,
    face_row: HashMap<FaceId, usize>,
    persons: Vec<PersonId>,
    person_slot: HashMap<PersonId, u32>,
}

#[derive(Debug, Clone, Copy, Default)]
struct RowScale {
    scale: f32,
    norm: f32,
    error: f32,
}

/// A vector as int8 codes with one scale: the largest component maps to ±127.
fn quantize(vector: &[f32], codes: &mut Vec<i8>) -> RowScale {
    let max = vector.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let (mut norm, mut error) = (0f64, 0f64);
    for &v in vector {
        let q = (v / scale).round().clamp(-127.0, 127.0);
        codes.push(q as i8);
        let approx = f64::from(q) * f64::from(scale);
        norm += approx * approx;
        error += (f64::from(v) - approx).powi(2);
    }
    RowScale {
        scale,
        norm: norm.sqrt() as f32,
        error: error.sqrt() as f32,
    }
}

/// Codes widened to i16 once per probe, 16 to a lane group, for [`dot_codes`].
fn widen(codes: &[i8]) -> Vec<i16x16> {
    codes
        .chunks(16)
        .map(|chunk| {
            let mut lanes = [0i8; 16];
            lanes[..chunk.len()].copy_from_slice(chunk);
            i16x16::from_i8x16(i8x16::new(lanes))
        })
        .collect()
}

/// The integer dot product of a code row with a widened probe: each 16 codes are sign-extended
/// to i16 and multiplied pairwise into i32 (pmaddwd). At most 512 x 127² < 2^24, so the sum is
/// also exact as an f32.
fn dot_codes(row: &[i8], probe: &[i16x16]) -> i32 {
    let mut acc = i32x8::ZERO;
    let mut chunks = row.chunks_exact(16);
    for (chunk, p) in (&mut chunks).zip(probe) {
        let lanes: [i8; 16] = chunk.try_into().expect("16 codes");
        acc += i16x16::from_i8x16(i8x16::new(lanes)).dot(*p);
    }
    let tail = chunks.remainder();
    let mut sum: i32 = acc.to_array().iter().sum();
    if let Some(p) = probe.get(row.len() / 16) {
        let p = p.to_array();
        sum += tail
            .iter()
            .zip(p)
            .map(|(&c, p)| i32::from(c) * i32::from(p))
            .sum::<i32>();
    }
    sum
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

    /// Bytes held by the quantized rows (codes and scales).
    pub fn vector_bytes(&self) -> usize {
        self.models
            .values()
            .map(|m| m.codes.capacity() + m.rows.capacity() * std::mem::size_of::<RowScale>())
            .sum()
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
        let scale = quantize(embedding, &mut index.codes);
        index.rows.push(scale);
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
                .codes
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            index.rows[row] = index.rows[last];
            let moved = index.row_face[last];
            index.row_face[row] = moved;
            index.row_person[row] = index.row_person[last];
            index.face_row.insert(moved, row);
        }
        index.codes.truncate(last * dim);
        index.rows.truncate(last);
        index.row_face.truncate(last);
        index.row_person.truncate(last);
        if index.row_face.is_empty() {
            // The last face of a collection (or model) gone: its shard goes too.
            self.models.remove(&model);
        }
        true
    }

    /// The faces that may be the best face of one of the `k` most similar persons: every face whose
    /// similarity, within its quantization error, can reach what the k-th best person is
    /// guaranteed. Score them exactly and keep the best with [`top_persons`].
    pub fn candidates(&self, model: &str, probe: &[f32], k: usize) -> Vec<CandidateFace> {
        let Some(index) = self.models.get(model) else {
            return Vec::new();
        };
        if k == 0 || index.row_face.is_empty() || probe.len() != index.dim {
            return Vec::new();
        }
        let mut probe_codes = Vec::with_capacity(index.dim);
        let probe_scale = quantize(probe, &mut probe_codes);
        let probe_norm = probe.iter().map(|v| v * v).sum::<f32>().sqrt();
        let probe = QuantizedProbe {
            codes: &widen(&probe_codes),
            scale: probe_scale,
            norm: probe_norm,
        };
        let (upper, guaranteed) = index.bounds(&probe);
        // The k-th best person is guaranteed at least `floor`; a row that cannot reach it holds
        // no top-k person's best face.
        let mut floors: Vec<f32> = guaranteed.into_iter().filter(|g| g.is_finite()).collect();
        let floor = if floors.len() > k {
            let by_descending = |a: &f32, b: &f32| b.total_cmp(a);
            *floors.select_nth_unstable_by(k - 1, by_descending).1
        } else {
            f32::NEG_INFINITY
        };
        let mut rows: Vec<(f32, usize)> = upper
            .iter()
            .enumerate()
            .filter(|(_, &u)| u >= floor)
            .map(|(row, &u)| (u, row))
            .collect();
        if rows.len() > MAX_CANDIDATES {
            // Thousands of faces within the error of each other: near-duplicates. Rescoring them all
            // would read them all from the database; the most promising are enough.
            rows.select_nth_unstable_by(MAX_CANDIDATES - 1, |a, b| b.0.total_cmp(&a.0));
            rows.truncate(MAX_CANDIDATES);
        }
        rows.into_iter()
            .map(|(_, row)| CandidateFace {
                face_id: index.row_face[row],
                person_id: index.persons[index.row_person[row] as usize],
            })
            .collect()
    }
}

/// The `k` persons with the most similar best face, best first, from exactly scored faces.
pub fn top_persons(
    scored: impl IntoIterator<Item = (CandidateFace, Similarity)>,
    k: usize,
) -> Vec<PersonHit> {
    let mut best: HashMap<PersonId, PersonHit> = HashMap::new();
    for (face, similarity) in scored {
        let hit = PersonHit {
            person_id: face.person_id,
            face_id: face.face_id,
            similarity,
        };
        best.entry(face.person_id)
            .and_modify(|b| {
                if similarity.value() > b.similarity.value() {
                    *b = hit;
                }
            })
            .or_insert(hit);
    }
    let mut hits: Vec<PersonHit> = best.into_values().collect();
    hits.sort_by(|a, b| b.similarity.value().total_cmp(&a.similarity.value()));
    hits.truncate(k);
    hits
}

struct QuantizedProbe<'a> {
    codes: &'a [i16x16],
    scale: RowScale,
    norm: f32,
}

impl ModelIndex {
    /// For every row, the highest similarity it can have; for every person slot, the similarity
    /// its best face is guaranteed (-inf for persons without faces).
    fn bounds(&self, probe: &QuantizedProbe<'_>) -> (Vec<f32>, Vec<f32>) {
        let rows = self.row_face.len();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if rows < PARALLEL_MIN_ROWS || threads == 1 {
            return self.scan(probe, 0..rows);
        }
        let chunk = rows.div_ceil(threads);
        let partials: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|scope| {
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
        let mut upper = Vec::with_capacity(rows);
        let mut guaranteed = vec![f32::NEG_INFINITY; self.persons.len()];
        for (part_upper, part_guaranteed) in partials {
            upper.extend(part_upper);
            for (g, p) in guaranteed.iter_mut().zip(part_guaranteed) {
                *g = g.max(p);
            }
        }
        (upper, guaranteed)
    }

    fn scan(
        &self,
        probe: &QuantizedProbe<'_>,
        rows: std::ops::Range<usize>,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut guaranteed = vec![f32::NEG_INFINITY; self.persons.len()];
        let mut upper = Vec::with_capacity(rows.len());
        let codes = &self.codes[rows.start * self.dim..rows.end * self.dim];
        for (i, row) in codes.chunks_exact(self.dim).enumerate() {
            let r = rows.start + i;
            let scale = self.rows[r];
            let estimate = scale.scale * probe.scale.scale * dot_codes(row, probe.codes) as f32;
            let error = scale.norm * probe.scale.error + scale.error * probe.norm + ROUNDING;
            upper.push(estimate + error);
            let slot = &mut guaranteed[self.row_person[r] as usize];
            *slot = slot.max(estimate - error);
        }
        (upper, guaranteed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let n = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        values.iter().map(|v| v / n).collect()
    }

    /// The index's answer with the candidates scored exactly from `truth`, as the store does.
    fn search(
        index: &ExactIndex,
        truth: &HashMap<FaceId, Vec<f32>>,
        probe: &[f32],
        k: usize,
    ) -> Vec<PersonHit> {
        let scored = index.candidates("m", probe, k).into_iter().map(|c| {
            let exact = facerec_types::embedding::dot(&truth[&c.face_id], probe);
            (c, Similarity::new(exact))
        });
        top_persons(scored, k)
    }

    /// The plain f32 scan the quantized index must agree with.
    fn brute_force(
        faces: &[(FaceId, PersonId, Vec<f32>)],
        probe: &[f32],
        k: usize,
    ) -> Vec<PersonHit> {
        let scored = faces.iter().map(|(f, p, v)| {
            let face = CandidateFace {
                face_id: *f,
                person_id: *p,
            };
            (
                face,
                Similarity::new(facerec_types::embedding::dot(v, probe)),
            )
        });
        top_persons(scored, k)
    }

    #[test]
    fn ranks_persons_by_their_best_face() {
        let (alice, bob) = (PersonId::new(), PersonId::new());
        let (a1, a2, b1) = (FaceId::new(), FaceId::new(), FaceId::new());
        let mut index = ExactIndex::new();
        let mut truth = HashMap::new();
        for (face, person, v) in [
            (a1, alice, unit(&[1.0, 0.0, 0.0])),
            (a2, alice, unit(&[0.0, 1.0, 0.0])),
            (b1, bob, unit(&[0.7, 0.7, 0.1])),
        ] {
            index.insert("m", face, person, &v);
            truth.insert(face, v);
        }
        let probe = unit(&[0.9, 0.1, 0.0]);
        let hits = search(&index, &truth, &probe, 5);
        assert_eq!(hits.len(), 2, "one hit per person");
        assert_eq!((hits[0].person_id, hits[0].face_id), (alice, a1));
        assert_eq!(hits[1].person_id, bob);
        assert!(index.candidates("other-model", &probe, 5).is_empty());
        assert_eq!(search(&index, &truth, &probe, 1).len(), 1);
    }

    #[test]
    fn removal_moves_the_last_row_and_keeps_ids_right() {
        let p = PersonId::new();
        let faces: Vec<FaceId> = (0..4).map(|_| FaceId::new()).collect();
        let mut index = ExactIndex::new();
        let mut truth = HashMap::new();
        for (i, f) in faces.iter().enumerate() {
            let mut v = vec![0.0; 4];
            v[i] = 1.0;
            index.insert("m", *f, p, &v);
            truth.insert(*f, v);
        }
        assert!(index.remove_face(faces[1]));
        assert!(!index.remove_face(faces[1]), "already gone");
        assert_eq!(index.len(), 3);
        let hit = search(&index, &truth, &[0.0, 0.0, 0.0, 1.0], 1);
        assert_eq!(hit[0].face_id, faces[3], "the moved row keeps its id");
        let hit = search(&index, &truth, &[0.0, 1.0, 0.0, 0.0], 1);
        assert_ne!(hit[0].face_id, faces[1]);
        for f in &faces {
            index.remove_face(*f);
        }
        assert!(index.is_empty());
        assert!(
            index.candidates("m", &[0.0, 1.0, 0.0, 0.0], 1).is_empty(),
            "a person without faces is no hit"
        );
    }

    /// Random unit vectors, several faces per person, near-duplicates included: the quantized
    /// index with exact re-scoring gives the f32 scan's top-k (persons, faces and similarities).
    #[test]
    fn gives_the_f32_scans_answer_on_random_probes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
        };
        let dim = 64;
        let persons: Vec<PersonId> = (0..150).map(|_| PersonId::new()).collect();
        let mut faces = Vec::new();
        let mut index = ExactIndex::new();
        let mut truth = HashMap::new();
        for (i, person) in persons.iter().enumerate() {
            let base: Vec<f32> = (0..dim).map(|_| random()).collect();
            for _ in 0..(1 + i % 4) {
                let v = unit(&base.iter().map(|b| b + 0.3 * random()).collect::<Vec<_>>());
                let face = FaceId::new();
                index.insert("m", face, *person, &v);
                truth.insert(face, v.clone());
                faces.push((face, *person, v));
            }
        }
        let mut candidates = 0;
        for n in 0..1_000 {
            // Half the probes near a registered face, half anywhere.
            let probe: Vec<f32> = if n % 2 == 0 {
                let near = &faces[n % faces.len()].2;
                unit(
                    &near
                        .iter()
                        .map(|v| v + 0.2 * random() / 8.0)
                        .collect::<Vec<_>>(),
                )
            } else {
                unit(&(0..dim).map(|_| random()).collect::<Vec<_>>())
            };
            for k in [1, 5] {
                assert_eq!(
                    search(&index, &truth, &probe, k),
                    brute_force(&faces, &probe, k)
                );
            }
            candidates += index.candidates("m", &probe, 1).len();
        }
        assert!(
            candidates < 1_000 * faces.len() / 10,
            "the bound prunes: {candidates} candidates over 1,000 probes of {} faces",
            faces.len()
        );
    }
}
