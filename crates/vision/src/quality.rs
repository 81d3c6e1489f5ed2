//! Signals of how usable a detected face is. The vision layer measures; the policy that refuses poor
//! enrollment photos lives with the business rules (facerec-core).

use crate::detect::Detection;

pub use facerec_types::FaceQuality;

/// Measures a detected face; `embedding_norm` is ArcFace's raw output norm.
pub fn measure(detection: &Detection, embedding_norm: f32) -> FaceQuality {
    let [le, re, nose, _, _] = detection.landmarks;
    let interocular = (re[0] - le[0]).hypot(re[1] - le[1]);
    // Project the nose onto the eye line: offset from the eyes' midpoint, in half eye distances.
    let frontality = if interocular > f32::EPSILON {
        let (ux, uy) = ((re[0] - le[0]) / interocular, (re[1] - le[1]) / interocular);
        let (mx, my) = ((le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0);
        let along = (nose[0] - mx) * ux + (nose[1] - my) * uy;
        (1.0 - along.abs() / (interocular / 2.0)).clamp(0.0, 1.0)
    } else {
        0.0
    };
    FaceQuality {
        face_size_px: detection.bbox.width().min(detection.bbox.height()),
        interocular_px: interocular,
        frontality,
        embedding_norm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::BoundingBox;

    fn face(nose_x: f32) -> Detection {
        Detection {
            bbox: BoundingBox {
                x1: 0.0,
                y1: 0.0,
                x2: 80.0,
                y2: 100.0,
            },
            landmarks: [
                [20.0, 40.0],
                [60.0, 40.0],
                [nose_x, 60.0],
                [25.0, 80.0],
                [55.0, 80.0],
            ],
            score: 0.9,
        }
    }

    #[test]
    fn frontal_and_profile_faces() {
        let q = measure(&face(40.0), 20.0);
        assert_eq!(q.face_size_px, 80.0);
        assert_eq!(q.interocular_px, 40.0);
        assert_eq!(q.frontality, 1.0);
        assert_eq!(measure(&face(50.0), 20.0).frontality, 0.5);
        assert_eq!(measure(&face(65.0), 20.0).frontality, 0.0);
    }
}
