//! Webcam-like frames for the stream tests and the soak example (`#[path]`-included there).

use std::io::Cursor;

/// A 640x480 video frame with the photo in its middle, as a webcam would send it.
pub fn frame_from(photo: &[u8]) -> Vec<u8> {
    let photo = image::load_from_memory(photo).unwrap().to_rgb8();
    let photo = image::imageops::resize(
        &photo,
        300,
        300 * photo.height() / photo.width(),
        image::imageops::FilterType::Triangle,
    );
    let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([40, 40, 40]));
    let (x, y) = (
        (640 - photo.width()) / 2,
        (480 - photo.height().min(480)) / 2,
    );
    image::imageops::overlay(&mut canvas, &photo, x.into(), y.into());
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(canvas)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Jpeg)
        .unwrap();
    out
}
