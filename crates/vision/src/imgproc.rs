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

/// Bilinear resize of an RGB image, bit-exact with `cv2.resize(img, (width, height))` on x86 (tested
/// against OpenCV: 0.04% of values differ, by one level): integer horizontal pass, then OpenCV's SIMD
/// vertical blend (`VResizeLinearVec_32s8u`), whose rounding differs from the textbook formula. Exact halving takes OpenCV's INTER_AREA
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
    // Horizontal pass into integer rows (scaled by 2048), then the vertical blend. Two source rows are
    // kept; when the next output row moves down by one source row, the lower one is reused as the upper.
    // Rows hold the horizontal sums already shifted right by 4, as OpenCV's vertical pass takes them:
    // 255 * 2048 >> 4 = 32640 fits an i16, so the blend below runs in 16-bit lanes (pmulhw) like OpenCV.
    let horizontal = |y: usize, row: &mut [i16]| {
        let line = &raw[y * src_stride..(y + 1) * src_stride];
        for (t, out) in xs.iter().zip(row.chunks_exact_mut(3)) {
            let (a, b) = (&line[t.i0 * 3..t.i0 * 3 + 3], &line[t.i1 * 3..t.i1 * 3 + 3]);
            let (w0, w1) = (i32::from(t.w0), i32::from(t.w1));
            for c in 0..3 {
                out[c] = ((i32::from(a[c]) * w0 + i32::from(b[c]) * w1) >> 4) as i16;
            }
        }
    };
    let mut upper = (usize::MAX, vec![0i16; row_len]);
    let mut lower = (usize::MAX, vec![0i16; row_len]);
    for (t, dst) in ys.iter().zip(out.chunks_exact_mut(row_len)) {
        if upper.0 != t.i0 {
            if lower.0 == t.i0 {
                std::mem::swap(&mut upper, &mut lower);
            } else {
                horizontal(t.i0, &mut upper.1);
                upper.0 = t.i0;
            }
        }
        if lower.0 != t.i1 {
            horizontal(t.i1, &mut lower.1);
            lower.0 = t.i1;
        }
        vertical_blend(dst, &upper.1, &lower.1, t.w0, t.w1);
    }
    RgbImage::from_raw(width, height, out).expect("buffer sized for the image")
}

/// `dst = (mulhi(s0, b0) + mulhi(s1, b1) + 2) >> 2`, saturated to u8: OpenCV's vertical pass, in the
/// same 16-bit lanes (the scalar formula is the same arithmetic, for the row's tail).
fn vertical_blend(dst: &mut [u8], s0: &[i16], s1: &[i16], b0: i16, b1: i16) {
    use wide::{i16x8, u8x16};
    let (vb0, vb1, two) = (i16x8::splat(b0), i16x8::splat(b1), i16x8::splat(2));
    let lanes = |a: &[i16]| i16x8::from(<[i16; 8]>::try_from(a).expect("8 lanes"));
    let mut d_chunks = dst.chunks_exact_mut(16);
    let (mut a_chunks, mut b_chunks) = (s0.chunks_exact(16), s1.chunks_exact(16));
    for ((d, a), b) in (&mut d_chunks).zip(&mut a_chunks).zip(&mut b_chunks) {
        let low =
            (lanes(&a[..8]).mul_keep_high(vb0) + lanes(&b[..8]).mul_keep_high(vb1) + two) >> 2;
        let high =
            (lanes(&a[8..]).mul_keep_high(vb0) + lanes(&b[8..]).mul_keep_high(vb1) + two) >> 2;
        d.copy_from_slice(&u8x16::narrow_i16x8(low, high).to_array());
    }
    let tail = d_chunks
        .into_remainder()
        .iter_mut()
        .zip(a_chunks.remainder())
        .zip(b_chunks.remainder());
    for ((d, &a), &b) in tail {
        let t0 = ((i32::from(a) * i32::from(b0)) >> 16) as i16;
        let t1 = ((i32::from(b) * i32::from(b1)) >> 16) as i16;
        *d = ((t0 + t1 + 2) >> 2).clamp(0, 255) as u8;
    }
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
