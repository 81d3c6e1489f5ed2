//! `facerec`: the face recognition service and its command-line tools.

mod analyze;
mod keys;
mod local;
mod remote;
mod serve;
mod settings;
#[cfg(test)]
mod settings_table;
mod vision_args;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Buffers at least this large are mapped on their own and unmapped when freed.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// glibc raises its mmap threshold each time a mapped buffer is freed, so after one burst of uploads
/// the next 10 MiB buffers come from heap arenas that it keeps: RSS stayed ~120 MiB above idle after
/// a flood. A fixed threshold keeps every large buffer (uploads, decoded images) mapped, and its
/// memory goes back to the system as soon as it is freed. (mimalloc kept more: docs/BENCHMARKS.md.)
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called first thing in main, before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "facerec",
    version,
    about = "Face registration and recognition with InsightFace models",
    after_help = "Settings come from flags, then FACEREC_* environment variables, then a .env file in the \
                  working directory, then defaults."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (coloured only on a terminal) or as JSON, one object per line (time,
    /// level, target, message, fields, and the request's id and route within a request)
    #[arg(long, global = true, env = "FACEREC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// What to log: error, warn, info, debug or trace, or a filter such as
    /// `info,facerec_service=debug`. RUST_LOG (then FACEREC_LOG), when set, wins. At info and
    /// above no line names a person, a person's id or a key
    #[arg(long, global = true, env = "FACEREC_LOG_LEVEL", default_value = "info")]
    log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service
    Serve(Box<serve::ServeArgs>),
    /// Detect and embed every face in images; one line per image (JSON with --json)
    Analyze(analyze::AnalyzeArgs),
    /// Register a folder of <person name>/<photos> (idempotent)
    Enroll(Box<local::EnrollArgs>),
    /// Say who is in each photo
    Identify(Box<local::IdentifyArgs>),
    /// Recalibrate the match threshold from the gallery now (see --target-fpir)
    Calibrate(Box<local::CalibrateArgs>),
    /// Create or upgrade the database schema, then exit
    Migrate(local::MigrateArgs),
    /// Copy the SQLite database, consistently, while a server may be using it
    Backup(local::BackupArgs),
    /// Replace the SQLite database by a checked backup (refused while a server holds it)
    Restore(local::RestoreArgs),
    /// API keys: kept in the database, scoped to a collection
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Collections: a gallery per application
    #[command(subcommand)]
    Collections(keys::CollectionsCommand),
}

fn main() -> ExitCode {
    return_large_buffers_to_the_system();
    // .env fills only what the environment leaves unset: flags > environment > .env > defaults.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    init_tracing(cli.log_format, &cli.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Analyze(args) => analyze::run(args).await,
            Command::Enroll(args) => local::enroll(*args).await,
            Command::Identify(args) => local::identify(*args).await,
            Command::Calibrate(args) => local::calibrate(*args).await.map(|()| ExitCode::SUCCESS),
            Command::Migrate(args) => local::migrate(args).await.map(|()| ExitCode::SUCCESS),
            Command::Backup(args) => local::backup(args).await.map(|()| ExitCode::SUCCESS),
            Command::Restore(args) => local::restore(args).await.map(|()| ExitCode::SUCCESS),
            Command::Keys(command) => keys::keys(command).await.map(|()| ExitCode::SUCCESS),
            Command::Collections(command) => {
                keys::collections(command).await.map(|()| ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("facerec: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to standard error: escape codes only on a terminal (a file, `docker logs` or journald get
/// plain text), JSON lines on request.
fn init_tracing(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_from_env("FACEREC_LOG"))
        .unwrap_or_else(|_| EnvFilter::new(default_directives(level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        // The request's span (its id, method and route) on every line logged within it.
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// A plain level also quiets the database driver and the runtime below `warn` (their `info` lines
/// are per statement and per session); a filter is taken as written.
fn default_directives(level: &str) -> String {
    match level.trim() {
        plain @ ("info" | "debug" | "trace") => format!("{plain},sqlx=warn,ort=warn"),
        filter => filter.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// docs/CONFIGURATION.md's settings table is `facerec serve --help`'s text, rendered.
    #[test]
    fn the_configuration_page_says_what_help_says() {
        let mut cli = super::Cli::command();
        cli.build();
        let serve = cli.find_subcommand("serve").unwrap();
        let expected = super::settings_table::render(serve);
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIGURATION.md");
        let page = std::fs::read_to_string(path).unwrap();
        let start = "<!-- settings: rendered from `facerec serve`'s flags (crates/cli/src/settings_table.rs) -->\n";
        let end = "<!-- end of settings -->";
        let found = page
            .split_once(start)
            .and_then(|(_, rest)| rest.split_once(end))
            .map(|(table, _)| table.trim_end().to_owned() + "\n");
        assert_eq!(
            found.as_deref(),
            Some(expected.as_str()),
            "the settings table of docs/CONFIGURATION.md differs from the flags' help; put this \
             between its markers:\n{expected}"
        );
    }
}
