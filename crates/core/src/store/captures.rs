use async_trait::async_trait;
use chrono::{DateTime, Utc};
use facerec_types::NormalizedEmbedding;

use super::{In, StoreResult};
use crate::capture::*;
use crate::domain::*;

/// What the cameras saw in a collection: captured faces, the clusters of unknown ones, and the
/// rejections held against persons. Writes are each one transaction; a capture's chip and its row
/// are one row, so neither is ever kept without the other.
#[async_trait]
pub trait Captures: Send + Sync {
    /// The cluster an unknown face with this embedding would join now (the nearest unknown or
    /// rejected capture at or above `threshold`), with how often it was seen; `None`: it would
    /// start one.
    async fn cluster_for(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        threshold: f32,
    ) -> StoreResult<Option<SeenCluster>>;

    /// Stores a capture: a sighting of the same face from the same source within
    /// [`SAME_SIGHTING_WITHIN`] updates that capture (keeping the better chip); an unknown one
    /// joins, links or starts a cluster; the collection's oldest go beyond `capture.max`.
    async fn capture(&self, collection: In, capture: NewCapture) -> StoreResult<Captured>;

    async fn get_capture(&self, collection: In, id: CaptureId) -> StoreResult<Capture>;

    /// The capture's chip (JPEG), while it holds one.
    async fn capture_chip(&self, collection: In, id: CaptureId) -> StoreResult<ChipJpeg>;

    /// The capture's embedding and model (to make it a face).
    async fn capture_embedding(
        &self,
        collection: In,
        id: CaptureId,
    ) -> StoreResult<(NormalizedEmbedding, ModelId)>;

    /// Captures, newest first.
    async fn list_captures(
        &self,
        collection: In,
        filter: &CaptureFilter,
    ) -> StoreResult<Vec<Capture>>;

    /// The captures nearest a probe as `search` says, best first.
    async fn search_captures(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        search: CaptureSearch<'_>,
    ) -> StoreResult<Vec<Neighbour>>;

    /// Clusters, most captures first, then the newest (then by id, so that pages do not
    /// overlap): `limit` of them after the first `offset`.
    async fn list_clusters(
        &self,
        collection: In,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<Cluster>>;

    /// A cluster by its id or by the id of a cluster merged into it.
    async fn get_cluster(&self, collection: In, id: ClusterId) -> StoreResult<Cluster>;

    /// Names the captures for a person: each becomes `known` (out of its cluster), keeps no chip
    /// and no longer counts against anyone. Captures already known are
    /// [`crate::StoreError::CaptureConflict`], and then nothing changes.
    /// Those in `as_faces` (among `ids`) also become faces of the person, in the same
    /// transaction; a new person needs at least one.
    async fn assign_captures(
        &self,
        collection: In,
        ids: &[CaptureId],
        to: NameFor,
        as_faces: &[CaptureId],
        actor: &Actor,
    ) -> StoreResult<Assigned>;

    /// "Not this person": a known capture becomes `rejected`, joins (or starts) a cluster, and is
    /// held against the person it was named for.
    async fn reject_capture(
        &self,
        collection: In,
        id: CaptureId,
        threshold: f32,
        actor: &Actor,
    ) -> StoreResult<Capture>;

    /// The rejections held against these persons, of captures embedded by this model.
    async fn rejections(
        &self,
        collection: In,
        persons: &[PersonId],
        model: &ModelId,
    ) -> StoreResult<Vec<Rejection>>;

    /// Rejected captures in the collection: observed false matches, for the calibration's evidence.
    async fn count_rejections(&self, collection: In) -> StoreResult<u64>;

    async fn delete_capture(&self, collection: In, id: CaptureId, actor: &Actor)
        -> StoreResult<()>;

    /// Deletes a cluster and its captures: how many.
    async fn delete_cluster(
        &self,
        collection: In,
        id: ClusterId,
        actor: &Actor,
    ) -> StoreResult<u64>;

    /// Deletes the collection's captures seen before `before`: how many.
    async fn delete_captures_before(
        &self,
        collection: In,
        before: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// The collections that hold captures.
    async fn collections_with_captures(&self) -> StoreResult<Vec<CollectionId>>;
}
