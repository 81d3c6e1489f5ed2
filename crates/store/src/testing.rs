//! Throwaway PostgreSQL databases for tests and benchmarks (they share one server, each with a
//! database of its own, so they can run in parallel).

use facerec_core::{StoreError, StoreResult};
use sqlx::Connection;

use crate::{db_error, redact};

/// Creates an empty database, named `{prefix}_{unique suffix}`, on the server `admin_url` points
/// to, and returns its URL.
pub async fn create_database(admin_url: &str, prefix: &str) -> StoreResult<String> {
    create_named_database(
        admin_url,
        &format!("{prefix}_{}", uuid::Uuid::now_v7().simple()),
    )
    .await
}

/// Creates an empty database with exactly this name and returns its URL.
pub async fn create_named_database(admin_url: &str, name: &str) -> StoreResult<String> {
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Database(format!("connecting to {}: {e}", redact(admin_url))))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(database_url(admin_url, name))
}

/// The URL of database `name` on the server `admin_url` points to.
pub fn database_url(admin_url: &str, name: &str) -> String {
    let server = admin_url.rsplit_once('/').map_or(admin_url, |(s, _)| s);
    format!("{server}/{name}")
}
