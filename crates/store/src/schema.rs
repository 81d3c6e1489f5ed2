//! The schema's version, checked before any migration runs.

use facerec_core::StoreError;

/// The newest schema version recorded in a database (`None`: a new database).
pub(crate) const SELECT_SCHEMA_VERSION: &str = "SELECT MAX(version) FROM _sqlx_migrations";

/// Refuses, before any migration runs, a database whose schema is newer than this binary's
/// migrations: migrating it would fail halfway or, worse, run an old binary over a new layout.
pub(crate) fn check_schema_version(
    applied: Option<i64>,
    migrator: &sqlx::migrate::Migrator,
) -> Result<(), StoreError> {
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    match applied {
        Some(database) if database > known => Err(StoreError::TooNew {
            database,
            binary: known,
        }),
        _ => Ok(()),
    }
}
