//! The captured faces' embeddings in memory, for SQLite (PostgreSQL searches them with pgvector):
//! a collection's nearest captures by an exact f32 scan. A collection holds at most
//! `capture_max` captures (10,000 by default: a 20 MiB scan of ~1 ms), so no quantization or
//! bound is needed here, unlike the faces' [`crate::ExactIndex`].

use std::collections::HashMap;

use facerec_core::CaptureId;
use facerec_types::embedding::dot;

#[derive(Debug, Default)]
pub(crate) struct CaptureIndex {
    shards: HashMap<String, Shard>,
    shard_of: HashMap<CaptureId, String>,
}

#[derive(Debug, Default)]
struct Shard {
    dim: usize,
    ids: Vec<CaptureId>,
    /// Row-major: row `r` is `vectors[r * dim..(r + 1) * dim]`.
    vectors: Vec<f32>,
    row_of: HashMap<CaptureId, usize>,
}

impl CaptureIndex {
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shard_of.len()
    }

    /// Adds a capture, or replaces its embedding.
    pub(crate) fn insert(&mut self, shard: &str, id: CaptureId, embedding: &[f32]) {
        self.remove(id);
        let rows = self
            .shards
            .entry(shard.to_owned())
            .or_insert_with(|| Shard {
                dim: embedding.len(),
                ..Shard::default()
            });
        if rows.dim != embedding.len() {
            tracing::error!(%id, "a capture's embedding has another length than its shard's");
            return;
        }
        rows.row_of.insert(id, rows.ids.len());
        rows.ids.push(id);
        rows.vectors.extend_from_slice(embedding);
        self.shard_of.insert(id, shard.to_owned());
    }

    /// Removes a capture; the last row moves into its place.
    pub(crate) fn remove(&mut self, id: CaptureId) {
        let Some(name) = self.shard_of.remove(&id) else {
            return;
        };
        let Some(rows) = self.shards.get_mut(&name) else {
            return;
        };
        let Some(row) = rows.row_of.remove(&id) else {
            return;
        };
        let last = rows.ids.len() - 1;
        let dim = rows.dim;
        if row != last {
            rows.vectors
                .copy_within(last * dim..(last + 1) * dim, row * dim);
            let moved = rows.ids[last];
            rows.ids[row] = moved;
            rows.row_of.insert(moved, row);
        }
        rows.ids.truncate(last);
        rows.vectors.truncate(last * dim);
        if rows.ids.is_empty() {
            self.shards.remove(&name);
        }
    }

    /// The captures of the shard at or above `min`, best first, at most `limit`.
    pub(crate) fn nearest(
        &self,
        shard: &str,
        probe: &[f32],
        min: f32,
        limit: usize,
    ) -> Vec<(CaptureId, f32)> {
        let Some(rows) = self.shards.get(shard) else {
            return Vec::new();
        };
        if probe.len() != rows.dim || rows.dim == 0 {
            return Vec::new();
        }
        let mut hits: Vec<(CaptureId, f32)> = rows
            .vectors
            .chunks_exact(rows.dim)
            .zip(&rows.ids)
            .map(|(v, id)| (*id, dot(v, probe)))
            .filter(|(_, s)| *s >= min)
            .collect();
        hits.sort_by(|a, b| b.1.total_cmp(&a.1));
        hits.truncate(limit);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_and_forgets_the_removed() {
        let mut index = CaptureIndex::default();
        let (a, b, c) = (CaptureId::new(), CaptureId::new(), CaptureId::new());
        index.insert("s", a, &[1.0, 0.0]);
        index.insert("s", b, &[0.6, 0.8]);
        index.insert("s", c, &[0.0, 1.0]);
        index.insert("other", CaptureId::new(), &[1.0, 0.0]);
        let near = index.nearest("s", &[1.0, 0.0], 0.5, 10);
        assert_eq!(near.iter().map(|h| h.0).collect::<Vec<_>>(), vec![a, b]);
        index.remove(a);
        assert_eq!(index.nearest("s", &[1.0, 0.0], 0.5, 10)[0].0, b);
        index.insert("s", b, &[0.0, 1.0]);
        assert!(index.nearest("s", &[1.0, 0.0], 0.5, 10).is_empty());
        assert_eq!(index.len(), 3);
    }
}
