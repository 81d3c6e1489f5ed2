//! For tests and benchmarks only (feature `testing`, off in the service): throwaway PostgreSQL
//! databases, and [`Inspect`], the reads that tests need but no use case does (its operations are
//! in `ops/inspect.rs`).

use std::sync::Arc;

use async_trait::async_trait;
use facerec_core::*;
use sqlx::Connection;

use crate::error::db_error;
use crate::{redact, PostgresStore, SqliteStore, StoreOptions};

/// A store with the test-only operations.
#[async_trait]
pub trait Inspect: Store {
    /// A person without faces (the service creates persons only with a photo, or by name).
    async fn create_person(
        &self,
        collection: CollectionId,
        person: NewPerson,
        actor: &Actor,
    ) -> StoreResult<Person>;
    async fn find_person_by_external_id(
        &self,
        collection: CollectionId,
        external_id: &str,
    ) -> StoreResult<Option<Person>>;
    /// `count` keys of the collection written at once (no audit events, no cap), revoked at
    /// `revoked_at` when given; their ids.
    async fn fill_keys(
        &self,
        collection: CollectionId,
        count: u32,
        revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> StoreResult<Vec<KeyId>>;
}

/// Opens a store like [`crate::open`], with the test-only operations.
pub async fn open(url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn Inspect>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else {
        Ok(Arc::new(PostgresStore::open(url, options).await?))
    }
}

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
    let mut conn = admin(admin_url).await?;
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

/// Drops the database `url` names (its connections are ended), as an outage would take it away.
pub async fn drop_database(admin_url: &str, url: &str) -> StoreResult<()> {
    let name = url.rsplit_once('/').map_or(url, |(_, n)| n);
    let mut conn = admin(admin_url).await?;
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

async fn admin(admin_url: &str) -> StoreResult<sqlx::PgConnection> {
    sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Database(format!("connecting to {}: {e}", redact(admin_url))))
}
