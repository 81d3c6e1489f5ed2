//! The whole face pipeline on one image: detect, align, embed.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::align::{align_face, FaceChip};
use crate::detect::{Detection, Detector, DetectorConfig};
use crate::embed::Embedder;
use crate::embedding::NormalizedEmbedding;
use crate::error::{RuntimeError, VisionError};
use crate::ingest::{decode_image, IngestLimits};
use crate::pack::sha256_file;
use crate::quality::FaceQuality;
use crate::runtime::{open_session, RuntimeConfig};
use facerec_types::ChipJpeg;

/// File names of the InsightFace `buffalo_s` models this project ships with (via `scripts/setup.sh`).
pub const DETECTOR_FILE: &str = "scrfd_500m_bnkps.onnx";
pub const EMBEDDER_FILE: &str = "w600k_mbf.onnx";
/// Embeddings from different models are not comparable; stored faces carry this name (the
/// built-in pack's recognizer).
pub const EMBEDDER_NAME: &str = facerec_types::BUILT_IN_RECOGNIZER;

/// Everything needed to load the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzerConfig {
    pub detector_model: PathBuf,
    pub embedder_model: PathBuf,
    /// The recognizer's identity when its pack already hashed it; otherwise the built-in name and
    /// the file's sha256, computed at load.
    pub recognizer: Option<ModelId>,
    /// The embedding length the recognizer must produce.
    pub embedding_size: usize,
    pub runtime: RuntimeConfig,
    pub detector: DetectorConfig,
}

impl AnalyzerConfig {
    /// The standard model files in `models_dir`.
    pub fn with_models_dir(models_dir: &Path, runtime: RuntimeConfig) -> Self {
        Self {
            detector_model: models_dir.join(DETECTOR_FILE),
            embedder_model: models_dir.join(EMBEDDER_FILE),
            recognizer: None,
            embedding_size: crate::pack::ARCFACE_EMBEDDING_SIZE,
            runtime,
            detector: DetectorConfig::default(),
        }
    }
}

pub use facerec_types::ModelId;

/// One face found in an image, with everything the pipeline knows about it.
#[derive(Debug, Clone)]
pub struct AnalyzedFace {
    pub detection: Detection,
    pub embedding: NormalizedEmbedding,
    pub quality: FaceQuality,
    /// The aligned chip as a JPEG, when the caller asked to keep it (a captured face).
    pub chip: Option<ChipJpeg>,
}

/// An image's analysis: its upright size and its faces, strongest detection first.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub width: u32,
    pub height: u32,
    pub faces: Vec<AnalyzedFace>,
}

/// Detector and embedder together. Inference needs `&mut self` (ONNX sessions are not shared between
/// threads here): a server keeps one analyzer per worker thread.
pub struct FaceAnalyzer {
    detector: Detector,
    embedder: Embedder,
    model_id: ModelId,
}

impl FaceAnalyzer {
    pub fn load(config: &AnalyzerConfig) -> Result<Self, RuntimeError> {
        let detector = Detector::new(
            open_session(&config.detector_model, &config.runtime)?,
            config.detector,
        )
        .map_err(|e| e.in_file(&config.detector_model))?;
        let embedder = Embedder::new(open_session(&config.embedder_model, &config.runtime)?)
            .map_err(|e| e.in_file(&config.embedder_model))?;
        if embedder.dim() != config.embedding_size {
            return Err(RuntimeError::ModelSignature {
                model: config.embedder_model.display().to_string(),
                message: format!(
                    "embeddings of {} values, but {} are expected",
                    embedder.dim(),
                    config.embedding_size
                ),
            });
        }
        let model_id = match &config.recognizer {
            Some(id) => id.clone(),
            None => ModelId {
                name: EMBEDDER_NAME.into(),
                sha256: sha256_file(&config.embedder_model).map_err(|e| {
                    RuntimeError::ModelLoad {
                        path: config.embedder_model.clone(),
                        message: e.to_string(),
                    }
                })?,
            },
        };
        Ok(Self {
            detector,
            embedder,
            model_id,
        })
    }

    /// The embedding model's identity, stored beside every embedding.
    pub fn model_id(&self) -> &ModelId {
        &self.model_id
    }

    /// Decodes untrusted bytes and analyzes the image.
    pub fn analyze_bytes(
        &mut self,
        bytes: &[u8],
        limits: &IngestLimits,
    ) -> Result<Analysis, VisionError> {
        self.analyze_bytes_selecting(bytes, limits, Ok, false)
    }

    /// As `analyze_bytes`, but embeds only the detections `select` keeps (they come strongest
    /// first): a caller that wants one face of a group photo does not pay an embedding (~10 ms on
    /// CPU) for every other face. `select` may also refuse the image with its own error. With
    /// `chips`, each face keeps its aligned chip as a JPEG.
    pub fn analyze_bytes_selecting<E: From<VisionError> + From<RuntimeError>>(
        &mut self,
        bytes: &[u8],
        limits: &IngestLimits,
        select: impl FnOnce(Vec<Detection>) -> Result<Vec<Detection>, E>,
        chips: bool,
    ) -> Result<Analysis, E> {
        let image = decode_image(bytes, limits).map_err(VisionError::from)?;
        self.analyze_selecting(&image, select, chips)
    }

    /// Detects every face, aligns each and embeds them all in one batch.
    pub fn analyze(&mut self, image: &RgbImage) -> Result<Analysis, RuntimeError> {
        self.analyze_selecting(image, Ok, false)
    }

    fn analyze_selecting<E: From<RuntimeError>>(
        &mut self,
        image: &RgbImage,
        select: impl FnOnce(Vec<Detection>) -> Result<Vec<Detection>, E>,
        chips: bool,
    ) -> Result<Analysis, E> {
        let detections = select(self.detect(image)?)?;
        let faces = self.embed_detections_keeping(image, detections, chips)?;
        Ok(Analysis {
            width: image.width(),
            height: image.height(),
            faces,
        })
    }

    /// Detection alone.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, RuntimeError> {
        self.detector.detect(image)
    }

    /// Detection at another input side than the configured one (a collection's choice).
    pub fn detect_at(
        &mut self,
        image: &RgbImage,
        side: u32,
    ) -> Result<Vec<Detection>, RuntimeError> {
        self.detector.detect_at(image, side)
    }

    /// The detector's input side when its model fixes one (otherwise any multiple of 32 works).
    pub fn fixed_detection_size(&self) -> Option<u32> {
        self.detector.fixed_side()
    }

    /// Aligns and embeds already detected faces (for callers that detect more often than they embed,
    /// such as a tracker on a video stream).
    pub fn embed_detections(
        &mut self,
        image: &RgbImage,
        detections: Vec<Detection>,
    ) -> Result<Vec<AnalyzedFace>, RuntimeError> {
        self.embed_detections_keeping(image, detections, false)
    }

    /// As [`FaceAnalyzer::embed_detections`]; with `keep_chips`, each face keeps its aligned chip
    /// as a JPEG (~0.2 ms each).
    pub fn embed_detections_keeping(
        &mut self,
        image: &RgbImage,
        detections: Vec<Detection>,
        keep_chips: bool,
    ) -> Result<Vec<AnalyzedFace>, RuntimeError> {
        let chips: Vec<FaceChip> = detections
            .iter()
            .map(|d| align_face(image, &d.landmarks))
            .collect();
        let embedded = self.embedder.embed(&chips)?;
        Ok(detections
            .into_iter()
            .zip(embedded)
            .zip(chips)
            .map(|((detection, e), chip)| AnalyzedFace {
                quality: crate::quality::measure(&detection, e.raw_norm),
                detection,
                embedding: e.embedding,
                chip: keep_chips.then(|| chip_jpeg(&chip)).flatten(),
            })
            .collect())
    }

    /// Embeds aligned chips directly (benchmarks and tests time the stages apart).
    pub fn embed_chips(
        &mut self,
        chips: &[FaceChip],
    ) -> Result<Vec<crate::embed::Embedded>, RuntimeError> {
        self.embedder.embed(chips)
    }
}

/// JPEG quality of a kept chip: a reviewer recognizes a face at 90, in ~4 KiB.
const CHIP_JPEG_QUALITY: u8 = 90;

/// A chip as a JPEG; `None` (logged) if encoding fails, which only a bug could cause.
fn chip_jpeg(chip: &FaceChip) -> Option<ChipJpeg> {
    let mut bytes = Vec::with_capacity(8 * 1024);
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, CHIP_JPEG_QUALITY);
    match chip.image().write_with_encoder(encoder) {
        Ok(()) => Some(ChipJpeg(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "encoding a face chip failed");
            None
        }
    }
}
