//! Settings shared by the subcommands that use the database and the matcher.

use std::path::{Path, PathBuf};

use clap::Args;
use facerec_core::{QualityPolicy, Threshold};
use facerec_service::{AppConfig, CalibrationConfig, EngineConfig, Retention};
use facerec_store::{HnswOptions, StoreOptions};
use std::sync::Arc;

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// sqlite://path/to/file.db (embedded, the default) or postgres://user:pass@host/db; its schema
    /// is migrated when opened, and a database written by a newer facerec is refused
    /// (`database_too_new`, naming both versions), unchanged
    #[arg(
        long,
        env = "FACEREC_DATABASE_URL",
        default_value = "sqlite://./data/facerec.db"
    )]
    pub database_url: String,
    /// A PostgreSQL hot standby for searches and reads (writes stay on --database-url)
    #[arg(long, env = "FACEREC_DATABASE_READ_URL")]
    pub database_read_url: Option<String>,
    /// Database connections: PostgreSQL's pool (8), SQLite's readers (4) [default: 8 or 4]
    #[arg(long, env = "FACEREC_DB_CONNECTIONS")]
    pub db_connections: Option<u32>,
    /// PostgreSQL HNSW index: graph degree (applies when the index is built)
    #[arg(long, env = "FACEREC_HNSW_M", default_value_t = HnswOptions::default().m)]
    pub hnsw_m: u32,
    /// PostgreSQL HNSW index: build-time candidate list (applies when the index is built)
    #[arg(long, env = "FACEREC_HNSW_EF_CONSTRUCTION", default_value_t = HnswOptions::default().ef_construction)]
    pub hnsw_ef_construction: u32,
    /// PostgreSQL HNSW index: query-time candidate list (recall vs speed); past ~300k faces set
    /// 400 (docs/CONFIGURATION.md, Limits)
    #[arg(long, env = "FACEREC_HNSW_EF_SEARCH", default_value_t = HnswOptions::default().ef_search)]
    pub hnsw_ef_search: u32,
}

impl DatabaseArgs {
    /// Opens (and migrates) the configured database: the one place a command picks its store.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn facerec_core::Store>> {
        Ok(facerec_store::open(&self.database_url, &self.store_options()).await?)
    }

    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            hnsw: HnswOptions {
                m: self.hnsw_m,
                ef_construction: self.hnsw_ef_construction,
                ef_search: self.hnsw_ef_search,
                ..HnswOptions::default()
            },
            max_connections: self.db_connections,
            read_url: self.database_read_url.clone(),
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct MatchArgs {
    /// The floor of the match threshold: the lowest cosine similarity that names someone; each
    /// collection's calibration raises it as far as its gallery needs (docs/CALIBRATION.md)
    #[arg(long, env = "FACEREC_MATCH_THRESHOLD", default_value_t = Threshold::default())]
    pub match_threshold: Threshold,
}

/// What registering needs besides the service: the enrollment quality policy and how long a
/// consent holds (`serve` and `enroll` only).
#[derive(Debug, Clone, Args)]
pub struct EnrollingArgs {
    #[command(flatten)]
    pub quality: QualityArgs,
    #[command(flatten)]
    pub retention: RetentionArgs,
}

impl EnrollingArgs {
    pub fn apply(&self, config: &mut AppConfig) {
        config.quality = self.quality.quality();
        config.retention = self.retention.retention();
    }
}

#[derive(Debug, Clone, Args)]
pub struct QualityArgs {
    /// Enrollment: smallest face accepted (shorter box side, pixels)
    #[arg(long, env = "FACEREC_MIN_FACE_PX", default_value_t = QualityPolicy::default().min_face_px)]
    pub min_face_px: f32,
    /// Enrollment: lowest detector confidence accepted
    #[arg(long, env = "FACEREC_MIN_DET_SCORE", default_value_t = QualityPolicy::default().min_det_score)]
    pub min_det_score: f32,
    /// Enrollment: lowest frontality accepted (0 = profile, 1 = frontal)
    #[arg(long, env = "FACEREC_MIN_FRONTALITY", default_value_t = QualityPolicy::default().min_frontality)]
    pub min_frontality: f32,
    /// Enrollment: lowest raw embedding norm accepted (blur/occlusion)
    #[arg(long, env = "FACEREC_MIN_EMBEDDING_NORM", default_value_t = QualityPolicy::default().min_embedding_norm)]
    pub min_embedding_norm: f32,
}

impl QualityArgs {
    pub fn quality(&self) -> QualityPolicy {
        QualityPolicy {
            min_face_px: self.min_face_px,
            min_det_score: self.min_det_score,
            min_frontality: self.min_frontality,
            min_embedding_norm: self.min_embedding_norm,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct CalibrationArgs {
    /// The share of strangers that may be named: the match threshold rises above
    /// --match-threshold (its floor) as far as the gallery's measured false-match rate needs
    #[arg(long, env = "FACEREC_TARGET_FPIR", default_value_t = CalibrationConfig::default().target_fpir)]
    pub target_fpir: f64,
    /// Persons sampled at most by a calibration (bounds its time on a large gallery)
    #[arg(long, env = "FACEREC_CALIBRATION_MAX_PERSONS", default_value_t = CalibrationConfig::default().max_persons)]
    pub calibration_max_persons: u32,
}

impl CalibrationArgs {
    pub fn calibration(&self) -> anyhow::Result<CalibrationConfig> {
        if !(self.target_fpir > 0.0 && self.target_fpir < 1.0) {
            anyhow::bail!("--target-fpir {} is outside (0, 1)", self.target_fpir);
        }
        if self.calibration_max_persons < 2 {
            anyhow::bail!("--calibration-max-persons must be at least 2");
        }
        Ok(CalibrationConfig {
            target_fpir: self.target_fpir,
            max_persons: self.calibration_max_persons,
            ..CalibrationConfig::default()
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct RetentionArgs {
    /// Days a person's consent holds when their registration gives no consent_expires_at (always,
    /// on the compatible APIs); the person is then deleted [default: until deleted]
    #[arg(long, env = "FACEREC_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,
}

impl RetentionArgs {
    pub fn retention(&self) -> Retention {
        Retention {
            default_days: self.retention_days,
            ..Retention::default()
        }
    }
}

/// What a long-running server does in the background (`facerec serve` only: the other
/// subcommands run once and list none of these).
#[derive(Debug, Clone, Args)]
pub struct BackgroundArgs {
    /// Seconds between two looks at the gallery: it recalibrates once the face count has changed
    /// by a tenth, and adopts what another replica computed
    #[arg(long, env = "FACEREC_CALIBRATION_CHECK_SECS", default_value_t = CalibrationConfig::default().check_every.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub calibration_check_secs: u64,
    /// Seconds between two sweeps for expired consent (and registration attempts older than a day)
    #[arg(long, env = "FACEREC_RETENTION_SWEEP_SECS", default_value_t = Retention::default().sweep_every.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub retention_sweep_secs: u64,
}

impl BackgroundArgs {
    /// Sets the background tasks' periods of a server's settings.
    pub fn apply(&self, config: &mut AppConfig) {
        config.calibration.check_every =
            std::time::Duration::from_secs(self.calibration_check_secs);
        config.retention.sweep_every = std::time::Duration::from_secs(self.retention_sweep_secs);
    }
}

/// Everything a subcommand needs to run the service's use cases: database, matching, models.
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub calibration: CalibrationArgs,
    #[command(flatten)]
    pub matching: MatchArgs,
    #[command(flatten)]
    pub vision: crate::vision_args::VisionArgs,
}

impl ServiceArgs {
    /// The app's settings, with `workers` inference workers (default: one per core) and room for
    /// `queue` jobs waiting.
    pub fn app_config(&self, workers: Option<usize>, queue: usize) -> anyhow::Result<AppConfig> {
        let mut engine = EngineConfig::new(self.vision.pack_set()?);
        engine.workers = workers.unwrap_or(engine.workers).max(1);
        engine.queue = queue;
        Ok(AppConfig {
            engine,
            ingest: self.vision.ingest_limits(),
            threshold: self.matching.match_threshold,
            // `EnrollingArgs::apply` sets them for the commands that register.
            quality: QualityPolicy::default(),
            retention: Retention::default(),
            calibration: self.calibration.calibration()?,
            webhook_addresses: Default::default(),
        })
    }
}

/// Paths of every file below `dir` (following links), sorted.
pub fn files_below(dir: &Path) -> Result<Vec<PathBuf>, walkdir::Error> {
    walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter(|entry| entry.as_ref().map_or(true, |e| !e.file_type().is_dir()))
        .map(|entry| entry.map(walkdir::DirEntry::into_path))
        .collect()
}
