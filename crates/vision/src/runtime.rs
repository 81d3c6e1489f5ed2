//! ONNX Runtime: the shared library (loaded at run time), the execution device and session options.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::error::RuntimeError;

/// Where inference runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// An NVIDIA GPU through ONNX Runtime's CUDA provider (needs a CUDA build of the library).
    Cuda { device_id: i32 },
}

impl FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda { device_id: 0 }),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(device_id)) if device_id >= 0 => Ok(Self::Cuda { device_id }),
                _ => Err(format!(
                    "unknown device '{s}': expected cpu, cuda or cuda:N"
                )),
            },
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda { device_id } => write!(f, "cuda:{device_id}"),
        }
    }
}

/// How sessions are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// Path of `libonnxruntime.so` (the onnxruntime wheel's, fetched by `scripts/setup.sh`).
    pub library: PathBuf,
    pub device: Device,
    /// Threads inside one inference. One per session and one session per worker gives the best
    /// throughput on small CPUs (measured ~30% over one 2-thread session on 2 cores).
    pub intra_threads: usize,
}

/// ONNX Runtime allows one environment per process, and the library can be loaded once.
static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

fn environment(library: &Path) -> Result<&'static Environment, RuntimeError> {
    if !library.is_file() {
        return Err(RuntimeError::LibraryMissing {
            path: library.to_owned(),
        });
    }
    let env = ENVIRONMENT.get_or_init(|| {
        let builder = ort::init_from(library).map_err(|e| e.to_string())?;
        builder
            .with_name("facerec")
            .with_telemetry(false)
            .build()
            .map_err(|e| e.to_string())
    });
    env.as_ref().map_err(|message| RuntimeError::LibraryLoad {
        path: library.to_owned(),
        message: message.clone(),
    })
}

/// Opens one model as an inference session on the configured device (public for benchmarks that time
/// bare model runs with the same settings).
pub fn open_session(model: &Path, config: &RuntimeConfig) -> Result<Session, RuntimeError> {
    let env = environment(&config.library)?;
    if !model.is_file() {
        return Err(RuntimeError::ModelMissing {
            path: model.to_owned(),
        });
    }
    let load_error = |e: &dyn fmt::Display| RuntimeError::ModelLoad {
        path: model.to_owned(),
        message: e.to_string(),
    };
    let mut builder = Session::builder(env)
        .map_err(|e| load_error(&e))?
        // Python's default, which the reference numbers were produced with (Level3 is not the same).
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| load_error(&e))?
        .with_intra_threads(config.intra_threads.max(1))
        .map_err(|e| load_error(&e))?
        .with_inter_threads(1)
        .map_err(|e| load_error(&e))?;
    if let Device::Cuda { device_id } = config.device {
        builder = builder
            .with_execution_providers([ort::ep::CUDA::default()
                .with_device_id(device_id)
                .build()
                .error_on_failure()])
            .map_err(|e| RuntimeError::DeviceUnavailable {
                device: config.device.to_string(),
                message: e.to_string(),
            })?;
    }
    builder.commit_from_file(model).map_err(|e| load_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices() {
        assert_eq!("cpu".parse(), Ok(Device::Cpu));
        assert_eq!("CUDA".parse(), Ok(Device::Cuda { device_id: 0 }));
        assert_eq!("cuda:2".parse(), Ok(Device::Cuda { device_id: 2 }));
        assert!("tpu".parse::<Device>().is_err());
        assert!("cuda:-1".parse::<Device>().is_err());
        assert_eq!(Device::Cuda { device_id: 1 }.to_string(), "cuda:1");
    }
}
