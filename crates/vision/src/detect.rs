//! Face detection with SCRFD, step for step as InsightFace's `model_zoo/scrfd.py` does it.

use image::RgbImage;
use ort::session::Session;
use ort::value::{TensorRef, ValueType};

pub use facerec_types::{BoundingBox, Point};

use crate::error::RuntimeError;
use crate::imgproc::resize_bilinear;

/// SCRFD feature-map strides and anchors per cell for the `_bnkps` models (`scrfd.py`: `fmc = 3`,
/// `_feat_stride_fpn = [8, 16, 32]`, `_num_anchors = 2`).
const STRIDES: [usize; 3] = [8, 16, 32];
const ANCHORS_PER_CELL: usize = 2;

/// InsightFace's detector normalization: `(pixel - 127.5) / 128`, RGB.
const INPUT_MEAN: f32 = 127.5;
const INPUT_STD: f32 = 128.0;

/// One detected face: box, five landmarks (left eye, right eye, nose, left and right mouth corner, as
/// seen in the image) and the detector's confidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: BoundingBox,
    pub landmarks: [Point; 5],
    pub score: f32,
}

/// Detector settings. The defaults are InsightFace's `FaceAnalysis.prepare(det_size=(640, 640))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorConfig {
    /// Side of the square network input; a multiple of 32.
    pub input_size: u32,
    /// Candidates scoring below this are dropped before NMS.
    pub score_threshold: f32,
    /// Overlap above which the weaker of two candidates is suppressed.
    pub nms_iou_threshold: f32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            input_size: 640,
            score_threshold: 0.5,
            nms_iou_threshold: 0.4,
        }
    }
}

/// The SCRFD detector: one ONNX session and its input buffer.
pub struct Detector {
    session: Session,
    config: DetectorConfig,
    /// The input side the model fixes, if it fixes one (InsightFace's exports take any).
    fixed_side: Option<u32>,
    input: Vec<f32>,
}

impl Detector {
    pub(crate) fn new(session: Session, config: DetectorConfig) -> Result<Self, RuntimeError> {
        let signature_error = |message: String| RuntimeError::ModelSignature {
            model: "detector".into(),
            message,
        };
        if session.outputs().len() != STRIDES.len() * 3 {
            return Err(signature_error(format!(
                "expected 9 outputs (scores, boxes, keypoints for 3 strides), found {}",
                session.outputs().len()
            )));
        }
        if config.input_size == 0 || !config.input_size.is_multiple_of(32) {
            return Err(signature_error(format!(
                "input size {} is not a positive multiple of 32",
                config.input_size
            )));
        }
        // [1, 3, H, W], H and W dynamic (-1) or fixed and equal.
        let fixed_side = match session.inputs().first().map(|i| i.dtype()) {
            Some(ValueType::Tensor { shape, .. })
                if shape.len() == 4 && shape[1] == 3 && shape[0] <= 1 =>
            {
                match (shape[2], shape[3]) {
                    (h, w) if h <= 0 && w <= 0 => None,
                    (h, w) if h == w && h > 0 => Some(h as u32),
                    _ => {
                        return Err(signature_error(format!(
                        "expected input [1, 3, H, W] with a square or dynamic H x W, found {:?}",
                        shape.to_vec()
                    )))
                    }
                }
            }
            other => {
                return Err(signature_error(format!(
                    "expected input [1, 3, H, W], found {other:?}"
                )))
            }
        };
        // A model fixed at one side runs at that side: the configured one is for models that
        // take any.
        let config = DetectorConfig {
            input_size: fixed_side.unwrap_or(config.input_size),
            ..config
        };
        Ok(Self {
            session,
            config,
            fixed_side,
            input: Vec::new(),
        })
    }

    /// The input side the model fixes, if any.
    pub fn fixed_side(&self) -> Option<u32> {
        self.fixed_side
    }

    fn check_side(&self, side: u32) -> Result<(), RuntimeError> {
        match self.fixed_side {
            Some(fixed) if fixed != side => Err(RuntimeError::ModelSignature {
                model: "detector".into(),
                message: format!("its input is fixed at {fixed}x{fixed}; {side} was asked for"),
            }),
            _ => Ok(()),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// All faces in the image, strongest first, in the image's own coordinates.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Vec<Detection>, RuntimeError> {
        self.detect_at(image, self.config.input_size)
    }

    /// As [`Detector::detect`], at another input side (a positive multiple of 32).
    pub fn detect_at(
        &mut self,
        image: &RgbImage,
        side: u32,
    ) -> Result<Vec<Detection>, RuntimeError> {
        if side == 0 || !side.is_multiple_of(32) {
            return Err(RuntimeError::ModelSignature {
                model: "detector".into(),
                message: format!("input size {side} is not a positive multiple of 32"),
            });
        }
        self.check_side(side)?;
        let len = 3 * side as usize * side as usize;
        self.input.resize(len, 0.0);
        let scale = letterbox(image, side, &mut self.input);
        let shape = [1usize, 3, side as usize, side as usize];
        let tensor = TensorRef::from_array_view((shape, self.input.as_slice()))?;
        let outputs = self.session.run(ort::inputs![tensor])?;

        let mut candidates = Vec::new();
        for (level, &stride) in STRIDES.iter().enumerate() {
            // Output order as the model exports it (and as scrfd.py indexes it): the three score maps,
            // then the three box maps, then the three keypoint maps.
            let (_, scores) = outputs[level].try_extract_tensor::<f32>()?;
            let (_, boxes) = outputs[level + 3].try_extract_tensor::<f32>()?;
            let (_, kps) = outputs[level + 6].try_extract_tensor::<f32>()?;
            decode_level(
                &LevelOutputs { scores, boxes, kps },
                stride,
                side as usize,
                self.config.score_threshold,
                &mut candidates,
            )
            .map_err(|message| RuntimeError::ModelSignature {
                model: "detector".into(),
                message,
            })?;
        }
        for det in &mut candidates {
            det.bbox = BoundingBox {
                x1: det.bbox.x1 / scale,
                y1: det.bbox.y1 / scale,
                x2: det.bbox.x2 / scale,
                y2: det.bbox.y2 / scale,
            };
            for p in &mut det.landmarks {
                *p = [p[0] / scale, p[1] / scale];
            }
        }
        Ok(non_maximum_suppression(
            candidates,
            self.config.nms_iou_threshold,
        ))
    }
}

/// Resizes the image into the top-left of a `side x side` black canvas keeping its aspect ratio, and
/// writes it as a normalized RGB NCHW tensor. Returns the scale from image to network pixels.
fn letterbox(image: &RgbImage, side: u32, tensor: &mut [f32]) -> f32 {
    let (w, h) = image.dimensions();
    // scrfd.py: compare aspect ratios, fit the longer side, truncate the other (int()).
    let im_ratio = f64::from(h) / f64::from(w);
    let (new_w, new_h) = if im_ratio > 1.0 {
        (((f64::from(side) / im_ratio) as u32).max(1), side)
    } else {
        (side, ((f64::from(side) * im_ratio) as u32).max(1))
    };
    let scale = new_h as f32 / h as f32;
    let resized = resize_bilinear(image, new_w, new_h);

    // Planar RGB, normalized through a lookup table; only the padding is filled separately.
    let lut: [f32; 256] = std::array::from_fn(|v| (v as f32 - INPUT_MEAN) / INPUT_STD);
    let pad = lut[0];
    let (side, new_w) = (side as usize, new_w as usize);
    let plane = side * side;
    let (r_plane, rest) = tensor.split_at_mut(plane);
    let (g_plane, b_plane) = rest.split_at_mut(plane);
    for (y, ((r_row, g_row), b_row)) in r_plane
        .chunks_exact_mut(side)
        .zip(g_plane.chunks_exact_mut(side))
        .zip(b_plane.chunks_exact_mut(side))
        .enumerate()
    {
        let filled = if y < new_h as usize {
            let src = &resized.as_raw()[y * new_w * 3..(y + 1) * new_w * 3];
            for (x, px) in src.chunks_exact(3).enumerate() {
                r_row[x] = lut[usize::from(px[0])];
                g_row[x] = lut[usize::from(px[1])];
                b_row[x] = lut[usize::from(px[2])];
            }
            new_w
        } else {
            0
        };
        r_row[filled..].fill(pad);
        g_row[filled..].fill(pad);
        b_row[filled..].fill(pad);
    }
    scale
}

/// One stride's raw outputs, each `[1, N, k]` flattened (`N` anchors; k = 1, 4, 10).
struct LevelOutputs<'a> {
    scores: &'a [f32],
    boxes: &'a [f32],
    kps: &'a [f32],
}

/// Turns one stride's outputs into candidates in network pixels: anchor centres on the stride grid,
/// distances (in strides) to the box sides and offsets to the landmarks.
fn decode_level(
    out: &LevelOutputs<'_>,
    stride: usize,
    side: usize,
    threshold: f32,
    candidates: &mut Vec<Detection>,
) -> Result<(), String> {
    let cells = side / stride;
    let anchors = cells * cells * ANCHORS_PER_CELL;
    if out.scores.len() != anchors
        || out.boxes.len() != anchors * 4
        || out.kps.len() != anchors * 10
    {
        return Err(format!(
            "stride {stride}: expected {anchors} anchors, got outputs of {}, {} and {} values",
            out.scores.len(),
            out.boxes.len(),
            out.kps.len()
        ));
    }
    let s = stride as f32;
    for (i, &score) in out.scores.iter().enumerate() {
        if score < threshold {
            continue;
        }
        let cell = i / ANCHORS_PER_CELL;
        let (cx, cy) = ((cell % cells) as f32 * s, (cell / cells) as f32 * s);
        let d = &out.boxes[i * 4..i * 4 + 4];
        let k = &out.kps[i * 10..i * 10 + 10];
        let mut landmarks = [[0.0; 2]; 5];
        for (j, p) in landmarks.iter_mut().enumerate() {
            *p = [cx + k[2 * j] * s, cy + k[2 * j + 1] * s];
        }
        candidates.push(Detection {
            bbox: BoundingBox {
                x1: cx - d[0] * s,
                y1: cy - d[1] * s,
                x2: cx + d[2] * s,
                y2: cy + d[3] * s,
            },
            landmarks,
            score,
        });
    }
    Ok(())
}

/// Greedy NMS as `scrfd.py`'s `nms`: strongest first, drop any box overlapping a kept one by more
/// than `iou_threshold`. Areas use the `+1` pixel convention of that code, so results match it.
pub fn non_maximum_suppression(
    mut candidates: Vec<Detection>,
    iou_threshold: f32,
) -> Vec<Detection> {
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    let area = |b: &BoundingBox| (b.x2 - b.x1 + 1.0) * (b.y2 - b.y1 + 1.0);
    let mut kept: Vec<Detection> = Vec::new();
    'candidates: for cand in candidates {
        for k in &kept {
            let w = (cand.bbox.x2.min(k.bbox.x2) - cand.bbox.x1.max(k.bbox.x1) + 1.0).max(0.0);
            let h = (cand.bbox.y2.min(k.bbox.y2) - cand.bbox.y1.max(k.bbox.y1) + 1.0).max(0.0);
            let inter = w * h;
            if inter / (area(&cand.bbox) + area(&k.bbox) - inter) > iou_threshold {
                continue 'candidates;
            }
        }
        kept.push(cand);
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
        Detection {
            bbox: BoundingBox { x1, y1, x2, y2 },
            landmarks: [[0.0; 2]; 5],
            score,
        }
    }

    #[test]
    fn nms_keeps_the_strongest_of_overlapping_boxes() {
        // Boxes 0..9 and 1..10 (+1 convention: areas 100 each, intersection 9x10 = 90):
        // IoU = 90 / 110 = 0.818 > 0.4, so the weaker goes. A far box survives.
        let kept = non_maximum_suppression(
            vec![
                det(1.0, 0.0, 10.0, 9.0, 0.7),
                det(0.0, 0.0, 9.0, 9.0, 0.9),
                det(50.0, 50.0, 60.0, 60.0, 0.6),
            ],
            0.4,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.6]);
    }

    #[test]
    fn nms_threshold_is_exclusive_and_uses_plus_one_areas() {
        // 0..9 and 6..15 in x, same y: +1 areas 100 each, intersection (9-6+1) x 10 = 40,
        // IoU = 40 / 160 = 0.25. Kept at 0.25 (only strictly greater overlaps are suppressed).
        let boxes = vec![det(0.0, 0.0, 9.0, 9.0, 0.9), det(6.0, 0.0, 15.0, 9.0, 0.8)];
        assert_eq!(non_maximum_suppression(boxes.clone(), 0.25).len(), 2);
        assert_eq!(non_maximum_suppression(boxes, 0.24).len(), 1);
    }

    #[test]
    fn decodes_distances_and_keypoints_on_the_anchor_grid() {
        // A 64-pixel input at stride 32 has a 2x2 grid with 2 anchors per cell: 8 anchors.
        let mut scores = vec![0.0; 8];
        scores[3] = 0.8; // cell 1 (x = 1, y = 0), second anchor: centre (32, 0).
        let mut boxes = vec![0.0; 32];
        boxes[12..16].copy_from_slice(&[0.5, 0.25, 1.0, 2.0]);
        let mut kps = vec![0.0; 80];
        kps[30..40].copy_from_slice(&[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]);
        let mut out = Vec::new();
        decode_level(
            &LevelOutputs {
                scores: &scores,
                boxes: &boxes,
                kps: &kps,
            },
            32,
            64,
            0.5,
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].bbox,
            BoundingBox {
                x1: 16.0,
                y1: -8.0,
                x2: 64.0,
                y2: 64.0
            }
        );
        assert_eq!(out[0].landmarks[0], [32.0 + 3.2, 6.4]);
        assert_eq!(out[0].landmarks[4], [32.0 + 28.8, 32.0]);
    }

    #[test]
    fn decode_refuses_outputs_of_the_wrong_size() {
        let mut out = Vec::new();
        let r = decode_level(
            &LevelOutputs {
                scores: &[0.0; 3],
                boxes: &[],
                kps: &[],
            },
            32,
            64,
            0.5,
            &mut out,
        );
        assert!(r.is_err());
    }

    #[test]
    fn letterbox_fits_the_longer_side_at_the_top_left() {
        let image = RgbImage::from_pixel(200, 100, image::Rgb([255, 0, 0]));
        let mut tensor = vec![0.0; 3 * 64 * 64];
        let scale = letterbox(&image, 64, &mut tensor);
        assert_eq!(scale, 32.0 / 100.0);
        let plane = 64 * 64;
        let red = (255.0 - INPUT_MEAN) / INPUT_STD;
        let black = -INPUT_MEAN / INPUT_STD;
        assert_eq!(tensor[0], red, "image at the top-left");
        assert_eq!(tensor[31 * 64 + 63], red, "last image row");
        assert_eq!(tensor[32 * 64], black, "padding below the image");
        assert_eq!(tensor[plane], black, "green channel of a red image");
    }
}
