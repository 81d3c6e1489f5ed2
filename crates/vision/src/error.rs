//! Errors of the vision layer. Each carries a stable machine-readable code; the HTTP layer maps them to
//! statuses in one place and never needs to parse messages.

use std::path::PathBuf;

pub use facerec_types::ErrorCode;

/// Why untrusted image bytes were refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IngestError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("unsupported image format: expected JPEG, PNG, WebP or BMP (detected by content, not by name)")]
    UnsupportedFormat,
    #[error("the image is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(
        "the image is {width}x{height} pixels, beyond the limit ({max_pixels} pixels, longest side {max_side})"
    )]
    DimensionsTooLarge {
        width: u32,
        height: u32,
        max_pixels: u64,
        max_side: u32,
    },
    #[error("the image could not be decoded: {0}")]
    Corrupt(String),
    #[error(
        "the JPEG has {scans} scans, more than the limit of {limit}: a progressive JPEG needs about \
         10; thousands only make decoding slow"
    )]
    TooManyScans { scans: usize, limit: usize },
}

impl IngestError {
    /// Stable code for API clients; never change an existing one.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Empty => ErrorCode::EmptyImage,
            Self::UnsupportedFormat => ErrorCode::UnsupportedFormat,
            Self::TooLarge { .. } => ErrorCode::ImageTooLarge,
            Self::DimensionsTooLarge { .. } => ErrorCode::ImageDimensionsTooLarge,
            Self::Corrupt(_) => ErrorCode::CorruptImage,
            Self::TooManyScans { .. } => ErrorCode::TooManyScans,
        }
    }
}

/// Failures of the model runtime: loading ONNX Runtime or a model, or running inference.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("ONNX Runtime library not found at {path} (run `make setup`, or set FACEREC_ORT_LIB)")]
    LibraryMissing { path: PathBuf },
    #[error("could not load ONNX Runtime from {path}: {message}")]
    LibraryLoad { path: PathBuf, message: String },
    #[error("model file not found: {path} (run `make setup`, or set FACEREC_MODELS_DIR)")]
    ModelMissing { path: PathBuf },
    #[error("could not load model {path}: {message}")]
    ModelLoad { path: PathBuf, message: String },
    #[error("the {device} execution provider is not available: {message}")]
    DeviceUnavailable { device: String, message: String },
    #[error("unexpected model signature in {model}: {message}")]
    ModelSignature { model: String, message: String },
    #[error("inference failed: {0}")]
    Inference(String),
}

impl RuntimeError {
    /// A signature error names the file it was found in (a pack has several models).
    pub(crate) fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            Self::ModelSignature { model, message } => Self::ModelSignature {
                model: format!("{model} {}", path.display()),
                message,
            },
            other => other,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::LibraryMissing { .. } | Self::LibraryLoad { .. } => ErrorCode::RuntimeUnavailable,
            Self::ModelMissing { .. } | Self::ModelLoad { .. } | Self::ModelSignature { .. } => {
                ErrorCode::ModelUnavailable
            }
            Self::DeviceUnavailable { .. } => ErrorCode::DeviceUnavailable,
            Self::Inference(_) => ErrorCode::InferenceFailed,
        }
    }
}

impl From<ort::Error> for RuntimeError {
    fn from(err: ort::Error) -> Self {
        Self::Inference(err.to_string())
    }
}

/// Any failure of the face pipeline on one image.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl VisionError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Ingest(e) => e.code(),
            Self::Runtime(e) => e.code(),
        }
    }
}
