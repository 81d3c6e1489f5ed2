//! Settings of the face pipeline shared by every subcommand that runs the models.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use facerec_service::{ModelPacks, PackSet};
use facerec_vision::{DetectorConfig, Device, IngestLimits, ModelPack, RuntimeConfig};

/// Where `scripts/setup.sh` puts its downloads, relative to the repository root.
const VENDOR_DIR: &str = "vendor";
const ORT_LIBRARY: &str = "onnxruntime/libonnxruntime.so.1.32.0";
/// Where `make dist` puts them, beside the binary.
const DIST_MODELS: &str = "models";
const DIST_ORT_LIBRARY: &str = "lib/libonnxruntime.so.1.32.0";

/// Where the model packs are, and which is the default.
#[derive(Debug, Clone, Args)]
pub struct PackArgs {
    /// Folder with scrfd_500m_bnkps.onnx and w600k_mbf.onnx, the built-in pack buffalo_s
    /// [default: vendor/models, found from the working directory or beside the binary; models/
    /// beside the binary of a `make dist` tree]
    #[arg(long, env = "FACEREC_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Folder of further model packs, one sub-folder each (buffalo_l, buffalo_m, antelopev2, or
    /// any with a pack.json); every file is checked by sha256 and shape at start
    #[arg(long, env = "FACEREC_MODEL_PACKS")]
    pub model_packs: Option<PathBuf>,
    /// The pack a new collection is bound to when it names none
    #[arg(long, env = "FACEREC_DEFAULT_PACK", default_value = facerec_vision::pack::BUILT_IN_PACK)]
    pub default_pack: String,
}

impl PackArgs {
    /// Every pack, each file hashed and checked against its stated sha256.
    pub fn packs(&self) -> anyhow::Result<ModelPacks> {
        let models_dir = match &self.models_dir {
            Some(dir) => dir.clone(),
            None => find_vendored("models", DIST_MODELS)
                .context("model folder not found: run `make setup` or set FACEREC_MODELS_DIR")?,
        };
        let packs = ModelPack::open_all(&models_dir, self.model_packs.as_deref())?;
        ModelPacks::new(packs, &self.default_pack)
            .map_err(|e| anyhow::anyhow!("--default-pack: {e}"))
    }
}

#[derive(Debug, Clone, Args)]
pub struct VisionArgs {
    #[command(flatten)]
    pub packs: PackArgs,
    /// Path of libonnxruntime.so [default: vendor/onnxruntime/libonnxruntime.so.1.32.0, found as the
    /// models are; lib/ beside the binary of a `make dist` tree]
    #[arg(long, env = "FACEREC_ORT_LIB")]
    pub ort_lib: Option<PathBuf>,
    /// Inference device: cpu, or cuda / cuda:N with a CUDA build of ONNX Runtime (else a clear
    /// error at start)
    #[arg(long, env = "FACEREC_DEVICE", default_value = "cpu")]
    pub device: Device,
    /// Threads inside one inference
    #[arg(long, env = "FACEREC_INTRA_THREADS", default_value_t = 1)]
    pub intra_threads: usize,
    /// Side of the detector's square input (a multiple of 32)
    #[arg(long, env = "FACEREC_DET_SIZE", default_value_t = DetectorConfig::default().input_size)]
    pub det_size: u32,
    /// Minimum detection score
    #[arg(long, env = "FACEREC_DET_THRESHOLD", default_value_t = DetectorConfig::default().score_threshold)]
    pub det_threshold: f32,
    /// Largest accepted image file, in bytes
    #[arg(long, env = "FACEREC_MAX_IMAGE_BYTES", default_value_t = IngestLimits::default().max_bytes)]
    pub max_image_bytes: usize,
    /// Largest accepted image, in pixels (width x height)
    #[arg(long, env = "FACEREC_MAX_IMAGE_PIXELS", default_value_t = IngestLimits::default().max_pixels)]
    pub max_image_pixels: u64,
    /// Largest accepted image side, in pixels
    #[arg(long, env = "FACEREC_MAX_IMAGE_SIDE", default_value_t = IngestLimits::default().max_side)]
    pub max_image_side: u32,
}

impl VisionArgs {
    pub fn ingest_limits(&self) -> IngestLimits {
        IngestLimits {
            max_bytes: self.max_image_bytes,
            max_pixels: self.max_image_pixels,
            max_side: self.max_image_side,
        }
    }

    /// The model packs to load: the built-in `buffalo_s` from the models folder, and every
    /// sub-folder of `--model-packs`; every file hashed and checked here, before anything loads.
    pub fn pack_set(&self) -> anyhow::Result<PackSet> {
        let packs = self.packs.packs()?;
        let library = match &self.ort_lib {
            Some(path) => path.clone(),
            None => find_vendored(ORT_LIBRARY, DIST_ORT_LIBRARY).context(
                "ONNX Runtime library not found: run `make setup` or set FACEREC_ORT_LIB",
            )?,
        };
        Ok(PackSet {
            packs,
            runtime: RuntimeConfig {
                library,
                device: self.device,
                intra_threads: self.intra_threads,
            },
            detector: DetectorConfig {
                input_size: self.det_size,
                score_threshold: self.det_threshold,
                ..DetectorConfig::default()
            },
        })
    }
}

/// Looks for `vendor/<relative>` in the working directory, then `<in_dist>` beside the binary (a
/// `make dist` tree, run from any folder), then `vendor/<relative>` above the binary
/// (`target/release/facerec` -> `vendor/`).
fn find_vendored(relative: &str, in_dist: &str) -> Option<PathBuf> {
    let from_cwd = Path::new(VENDOR_DIR).join(relative);
    if from_cwd.exists() {
        return Some(from_cwd);
    }
    let exe = std::env::current_exe().ok()?;
    let beside = exe.parent()?.join(in_dist);
    if beside.exists() {
        return Some(beside);
    }
    exe.ancestors()
        .skip(1)
        .take(4)
        .map(|dir| dir.join(VENDOR_DIR).join(relative))
        .find(|candidate| candidate.exists())
}
