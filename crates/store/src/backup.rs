//! Backups of the SQLite database while a server uses it, and their restore.
//!
//! A backup is SQLite's `VACUUM INTO` on a read connection of its own: one read transaction, so the
//! copy is the database as one commit left it (never torn), and serving goes on (WAL readers do not
//! block the writer). `VACUUM` writes live pages only, so rows deleted before the backup began are
//! not in it. It is written under `<name>.partial` and renamed once complete and synced, beside
//! `<name>.json` (its sha256 and schema version): a backup killed half-way leaves no file under the
//! final name. A restore checks the sha256, the integrity and the schema version of the copy, refuses
//! while a process holds the database, and replaces it by a rename.
//!
//! PostgreSQL has its own tools (`pg_dump`/`pg_restore`, docs/OPERATIONS.md).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use facerec_core::StoreError;
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};

use crate::sqlite::{acquire_lock, MIGRATOR};

/// What is written beside a backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupInfo {
    /// sha256 of the backup file, hex.
    pub sha256: String,
    /// The newest migration applied to it.
    pub schema_version: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The file beside a backup that describes it.
pub fn info_path(backup: &Path) -> PathBuf {
    with_suffix(backup, ".json")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

fn io<'a>(what: &'a str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |e| StoreError::Database(format!("{what} {}: {e}", path.display()))
}

fn db(err: sqlx::Error) -> StoreError {
    StoreError::Database(err.to_string())
}

/// The SQLite file a `sqlite://` URL names.
pub fn sqlite_path(url: &str) -> Result<PathBuf, StoreError> {
    if !url.starts_with("sqlite:") {
        return Err(StoreError::Database(
            "backup and restore are for SQLite; for PostgreSQL use pg_dump and pg_restore (docs/OPERATIONS.md)"
                .into(),
        ));
    }
    let options: SqliteConnectOptions = url
        .parse()
        .map_err(|e| StoreError::Database(format!("invalid SQLite URL '{url}': {e}")))?;
    Ok(options.get_filename().to_path_buf())
}

/// Copies the live database at `url` into `dest` (which must not exist) and writes its
/// [`BackupInfo`] beside it.
pub async fn backup(url: &str, dest: &Path) -> Result<BackupInfo, StoreError> {
    let source = sqlite_path(url)?;
    if !source.exists() {
        return Err(StoreError::Database(format!(
            "no database at {}",
            source.display()
        )));
    }
    if dest.exists() {
        return Err(StoreError::Database(format!(
            "{} already exists: a backup never overwrites one",
            dest.display()
        )));
    }
    // What a backup killed half-way left: its partial copy, maybe its description (written just
    // before the rename that completes a backup).
    let partial = with_suffix(dest, ".partial");
    let _ = std::fs::remove_file(&partial);
    let _ = std::fs::remove_file(info_path(dest));
    let mut conn = read_only(&source).await?;
    sqlx::query("VACUUM INTO $1")
        .bind(partial.to_string_lossy().into_owned())
        .execute(&mut conn)
        .await
        .map_err(db)?;
    conn.close().await.map_err(db)?;
    File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing", &partial))?;
    let info = BackupInfo {
        sha256: sha256_of(&partial)?,
        schema_version: schema_version(&partial).await?,
        created_at: chrono::Utc::now(),
    };
    let json = serde_json::to_vec_pretty(&info).expect("backup info serializes");
    std::fs::write(info_path(dest), json).map_err(io("writing", &info_path(dest)))?;
    std::fs::rename(&partial, dest).map_err(io("renaming to", dest))?;
    Ok(info)
}

/// Replaces the database at `url` by the backup `from`, after checking the backup (sha256,
/// integrity, schema version); refused while a process holds the database.
pub async fn restore(url: &str, from: &Path) -> Result<BackupInfo, StoreError> {
    let target = sqlite_path(url)?;
    let info: BackupInfo = serde_json::from_slice(
        &std::fs::read(info_path(from)).map_err(io("reading", &info_path(from)))?,
    )
    .map_err(|e| StoreError::Database(format!("{}: {e}", info_path(from).display())))?;
    if sha256_of(from)? != info.sha256 {
        return Err(StoreError::Database(format!(
            "{} does not match the sha256 recorded beside it: not restored",
            from.display()
        )));
    }
    check_integrity(from).await?;
    crate::schema::check_schema_version(Some(schema_version(from).await?), &MIGRATOR)?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    }
    // Held until the end: no server can open the database while it is replaced.
    let _lock = acquire_lock(&target)?;
    let staged = with_suffix(&target, ".restoring");
    std::fs::copy(from, &staged).map_err(io("copying to", &staged))?;
    File::open(&staged)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing", &staged))?;
    for stale in [with_suffix(&target, "-wal"), with_suffix(&target, "-shm")] {
        let _ = std::fs::remove_file(stale);
    }
    std::fs::rename(&staged, &target).map_err(io("renaming to", &target))?;
    Ok(info)
}

/// `PRAGMA integrity_check` of a database file, read-only.
pub async fn check_integrity(path: &Path) -> Result<(), StoreError> {
    let mut conn = read_only(path).await?;
    let result: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .map_err(db)?;
    if result != "ok" {
        return Err(StoreError::Database(format!(
            "{} fails its integrity check: {result}",
            path.display()
        )));
    }
    Ok(())
}

async fn schema_version(path: &Path) -> Result<i64, StoreError> {
    let mut conn = read_only(path).await?;
    let version: Option<i64> = sqlx::query_scalar(crate::schema::SELECT_SCHEMA_VERSION)
        .fetch_one(&mut conn)
        .await
        .map_err(db)?;
    Ok(version.unwrap_or(0))
}

/// A read-only connection that waits for a busy writer rather than failing at once.
async fn read_only(path: &Path) -> Result<SqliteConnection, StoreError> {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(std::time::Duration::from_secs(10))
        .connect()
        .await
        .map_err(db)
}

fn sha256_of(path: &Path) -> Result<String, StoreError> {
    let mut file = File::open(path).map_err(io("reading", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io("reading", path))?;
        if n == 0 {
            return Ok(hex::encode(hasher.finalize()));
        }
        hasher.update(&buf[..n]);
    }
}
