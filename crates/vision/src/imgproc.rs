//! The two pixel operations InsightFace does with OpenCV, reproduced so that this pipeline sees the same
//! pixels: `cv2.resize(INTER_LINEAR)` for the detector's letterbox and `cv2.warpAffine(INTER_LINEAR,
//! BORDER_CONSTANT 0)` for alignment. General-purpose resizers (antialiasing filters) give visibly
//! different detector scores on downscaled photos, which is why these two are written here.

use image::RgbImage;

/// OpenCV's fixed-point scale for interpolation weights (`INTER_RESIZE_COEF_BITS = 11`).
const COEF_SCALE: f32 = 2048.0;

/// One output coordinate's two source taps and their fixed-point weights.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w0: i16,
    w1: i16,
}

/// OpenCV's INTER_LINEAR sampling: pixel centres aligned (`(d + 0.5) * scale - 0.5`, computed in f32
/// as OpenCV does), edges clamped, weights rounded to 11 fractional bits.
fn linear_taps(src_len: u32, dst_len: u32) -> Vec<Tap> {
    let scale = f64::from(src_len) / f64::from(dst_len);
    let last = src_len as usize - 1;
    (0..dst_len)
        .map(|d| {
            let f = ((f64::from(d) + 0.5) * scale - 0.5) as f32;
            let floor = f.floor();
            let (i0, frac) = if floor < 0.0 {
                (0, 0.0)
            } else if floor as usize >= last {
                (last, 0.0)
            } else {
                (floor as usize, f - floor)
            };
            Tap {
                i0,
                i1: (i0 + 1).min(last),
                w0: ((1.0 - frac) * COEF_SCALE).round_ties_even() as i16,
                w1: (frac * COEF_SCALE).round_ties_even() as i16,
            }
        })
        .collect()
}

/// Bilinear resize of an RGB image, bit-exact with `cv2.resize(img, (width, height))` on x86: integer
/// horizontal pass, then OpenCV's SIMD vertical blend (`VResizeLinearVec_32s8u`), whose rounding
/// differs from the textbook formula by up to one level. Exact halving takes OpenCV's INTER_AREA
/// shortcut, as `cv2.resize` does.
pub fn resize_bilinear(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    assert!(width > 0 && height > 0, "resize to an empty image");
    if src.dimensions() == (width, height) {
        return src.clone();
    }
    if src.width() == 2 * width && src.height() == 2 * height {
        return halve(src);
    }
    let xs = linear_taps(src.width(), width);
    let ys = linear_taps(src.height(), height);
    let src_stride = src.width() as usize * 3;
    let raw = src.as_raw();
    let row_len = width as usize * 3;
    let mut out = vec![0u8; row_len * height as usize];
    // Horizontal pass into two integer rows (scaled by 2048), then the vertical blend; rows are reused
    // while consecutive output rows read the same source rows.
    let mut row0 = vec![0i32; row_len];
    let mut row1 = vec![0i32; row_len];
    let mut cached: Option<(usize, usize)> = None;
    let horizontal = |y: usize, row: &mut [i32]| {
        let line = &raw[y * src_stride..(y + 1) * src_stride];
        for (x, t) in xs.iter().enumerate() {
            for c in 0..3 {
                row[x * 3 + c] = i32::from(line[t.i0 * 3 + c]) * i32::from(t.w0)
                    + i32::from(line[t.i1 * 3 + c]) * i32::from(t.w1);
            }
        }
    };
    for (y, t) in ys.iter().enumerate() {
        if cached != Some((t.i0, t.i1)) {
            horizontal(t.i0, &mut row0);
            horizontal(t.i1, &mut row1);
            cached = Some((t.i0, t.i1));
        }
        let (b0, b1) = (i32::from(t.w0), i32::from(t.w1));
        let dst = &mut out[y * row_len..(y + 1) * row_len];
        for ((d, &s0), &s1) in dst.iter_mut().zip(&row0).zip(&row1) {
            // v_mul_hi on 16-bit lanes of the >>4 pre-shifted sums, then a rounding shift by 2.
            let t0 = ((s0 >> 4).clamp(-32768, 32767) * b0) >> 16;
            let t1 = ((s1 >> 4).clamp(-32768, 32767) * b1) >> 16;
            *d = ((t0 + t1 + 2) >> 2).clamp(0, 255) as u8;
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

/// Exact 2x downscale by 2x2 averaging with rounding (OpenCV's `resizeAreaFast`).
fn halve(src: &RgbImage) -> RgbImage {
    let (w, h) = (src.width() / 2, src.height() / 2);
    let stride = src.width() as usize * 3;
    let raw = src.as_raw();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..h as usize {
        let (top, bottom) = (&raw[2 * y * stride..], &raw[(2 * y + 1) * stride..]);
        for x in 0..w as usize {
            for c in 0..3 {
                let i = 6 * x + c;
                let sum = u16::from(top[i])
                    + u16::from(top[i + 3])
                    + u16::from(bottom[i])
                    + u16::from(bottom[i + 3]);
                out.push(((sum + 2) >> 2) as u8);
            }
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer sized for the image")
}

/// 2x3 affine matrix `[[a, b, c], [d, e, f]]` mapping source (x, y) to destination
/// `(a x + b y + c, d x + e y + f)`, as `cv2.warpAffine` takes it.
pub type Affine = [[f64; 3]; 2];

/// `cv2.warpAffine(src, m, (width, height), flags=INTER_LINEAR, borderValue=0)`: each destination pixel
/// samples the source at the inverse-mapped point; samples outside the image count as black.
pub fn warp_affine(src: &RgbImage, m: &Affine, width: u32, height: u32) -> RgbImage {
    let inv = invert_affine(m).unwrap_or([[0.0; 3]; 2]);
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    let pixel = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= sw || y >= sh {
            0.0
        } else {
            f32::from(raw[((y * sw + x) * 3) as usize + c])
        }
    };
    let mut out = vec![0u8; width as usize * height as usize * 3];
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (f64::from(x), f64::from(y));
            let sx = inv[0][0] * fx + inv[0][1] * fy + inv[0][2];
            let sy = inv[1][0] * fx + inv[1][1] * fy + inv[1][2];
            let (x0, y0) = (sx.floor(), sy.floor());
            let (wx, wy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let base = (y as usize * width as usize + x as usize) * 3;
            for c in 0..3 {
                let top = pixel(x0, y0, c) * (1.0 - wx) + pixel(x0 + 1, y0, c) * wx;
                let bottom = pixel(x0, y0 + 1, c) * (1.0 - wx) + pixel(x0 + 1, y0 + 1, c) * wx;
                out[base + c] = round_u8(top * (1.0 - wy) + bottom * wy);
            }
        }
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

/// Inverse of an affine map, or `None` when it collapses the plane.
pub fn invert_affine(m: &Affine) -> Option<Affine> {
    let det = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    if det.abs() < 1e-12 || !det.is_finite() {
        return None;
    }
    let (a, b, d, e) = (m[1][1] / det, -m[0][1] / det, -m[1][0] / det, m[0][0] / det);
    Some([
        [a, b, -(a * m[0][2] + b * m[1][2])],
        [d, e, -(d * m[0][2] + e * m[1][2])],
    ])
}

#[inline]
fn round_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_pixel_pairs_like_opencv() {
        // cv2.resize of [[0, 100, 200, 250]] to width 2 gives [[50, 225]].
        let src = RgbImage::from_fn(4, 1, |x, _| {
            let v = [0u8, 100, 200, 250][x as usize];
            image::Rgb([v, v, v])
        });
        let out = resize_bilinear(&src, 2, 1);
        assert_eq!(out.get_pixel(0, 0).0[0], 50);
        assert_eq!(out.get_pixel(1, 0).0[0], 225);
    }

    #[test]
    fn upscaling_clamps_at_the_edges() {
        // cv2.resize of [[0, 255]] to width 4: taps at -0.25, 0.25, 0.75, 1.25 -> 0, 64, 191, 255.
        let src = RgbImage::from_fn(2, 1, |x, _| image::Rgb([if x == 0 { 0 } else { 255 }; 3]));
        let out = resize_bilinear(&src, 4, 1);
        let row: Vec<u8> = (0..4).map(|x| out.get_pixel(x, 0).0[0]).collect();
        assert_eq!(row, vec![0, 64, 191, 255]);
    }

    #[test]
    fn warp_by_a_translation_shifts_and_fills_black() {
        let src = RgbImage::from_fn(4, 4, |x, y| image::Rgb([(10 * (y * 4 + x)) as u8; 3]));
        let m = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]];
        let out = warp_affine(&src, &m, 4, 4);
        assert_eq!(
            out.get_pixel(0, 0).0[0],
            0,
            "left column comes from outside"
        );
        assert_eq!(out.get_pixel(1, 2).0[0], src.get_pixel(0, 2).0[0]);
        assert_eq!(out.get_pixel(3, 3).0[0], src.get_pixel(2, 3).0[0]);
    }

    #[test]
    fn inverse_of_a_similarity_round_trips() {
        let m = [[0.8, -0.6, 5.0], [0.6, 0.8, -3.0]];
        let inv = invert_affine(&m).unwrap();
        let (x, y) = (7.0, 11.0);
        let (u, v) = (
            m[0][0] * x + m[0][1] * y + m[0][2],
            m[1][0] * x + m[1][1] * y + m[1][2],
        );
        let (bx, by) = (
            inv[0][0] * u + inv[0][1] * v + inv[0][2],
            inv[1][0] * u + inv[1][1] * v + inv[1][2],
        );
        assert!((bx - x).abs() < 1e-9 && (by - y).abs() < 1e-9);
        assert!(invert_affine(&[[0.0; 3]; 2]).is_none());
    }
}
