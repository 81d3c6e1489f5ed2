//! `facerec serve`: the HTTP service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use facerec_server::api::auth::ApiKeys;
use facerec_server::api::HttpLimits;
use facerec_server::ServerConfig;

use crate::settings::{DatabaseArgs, MatchArgs};
use crate::vision_args::VisionArgs;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Without API keys only loopback addresses are allowed.
    #[arg(long, env = "FACEREC_BIND", default_value = "127.0.0.1:8000")]
    pub bind: SocketAddr,
    /// API keys, comma-separated (kept only as hashes in memory)
    #[arg(
        long,
        env = "FACEREC_API_KEYS",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub api_keys: Vec<String>,
    /// File with one API key per line (plain or sha256:<hex>)
    #[arg(long, env = "FACEREC_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Inference workers (each holds its own model sessions) [default: CPU cores]
    #[arg(long, env = "FACEREC_WORKERS")]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker before the server answers 503
    #[arg(long, env = "FACEREC_QUEUE", default_value_t = 16)]
    pub queue: usize,
    /// Largest request body, bytes
    #[arg(long, env = "FACEREC_MAX_BODY_BYTES", default_value_t = 12 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Longest a request may take, seconds
    #[arg(long, env = "FACEREC_REQUEST_TIMEOUT_SECS", default_value_t = 30)]
    pub request_timeout_secs: u64,
    /// Requests per minute per API key (0 = unlimited)
    #[arg(long, env = "FACEREC_RATE_LIMIT_PER_MINUTE", default_value_t = 600)]
    pub rate_limit_per_minute: u32,
    /// Origins allowed to call the API from other web pages, comma-separated (default: CORS off)
    #[arg(long, env = "FACEREC_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub matching: MatchArgs,
    #[command(flatten)]
    pub vision: VisionArgs,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut keys = ApiKeys::from_plain(args.api_keys.iter().map(String::as_str));
    if let Some(file) = &args.api_keys_file {
        keys.add_file(file).map_err(anyhow::Error::msg)?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = ServerConfig {
        bind: args.bind,
        database_url: args.database.database_url.clone(),
        store: args.database.store_options(),
        keys,
        analyzer: args.vision.analyzer_config()?,
        ingest: args.vision.ingest_limits(),
        workers: args.workers.unwrap_or(cores),
        queue: args.queue,
        http: HttpLimits {
            max_body_bytes: args.max_body_bytes,
            request_timeout: Duration::from_secs(args.request_timeout_secs),
            cors_origins: args
                .cors_origins
                .into_iter()
                .filter(|o| !o.trim().is_empty())
                .collect(),
        },
        rate_limit_per_minute: args.rate_limit_per_minute,
        threshold: args.matching.threshold()?,
        quality: args.matching.quality(),
    };
    facerec_server::serve(config).await?;
    Ok(())
}
