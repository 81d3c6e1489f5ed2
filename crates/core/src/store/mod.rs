//! The storage contract, in rooms: the [`Catalogue`] every request starts from (collections, keys,
//! stream tickets), the [`Gallery`] of each collection (persons, faces, search, calibrations, the
//! audit log), the [`Captures`] of what the cameras saw, and [`Store`], a database that holds them. Implementations: SQLite (embedded
//! default) and PostgreSQL + pgvector (facerec-store). Every method is one transaction: a failure
//! leaves nothing half-written.
//!
//! A new kind of stored fact (captured faces, an event outbox) gets a trait of its own here, a
//! supertrait of [`Store`], and one file of operations in facerec-store.

mod captures;
mod catalogue;
mod gallery;
mod outbox;

use async_trait::async_trait;

pub use crate::error::{StoreError, StoreResult};
pub use captures::Captures;
pub use catalogue::{Catalogue, TicketBudget};
pub use gallery::{AuditFilter, Gallery};
pub use outbox::Outbox;

use crate::domain::CollectionId;

/// The collection a store call acts in: every read and write of persons, faces, the audit log,
/// tickets and calibrations is confined to it (an id from another collection is not found).
pub type In = CollectionId;

/// A database: the catalogue and every collection's gallery.
#[async_trait]
pub trait Store: Catalogue + Gallery + Captures + Outbox {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Cheap liveness check of the database.
    async fn ping(&self) -> StoreResult<()>;
}
