//! The one shape of every write: a transaction on the backend's writer, committed whole or not at
//! all, then what it changed handed to the backend (SQLite's index, erasure after deletions).
//! Compiled once per backend (see `crate::ops`).

use facerec_core::store::StoreResult;
use sqlx::{Connection, Database, Transaction};

use super::bind::Statement;
use super::{This, DB};
use crate::backend::{Change, Hooks};
use crate::error::{db_error, write_error, Taken};

/// An open write transaction, and what it changed so far.
pub(super) struct Tx<'c> {
    conn: Transaction<'c, DB>,
    changes: Vec<Change>,
}

impl Tx<'_> {
    /// Runs statements in order; a unique violation on what the caller chose (`taken`) becomes
    /// its own error.
    pub(super) async fn run(
        &mut self,
        statements: impl IntoIterator<Item = Statement>,
        taken: Taken<'_>,
    ) -> StoreResult<()> {
        for statement in statements {
            statement
                .execute(&mut *self.conn)
                .await
                .map_err(|e| write_error(e, taken))?;
        }
        Ok(())
    }

    /// The connection, for reads inside the transaction.
    pub(super) fn conn(&mut self) -> &mut <DB as Database>::Connection {
        &mut self.conn
    }

    /// Notes a change for the backend, handed over once the transaction commits.
    pub(super) fn changed(&mut self, change: Change) {
        self.changes.push(change);
    }
}

impl This {
    /// Runs `work` in one write transaction: everything it did is committed, or (on an error, or
    /// if the caller goes away) nothing. After the commit, while the writer is still held (so that
    /// changes reach the backend in commit order), its changes are handed over, and deleted rows
    /// are erased from the files.
    pub(super) async fn write<T>(
        &self,
        work: impl AsyncFnOnce(&mut Tx<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut writer = self.writer().await?;
        let (out, changes) = {
            let mut tx = Tx {
                conn: writer.begin().await.map_err(db_error)?,
                changes: Vec::new(),
            };
            let out = work(&mut tx).await?;
            tx.conn.commit().await.map_err(db_error)?;
            (out, tx.changes)
        };
        let removed = changes.iter().any(Change::removes);
        for change in changes {
            self.committed(change);
        }
        if removed {
            self.erase(&mut writer).await;
        }
        Ok(out)
    }
}
