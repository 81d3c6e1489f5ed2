//! [`Store`] itself, and what a backend runs once when it opens: the migrations and the names that
//! an old migration could not fold. Compiled once per backend (see `crate::ops`).

use facerec_core::store::StoreResult;
use facerec_core::{Store, StoreError};
use sqlx::{Connection, Database};

use super::{bind, This, DB};
use crate::backend::Hooks;
use crate::error::{db_error, Taken};
use crate::schema::{check_schema_version, SELECT_SCHEMA_VERSION};

#[async_trait::async_trait]
impl Store for This {
    fn backend(&self) -> &'static str {
        super::NAME
    }

    async fn ping(&self) -> StoreResult<()> {
        for pool in [self.fresh_readers(), self.readers()] {
            sqlx::query("SELECT 1")
                .execute(pool)
                .await
                .map_err(db_error)?;
        }
        Ok(())
    }
}

/// Brings the schema up to date, refusing one a newer facerec wrote before anything runs.
pub(super) async fn migrate(
    conn: &mut <DB as Database>::Connection,
    migrator: &sqlx::migrate::Migrator,
) -> StoreResult<()> {
    // A new database has no migrations table yet: no version.
    let applied: Option<i64> = sqlx::query_scalar(SELECT_SCHEMA_VERSION)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or(None);
    check_schema_version(applied, migrator)?;
    // Every pending migration in one transaction (each its own savepoint): one that fails leaves
    // the database as it was, at the version it had.
    let mut tx = conn.begin().await.map_err(db_error)?;
    migrator
        .run(&mut tx)
        .await
        .map_err(|e| StoreError::Database(format!("migrating: {e}")))?;
    tx.commit().await.map_err(db_error)
}

impl This {
    /// Fills in the folded names that migration 0002 could not compute (SQL's `lower()` folds
    /// differently); a no-op once done.
    pub(super) async fn fold_missing_names(&self) -> StoreResult<()> {
        let rows = bind::select_unfolded_names()
            .fetch_all(self.fresh_readers())
            .await
            .map_err(db_error)?;
        if rows.is_empty() {
            return Ok(());
        }
        let statements: Vec<_> = rows
            .iter()
            .map(|(id, name)| bind::set_folded_name(*id, name))
            .collect();
        self.write(async |tx| tx.run(statements, Taken::Nothing).await)
            .await?;
        tracing::info!(persons = rows.len(), "folded the names of existing persons");
        Ok(())
    }
}
