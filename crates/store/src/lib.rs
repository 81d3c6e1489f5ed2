//! # facerec-store
//!
//! Two implementations of [`facerec_core::Store`]:
//! - [`SqliteStore`]: one file, no server (the default). Embeddings are also held in an
//!   [`ExactIndex`] in memory, loaded at start and updated after each committed write; one process
//!   owns the file at a time.
//! - [`PostgresStore`]: PostgreSQL with pgvector. Search runs in SQL over an HNSW index, so any number
//!   of API processes can share one database.
//!
//! Both apply their versioned migrations (`migrations/<backend>/`) when opened.

mod codec;
pub mod exact_index;
pub mod postgres;
pub mod sqlite;
pub mod testing;

use std::sync::Arc;

pub use exact_index::ExactIndex;
use facerec_core::{Store, StoreError};
pub use postgres::{HnswOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// Settings that only matter for one backend.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub hnsw: HnswOptions,
    /// Connections in the pool (PostgreSQL) or readers (SQLite).
    pub max_connections: Option<u32>,
}

/// Opens the database a URL names: `sqlite://path/to/file.db` or `postgres://…`.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::open(url, options).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::open(url, options).await?))
    } else {
        Err(StoreError::Database(format!(
            "unsupported database URL '{}': expected sqlite://… or postgres://…",
            redact(url)
        )))
    }
}

/// A URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub(crate) fn db_error(err: sqlx::Error) -> StoreError {
    StoreError::Database(err.to_string())
}
