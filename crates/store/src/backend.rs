//! What each backend provides to the operations both share (`ops/`): where writes and reads run,
//! what to do after a commit, and how it searches.

use std::ops::DerefMut;

use facerec_core::capture::Neighbour;
use facerec_core::store::StoreResult;
use facerec_core::{Candidate, CaptureId, CollectionId, Face, FaceId, ModelId, PersonId};
use facerec_types::NormalizedEmbedding;
use sqlx::{Database, Pool};

/// What a committed write changed, for a backend that keeps state beside the database.
pub(crate) enum Change {
    FaceAdded(CollectionId, Face),
    FacesRemoved(Vec<FaceId>),
    /// A capture stored, or its embedding replaced by a better sighting.
    CaptureStored(CollectionId, CaptureId, ModelId, NormalizedEmbedding),
    CapturesRemoved(Vec<CaptureId>),
    /// Chips set to NULL (captures named for a person): nothing to update, but the old pages
    /// must be erased as a deletion's are.
    ChipsErased,
}

impl Change {
    /// Whether it deleted rows that must then be erased from the files.
    pub(crate) fn removes(&self) -> bool {
        matches!(
            self,
            Self::FacesRemoved(_) | Self::CapturesRemoved(_) | Self::ChipsErased
        )
    }
}

/// What each backend's store does its own way; every operation in `ops/` is written over these.
pub(crate) trait Hooks: Sync {
    type DB: Database;

    /// The connection a write transaction begins on (SQLite: its one writer, held until the end
    /// of the write; PostgreSQL: a pooled connection).
    async fn writer(
        &self,
    ) -> StoreResult<impl DerefMut<Target = <Self::DB as Database>::Connection> + Send>;
    /// Where reads run (PostgreSQL: a standby, when configured).
    fn readers(&self) -> &Pool<Self::DB>;
    /// Where reads that must see the latest write run.
    fn fresh_readers(&self) -> &Pool<Self::DB>;
    /// Called after each commit, while the writer is still held (SQLite updates its in-memory
    /// index; PostgreSQL has nothing to do).
    fn committed(&self, change: Change);
    /// Called after a deletion commits, so that the deleted rows become unreadable in the
    /// database files too (SQLite: a WAL checkpoint; PostgreSQL: a batched VACUUM).
    async fn erase(&self, writer: &mut <Self::DB as Database>::Connection);
    async fn face_count(&self, collection: Option<CollectionId>) -> StoreResult<u64>;
    /// The nearest faces' persons within the collection (`except` one person, left out in the
    /// search itself), each backend searching its own way.
    async fn candidates(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
        except: Option<PersonId>,
    ) -> StoreResult<Vec<Candidate>>;
    /// The collection's captures (of this model) nearest the probe at or above `min`, best first,
    /// at most `limit`, each backend searching its own way.
    async fn capture_neighbours(
        &self,
        collection: CollectionId,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        min: f32,
        limit: usize,
    ) -> StoreResult<Vec<Neighbour>>;
}
