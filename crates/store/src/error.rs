//! How a failed statement becomes a [`StoreError`], the same on both backends.

use facerec_core::StoreError;

/// A database failure, told apart: the database could not be reached (no connection in time, the
/// connection broke, the server is shutting down or starting) or it failed a statement.
pub(crate) fn db_error(err: sqlx::Error) -> StoreError {
    let unreachable = match &err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        // SQLSTATE class 08: connection exceptions; 57P01-57P03: shut down, crashed, starting.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&&*c)),
        _ => false,
    };
    // SQLite reports its (extended) result code, PostgreSQL its SQLSTATE.
    let code = err
        .as_database_error()
        .and_then(|db| db.code())
        .unwrap_or_default();
    let full = code == "13" || code == "53100"; // SQLITE_FULL; disk_full
                                                // SQLITE_READONLY and its extended codes (8 + n*256); read_only_sql_transaction (a standby).
    let read_only = code.parse::<u32>().is_ok_and(|c| c & 0xFF == 8) || code == "25006";
    if unreachable {
        StoreError::Unavailable(err.to_string())
    } else if full {
        StoreError::StorageFull(err.to_string())
    } else if read_only {
        StoreError::ReadOnly(err.to_string())
    } else {
        StoreError::Database(err.to_string())
    }
}

/// What a unique violation means in a write: a value the caller chose is taken.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Taken<'a> {
    /// Nothing the caller chose is unique: a violation is a failure.
    Nothing,
    /// A person's external id (when it has one).
    ExternalId(&'a str),
    /// A collection's name.
    CollectionName(&'a str),
}

impl<'a> Taken<'a> {
    pub(crate) fn external_id(external_id: Option<&'a str>) -> Self {
        external_id.map_or(Self::Nothing, Self::ExternalId)
    }
}

/// A failed write; a unique violation on what the caller chose becomes its own error, and so does
/// a foreign-key violation: every row written names a collection (directly or through its
/// person, whose row the write holds), so one that no longer exists was deleted meanwhile.
pub(crate) fn write_error(err: sqlx::Error, taken: Taken<'_>) -> StoreError {
    if err
        .as_database_error()
        .is_some_and(|db| db.is_foreign_key_violation())
    {
        return StoreError::CollectionDeleted;
    }
    if let Some(db) = err
        .as_database_error()
        .filter(|db| db.is_unique_violation())
    {
        // PostgreSQL names the constraint; SQLite names the column in its message.
        let names = |column: &str| {
            db.constraint().is_some_and(|c| c.contains(column)) || db.message().contains(column)
        };
        // Whatever else the write chose: a remembered attempt's key is the caller's too.
        if names("idempotency_keys") {
            return StoreError::IdempotencyKeyTaken;
        }
        match taken {
            Taken::ExternalId(ext) if names("external_id") => {
                return StoreError::DuplicateExternalId(ext.to_owned())
            }
            Taken::CollectionName(name) if names("name") => {
                return StoreError::CollectionExists(name.to_owned())
            }
            _ => {}
        }
    }
    db_error(err)
}
