//! Which detected faces a use case embeds: chosen on detections, before the embedder runs.

use facerec_vision::{BoundingBox, Detection};

use crate::error::{AppError, AppResult};

/// Which face of a multi-face photo to enroll.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum FacePick {
    /// Refuse photos with more than one face.
    #[default]
    Only,
    /// Take the largest face.
    Largest,
    /// Take the n-th face (0-based) in the order detection finds them, strongest first: the order
    /// `/v1/detect` and `/v1/recognize` answer for the same photo.
    Index(usize),
    /// Take the face whose box overlaps this one most (a box a client drew, or one an earlier
    /// answer gave): at least [`BOX_OVERLAP`] of intersection over union.
    Box(BoundingBox),
}

/// How much a detected face must overlap a box given for it (intersection over union): enough
/// that a box drawn around a face takes it, not its neighbour.
pub const BOX_OVERLAP: f32 = 0.3;

/// Which detected faces a use case embeds. The choice is made on detections, before the embedder
/// runs, so faces a use case would discard cost nothing (~10 ms each on CPU).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Selection {
    /// At most this many faces, strongest detections first.
    Strongest(usize),
    /// The face to enroll or verify.
    Pick(FacePick),
}

impl Selection {
    pub(crate) fn apply(self, mut detections: Vec<Detection>) -> AppResult<Vec<Detection>> {
        match self {
            Self::Strongest(max) => {
                detections.truncate(max);
                Ok(detections)
            }
            Self::Pick(FacePick::Only) if detections.len() > 1 => {
                Err(AppError::MultipleFaces(detections.len()))
            }
            Self::Pick(FacePick::Only) => Ok(detections),
            Self::Pick(FacePick::Largest) => Ok(largest(detections).into_iter().collect()),
            Self::Pick(FacePick::Index(n)) if n >= detections.len() => Err(AppError::NoSuchFace {
                index: n,
                faces: detections.len(),
            }),
            Self::Pick(FacePick::Index(n)) => Ok(vec![detections.swap_remove(n)]),
            Self::Pick(FacePick::Box(wanted)) => {
                let faces = detections.len();
                let best = detections
                    .into_iter()
                    .map(|d| (d.bbox.iou(&wanted), d))
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .filter(|(overlap, _)| *overlap >= BOX_OVERLAP);
                match best {
                    Some((_, face)) => Ok(vec![face]),
                    None => Err(AppError::NoFaceInBox { faces }),
                }
            }
        }
    }
}

/// The face with the largest box: the subject of a portrait, the one to enroll from a group photo.
fn largest(detections: Vec<Detection>) -> Option<Detection> {
    let area = |d: &Detection| d.bbox.width() * d.bbox.height();
    detections
        .into_iter()
        .max_by(|a, b| area(a).total_cmp(&area(b)))
}
