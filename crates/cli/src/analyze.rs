//! `facerec analyze`: the pipeline on image files, in the format of InsightFace's reference outputs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use facerec_vision::{Analysis, FaceAnalyzer, IngestLimits};
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
    kps: [[f32; 2]; 5],
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

pub fn run(args: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let mut analyzer = args.vision.load_analyzer()?;
    let limits = args.vision.ingest_limits();
    let mut failures = 0usize;
    for path in &args.images {
        let shown = path.to_string_lossy();
        match analyze_file(&mut analyzer, path, &limits) {
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

fn analyze_file(
    analyzer: &mut FaceAnalyzer,
    path: &PathBuf,
    limits: &IngestLimits,
) -> Result<Analysis, ErrorBody> {
    let bytes = std::fs::read(path).map_err(|e| ErrorBody {
        code: "unreadable_file",
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    analyzer
        .analyze_bytes(&bytes, limits)
        .map_err(|e| ErrorBody {
            code: e.code(),
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
                kps: f.detection.landmarks,
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
