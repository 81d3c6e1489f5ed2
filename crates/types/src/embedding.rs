//! Face embeddings and their similarity. A [`NormalizedEmbedding`] can only come from normalizing a raw
//! model output (once, here) or from checking that stored numbers already are a unit vector.

use std::fmt;

/// How far from 1.0 a stored or received vector's norm may be and still count as normalized
/// (f32 round-trips through JSON and databases keep it well inside this).
const UNIT_NORM_TOLERANCE: f32 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum EmbeddingError {
    #[error("the embedding is empty")]
    Empty,
    #[error("the embedding contains NaN or infinite values")]
    NonFinite,
    #[error("the embedding has zero norm and cannot be normalized")]
    ZeroNorm,
    #[error("the embedding is not L2-normalized (norm {0})")]
    NotUnit(f32),
}

/// An L2-normalized face embedding (unit length, finite values).
#[derive(Clone, PartialEq)]
pub struct NormalizedEmbedding(Box<[f32]>);

impl NormalizedEmbedding {
    /// Normalizes a raw model output. Returns the embedding and the norm it had before: the raw norm is a
    /// useful quality signal for ArcFace-family models (blurry or non-face crops give small norms).
    pub fn normalize(raw: &[f32]) -> Result<(Self, f32), EmbeddingError> {
        if raw.is_empty() {
            return Err(EmbeddingError::Empty);
        }
        if raw.iter().any(|v| !v.is_finite()) {
            return Err(EmbeddingError::NonFinite);
        }
        let norm = dot(raw, raw).sqrt();
        if norm <= f32::MIN_POSITIVE {
            return Err(EmbeddingError::ZeroNorm);
        }
        let unit = raw.iter().map(|v| v / norm).collect();
        Ok((Self(unit), norm))
    }

    /// Accepts numbers that are already a unit vector (from the database or an API client) without
    /// normalizing them again.
    pub fn from_unit_vector(values: Vec<f32>) -> Result<Self, EmbeddingError> {
        if values.is_empty() {
            return Err(EmbeddingError::Empty);
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(EmbeddingError::NonFinite);
        }
        let norm = dot(&values, &values).sqrt();
        if (norm - 1.0).abs() > UNIT_NORM_TOLERANCE {
            return Err(EmbeddingError::NotUnit(norm));
        }
        Ok(Self(values.into_boxed_slice()))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn dim(&self) -> usize {
        self.0.len()
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.0.into_vec()
    }

    /// Cosine similarity: the dot product, since both vectors have unit length.
    pub fn similarity(&self, other: &NormalizedEmbedding) -> Similarity {
        Similarity::new(dot(&self.0, &other.0))
    }
}

impl fmt::Debug for NormalizedEmbedding {
    // 512 numbers help nobody in a log line (and embeddings are biometric data).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NormalizedEmbedding(dim={})", self.0.len())
    }
}

/// Cosine similarity of two normalized embeddings, always within [-1, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, serde::Serialize)]
#[serde(transparent)]
pub struct Similarity(f32);

impl Similarity {
    /// Clamps rounding noise (a vector with itself can give 1.0000001) into [-1, 1]; NaN becomes -1.
    pub fn new(value: f32) -> Self {
        if value.is_nan() {
            return Self(-1.0);
        }
        Self(value.clamp(-1.0, 1.0))
    }

    pub fn value(self) -> f32 {
        self.0
    }
}

/// Dot product written so the compiler vectorizes it: eight independent accumulators break the
/// dependency chain of a naive sum. This is the inner loop of exact search.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 8];
    let chunks_a = a.chunks_exact(8);
    let chunks_b = b.chunks_exact(8);
    let (rest_a, rest_b) = (chunks_a.remainder(), chunks_b.remainder());
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for i in 0..8 {
            acc[i] += ca[i] * cb[i];
        }
    }
    let mut sum = acc.iter().sum::<f32>();
    for (x, y) in rest_a.iter().zip(rest_b) {
        sum += x * y;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_once_and_reports_the_raw_norm() {
        let (e, norm) = NormalizedEmbedding::normalize(&[3.0, 4.0]).unwrap();
        assert_eq!(norm, 5.0);
        assert_eq!(e.as_slice(), &[0.6, 0.8]);
        assert!((e.similarity(&e).value() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn refuses_what_cannot_be_a_unit_vector() {
        assert_eq!(
            NormalizedEmbedding::normalize(&[]).unwrap_err(),
            EmbeddingError::Empty
        );
        assert_eq!(
            NormalizedEmbedding::normalize(&[0.0, 0.0]).unwrap_err(),
            EmbeddingError::ZeroNorm
        );
        assert_eq!(
            NormalizedEmbedding::normalize(&[f32::NAN, 1.0]).unwrap_err(),
            EmbeddingError::NonFinite
        );
        assert!(matches!(
            NormalizedEmbedding::from_unit_vector(vec![3.0, 4.0]),
            Err(EmbeddingError::NotUnit(n)) if (n - 5.0).abs() < 1e-6
        ));
        assert!(NormalizedEmbedding::from_unit_vector(vec![0.6, 0.8]).is_ok());
    }

    #[test]
    fn similarity_is_clamped() {
        assert_eq!(Similarity::new(1.000_001).value(), 1.0);
        assert_eq!(Similarity::new(-3.0).value(), -1.0);
        assert_eq!(Similarity::new(f32::NAN).value(), -1.0);
    }

    #[test]
    fn dot_matches_a_naive_sum_for_every_remainder() {
        for len in [0, 1, 7, 8, 9, 17, 512] {
            let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
            let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - naive).abs() < 1e-4, "len {len}");
        }
    }
}
