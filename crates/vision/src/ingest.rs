//! Image ingestion: untrusted bytes in, an upright 8-bit RGB image out.
//!
//! The order of checks is the point of this module: size of the bytes, then the format by its signature,
//! then the dimensions from the header, and only then the full decode. A decompression bomb is refused
//! before a single pixel buffer is allocated.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::error::IngestError;

/// Limits applied to every image before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Largest accepted encoded size in bytes.
    pub max_bytes: usize,
    /// Largest accepted width x height.
    pub max_pixels: u64,
    /// Largest accepted width or height.
    pub max_side: u32,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            max_pixels: 40_000_000,
            max_side: 10_000,
        }
    }
}

/// The formats facerec accepts. Anything else is refused, whatever its name or content type claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    Jpeg,
    Png,
    WebP,
    Bmp,
}

impl ImageFormat {
    /// Identifies a format by its magic bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::WebP),
            [b'B', b'M', ..] if bytes.len() >= 26 => Some(Self::Bmp),
            _ => None,
        }
    }

    fn to_image_format(self) -> image::ImageFormat {
        match self {
            Self::Jpeg => image::ImageFormat::Jpeg,
            Self::Png => image::ImageFormat::Png,
            Self::WebP => image::ImageFormat::WebP,
            Self::Bmp => image::ImageFormat::Bmp,
        }
    }
}

/// Decodes untrusted bytes into an upright RGB image, or says precisely why not.
///
/// Colour handling follows OpenCV's `imread(IMREAD_COLOR)`, which produced the reference numbers this
/// project is held to: grey is replicated, alpha is dropped (not composited), 16-bit samples keep their
/// high byte, palettes are expanded. The EXIF orientation (all eight values) is applied.
pub fn decode_image(bytes: &[u8], limits: &IngestLimits) -> Result<RgbImage, IngestError> {
    if bytes.is_empty() {
        return Err(IngestError::Empty);
    }
    if bytes.len() > limits.max_bytes {
        return Err(IngestError::TooLarge {
            size: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let format = ImageFormat::sniff(bytes).ok_or(IngestError::UnsupportedFormat)?;
    // PNG states its size at a fixed place (IHDR comes first): refuse a bomb before any parsing.
    if let (ImageFormat::Png, Some(ihdr)) = (format, bytes.get(16..24)) {
        let width = u32::from_be_bytes([ihdr[0], ihdr[1], ihdr[2], ihdr[3]]);
        let height = u32::from_be_bytes([ihdr[4], ihdr[5], ihdr[6], ihdr[7]]);
        check_dimensions(width, height, limits)?;
    }

    let (mut image, orientation) = match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, limits)?,
        other => decode_with_image_crate(bytes, other, limits)?,
    };
    image.apply_orientation(orientation);
    Ok(to_rgb8_like_opencv(image))
}

/// JPEG through libjpeg (header, dimensions, Exif and pixels), after the cheap structural checks.
fn decode_jpeg(
    bytes: &[u8],
    limits: &IngestLimits,
) -> Result<(DynamicImage, Orientation), IngestError> {
    if !jpeg::has_end_of_image(bytes) {
        return Err(IngestError::Corrupt(
            "truncated JPEG: the end-of-image marker is missing".into(),
        ));
    }
    // libjpeg decodes a progressive JPEG scan by scan, each over the whole image: a file of
    // thousands of tiny scans takes minutes within the byte and pixel limits.
    let scans = jpeg::count_scans(bytes);
    if scans > jpeg::MAX_SCANS {
        return Err(IngestError::TooManyScans {
            scans,
            limit: jpeg::MAX_SCANS,
        });
    }
    match jpeg::decode_rgb(bytes, |width, height| {
        check_dimensions(width, height, limits)
    }) {
        Ok((rgb, exif)) => {
            // A broken Exif block is not worth refusing a photo for: it just stays as stored.
            let orientation = exif
                .and_then(|tiff| Orientation::from_exif_chunk(&tiff))
                .unwrap_or(Orientation::NoTransforms);
            Ok((DynamicImage::ImageRgb8(rgb), orientation))
        }
        Err(jpeg::Failure::Refused(err)) => Err(err),
        // libjpeg cannot convert a few rare variants (CMYK/YCCK) to RGB; the image crate can.
        // Where neither can, libjpeg's reason is the one to report.
        Err(jpeg::Failure::Libjpeg(reason)) => {
            decode_with_image_crate(bytes, ImageFormat::Jpeg, limits).map_err(|err| match err {
                IngestError::Corrupt(_) => IngestError::Corrupt(reason),
                other => other,
            })
        }
    }
}

fn decode_with_image_crate(
    bytes: &[u8],
    format: ImageFormat,
    limits: &IngestLimits,
) -> Result<(DynamicImage, Orientation), IngestError> {
    // The header is read without the decoder's own limits so that an oversized image gets our precise
    // error; the limits are armed before any pixel is decoded.
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format.to_image_format());
    reader.no_limits();
    let mut decoder = reader.into_decoder().map_err(classify)?;

    let (width, height) = decoder.dimensions();
    check_dimensions(width, height, limits)?;
    decoder
        .set_limits(decoder_limits(limits))
        .map_err(classify)?;

    // A broken EXIF block is not worth refusing a photo for: it just stays as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(classify)?;
    Ok((image, orientation))
}

fn check_dimensions(width: u32, height: u32, limits: &IngestLimits) -> Result<(), IngestError> {
    let too_large = width > limits.max_side
        || height > limits.max_side
        || u64::from(width) * u64::from(height) > limits.max_pixels;
    if too_large {
        return Err(IngestError::DimensionsTooLarge {
            width,
            height,
            max_pixels: limits.max_pixels,
            max_side: limits.max_side,
        });
    }
    if width == 0 || height == 0 {
        return Err(IngestError::Corrupt(format!(
            "{width}x{height} image has no pixels"
        )));
    }
    Ok(())
}

/// The decoder's own guard, a second line behind `check_dimensions`: 16-bit RGBA at the pixel limit,
/// plus the decoders' working buffers.
fn decoder_limits(limits: &IngestLimits) -> image::Limits {
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20));
    l
}

fn classify(err: image::ImageError) -> IngestError {
    match err {
        image::ImageError::Limits(e) => IngestError::Corrupt(format!("decoder limit reached: {e}")),
        image::ImageError::Unsupported(e) => {
            IngestError::Corrupt(format!("unsupported variant: {e}"))
        }
        other => IngestError::Corrupt(other.to_string()),
    }
}

/// JPEG through libjpeg-turbo's decoder (mozjpeg's copy of it), the decoder inside OpenCV.
mod jpeg {
    use image::RgbImage;

    use crate::error::IngestError;

    pub(super) enum Failure {
        /// Our own limits refused the image (its header announced too many pixels).
        Refused(IngestError),
        /// libjpeg could not decode it (corrupt, or a colour conversion it lacks).
        Libjpeg(String),
    }

    /// Decodes to RGB with libjpeg's defaults (accurate integer IDCT, fancy upsampling), after
    /// `check` has accepted the dimensions of the header; also returns the TIFF data of the first
    /// Exif block, for the orientation.
    pub(super) fn decode_rgb(
        bytes: &[u8],
        check: impl FnOnce(u32, u32) -> Result<(), IngestError>,
    ) -> Result<(RgbImage, Option<Vec<u8>>), Failure> {
        // libjpeg reports fatal errors by unwinding out of the C code (mozjpeg's "unwinding" error
        // manager); this is the boundary where they become values again.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let header = mozjpeg::Decompress::with_markers(&[mozjpeg::Marker::APP(1)])
                .from_mem(bytes)
                .map_err(|e| Failure::Libjpeg(e.to_string()))?;
            let (width, height) = (header.width() as u32, header.height() as u32);
            check(width, height).map_err(Failure::Refused)?;
            let exif = header
                .markers()
                .find_map(|m| m.data.strip_prefix(b"Exif\0\0"))
                .map(<[u8]>::to_vec);
            let pixels = (|| -> std::io::Result<Vec<u8>> {
                let mut started = header.rgb()?;
                let pixels = started.read_scanlines::<u8>()?;
                started.finish()?;
                Ok(pixels)
            })()
            .map_err(|e| Failure::Libjpeg(e.to_string()))?;
            let rgb = RgbImage::from_raw(width, height, pixels).ok_or_else(|| {
                Failure::Libjpeg("decoder returned fewer pixels than its header announced".into())
            })?;
            Ok((rgb, exif))
        }))
        .unwrap_or_else(|panic| {
            Err(Failure::Libjpeg(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "libjpeg failed".to_owned()),
            ))
        })
    }

    /// Whether an end-of-image marker follows the first scan. Entropy-coded data cannot contain the
    /// bytes FF D9 (an FF there is always followed by 00 or a restart marker), so their absence after the
    /// start of scan means the file was cut short; data appended after the marker (motion photos, vendor
    /// trailers) is fine. libjpeg itself only warns and pads a truncated image with grey.
    pub(super) fn has_end_of_image(bytes: &[u8]) -> bool {
        let Some(scan) = start_of_scan(bytes) else {
            return false;
        };
        bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9])
    }

    /// Scans accepted in one JPEG. libjpeg's default progression has 10, mozjpeg's optimized ones a
    /// few dozen; libjpeg-turbo advises a limit of a few hundred against the many-scans attack.
    pub(super) const MAX_SCANS: usize = 128;

    /// Number of scans (SOS markers), found by walking the marker segments, and through each scan's
    /// entropy-coded data to the next real marker (there, FF is only ever followed by 00 or a restart
    /// marker). Stops at EOI, at the end of the bytes, or once past `MAX_SCANS`.
    pub(super) fn count_scans(bytes: &[u8]) -> usize {
        let Some(mut i) = start_of_scan(bytes) else {
            return 0;
        };
        let mut scans = 0;
        while i + 4 <= bytes.len() && scans <= MAX_SCANS {
            match bytes[i + 1] {
                0xD9 => break,
                0xDA => {
                    scans += 1;
                    i = after_marker(bytes, i);
                    // Entropy-coded data up to the next marker that is not a stuffed byte or a restart.
                    while i + 1 < bytes.len() && !marker_at(bytes, i) {
                        i += 1;
                    }
                }
                _ => i = after_marker(bytes, i),
            }
        }
        scans
    }

    /// Whether a marker starts at `i` inside entropy-coded data: FF followed by anything but a
    /// stuffed 00, a restart marker or another FF (fill).
    fn marker_at(bytes: &[u8], i: usize) -> bool {
        bytes[i] == 0xFF && !matches!(bytes[i + 1], 0x00 | 0xD0..=0xD7 | 0xFF)
    }

    /// Where the segment of the marker at `i` ends (needs 4 bytes from `i`): a fill byte, a marker
    /// without a length, or a marker with its length-prefixed payload.
    fn after_marker(bytes: &[u8], i: usize) -> usize {
        match bytes[i + 1] {
            0xFF => i + 1,
            0x01 | 0xD0..=0xD7 => i + 2,
            _ => i + 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]])),
        }
    }

    /// Offset of the first SOS marker, found by walking the marker segments from SOI.
    fn start_of_scan(bytes: &[u8]) -> Option<usize> {
        let mut i = 2; // after SOI
        while i + 4 <= bytes.len() {
            if bytes[i] != 0xFF {
                return None;
            }
            if bytes[i + 1] == 0xDA {
                return Some(i);
            }
            i = after_marker(bytes, i);
        }
        None
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn finds_the_end_marker_only_after_the_scan() {
            // SOI, an APP1 segment whose payload contains FF D9 (a thumbnail), SOS, data, EOI.
            let complete = [
                0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x04, 0xFF, 0xD9, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF,
                0xD9,
            ];
            assert!(has_end_of_image(&complete));
            assert!(
                !has_end_of_image(&complete[..complete.len() - 2]),
                "cut before EOI"
            );
            assert!(!has_end_of_image(&complete[..8]), "no scan at all");
        }

        #[test]
        fn counts_scans_past_stuffed_bytes_restarts_and_tables() {
            // SOI, SOS + data with a stuffed FF 00 and a restart marker, a DHT whose payload holds
            // FF DA, a second SOS + data, EOI.
            let two = [
                0xFF, 0xD8, 0xFF, 0xDA, 0x00, 0x02, 0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56, 0xFF,
                0xC4, 0x00, 0x04, 0xFF, 0xDA, 0xFF, 0xDA, 0x00, 0x02, 0x78, 0xFF, 0xD9,
            ];
            assert_eq!(count_scans(&two), 2);
            let mut many = vec![0xFF, 0xD8];
            for _ in 0..1000 {
                many.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x02, 0x11]);
            }
            many.extend_from_slice(&[0xFF, 0xD9]);
            assert_eq!(
                count_scans(&many),
                MAX_SCANS + 1,
                "counting stops past the limit"
            );
        }
    }
}

fn to_rgb8_like_opencv(image: DynamicImage) -> RgbImage {
    match image {
        DynamicImage::ImageRgb8(rgb) => rgb,
        // 16-bit: OpenCV keeps the high byte (libpng's strip_16), where `to_rgb8` would round.
        DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => {
            let rgb16 = image.to_rgb16();
            let (w, h) = rgb16.dimensions();
            let data = rgb16
                .into_raw()
                .into_iter()
                .map(|v| (v >> 8) as u8)
                .collect();
            RgbImage::from_raw(w, h, data).expect("same dimensions, three channels")
        }
        // Grey is replicated and alpha dropped, as OpenCV does; `to_rgb8` does exactly that for 8-bit.
        other => other.to_rgb8(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_signature_not_name() {
        assert_eq!(
            ImageFormat::sniff(b"\xFF\xD8\xFF\xE0rest"),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(
            ImageFormat::sniff(b"\x89PNG\r\n\x1a\nrest"),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::WebP)
        );
        assert_eq!(ImageFormat::sniff(b"GIF89a...................."), None);
        assert_eq!(ImageFormat::sniff(b"hello, world"), None);
        assert_eq!(ImageFormat::sniff(b"BM"), None, "too short to be a BMP");
    }

    #[test]
    fn refuses_empty_and_oversized_bytes_before_anything_else() {
        let limits = IngestLimits {
            max_bytes: 4,
            ..Default::default()
        };
        assert_eq!(decode_image(b"", &limits), Err(IngestError::Empty));
        assert!(matches!(
            decode_image(b"\xFF\xD8\xFF\xE0xx", &limits),
            Err(IngestError::TooLarge { size: 6, limit: 4 })
        ));
    }
}
