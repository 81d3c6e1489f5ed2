//! Decoding untrusted images: every EXIF orientation, every colour type, every error code.

use std::io::Cursor;

use facerec_vision::{decode_image, IngestError, IngestLimits, RgbImage};
use image::{DynamicImage, ImageBuffer, ImageEncoder, Luma, LumaA, Rgb, Rgba};
use support::jpeg;

mod support;

const RED: [u8; 3] = [230, 20, 20];
const GREEN: [u8; 3] = [20, 230, 20];
const BLUE: [u8; 3] = [20, 20, 230];
const WHITE: [u8; 3] = [250, 250, 250];

/// 32x16 with one colour per quadrant: the corners tell every rotation and mirror apart.
fn quadrants() -> RgbImage {
    RgbImage::from_fn(32, 16, |x, y| {
        Rgb(match (x < 16, y < 8) {
            (true, true) => RED,
            (false, true) => GREEN,
            (true, false) => BLUE,
            (false, false) => WHITE,
        })
    })
}

/// Inserts an APP1 Exif segment holding only the orientation tag right after SOI.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2A\x00\x00\x00\x08"); // big-endian TIFF header, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut payload = b"Exif\x00\x00".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn close(actual: &Rgb<u8>, expected: [u8; 3]) -> bool {
    actual
        .0
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= 12)
}

fn corners(image: &RgbImage) -> [Rgb<u8>; 4] {
    let (w, h) = image.dimensions();
    [
        *image.get_pixel(1, 1),
        *image.get_pixel(w - 2, 1),
        *image.get_pixel(1, h - 2),
        *image.get_pixel(w - 2, h - 2),
    ]
}

#[test]
fn applies_all_eight_exif_orientations() {
    let base = jpeg(&quadrants());
    // Expected (top-left, top-right, bottom-left, bottom-right) of the upright image, worked out from the
    // EXIF definitions: 2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 CW, 7 transverse,
    // 8 rotate 90 CCW.
    type Corners = [[u8; 3]; 4];
    let cases: [(u16, (u32, u32), Corners); 8] = [
        (1, (32, 16), [RED, GREEN, BLUE, WHITE]),
        (2, (32, 16), [GREEN, RED, WHITE, BLUE]),
        (3, (32, 16), [WHITE, BLUE, GREEN, RED]),
        (4, (32, 16), [BLUE, WHITE, RED, GREEN]),
        (5, (16, 32), [RED, BLUE, GREEN, WHITE]),
        (6, (16, 32), [BLUE, RED, WHITE, GREEN]),
        (7, (16, 32), [WHITE, GREEN, BLUE, RED]),
        (8, (16, 32), [GREEN, WHITE, RED, BLUE]),
    ];
    for (orientation, size, expected) in cases {
        let decoded = decode_image(
            &with_exif_orientation(&base, orientation),
            &IngestLimits::default(),
        )
        .unwrap_or_else(|e| panic!("orientation {orientation}: {e}"));
        assert_eq!(decoded.dimensions(), size, "orientation {orientation}");
        for (corner, (actual, want)) in corners(&decoded).iter().zip(expected).enumerate() {
            assert!(
                close(actual, want),
                "orientation {orientation}, corner {corner}: {actual:?} != {want:?}"
            );
        }
    }
}

fn png_of(image: DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[test]
fn every_colour_type_becomes_8_bit_rgb_like_opencv() {
    let limits = IngestLimits::default();
    let one = |bytes: Vec<u8>| *decode_image(&bytes, &limits).unwrap().get_pixel(0, 0);

    let grey = ImageBuffer::from_pixel(4, 4, Luma([77u8]));
    assert_eq!(
        one(png_of(DynamicImage::ImageLuma8(grey))),
        Rgb([77, 77, 77]),
        "grey replicated"
    );
    let grey_alpha = ImageBuffer::from_pixel(4, 4, LumaA([77u8, 0]));
    assert_eq!(
        one(png_of(DynamicImage::ImageLumaA8(grey_alpha))),
        Rgb([77, 77, 77]),
        "alpha dropped"
    );
    // Fully transparent pixels keep their colour: OpenCV drops alpha without compositing.
    let rgba = ImageBuffer::from_pixel(4, 4, Rgba([10u8, 20, 30, 0]));
    assert_eq!(
        one(png_of(DynamicImage::ImageRgba8(rgba))),
        Rgb([10, 20, 30])
    );
    let grey16 = ImageBuffer::from_pixel(4, 4, Luma([0xABCDu16]));
    assert_eq!(
        one(png_of(DynamicImage::ImageLuma16(grey16))),
        Rgb([0xAB; 3]),
        "16-bit keeps the high byte"
    );
    let rgb16 = ImageBuffer::from_pixel(4, 4, Rgb([0x1234u16, 0x5678, 0x9AFF]));
    assert_eq!(
        one(png_of(DynamicImage::ImageRgb16(rgb16))),
        Rgb([0x12, 0x56, 0x9A])
    );
    let rgba16 = ImageBuffer::from_pixel(4, 4, Rgba([0x1234u16, 0x5678, 0x9AFF, 0]));
    assert_eq!(
        one(png_of(DynamicImage::ImageRgba16(rgba16))),
        Rgb([0x12, 0x56, 0x9A])
    );

    // Palette PNG (the image crate does not write these; the png crate does).
    let mut palette_png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut palette_png, 2, 1);
        encoder.set_color(png::ColorType::Indexed);
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_palette(vec![1, 2, 3, 200, 150, 100]);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&[1, 0])
            .unwrap();
    }
    let decoded = decode_image(&palette_png, &limits).unwrap();
    assert_eq!(decoded.as_raw(), &vec![200, 150, 100, 1, 2, 3]);

    // Grey JPEG, BMP and lossless WebP.
    let mut grey_jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut grey_jpeg, 100)
        .encode_image(&ImageBuffer::from_pixel(16, 16, Luma([128u8])))
        .unwrap();
    let px = one(grey_jpeg);
    assert!(
        px.0[0] == px.0[1] && px.0[1] == px.0[2] && px.0[0].abs_diff(128) <= 1,
        "{px:?}"
    );
    let rgb = RgbImage::from_pixel(5, 3, Rgb([9, 99, 199]));
    let mut bmp = Vec::new();
    DynamicImage::ImageRgb8(rgb.clone())
        .write_to(&mut Cursor::new(&mut bmp), image::ImageFormat::Bmp)
        .unwrap();
    assert_eq!(decode_image(&bmp, &limits).unwrap(), rgb);
    let mut webp = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut webp)
        .write_image(rgb.as_raw(), 5, 3, image::ExtendedColorType::Rgb8)
        .unwrap();
    assert_eq!(decode_image(&webp, &limits).unwrap(), rgb);
}

#[test]
fn every_error_has_its_code() {
    let limits = IngestLimits::default();
    let code =
        |bytes: &[u8], limits: &IngestLimits| decode_image(bytes, limits).unwrap_err().code();
    let photo = jpeg(&quadrants());

    assert_eq!(code(b"", &limits), "empty_image");
    assert_eq!(
        code(b"name,score\nalice,1\n", &limits),
        "unsupported_format"
    );
    assert_eq!(
        code(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", &limits),
        "unsupported_format"
    );
    let small = IngestLimits {
        max_bytes: 100,
        ..limits
    };
    assert_eq!(code(&photo, &small), "image_too_large");
    let narrow = IngestLimits {
        max_side: 20,
        ..limits
    };
    assert_eq!(code(&photo, &narrow), "image_dimensions_too_large");
    let few_pixels = IngestLimits {
        max_pixels: 100,
        ..limits
    };
    assert_eq!(code(&photo, &few_pixels), "image_dimensions_too_large");
    assert_eq!(
        code(&photo[..photo.len() / 2], &limits),
        "corrupt_image",
        "truncated JPEG"
    );
    assert_eq!(
        code(&photo[..20], &limits),
        "corrupt_image",
        "JPEG header only"
    );
    let png = png_of(DynamicImage::ImageRgb8(quadrants()));
    assert_eq!(
        code(&png[..png.len() - 30], &limits),
        "corrupt_image",
        "truncated PNG"
    );
    let mut garbage = b"\xFF\xD8\xFF\xE0\x00\x10JFIF\x00".to_vec();
    garbage.extend(std::iter::repeat_n(0x5Au8, 500));
    assert_eq!(
        code(&garbage, &limits),
        "corrupt_image",
        "JPEG signature, then noise"
    );
    assert_eq!(
        code(b"\x89PNG\r\n\x1a\nnot really", &limits),
        "corrupt_image",
        "PNG signature, then noise"
    );

    let err = decode_image(&photo, &narrow).unwrap_err();
    assert!(matches!(
        err,
        IngestError::DimensionsTooLarge {
            width: 32,
            height: 16,
            ..
        }
    ));
    assert!(err.to_string().contains("32x16"), "{err}");
}

/// A JPEG with thousands of extra scans (the many-scans attack on progressive decoding) is refused
/// before libjpeg decodes it; the same JPEG without them decodes.
#[test]
fn a_jpeg_with_too_many_scans_is_refused_before_decoding() {
    let plain = jpeg(&quadrants());
    assert!(decode_image(&plain, &IngestLimits::default()).is_ok());
    let end = plain.len() - 2;
    assert_eq!(&plain[end..], [0xFF, 0xD9]);
    let mut hostile = plain[..end].to_vec();
    for _ in 0..5000 {
        // An SOS for component 1 (spectral selection 0..0, successive approximation 0) and one byte.
        hostile.extend_from_slice(&[
            0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x5A,
        ]);
    }
    hostile.extend_from_slice(&[0xFF, 0xD9]);
    let started = std::time::Instant::now();
    let err = decode_image(&hostile, &IngestLimits::default()).unwrap_err();
    assert!(matches!(err, IngestError::TooManyScans { .. }), "{err}");
    assert_eq!(err.code(), "too_many_scans");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}
