//! A hostile image corpus, generated here (never real faces): rare encodings, animations, truncations,
//! polyglots, oversized metadata and extreme shapes. Each input must decode to the right pixels or be
//! refused with a stable 4xx code (every `IngestError` maps to a 4xx); never a panic or a hang.

use std::io::Cursor;
use std::sync::mpsc;
use std::time::Duration;

use facerec_vision::{decode_image, IngestError, IngestLimits, RgbImage};
use image::{DynamicImage, ImageEncoder, Rgb};
use support::{jpeg, png_chunk};

mod support;

/// Far beyond any decode of these small inputs; only a hang reaches it.
const HANG: Duration = Duration::from_secs(60);

/// Decodes on its own thread so that a hang fails the test (naming the case) instead of stalling it.
fn decode(case: &str, bytes: Vec<u8>) -> Result<RgbImage, IngestError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(decode_image(&bytes, &IngestLimits::default()));
    });
    match rx.recv_timeout(HANG) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{case}: decoding hung"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{case}: decoding panicked"),
    }
}

fn refused(case: &str, bytes: Vec<u8>) -> &'static str {
    match decode(case, bytes) {
        Ok(image) => panic!(
            "{case}: decoded to {:?}, expected a refusal",
            image.dimensions()
        ),
        Err(err) => err.code().as_str(),
    }
}

/// 24x16, a distinct colour per 8x8 block: a wrong decode of any region shows.
fn blocks() -> RgbImage {
    const COLOURS: [[u8; 3]; 6] = [
        [230, 20, 20],
        [20, 230, 20],
        [20, 20, 230],
        [240, 240, 240],
        [20, 20, 20],
        [230, 230, 20],
    ];
    RgbImage::from_fn(24, 16, |x, y| Rgb(COLOURS[(y / 8 * 3 + x / 8) as usize]))
}

/// Every pixel within `tolerance` of the expected one (lossy codecs blur block edges a little, so
/// only block centres are compared for them).
fn assert_looks_like(case: &str, actual: &RgbImage, expected: &RgbImage, tolerance: u8) {
    assert_eq!(actual.dimensions(), expected.dimensions(), "{case}");
    for (x, y, want) in expected.enumerate_pixels() {
        if tolerance > 0 && (x % 8 != 4 || y % 8 != 4) {
            continue;
        }
        let got = actual.get_pixel(x, y);
        let close = got
            .0
            .iter()
            .zip(want.0)
            .all(|(g, w)| g.abs_diff(w) <= tolerance);
        assert!(
            close,
            "{case}: pixel ({x},{y}) is {got:?}, expected {want:?}"
        );
    }
}

fn png(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image.clone())
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn webp(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::webp::WebPEncoder::new_lossless(&mut out)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn bmp(image: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(image.clone())
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Bmp)
        .unwrap();
    out
}

/// A JPEG encoded by libjpeg (mozjpeg) with the given settings, from RGB pixels converted to
/// `input` (RGB or CMYK) by `to_input`.
fn libjpeg(
    image: &RgbImage,
    input: mozjpeg::ColorSpace,
    to_input: impl Fn(&Rgb<u8>) -> Vec<u8>,
    configure: impl FnOnce(&mut mozjpeg::Compress),
) -> Vec<u8> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut compress = mozjpeg::Compress::new(input);
        compress.set_size(image.width() as usize, image.height() as usize);
        compress.set_quality(95.0);
        configure(&mut compress);
        let mut started = compress.start_compress(Vec::new()).unwrap();
        let samples: Vec<u8> = image.pixels().flat_map(&to_input).collect();
        started.write_scanlines(&samples).unwrap();
        started.finish().unwrap()
    }))
    .expect("libjpeg encodes")
}

/// CMYK as Adobe applications write it (inverted: 255 = no ink), which libjpeg stores as is.
fn adobe_cmyk(p: &Rgb<u8>) -> Vec<u8> {
    let [r, g, b] = p.0;
    let k = 255 - r.max(g).max(b);
    let ink = |c: u8| {
        if k == 255 {
            0
        } else {
            ((255 - c - k) as u32 * 255 / (255 - k) as u32) as u8
        }
    };
    vec![255 - ink(r), 255 - ink(g), 255 - ink(b), 255 - k]
}

/// A JPEG with arithmetic entropy coding (SOF9), which the `mozjpeg` wrapper cannot ask for: the
/// libjpeg API directly.
fn arithmetic_jpeg(image: &RgbImage) -> Vec<u8> {
    use mozjpeg_sys::*;
    unsafe extern "C-unwind" fn fail(cinfo: &mut jpeg_common_struct) {
        panic!("libjpeg error {}", unsafe { (*cinfo.err).msg_code });
    }
    // libjpeg writes into this buffer while it is large enough (it is, many times over); it would
    // only allocate a new one, which this test then checks for, if it were not.
    let mut buffer = vec![0u8; 1 << 20];
    let mut out_ptr = buffer.as_mut_ptr();
    let mut out_len = buffer.len() as std::os::raw::c_ulong;
    unsafe {
        let mut err: jpeg_error_mgr = std::mem::zeroed();
        let mut cinfo: jpeg_compress_struct = std::mem::zeroed();
        jpeg_std_error(&mut err);
        err.error_exit = Some(fail);
        cinfo.common.err = &mut err;
        jpeg_CreateCompress(
            &mut cinfo,
            JPEG_LIB_VERSION,
            size_of::<jpeg_compress_struct>(),
        );
        jpeg_mem_dest(&mut cinfo, &mut out_ptr, &mut out_len);
        cinfo.image_width = image.width();
        cinfo.image_height = image.height();
        cinfo.input_components = 3;
        cinfo.in_color_space = J_COLOR_SPACE::JCS_RGB;
        // libjpeg's classic settings: mozjpeg's default profile would plan optimized progressive scans.
        jpeg_c_set_int_param(
            &mut cinfo,
            J_INT_PARAM::JINT_COMPRESS_PROFILE,
            JINT_COMPRESS_PROFILE_VALUE::JCP_FASTEST as i32,
        );
        jpeg_set_defaults(&mut cinfo);
        jpeg_set_quality(&mut cinfo, 95, 1);
        cinfo.arith_code = 1;
        jpeg_start_compress(&mut cinfo, 1);
        for row in image.as_raw().chunks(image.width() as usize * 3) {
            let line = row.as_ptr();
            jpeg_write_scanlines(&mut cinfo, &line, 1);
        }
        jpeg_finish_compress(&mut cinfo);
        jpeg_destroy_compress(&mut cinfo);
    }
    assert_eq!(
        out_ptr,
        buffer.as_mut_ptr(),
        "libjpeg wrote into the given buffer"
    );
    buffer.truncate(out_len as usize);
    buffer
}

/// Inserts marker segments right after SOI.
fn with_segments(jpeg: &[u8], segments: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    for (marker, payload) in segments {
        out.extend_from_slice(&[0xFF, *marker]);
        out.extend_from_slice(&(u16::try_from(payload.len() + 2).unwrap()).to_be_bytes());
        out.extend_from_slice(payload);
    }
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// An Exif APP1 payload: a big-endian TIFF header and one IFD with the given entries
/// (tag, type, count, value), each value inline.
fn exif(entries: &[(u16, u16, u32, u32)], padding: usize) -> Vec<u8> {
    let mut out = b"Exif\0\0MM\x00\x2A\x00\x00\x00\x08".to_vec();
    out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for &(tag, kind, count, value) in entries {
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&count.to_be_bytes());
        // A SHORT sits in the first two bytes of the value field.
        let value = if kind == 3 { value << 16 } else { value };
        out.extend_from_slice(&value.to_be_bytes());
    }
    out.extend_from_slice(&0u32.to_be_bytes());
    out.resize(out.len() + padding, 0);
    out
}

/// A PNG written by hand, interlaced with Adam7 (which neither the image nor the png crate writes):
/// 8- or 16-bit RGB, the 16-bit samples being `v * 257` so that their high byte is `v`.
fn interlaced_png(image: &RgbImage, sixteen_bit: bool) -> Vec<u8> {
    const PASSES: [(u32, u32, u32, u32); 7] = [
        (0, 0, 8, 8),
        (4, 0, 8, 8),
        (0, 4, 4, 8),
        (2, 0, 4, 4),
        (0, 2, 2, 4),
        (1, 0, 2, 2),
        (0, 1, 1, 2),
    ];
    let (width, height) = image.dimensions();
    let mut raw = Vec::new();
    for (x0, y0, dx, dy) in PASSES {
        if x0 >= width || y0 >= height {
            continue; // an empty pass has no rows at all, not even filter bytes
        }
        for y in (y0..height).step_by(dy as usize) {
            raw.push(0); // filter: none
            for x in (x0..width).step_by(dx as usize) {
                for &v in &image.get_pixel(x, y).0 {
                    if sixteen_bit {
                        raw.extend_from_slice(&(u16::from(v) * 257).to_be_bytes());
                    } else {
                        raw.push(v);
                    }
                }
            }
        }
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[if sixteen_bit { 16 } else { 8 }, 2, 0, 0, 1]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(b"IDAT", &zlib_stored(&raw)));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A zlib stream of uncompressed ("stored") deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    out.extend_from_slice(&((b << 16) | a).to_be_bytes());
    out
}

/// An animated PNG: the default image, then a second frame of another colour.
fn apng(first: &RgbImage, second: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, first.width(), first.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_animated(2, 0).unwrap();
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(first.as_raw()).unwrap();
    writer.write_image_data(second.as_raw()).unwrap();
    writer.finish().unwrap();
    out
}

/// An animated WebP (VP8X + ANIM + two ANMF frames), each frame the lossless bitstream of `frames`.
fn animated_webp(frames: &[&RgbImage]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(kind);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
    }
    fn u24(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes()[..3]);
    }
    let (width, height) = frames[0].dimensions();
    let mut body = b"WEBP".to_vec();
    let mut vp8x = vec![0x02, 0, 0, 0]; // flags: animation
    u24(&mut vp8x, width - 1);
    u24(&mut vp8x, height - 1);
    chunk(&mut body, b"VP8X", &vp8x);
    chunk(&mut body, b"ANIM", &[0, 0, 0, 0, 0, 0]); // background, loop forever
    for frame in frames {
        let mut anmf = Vec::new();
        u24(&mut anmf, 0);
        u24(&mut anmf, 0);
        u24(&mut anmf, width - 1);
        u24(&mut anmf, height - 1);
        u24(&mut anmf, 100); // duration, ms
        anmf.push(0b10); // no blending, no disposal
        anmf.extend_from_slice(&webp(frame)[12..]); // the VP8L chunk, after RIFF/size/WEBP
        chunk(&mut body, b"ANMF", &anmf);
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A minimal ZIP archive (one stored file), as appended to a JPEG in a polyglot.
fn zip() -> Vec<u8> {
    let mut out = b"PK\x03\x04\x14\x00\x00\x00\x00\x00".to_vec();
    out.extend_from_slice(&[0; 16]); // time, date, crc, sizes
    out.extend_from_slice(&[5, 0, 0, 0]); // name length 5, no extra
    out.extend_from_slice(b"a.txt");
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 18]);
    out
}

#[test]
fn rare_jpeg_encodings_decode_to_the_right_pixels() {
    let expected = blocks();
    let rgb = |p: &Rgb<u8>| p.0.to_vec();

    let cmyk = libjpeg(&expected, mozjpeg::ColorSpace::JCS_CMYK, adobe_cmyk, |_| {});
    assert_looks_like("CMYK JPEG", &decode("CMYK", cmyk).unwrap(), &expected, 16);

    let ycck = libjpeg(&expected, mozjpeg::ColorSpace::JCS_CMYK, adobe_cmyk, |c| {
        c.set_color_space(mozjpeg::ColorSpace::JCS_YCCK)
    });
    assert_looks_like("YCCK JPEG", &decode("YCCK", ycck).unwrap(), &expected, 16);

    let arithmetic = arithmetic_jpeg(&expected);
    assert!(
        arithmetic.windows(2).any(|w| w == [0xFF, 0xC9]),
        "SOF9: arithmetic coding"
    );
    assert_looks_like(
        "arithmetic JPEG",
        &decode("arithmetic", arithmetic).unwrap(),
        &expected,
        16,
    );

    let progressive = libjpeg(&expected, mozjpeg::ColorSpace::JCS_RGB, rgb, |c| {
        c.set_progressive_mode();
        c.set_optimize_scans(true);
    });
    assert_looks_like(
        "progressive JPEG",
        &decode("progressive", progressive).unwrap(),
        &expected,
        16,
    );
}

#[test]
fn interlaced_and_16_bit_png_decode_exactly() {
    let expected = blocks();
    let eight = decode("interlaced PNG", interlaced_png(&expected, false)).unwrap();
    assert_looks_like("interlaced 8-bit PNG", &eight, &expected, 0);
    let sixteen = decode("interlaced 16-bit PNG", interlaced_png(&expected, true)).unwrap();
    assert_looks_like("interlaced 16-bit PNG", &sixteen, &expected, 0);
}

/// Animations: the first frame is the photo (what a browser shows before playing, and the default
/// image of an APNG).
#[test]
fn animations_decode_to_their_first_frame() {
    let first = blocks();
    let second = RgbImage::from_pixel(24, 16, Rgb([7, 7, 7]));
    let decoded = decode("APNG", apng(&first, &second)).unwrap();
    assert_looks_like("APNG", &decoded, &first, 0);
    let decoded = decode("animated WebP", animated_webp(&[&first, &second])).unwrap();
    assert_looks_like("animated WebP", &decoded, &first, 0);
}

#[test]
fn truncated_files_of_every_format_are_refused() {
    let image = blocks();
    let cases = [
        ("JPEG", jpeg(&image)),
        ("PNG", png(&image)),
        ("WebP", webp(&image)),
        ("BMP", bmp(&image)),
        ("interlaced PNG", interlaced_png(&image, false)),
        ("animated WebP", animated_webp(&[&image, &image])),
    ];
    for (format, bytes) in cases {
        for keep in [1, 8, 30, bytes.len() / 3, bytes.len() / 2, bytes.len() - 16] {
            let case = format!("{format} cut to {keep} of {} bytes", bytes.len());
            if format == "animated WebP" && keep > bytes.len() / 2 {
                // Cut inside the last frame: the first frame, which is what is decoded, is whole.
                assert_looks_like(
                    &case,
                    &decode(&case, bytes[..keep].to_vec()).unwrap(),
                    &image,
                    0,
                );
                continue;
            }
            let code = refused(&case, bytes[..keep].to_vec());
            assert!(
                matches!(code, "corrupt_image" | "unsupported_format"),
                "{case}: {code}"
            );
        }
    }
}

#[test]
fn a_jpeg_zip_polyglot_decodes_as_the_jpeg() {
    let image = blocks();
    let plain = decode("JPEG", jpeg(&image)).unwrap();
    let mut polyglot = jpeg(&image);
    polyglot.extend_from_slice(&zip());
    assert_eq!(decode("JPEG+ZIP", polyglot).unwrap(), plain);
}

#[test]
fn hostile_exif_is_ignored_not_obeyed() {
    let image = blocks();
    let plain = decode("JPEG", jpeg(&image)).unwrap();

    for orientation in [0, 9, 255, 65_535] {
        let bytes = with_segments(
            &jpeg(&image),
            &[(0xE1, exif(&[(0x0112, 3, 1, orientation)], 0))],
        );
        let decoded = decode(&format!("orientation {orientation}"), bytes).unwrap();
        assert_eq!(
            decoded, plain,
            "orientation {orientation} is not one of 1-8: kept as stored"
        );
    }

    // One maximal Exif segment whose IFD claims 65,535 entries and points far outside the file,
    // followed by 100 more maximal APP1 segments (6.5 MB of metadata in a 10 MB budget).
    let mut lying = exif(&[(0x8769, 4, u32::MAX, u32::MAX)], 0);
    lying[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
    lying.resize(65_533, 0xAB);
    let mut segments = vec![(0xE1, lying)];
    segments.extend((0..100).map(|_| (0xE1, vec![0x5A; 65_533])));
    let bytes = with_segments(&jpeg(&image), &segments);
    assert!(bytes.len() > 6_500_000);
    assert_eq!(decode("huge EXIF", bytes).unwrap(), plain);
}

#[test]
fn extreme_shapes_decode_up_to_the_limit_and_no_further() {
    let dot = RgbImage::from_pixel(1, 1, Rgb([200, 100, 50]));
    assert_eq!(decode("1x1 PNG", png(&dot)).unwrap(), dot);
    assert_looks_like(
        "1x1 JPEG",
        &decode("1x1 JPEG", jpeg(&dot)).unwrap(),
        &dot,
        8,
    );
    assert_eq!(decode("1x1 WebP", webp(&dot)).unwrap(), dot);

    let max_side = IngestLimits::default().max_side;
    let line = RgbImage::from_fn(max_side, 1, |x, _| Rgb([(x % 251) as u8, 0, 255]));
    assert_eq!(decode("10000x1 PNG", png(&line)).unwrap(), line);
    let column = RgbImage::from_fn(1, max_side, |_, y| Rgb([0, (y % 251) as u8, 0]));
    assert_eq!(decode("1x10000 PNG", png(&column)).unwrap(), column);

    let too_long = RgbImage::from_pixel(max_side + 1, 1, Rgb([1, 2, 3]));
    assert_eq!(
        refused("10001x1 PNG", png(&too_long)),
        "image_dimensions_too_large"
    );
    assert_eq!(
        refused("10001x1 JPEG", jpeg(&too_long)),
        "image_dimensions_too_large"
    );
    assert_eq!(refused("zero-length", Vec::new()), "empty_image");
}
