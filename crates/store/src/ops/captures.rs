//! [`Captures`]: what the cameras saw in a collection, the clusters of unknown faces and the
//! rejections held against persons. Compiled once per backend (see `crate::ops`); the nearest
//! captures are found by each backend its own way (`Hooks::capture_neighbours`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use facerec_core::capture::*;
use facerec_core::person::{face_from_new, person_from_new};
use facerec_core::store::{In, StoreResult};
use facerec_core::{
    Actor, CaptureId, Captures, ClusterId, CollectionId, ModelId, NewAuditEvent, NewFace, PersonId,
    StoreError,
};
use facerec_types::NormalizedEmbedding;
use sqlx::types::Json;

use super::bind::{self, Select, Statement};
use super::gallery::{add_face_in, person_for_write};
use super::write::Tx;
use super::This;
use crate::backend::{Change, Hooks};
use crate::columns::{Embedding, Id};
use crate::error::{db_error, Taken};
use crate::rows::CaptureRow;
use crate::statements::*;

#[async_trait::async_trait]
impl Captures for This {
    async fn cluster_for(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        threshold: f32,
    ) -> StoreResult<Option<SeenCluster>> {
        let near = self
            .capture_neighbours(collection, probe, model, threshold, CLUSTER_NEIGHBOURS)
            .await?;
        let Some(cluster) = near
            .iter()
            .filter(|n| n.capture.status.is_clustered())
            .find_map(|n| n.capture.cluster_id)
        else {
            return Ok(None);
        };
        let (count, seen, first, _) = cluster_summary(cluster)
            .fetch_one(self.readers())
            .await
            .map_err(db_error)?;
        Ok(first.filter(|_| count > 0).map(|first_seen| SeenCluster {
            cluster_id: cluster,
            seen: seen as u64 + 1,
            first_seen,
        }))
    }

    async fn capture(&self, collection: In, new: NewCapture) -> StoreResult<Captured> {
        let near = self
            .capture_neighbours(
                collection,
                &new.embedding,
                &new.model,
                new.join_at.value(),
                NEIGHBOURS,
            )
            .await?;
        self.write(async |tx| {
            if let Some(relaxed) = super::CAPTURE_COMMIT {
                tx.run([sqlx::query(relaxed)], Taken::Nothing).await?;
            }
            let known = match &new.decision {
                Decision::Known { person, .. } => Some(*person),
                Decision::Unknown { .. } => None,
            };
            // The same face, from the same source, moments ago, decided the same way.
            let same = near.iter().find(|n| {
                let c = &n.capture;
                c.source == new.source
                    && new.seen_at - c.seen_at <= SAME_SIGHTING_WITHIN
                    && c.person_id == known
                    && (known.is_some() || c.status.is_clustered())
            });
            if let Some(same) = same {
                let id = same.capture.id;
                let better = new.det_score > same.capture.det_score;
                tx.run([sighted_again(id, &new, better)], Taken::Nothing)
                    .await?;
                if better {
                    tx.changed(Change::CaptureStored(
                        collection,
                        id,
                        new.model.clone(),
                        new.embedding.clone(),
                    ));
                }
                // The id the answer's event gave this sighting names this capture (bounded).
                let aliases: i64 = sqlx::query_scalar(COUNT_CAPTURE_ALIASES)
                    .bind(Id::from(id))
                    .fetch_one(tx.conn())
                    .await
                    .map_err(db_error)?;
                if aliases < ALIASES_PER_CAPTURE {
                    let alias = sqlx::query(INSERT_CAPTURE_ALIAS)
                        .bind(Id::from(new.proposed_id))
                        .bind(Id::from(id));
                    tx.run([alias], Taken::Nothing).await?;
                }
                let capture = capture_in(tx, collection, id).await?;
                // The cluster the answer named for this sighting stays valid: an alias of this
                // capture's, when it is not that cluster already.
                if let Some(cluster) = capture.cluster_id.filter(|_| known.is_none()) {
                    if resolve(tx, collection, new.proposed_cluster)
                        .await?
                        .is_none()
                    {
                        let alias = insert_cluster(
                            collection,
                            new.proposed_cluster,
                            Some(cluster),
                            new.seen_at,
                        );
                        tx.run([alias], Taken::Nothing).await?;
                    }
                }
                return Ok(Captured {
                    capture,
                    merged_sighting: true,
                    evicted: 0,
                });
            }
            let cluster = match known {
                Some(_) => None,
                None => Some(
                    join_cluster(tx, collection, &near, new.proposed_cluster, new.seen_at).await?,
                ),
            };
            let id = new.proposed_id;
            tx.run(
                [insert_capture(collection, id, &new, cluster)],
                Taken::Nothing,
            )
            .await?;
            tx.changed(Change::CaptureStored(
                collection,
                id,
                new.model.clone(),
                new.embedding.clone(),
            ));
            let evicted = evict_beyond(tx, collection, new.max).await?;
            let capture = capture_in(tx, collection, id).await?;
            Ok(Captured {
                capture,
                merged_sighting: false,
                evicted,
            })
        })
        .await
    }

    async fn get_capture(&self, collection: In, id: CaptureId) -> StoreResult<Capture> {
        let id = resolve_capture(self.readers(), id).await?;
        select_capture(collection, id)
            .fetch_optional(self.readers())
            .await
            .map_err(db_error)?
            .ok_or(StoreError::CaptureNotFound(id))?
            .try_into()
    }

    async fn capture_chip(&self, collection: In, id: CaptureId) -> StoreResult<ChipJpeg> {
        let id = resolve_capture(self.readers(), id).await?;
        let chip: Option<Option<Vec<u8>>> = sqlx::query_scalar(SELECT_CAPTURE_CHIP)
            .bind(Id::from(id))
            .bind(Id::from(collection))
            .fetch_optional(self.readers())
            .await
            .map_err(db_error)?;
        match chip {
            None => Err(StoreError::CaptureNotFound(id)),
            Some(None) => Err(StoreError::CaptureConflict(
                id,
                "its chip is gone: it was named for a person".into(),
            )),
            Some(Some(bytes)) => Ok(ChipJpeg(bytes)),
        }
    }

    async fn capture_embedding(
        &self,
        collection: In,
        id: CaptureId,
    ) -> StoreResult<(NormalizedEmbedding, ModelId)> {
        let id = resolve_capture(self.readers(), id).await?;
        let row: Option<(Embedding, String, String)> = sqlx::query_as(SELECT_CAPTURE_EMBEDDING)
            .bind(Id::from(id))
            .bind(Id::from(collection))
            .fetch_optional(self.readers())
            .await
            .map_err(db_error)?;
        let (embedding, name, sha256) = row.ok_or(StoreError::CaptureNotFound(id))?;
        Ok((embedding.0, ModelId { name, sha256 }))
    }

    async fn list_captures(
        &self,
        collection: In,
        filter: &CaptureFilter,
    ) -> StoreResult<Vec<Capture>> {
        let rows: Vec<CaptureRow> = sqlx::query_as(LIST_CAPTURES)
            .bind(Id::from(collection))
            .bind(filter.status.map(|s| s.as_str().to_owned()))
            .bind(filter.source.as_ref().map(|s| s.as_str().to_owned()))
            .bind(filter.cluster.map(Id::from))
            .bind(filter.person.map(Id::from))
            .bind(filter.since)
            .bind(filter.before.map(Id::from))
            .bind(i64::from(filter.limit))
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(Capture::try_from).collect()
    }

    async fn search_captures(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        search: CaptureSearch<'_>,
    ) -> StoreResult<Vec<Neighbour>> {
        // The filters come after the search: ask for more, keep those that pass, and ask again for
        // four times as many while too few passed and more may lie beyond (at most
        // SEARCHED_AT_MOST, the captures of one face a search looks through).
        let mut wanted = search.limit.saturating_mul(4).max(1);
        loop {
            let near = self
                .capture_neighbours(collection, probe, model, search.threshold, wanted)
                .await?;
            let seen_all = near.len() < wanted || wanted >= SEARCHED_AT_MOST;
            let passing: Vec<Neighbour> = near
                .into_iter()
                .filter(|n| search.since.is_none_or(|at| n.capture.seen_at >= at))
                .filter(|n| search.source.is_none_or(|s| n.capture.source == *s))
                .take(search.limit)
                .collect();
            if passing.len() >= search.limit || seen_all {
                return Ok(passing);
            }
            wanted = wanted.saturating_mul(4).min(SEARCHED_AT_MOST);
        }
    }

    async fn list_clusters(
        &self,
        collection: In,
        limit: u32,
        offset: u32,
    ) -> StoreResult<Vec<Cluster>> {
        let rows: Vec<(Id, i64, i64, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(LIST_CLUSTERS)
            .bind(Id::from(collection))
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        let mut clusters = Vec::with_capacity(rows.len());
        for (id, count, seen, first_seen, last_seen) in rows {
            clusters.push(
                self.cluster_details(id.into(), count, seen, first_seen, last_seen)
                    .await?,
            );
        }
        Ok(clusters)
    }

    async fn get_cluster(&self, collection: In, id: ClusterId) -> StoreResult<Cluster> {
        let survivor: Option<Id> = sqlx::query_scalar(RESOLVE_CLUSTER)
            .bind(Id::from(id))
            .bind(Id::from(collection))
            .fetch_optional(self.readers())
            .await
            .map_err(db_error)?;
        let survivor = ClusterId::from(survivor.ok_or(StoreError::ClusterNotFound(id))?);
        let (count, seen, first, last) = cluster_summary(survivor)
            .fetch_one(self.readers())
            .await
            .map_err(db_error)?;
        match (count, first, last) {
            (1.., Some(first), Some(last)) => {
                self.cluster_details(survivor, count, seen, first, last)
                    .await
            }
            _ => Err(StoreError::ClusterNotFound(id)),
        }
    }

    async fn assign_captures(
        &self,
        collection: In,
        ids: &[CaptureId],
        to: NameFor,
        as_faces: &[CaptureId],
        actor: &Actor,
    ) -> StoreResult<Assigned> {
        let now = Utc::now();
        self.write(async |tx| {
            let mut captures = Vec::with_capacity(ids.len());
            for &id in ids {
                let id = resolve_capture(tx.conn(), id).await?;
                let capture = capture_in(tx, collection, id).await?;
                if capture.status == CaptureStatus::Known {
                    return Err(StoreError::CaptureConflict(
                        id,
                        "it is already named for a person".into(),
                    ));
                }
                captures.push(capture);
            }
            let mut faces = Vec::with_capacity(as_faces.len());
            for &id in as_faces {
                faces.push(face_of_capture(tx, collection, id).await?);
            }
            let mut faces = faces.into_iter();
            let (person, mut faces_added) = match to {
                NameFor::Existing(id) => (person_for_write(tx, collection, id).await?, 0),
                NameFor::New(new) => {
                    let first = faces.next().ok_or_else(|| {
                        StoreError::InvalidPerson(
                            "none of these captured faces is good enough to enroll".into(),
                        )
                    })?;
                    let person = person_from_new(&new, now)?;
                    let face = face_from_new(person.id, first, now)?;
                    let taken = Taken::external_id(person.external_id.as_deref());
                    tx.run(bind::registration(collection, &person, &face, actor), taken)
                        .await?;
                    tx.changed(Change::FaceAdded(collection, face));
                    (person, 1)
                }
            };
            for face in faces {
                let (_, added) = add_face_in(tx, collection, person.id, face, actor).await?;
                faces_added += usize::from(added == facerec_core::Added::Created);
            }
            let mut statements: Vec<Statement> = Vec::with_capacity(ids.len() + 1);
            for &id in ids {
                statements.push(
                    sqlx::query(ASSIGN_CAPTURE)
                        .bind(Id::from(id))
                        .bind(Id::from(person.id)),
                );
            }
            let event = NewAuditEvent::captures_reviewed("assigned", Some(person.id), ids.len());
            statements.push(bind::audit(collection, event, actor));
            tx.run(statements, Taken::Nothing).await?;
            tx.changed(Change::ChipsErased);
            for capture in &mut captures {
                *capture = capture_in(tx, collection, capture.id).await?;
            }
            Ok(Assigned {
                person,
                captures,
                faces_added,
            })
        })
        .await
    }

    async fn reject_capture(
        &self,
        collection: In,
        id: CaptureId,
        threshold: f32,
        actor: &Actor,
    ) -> StoreResult<Capture> {
        let id = resolve_capture(self.readers(), id).await?;
        let (embedding, model) = self.capture_embedding(collection, id).await?;
        let near = self
            .capture_neighbours(collection, &embedding, &model, threshold, NEIGHBOURS)
            .await?;
        self.write(async |tx| {
            let capture = capture_in(tx, collection, id).await?;
            let Some(person) = capture
                .person_id
                .filter(|_| capture.status == CaptureStatus::Known)
            else {
                return Err(StoreError::CaptureConflict(
                    id,
                    "it is not named for anyone".into(),
                ));
            };
            let others: Vec<Neighbour> = near.into_iter().filter(|n| n.capture.id != id).collect();
            let cluster =
                join_cluster(tx, collection, &others, ClusterId::new(), capture.seen_at).await?;
            let reject = sqlx::query(REJECT_CAPTURE)
                .bind(Id::from(id))
                .bind(Id::from(cluster));
            let event = NewAuditEvent::captures_reviewed("rejected", Some(person), 1);
            tx.run(
                [reject, bind::audit(collection, event, actor)],
                Taken::Nothing,
            )
            .await?;
            capture_in(tx, collection, id).await
        })
        .await
    }

    async fn rejections(
        &self,
        collection: In,
        persons: &[PersonId],
        model: &ModelId,
    ) -> StoreResult<Vec<Rejection>> {
        let mut rejections = Vec::new();
        for &person in persons {
            let rows: Vec<(Id, Embedding)> = sqlx::query_as(SELECT_REJECTIONS_OF)
                .bind(Id::from(collection))
                .bind(Id::from(person))
                .bind(model.name.clone())
                .bind(model.sha256.clone())
                .fetch_all(self.readers())
                .await
                .map_err(db_error)?;
            rejections.extend(rows.into_iter().map(|(id, embedding)| Rejection {
                capture: id.into(),
                person,
                embedding: embedding.0,
            }));
        }
        Ok(rejections)
    }

    async fn count_rejections(&self, collection: In) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar(COUNT_REJECTIONS)
            .bind(Id::from(collection))
            .fetch_one(self.readers())
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    async fn delete_capture(
        &self,
        collection: In,
        id: CaptureId,
        actor: &Actor,
    ) -> StoreResult<()> {
        let id = resolve_capture(self.readers(), id).await?;
        self.write(async |tx| {
            let deleted: Option<Id> = sqlx::query_scalar(DELETE_CAPTURE)
                .bind(Id::from(id))
                .bind(Id::from(collection))
                .fetch_optional(tx.conn())
                .await
                .map_err(db_error)?;
            deleted.ok_or(StoreError::CaptureNotFound(id))?;
            let event = NewAuditEvent::captures_reviewed("capture_deleted", None, 1);
            tx.run([bind::audit(collection, event, actor)], Taken::Nothing)
                .await?;
            tx.changed(Change::CapturesRemoved(vec![id]));
            Ok(())
        })
        .await
    }

    async fn delete_cluster(
        &self,
        collection: In,
        id: ClusterId,
        actor: &Actor,
    ) -> StoreResult<u64> {
        self.write(async |tx| {
            let survivor: Option<Id> = sqlx::query_scalar(RESOLVE_CLUSTER)
                .bind(Id::from(id))
                .bind(Id::from(collection))
                .fetch_optional(tx.conn())
                .await
                .map_err(db_error)?;
            let survivor = survivor.ok_or(StoreError::ClusterNotFound(id))?;
            let deleted: Vec<Id> = sqlx::query_scalar(DELETE_CLUSTER_CAPTURES)
                .bind(survivor)
                .fetch_all(tx.conn())
                .await
                .map_err(db_error)?;
            let event = NewAuditEvent::captures_reviewed("cluster_deleted", None, deleted.len());
            tx.run(
                [
                    sqlx::query(DELETE_CLUSTER).bind(survivor),
                    bind::audit(collection, event, actor),
                ],
                Taken::Nothing,
            )
            .await?;
            let n = deleted.len() as u64;
            tx.changed(Change::CapturesRemoved(
                deleted.into_iter().map(CaptureId::from).collect(),
            ));
            Ok(n)
        })
        .await
    }

    async fn delete_captures_before(
        &self,
        collection: In,
        before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.write(async |tx| {
            let deleted: Vec<Id> = sqlx::query_scalar(DELETE_CAPTURES_BEFORE)
                .bind(Id::from(collection))
                .bind(before)
                .fetch_all(tx.conn())
                .await
                .map_err(db_error)?;
            tx.run(
                [sqlx::query(DELETE_EMPTY_CLUSTERS).bind(Id::from(collection))],
                Taken::Nothing,
            )
            .await?;
            let n = deleted.len() as u64;
            if n > 0 {
                tx.changed(Change::CapturesRemoved(
                    deleted.into_iter().map(CaptureId::from).collect(),
                ));
            }
            Ok(n)
        })
        .await
    }

    async fn collections_with_captures(&self) -> StoreResult<Vec<CollectionId>> {
        let ids: Vec<Id> = sqlx::query_scalar(COLLECTIONS_WITH_CAPTURES)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        Ok(ids.into_iter().map(CollectionId::from).collect())
    }
}

impl This {
    /// A cluster's sources and best captures, beside its counts.
    async fn cluster_details(
        &self,
        id: ClusterId,
        count: i64,
        seen: i64,
        first_seen: DateTime<Utc>,
        last_seen: DateTime<Utc>,
    ) -> StoreResult<Cluster> {
        let sources: Vec<String> = sqlx::query_scalar(CLUSTER_SOURCES)
            .bind(Id::from(id))
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        let best: Vec<Id> = sqlx::query_scalar(CLUSTER_BEST)
            .bind(Id::from(id))
            .bind(CLUSTER_CAPTURE_IDS as i64)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        Ok(Cluster {
            id,
            count: count as u64,
            seen: seen as u64,
            first_seen,
            last_seen,
            sources: sources
                .iter()
                .map(|s| Source::new(s).unwrap_or_else(|_| Source::from_label(s)))
                .collect(),
            capture_ids: best.into_iter().map(CaptureId::from).collect(),
        })
    }
}

/// The capture an id names: its own, or, for the id an answer gave a sighting merged into an
/// earlier capture, that capture.
async fn resolve_capture<'e>(
    executor: impl sqlx::Executor<'e, Database = super::DB>,
    id: CaptureId,
) -> StoreResult<CaptureId> {
    let merged: Option<Id> = sqlx::query_scalar(RESOLVE_CAPTURE)
        .bind(Id::from(id))
        .fetch_optional(executor)
        .await
        .map_err(db_error)?;
    Ok(merged.map_or(id, CaptureId::from))
}

fn select_capture(collection: In, id: CaptureId) -> Select<CaptureRow> {
    sqlx::query_as(SELECT_CAPTURE)
        .bind(Id::from(id))
        .bind(Id::from(collection))
}

/// A cluster's captures, sightings, first and last seen (none when it holds no capture).
type Summary = (i64, i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

fn cluster_summary(id: ClusterId) -> Select<Summary> {
    sqlx::query_as(CLUSTER_SUMMARY).bind(Id::from(id))
}

/// A capture as the write transaction sees it.
async fn capture_in(tx: &mut Tx<'_>, collection: In, id: CaptureId) -> StoreResult<Capture> {
    select_capture(collection, id)
        .fetch_optional(tx.conn())
        .await
        .map_err(db_error)?
        .ok_or(StoreError::CaptureNotFound(id))?
        .try_into()
}

/// A capture as a face of a person (its embedding, detection and quality; no pixels).
async fn face_of_capture(tx: &mut Tx<'_>, collection: In, id: CaptureId) -> StoreResult<NewFace> {
    let capture = capture_in(tx, collection, id).await?;
    let (embedding, name, sha256): (Embedding, String, String) =
        sqlx::query_as(SELECT_CAPTURE_EMBEDDING)
            .bind(Id::from(id))
            .bind(Id::from(collection))
            .fetch_one(tx.conn())
            .await
            .map_err(db_error)?;
    let b = capture.bbox;
    Ok(NewFace {
        embedding: embedding.0,
        det_score: capture.det_score,
        bbox: [b.x1, b.y1, b.x2, b.y2],
        quality: capture.quality,
        model: ModelId { name, sha256 },
        // A face is stored once per photo; a capture is its own photo.
        image_sha256: format!("capture:{id}"),
    })
}

/// The cluster an unknown capture goes into: the one its neighbours are in, the oldest of several
/// (the others merged into it), or a new one under the id the answer gave out. That id, when it
/// is not the cluster joined, becomes an alias of it.
async fn join_cluster(
    tx: &mut Tx<'_>,
    collection: In,
    near: &[Neighbour],
    proposed: ClusterId,
    now: DateTime<Utc>,
) -> StoreResult<ClusterId> {
    // The neighbours were read before this transaction: a cluster merged or deleted since is
    // resolved (to its survivor, or to nothing) here.
    let mut linked: BTreeSet<ClusterId> = BTreeSet::new();
    for cluster in near
        .iter()
        .filter(|n| n.capture.status.is_clustered())
        .filter_map(|n| n.capture.cluster_id)
        .collect::<BTreeSet<_>>()
    {
        linked.extend(resolve(tx, collection, cluster).await?);
    }
    let proposed_exists = resolve(tx, collection, proposed).await?;
    // UUIDv7: the smallest is the oldest, which keeps its id.
    let Some(&survivor) = linked.first() else {
        return match proposed_exists {
            Some(survivor) => Ok(survivor),
            None => {
                tx.run(
                    [insert_cluster(collection, proposed, None, now)],
                    Taken::Nothing,
                )
                .await?;
                Ok(proposed)
            }
        };
    };
    let mut statements: Vec<Statement> = Vec::new();
    for &other in linked.iter().skip(1) {
        statements.push(
            sqlx::query(MOVE_CLUSTER_CAPTURES)
                .bind(Id::from(survivor))
                .bind(Id::from(other)),
        );
        statements.push(
            sqlx::query(MERGE_CLUSTER)
                .bind(Id::from(survivor))
                .bind(Id::from(other)),
        );
    }
    if proposed_exists.is_none() {
        statements.push(insert_cluster(collection, proposed, Some(survivor), now));
    }
    tx.run(statements, Taken::Nothing).await?;
    Ok(survivor)
}

/// A cluster id as given out, as the transaction sees it: itself, its survivor, or nothing.
async fn resolve(
    tx: &mut Tx<'_>,
    collection: In,
    cluster: ClusterId,
) -> StoreResult<Option<ClusterId>> {
    let survivor: Option<Id> = sqlx::query_scalar(RESOLVE_CLUSTER)
        .bind(Id::from(cluster))
        .bind(Id::from(collection))
        .fetch_optional(tx.conn())
        .await
        .map_err(db_error)?;
    Ok(survivor.map(ClusterId::from))
}

/// Drops the collection's oldest captures beyond `max`: how many.
async fn evict_beyond(tx: &mut Tx<'_>, collection: In, max: u32) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(COUNT_CAPTURES_IN)
        .bind(Id::from(collection))
        .fetch_one(tx.conn())
        .await
        .map_err(db_error)?;
    let excess = count - i64::from(max);
    if excess <= 0 {
        return Ok(0);
    }
    let evicted: Vec<Id> = sqlx::query_scalar(EVICT_CAPTURES)
        .bind(Id::from(collection))
        .bind(excess)
        .fetch_all(tx.conn())
        .await
        .map_err(db_error)?;
    let n = evicted.len() as u64;
    tx.changed(Change::CapturesRemoved(
        evicted.into_iter().map(CaptureId::from).collect(),
    ));
    Ok(n)
}

fn insert_cluster(
    collection: In,
    id: ClusterId,
    merged_into: Option<ClusterId>,
    now: DateTime<Utc>,
) -> Statement {
    sqlx::query(INSERT_CLUSTER)
        .bind(Id::from(id))
        .bind(Id::from(collection))
        .bind(merged_into.map(Id::from))
        .bind(now)
}

fn insert_capture(
    collection: In,
    id: CaptureId,
    new: &NewCapture,
    cluster: Option<ClusterId>,
) -> Statement {
    let (status, person, similarity, fpir) = match &new.decision {
        Decision::Known {
            person,
            similarity,
            estimated_fpir,
        } => (
            "known",
            Some(*person),
            Some(similarity.value()),
            *estimated_fpir,
        ),
        Decision::Unknown { best } => ("unknown", None, best.map(|s| s.value()), None),
    };
    let b = new.bbox;
    sqlx::query(INSERT_CAPTURE)
        .bind(Id::from(id))
        .bind(Id::from(collection))
        .bind(status)
        .bind(person.map(Id::from))
        .bind(cluster.map(Id::from))
        .bind(similarity)
        .bind(new.threshold.value())
        .bind(fpir)
        .bind(new.source.as_str().to_owned())
        .bind(new.route)
        .bind(new.seen_at)
        .bind(new.det_score)
        .bind(Json(new.quality))
        .bind(Json([b.x1, b.y1, b.x2, b.y2]))
        .bind(new.model.name.clone())
        .bind(new.model.sha256.clone())
        .bind(Embedding(new.embedding.clone()))
        .bind(new.chip.0.clone())
}

fn sighted_again(id: CaptureId, new: &NewCapture, better: bool) -> Statement {
    let b = new.bbox;
    let similarity = match &new.decision {
        Decision::Known { similarity, .. } => Some(similarity.value()),
        Decision::Unknown { best } => best.map(|s| s.value()),
    };
    sqlx::query(SIGHTED_AGAIN)
        .bind(Id::from(id))
        .bind(new.seen_at)
        .bind(better)
        .bind(new.det_score)
        .bind(Json(new.quality))
        .bind(Json([b.x1, b.y1, b.x2, b.y2]))
        .bind(Embedding(new.embedding.clone()))
        .bind(new.chip.0.clone())
        .bind(similarity)
}
