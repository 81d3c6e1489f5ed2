//! # facerec-types
//!
//! The values every layer of facerec passes around — a normalized embedding and its similarity, a
//! face's box and quality signals, the model that made an embedding — and the one table of error
//! codes. A leaf: the domain and the storage depend on it without pulling in ONNX Runtime or an
//! image decoder.

pub mod embedding;
pub mod error_code;
mod face;

pub use embedding::{dot, EmbeddingError, NormalizedEmbedding, Similarity};
pub use error_code::ErrorCode;
pub use face::{
    BoundingBox, ChipJpeg, FaceQuality, ModelId, Point, BUILT_IN_DETECTOR_SHA256, BUILT_IN_PACK,
    BUILT_IN_RECOGNIZER, BUILT_IN_RECOGNIZER_SHA256,
};
