//! Which faces are good enough to enroll. Recognition accepts any face; enrollment is stricter,
//! because one poor reference photo degrades every later match against that person.

use facerec_types::FaceQuality;
use serde::Serialize;

/// Why a face was refused for enrollment.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum PoorQuality {
    #[error("the face is {actual:.0} px, smaller than {required:.0} px")]
    TooSmall { actual: f32, required: f32 },
    #[error("the detector is only {actual:.2} confident (needs {required:.2})")]
    LowConfidence { actual: f32, required: f32 },
    #[error(
        "the face is turned too far from the camera (frontality {actual:.2}, needs {required:.2})"
    )]
    NotFrontal { actual: f32, required: f32 },
    #[error("the face is blurred or occluded (feature norm {actual:.1}, needs {required:.1})")]
    Indistinct { actual: f32, required: f32 },
}

/// Minimums for enrollment photos. Defaults are set below every face of `../shared/faces/images`
/// that InsightFace detects with confidence, so that ordinary portraits pass and thumbnails,
/// profiles and smudges do not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QualityPolicy {
    pub min_face_px: f32,
    pub min_det_score: f32,
    pub min_frontality: f32,
    pub min_embedding_norm: f32,
}

impl Default for QualityPolicy {
    fn default() -> Self {
        Self {
            min_face_px: 40.0,
            min_det_score: 0.6,
            min_frontality: 0.2,
            min_embedding_norm: 10.0,
        }
    }
}

impl QualityPolicy {
    pub fn check(&self, det_score: f32, quality: &FaceQuality) -> Result<(), PoorQuality> {
        if quality.face_size_px < self.min_face_px {
            return Err(PoorQuality::TooSmall {
                actual: quality.face_size_px,
                required: self.min_face_px,
            });
        }
        if det_score < self.min_det_score {
            return Err(PoorQuality::LowConfidence {
                actual: det_score,
                required: self.min_det_score,
            });
        }
        if quality.frontality < self.min_frontality {
            return Err(PoorQuality::NotFrontal {
                actual: quality.frontality,
                required: self.min_frontality,
            });
        }
        if quality.embedding_norm < self.min_embedding_norm {
            return Err(PoorQuality::Indistinct {
                actual: quality.embedding_norm,
                required: self.min_embedding_norm,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(face_size_px: f32, frontality: f32, embedding_norm: f32) -> FaceQuality {
        FaceQuality {
            face_size_px,
            interocular_px: face_size_px / 3.0,
            frontality,
            embedding_norm,
        }
    }

    #[test]
    fn refuses_each_kind_of_poor_face() {
        let p = QualityPolicy::default();
        assert!(p.check(0.8, &quality(100.0, 0.9, 20.0)).is_ok());
        assert!(matches!(
            p.check(0.8, &quality(20.0, 0.9, 20.0)),
            Err(PoorQuality::TooSmall { .. })
        ));
        assert!(matches!(
            p.check(0.55, &quality(100.0, 0.9, 20.0)),
            Err(PoorQuality::LowConfidence { .. })
        ));
        assert!(matches!(
            p.check(0.8, &quality(100.0, 0.1, 20.0)),
            Err(PoorQuality::NotFrontal { .. })
        ));
        assert!(matches!(
            p.check(0.8, &quality(100.0, 0.9, 5.0)),
            Err(PoorQuality::Indistinct { .. })
        ));
    }
}
