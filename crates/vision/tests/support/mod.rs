//! Shared by the integration tests: where the fetched models, runtime and photos are.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use facerec_vision::{AnalyzerConfig, Device, FaceAnalyzer, RuntimeConfig};

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Models and ONNX Runtime as `scripts/setup.sh` lays them out (or as FACEREC_* variables say).
pub fn analyzer() -> FaceAnalyzer {
    let vendor = workspace_root().join("vendor");
    let models = std::env::var_os("FACEREC_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or(vendor.join("models"));
    let config = AnalyzerConfig::with_models_dir(&models, runtime());
    FaceAnalyzer::load(&config).unwrap_or_else(|e| panic!("{e} — run `make setup-test` first"))
}

/// ONNX Runtime as `scripts/setup.sh` lays it out (or as FACEREC_ORT_LIB says), on the CPU.
pub fn runtime() -> RuntimeConfig {
    let library = std::env::var_os("FACEREC_ORT_LIB")
        .map(PathBuf::from)
        .unwrap_or(workspace_root().join("vendor/onnxruntime/libonnxruntime.so.1.32.0"));
    RuntimeConfig {
        library,
        device: Device::Cpu,
        intra_threads: 1,
    }
}

/// The photos fetched from registry packages, described by `fixtures/registry_reference.jsonl`.
pub fn registry_photos() -> (PathBuf, PathBuf) {
    let root = workspace_root();
    (
        root.join("fixtures/registry_reference.jsonl"),
        root.join("vendor/fixtures/registry"),
    )
}

/// `../shared/faces` beside the checkout, when this machine has it.
pub fn shared_faces() -> Option<PathBuf> {
    let dir = workspace_root().join("../shared/faces");
    dir.join("reference.jsonl").is_file().then_some(dir)
}

/// A baseline JPEG of `image` at quality 95 (the image crate's encoder).
pub fn jpeg(image: &image::RgbImage) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

/// One PNG chunk: length, type, data, CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}
