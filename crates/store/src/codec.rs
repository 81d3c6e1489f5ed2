//! Conversions between domain values and what the databases store.

use facerec_core::{StoreError, StoreResult};
use facerec_vision::{FaceQuality, NormalizedEmbedding};

/// Embeddings as little-endian f32 bytes (SQLite BLOB).
pub fn embedding_to_bytes(embedding: &NormalizedEmbedding) -> Vec<u8> {
    embedding
        .as_slice()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

pub fn embedding_from_bytes(bytes: &[u8]) -> StoreResult<NormalizedEmbedding> {
    if !bytes.len().is_multiple_of(4) {
        return Err(StoreError::Database(format!(
            "stored embedding has {} bytes",
            bytes.len()
        )));
    }
    let values = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok(NormalizedEmbedding::from_unit_vector(values)?)
}

pub fn to_json<T: serde::Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("plain data serializes")
}

pub fn quality_from_json(value: serde_json::Value) -> StoreResult<FaceQuality> {
    serde_json::from_value(value).map_err(|e| StoreError::Database(format!("stored quality: {e}")))
}

pub fn bbox_from_json(value: serde_json::Value) -> StoreResult<[f32; 4]> {
    serde_json::from_value(value).map_err(|e| StoreError::Database(format!("stored bbox: {e}")))
}

/// Escapes LIKE wildcards so a name filter matches literally.
pub fn like_pattern(contains: &str) -> String {
    let escaped = contains
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}
