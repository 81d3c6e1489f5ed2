//! Alignment: the 5-point similarity transform onto the ArcFace template, and the 112x112 face chip.

use image::RgbImage;

use crate::detect::Point;
use crate::imgproc::{warp_affine, Affine};

/// Side of the ArcFace input, in pixels.
pub const CHIP_SIZE: u32 = 112;

/// Where ArcFace expects the left eye, right eye, nose tip, left and right mouth corners in a 112x112
/// chip. Source: InsightFace `python-package/insightface/utils/face_align.py`, `arcface_dst`.
pub const ARCFACE_TEMPLATE: [Point; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// A similarity transform (rotation, uniform scale, translation; 4 degrees of freedom):
/// `x' = a x - b y + tx`, `y' = b x + a y + ty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimilarityTransform {
    pub a: f64,
    pub b: f64,
    pub tx: f64,
    pub ty: f64,
}

impl SimilarityTransform {
    /// Least-squares similarity mapping `src` onto `dst` (Umeyama 1991 restricted to proper rotations,
    /// which is what scikit-image's `SimilarityTransform.estimate` computes for InsightFace). For 2-D the
    /// optimum has a closed form: with centred points, `a = Σ(x·u + y·v) / Σ|p|²` and
    /// `b = Σ(x·v − y·u) / Σ|p|²`. Returns `None` when all source points coincide.
    pub fn estimate(src: &[Point], dst: &[Point]) -> Option<Self> {
        assert_eq!(src.len(), dst.len(), "point sets differ in length");
        let n = src.len() as f64;
        if n == 0.0 {
            return None;
        }
        let mean = |pts: &[Point]| {
            let (sx, sy) = pts.iter().fold((0.0, 0.0), |(sx, sy), p| {
                (sx + f64::from(p[0]), sy + f64::from(p[1]))
            });
            (sx / n, sy / n)
        };
        let (smx, smy) = mean(src);
        let (dmx, dmy) = mean(dst);
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (s, d) in src.iter().zip(dst) {
            let (x, y) = (f64::from(s[0]) - smx, f64::from(s[1]) - smy);
            let (u, v) = (f64::from(d[0]) - dmx, f64::from(d[1]) - dmy);
            dot += x * u + y * v;
            cross += x * v - y * u;
            norm += x * x + y * y;
        }
        if norm <= f64::EPSILON || !norm.is_finite() {
            return None;
        }
        let (a, b) = (dot / norm, cross / norm);
        Some(Self {
            a,
            b,
            tx: dmx - (a * smx - b * smy),
            ty: dmy - (b * smx + a * smy),
        })
    }

    pub fn apply(&self, p: Point) -> Point {
        let (x, y) = (f64::from(p[0]), f64::from(p[1]));
        [
            (self.a * x - self.b * y + self.tx) as f32,
            (self.b * x + self.a * y + self.ty) as f32,
        ]
    }

    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    pub fn to_affine(&self) -> Affine {
        [[self.a, -self.b, self.tx], [self.b, self.a, self.ty]]
    }
}

/// A 112x112 RGB face crop aligned to the ArcFace template: the embedder's only input.
#[derive(Debug, Clone)]
pub struct FaceChip(RgbImage);

impl FaceChip {
    pub fn image(&self) -> &RgbImage {
        &self.0
    }
}

/// Warps the face with these five landmarks onto the ArcFace template, as InsightFace's `norm_crop`.
/// Degenerate landmarks (all in one point) give a black chip rather than a panic.
pub fn align_face(image: &RgbImage, landmarks: &[Point; 5]) -> FaceChip {
    let affine = SimilarityTransform::estimate(landmarks, &ARCFACE_TEMPLATE)
        .map(|t| t.to_affine())
        .unwrap_or([[0.0; 3]; 2]);
    FaceChip(warp_affine(image, &affine, CHIP_SIZE, CHIP_SIZE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_a_known_similarity_exactly() {
        // dst = 2 * R(30°) * src + (10, -5), computed by hand: cos 30° = 0.866025, sin 30° = 0.5.
        let src: [Point; 3] = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
        let dst: [Point; 3] = [[10.0, -5.0], [11.732051, -4.0], [9.0, -3.267949]];
        let t = SimilarityTransform::estimate(&src, &dst).unwrap();
        assert!((t.a - 1.732051).abs() < 1e-5, "a = 2 cos 30° = {}", t.a);
        assert!((t.b - 1.0).abs() < 1e-5, "b = 2 sin 30° = {}", t.b);
        assert!((t.tx - 10.0).abs() < 1e-5 && (t.ty + 5.0).abs() < 1e-5);
        assert!((t.scale() - 2.0).abs() < 1e-5);
    }

    #[test]
    fn template_maps_onto_itself_with_identity() {
        let t = SimilarityTransform::estimate(&ARCFACE_TEMPLATE, &ARCFACE_TEMPLATE).unwrap();
        assert!(
            (t.a - 1.0).abs() < 1e-9 && t.b.abs() < 1e-9 && t.tx.abs() < 1e-5 && t.ty.abs() < 1e-5
        );
    }

    #[test]
    fn least_squares_fit_matches_hand_computation() {
        // The target stretches x by 1 and y by 1.5 around (1, 2): no similarity fits exactly, and the
        // least-squares compromise is a uniform scale of 1.25 with no rotation.
        let src: [Point; 4] = [[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]];
        let dst: [Point; 4] = [[0.0, 2.0], [2.0, 2.0], [1.0, 0.5], [1.0, 3.5]];
        let t = SimilarityTransform::estimate(&src, &dst).unwrap();
        // Σ(xu + yv) = (-1)(-1) + (1)(1) + (-1)(-1.5) + (1)(1.5) = 5, Σ|p|² = 4 -> a = 1.25.
        assert!((t.a - 1.25).abs() < 1e-9, "a = {}", t.a);
        assert!(t.b.abs() < 1e-9);
        assert!((t.tx - 1.0).abs() < 1e-9 && (t.ty - 2.0).abs() < 1e-9);
    }

    #[test]
    fn coincident_points_have_no_transform() {
        let p: [Point; 5] = [[3.0, 3.0]; 5];
        assert!(SimilarityTransform::estimate(&p, &ARCFACE_TEMPLATE).is_none());
        let chip = align_face(&RgbImage::new(10, 10), &p);
        assert_eq!(chip.image().dimensions(), (CHIP_SIZE, CHIP_SIZE));
    }
}
