//! # facerec-store
//!
//! Two implementations of [`facerec_core::Store`]:
//! - [`SqliteStore`]: one file, no server (the default). Embeddings are also held in an
//!   [`ExactIndex`] in memory, loaded at start and updated after each committed write; one process
//!   owns the file at a time.
//! - [`PostgresStore`]: PostgreSQL with pgvector. Search runs in SQL over an HNSW index, so any number
//!   of API processes can share one database.
//!
//! What both do the same way is written once:
//! - `statements`: every statement's text (SQLite accepts PostgreSQL's `$n` placeholders);
//! - `columns` and `rows`: how ids, embeddings and rows map onto domain values on each backend;
//! - `ops/`: the operations of each trait of [`facerec_core::store`], one file per trait
//!   (`catalogue.rs`, `gallery.rs`, `store.rs`; `inspect.rs` for tests), over `bind.rs` (how values
//!   are bound, which statements make up each change) and `write.rs` (the one write transaction);
//! - `backend`: the [`Hooks`](backend::Hooks) each store provides to them (where writes and reads
//!   run, what follows a commit, how it searches).
//!
//! The files of `ops/` are compiled once inside each backend's module (`#[path]` modules in
//! `sqlite.rs` and `postgres.rs`), over the names that module defines: `DB` (sqlx's database),
//! `This` (the store), `NAME`, and the two statements a dialect writes its own way. So the
//! operations are plain, concrete trait impls on both stores, written once: adding an operation
//! touches the trait in facerec-core and one file here. Each backend file keeps only what its
//! dialect does differently. Both apply their versioned migrations (`migrations/<backend>/`) when
//! opened.

// The files of `ops/` are mounted once per backend on purpose (above).
#![allow(clippy::duplicate_mod)]

mod backend;
pub mod backup;
mod capture_index;
mod columns;
mod error;
pub mod exact_index;
pub mod postgres;
mod rows;
mod schema;
pub mod sqlite;
mod statements;
#[cfg(feature = "testing")]
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
    /// PostgreSQL only: a hot standby for searches and reads; writes, and reads that must see the
    /// latest write, stay on the primary.
    pub read_url: Option<String>,
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

/// A URL without its password, for messages. A URL that does not parse is hidden whole: it may
/// still hold a secret.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_hidden_even_with_an_at_sign() {
        assert_eq!(
            redact("postgres://face:p@ss:w0rd@db.example:5432/facerec"),
            "postgres://face:***@db.example:5432/facerec"
        );
        assert_eq!(
            redact("postgres://face@db/facerec"),
            "postgres://face@db/facerec"
        );
        assert_eq!(
            redact("sqlite://./data/facerec.db"),
            "sqlite://./data/facerec.db"
        );
        assert!(!redact("postgres://a:secret@[bad").contains("secret"));
    }
}
