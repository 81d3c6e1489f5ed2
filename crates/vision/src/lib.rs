//! # facerec-vision
//!
//! The face pipeline of facerec, usable on its own: untrusted image bytes in, faces with boxes,
//! landmarks, detection scores, quality signals and L2-normalized ArcFace embeddings out.
//!
//! ```text
//! bytes ─▶ ingest (signature, limits, decode, EXIF orientation) ─▶ RgbImage
//!       ─▶ detect (SCRFD: letterbox, run, decode anchors, NMS)   ─▶ [Detection]
//!       ─▶ align  (similarity transform onto the ArcFace template) ─▶ [FaceChip 112x112]
//!       ─▶ embed  (ArcFace, L2-normalized once)                    ─▶ [NormalizedEmbedding]
//! ```
//!
//! Every step reproduces InsightFace's Python package (`FaceAnalysis` with `buffalo_s`), so embeddings
//! are interchangeable with it. There is no HTTP and no SQL in this crate.

pub mod align;
pub mod detect;
pub mod embed;
pub mod error;
/// Embeddings and their similarity (from `facerec-types`, which the domain shares).
pub use facerec_types::embedding;
pub mod imgproc;
pub mod ingest;
pub mod pack;
pub mod pipeline;
pub mod quality;
pub mod runtime;

pub use align::{align_face, FaceChip, SimilarityTransform, ARCFACE_TEMPLATE};
pub use detect::{BoundingBox, Detection, DetectorConfig, Point};
pub use embedding::{EmbeddingError, NormalizedEmbedding, Similarity};
pub use error::{IngestError, RuntimeError, VisionError};
pub use image::RgbImage;
pub use ingest::{decode_image, ImageFormat, IngestLimits};
pub use pack::{ModelPack, PackError, PackFile};
pub use pipeline::{Analysis, AnalyzedFace, AnalyzerConfig, FaceAnalyzer, ModelId};
pub use quality::FaceQuality;
pub use runtime::{Device, RuntimeConfig};
