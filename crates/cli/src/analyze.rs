//! `facerec analyze`: the pipeline on image files, in the format of InsightFace's reference outputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use facerec_core::ErrorCode;
use facerec_service::{AppError, Engine, EngineConfig};
use facerec_vision::{Analysis, IngestLimits, VisionError};
use futures_util::StreamExt;
use serde::Serialize;

use crate::vision_args::VisionArgs;

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    /// Print one JSON object per image (`path, width, height, n_faces, faces[...]`)
    #[arg(long)]
    json: bool,
    /// Image files (JPEG, PNG, WebP or BMP)
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Images analyzed at once, each on a one-thread model session [default: one per core]
    #[arg(long, env = "FACEREC_WORKERS")]
    workers: Option<usize>,
    #[command(flatten)]
    vision: VisionArgs,
}

#[derive(Serialize)]
struct ImageReport<'a> {
    path: &'a str,
    width: u32,
    height: u32,
    n_faces: usize,
    faces: Vec<FaceReport>,
}

#[derive(Serialize)]
struct FaceReport {
    bbox: [f32; 4],
    /// Named as the HTTP API names them.
    landmarks: [[f32; 2]; 5],
    det_score: f32,
    embedding: Vec<f32>,
    quality: facerec_vision::FaceQuality,
}

#[derive(Serialize)]
struct ErrorReport<'a> {
    path: &'a str,
    error: ErrorBody,
}

#[derive(Serialize)]
struct ErrorBody {
    code: &'static str,
    message: String,
}

/// Analyzes the images on the inference pool the server uses (one worker per core by default:
/// the models are small, so images split across cores far better than one image across threads),
/// and prints the results in the order of the arguments.
pub async fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let mut config = EngineConfig::new(args.vision.pack_set()?.default_only());
    config.workers = args.workers.unwrap_or(config.workers).max(1);
    // At most two images per worker are read and in flight, and the queue holds them all (the
    // engine refuses work beyond its queue); `buffered` yields them in input order.
    let in_flight = 2 * config.workers;
    config.queue = in_flight;
    let engine = config.start().await?;
    let limits = args.vision.ingest_limits();
    let engine = &engine;
    let mut results = futures_util::stream::iter(&args.images)
        .map(|path| async move { (path, analyze_file(engine, path, limits).await) })
        .buffered(in_flight);
    let mut failures = 0usize;
    while let Some((path, result)) = results.next().await {
        let shown = path.to_string_lossy();
        match result {
            Ok(analysis) => print_analysis(&shown, &analysis, args.json),
            Err(error) => {
                failures += 1;
                if args.json {
                    let report = ErrorReport {
                        path: &shown,
                        error,
                    };
                    println!("{}", serde_json::to_string(&report)?);
                } else {
                    println!("{shown}: error {}: {}", error.code, error.message);
                }
            }
        }
    }
    if failures > 0 {
        eprintln!("facerec: {failures} of {} images failed", args.images.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

async fn analyze_file(
    engine: &Engine,
    path: &Path,
    limits: IngestLimits,
) -> Result<Analysis, ErrorBody> {
    let bytes = tokio::fs::read(path).await.map_err(|e| ErrorBody {
        code: ErrorCode::UnreadableFile.as_str(),
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let models = engine.default_models();
    engine
        .run(move |analyzers| {
            analyzers.analyze_bytes_selecting(models, &bytes, &limits, Ok::<_, VisionError>, false)
        })
        .await
        .map_err(AppError::from)
        .and_then(|analysis| analysis.map_err(AppError::from))
        .map_err(|e| ErrorBody {
            code: e.code().as_str(),
            message: e.to_string(),
        })
}

fn print_analysis(path: &str, analysis: &Analysis, json: bool) {
    if !json {
        let faces: Vec<String> = analysis
            .faces
            .iter()
            .map(|f| {
                let b = f.detection.bbox;
                format!(
                    "{:.3} at [{:.0}, {:.0}, {:.0}, {:.0}]",
                    f.detection.score, b.x1, b.y1, b.x2, b.y2
                )
            })
            .collect();
        println!(
            "{path}: {}x{}, {} face(s){}{}",
            analysis.width,
            analysis.height,
            faces.len(),
            if faces.is_empty() { "" } else { ": " },
            faces.join("; ")
        );
        return;
    }
    let report = ImageReport {
        path,
        width: analysis.width,
        height: analysis.height,
        n_faces: analysis.faces.len(),
        faces: analysis
            .faces
            .iter()
            .map(|f| FaceReport {
                bbox: f.detection.bbox.to_array(),
                landmarks: f.detection.landmarks,
                det_score: f.detection.score,
                embedding: f.embedding.as_slice().to_vec(),
                quality: f.quality,
            })
            .collect(),
    };
    println!(
        "{}",
        serde_json::to_string(&report).expect("plain numbers and strings serialize")
    );
}
