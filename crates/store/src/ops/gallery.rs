//! [`Gallery`]: a collection's persons and faces, the search over them, its calibrations and its
//! audit log. Compiled once per backend (see `crate::ops`).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use facerec_core::events::{EventCollection, EventData, EventPerson, EventType};
use facerec_core::person::{apply_patch, check_dimension, face_from_new, person_from_new};
use facerec_core::retry::{Attempt, IdempotencyKey, Remembered};
use facerec_core::store::{In, StoreResult};
use facerec_core::{
    Actor, Added, AuditEvent, AuditFilter, Candidate, CaptureId, CollectionId, DeletedPerson, Face,
    FaceEntry, FaceId, Gallery, ModelId, NewAuditEvent, NewFace, NewPerson, Page, PageRequest,
    Person, PersonId, PersonPatch, RegisteredNamed, StoreError,
};
use facerec_types::NormalizedEmbedding;

use super::write::Tx;
use super::{bind, This};
use crate::backend::{Change, Hooks};
use crate::columns::Id;
use crate::error::{db_error, Taken};

#[async_trait::async_trait]
impl Gallery for This {
    async fn register(
        &self,
        collection: In,
        new: NewPerson,
        face: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Person, Face)> {
        self.register_remembering(collection, new, face, actor, None)
            .await
    }

    async fn register_once(
        &self,
        collection: In,
        new: NewPerson,
        face: NewFace,
        actor: &Actor,
        attempt: &Attempt,
    ) -> StoreResult<(Person, Face)> {
        self.register_remembering(collection, new, face, actor, Some(attempt))
            .await
    }

    async fn add_face_once(
        &self,
        collection: In,
        person: PersonId,
        new: NewFace,
        actor: &Actor,
        attempt: &Attempt,
    ) -> StoreResult<(Face, Added)> {
        check_dimension(&new.embedding)?;
        self.write(async |tx| {
            person_for_write(tx, collection, person).await?;
            let (face, added) = add_face_in(tx, collection, person, new, actor).await?;
            let created = added == Added::Created;
            let remember = bind::insert_attempt(collection, attempt, &face, created, Utc::now());
            tx.run([remember], Taken::Nothing).await?;
            Ok((face, added))
        })
        .await
    }

    async fn remembered(
        &self,
        collection: In,
        key: &IdempotencyKey,
    ) -> StoreResult<Option<Remembered>> {
        let row = bind::select_attempt(collection, key)
            .fetch_optional(self.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(row.map(|(fingerprint, person, face, created)| Remembered {
            fingerprint,
            person: person.into(),
            face: face.into(),
            created,
        }))
    }

    async fn forget_attempts(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let forget = bind::forget_attempts(before);
        let mut writer = self.writer().await?;
        let done = forget.execute(&mut *writer).await.map_err(db_error)?;
        Ok(done.rows_affected())
    }

    async fn get_person(&self, collection: In, id: PersonId) -> StoreResult<Person> {
        let row = bind::select_person(collection, id)
            .fetch_optional(self.readers())
            .await
            .map_err(db_error)?;
        row.map(Person::from).ok_or(StoreError::PersonNotFound(id))
    }

    async fn persons_named(
        &self,
        collection: In,
        name: &str,
        limit: u32,
    ) -> StoreResult<Vec<Person>> {
        let rows = bind::select_persons_named(collection, name, limit)
            .fetch_all(self.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Person::from).collect())
    }

    async fn register_named(
        &self,
        collection: In,
        new: NewPerson,
        faces: Vec<NewFace>,
        actor: &Actor,
    ) -> StoreResult<RegisteredNamed> {
        let candidate = person_from_new(&new, Utc::now())?;
        for face in &faces {
            check_dimension(&face.embedding)?;
        }
        self.write(async |tx| {
            let lock = bind::lock_name(collection, &candidate.name);
            tx.run(lock, Taken::Nothing).await?;
            let mut named = bind::select_persons_named(collection, &candidate.name, 2)
                .fetch_all(tx.conn())
                .await
                .map_err(db_error)?;
            if named.len() > 1 {
                return Err(StoreError::AmbiguousName(candidate.name));
            }
            let (person, created) = match named.pop() {
                Some(row) => (
                    person_for_write(tx, collection, row.id.into()).await?,
                    false,
                ),
                None => {
                    let taken = Taken::external_id(candidate.external_id.as_deref());
                    tx.run(bind::creation(collection, &candidate, actor), taken)
                        .await?;
                    (candidate, true)
                }
            };
            let mut added = Vec::with_capacity(faces.len());
            for face in faces {
                added.push(add_face_in(tx, collection, person.id, face, actor).await?);
            }
            Ok(RegisteredNamed {
                person,
                created,
                faces: added,
            })
        })
        .await
    }

    async fn list_persons(&self, collection: In, page: &PageRequest) -> StoreResult<Page<Person>> {
        let total = bind::count_persons(collection, page)
            .fetch_one(self.readers())
            .await
            .map_err(db_error)?;
        let rows = bind::select_persons_page(collection, page)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        Ok(Page {
            items: rows.into_iter().map(Person::from).collect(),
            total: total as u64,
        })
    }

    async fn faces_per_person(
        &self,
        collection: In,
        page: &PageRequest,
    ) -> StoreResult<HashMap<PersonId, u64>> {
        let rows = bind::count_faces_of_page(collection, page)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(person, faces)| (person.into(), faces.max(0) as u64))
            .collect())
    }

    async fn update_person(
        &self,
        collection: In,
        id: PersonId,
        patch: PersonPatch,
        actor: &Actor,
    ) -> StoreResult<Person> {
        self.write(async |tx| {
            let mut person = person_for_write(tx, collection, id).await?;
            let changed = apply_patch(&mut person, patch, Utc::now())?;
            let statements = bind::person_update(collection, &person, &changed, actor);
            let taken = Taken::external_id(person.external_id.as_deref());
            tx.run(statements, taken).await?;
            Ok(person)
        })
        .await
    }

    async fn delete_person(
        &self,
        collection: In,
        id: PersonId,
        actor: &Actor,
    ) -> StoreResult<DeletedPerson> {
        self.delete_person_for(collection, id, Deletion::OnRequest, actor)
            .await?
            .ok_or(StoreError::PersonNotFound(id))
    }

    async fn delete_expired(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        actor: &Actor,
    ) -> StoreResult<Vec<DeletedPerson>> {
        let expired = bind::select_expired(now, limit)
            .fetch_all(self.fresh_readers())
            .await
            .map_err(db_error)?;
        let mut deleted = Vec::with_capacity(expired.len());
        for (id, collection) in expired {
            let why = Deletion::ConsentExpiredBy(now);
            match self
                .delete_person_for(collection.into(), id.into(), why, actor)
                .await
            {
                Ok(Some(person)) => deleted.push(person),
                // Renewed meanwhile.
                Ok(None) => {}
                // Deleted meanwhile (by a caller, or another replica's sweep).
                Err(StoreError::PersonNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    async fn add_face(
        &self,
        collection: In,
        person: PersonId,
        new: NewFace,
        actor: &Actor,
    ) -> StoreResult<(Face, Added)> {
        check_dimension(&new.embedding)?;
        self.write(async |tx| {
            // Holding the person's row serializes concurrent adds for them, so the idempotency
            // check holds.
            person_for_write(tx, collection, person).await?;
            add_face_in(tx, collection, person, new, actor).await
        })
        .await
    }

    async fn get_face(&self, collection: In, id: FaceId) -> StoreResult<Face> {
        bind::select_face(collection, id)
            .fetch_optional(self.readers())
            .await
            .map_err(db_error)?
            .map(Face::from)
            .ok_or(StoreError::FaceNotFound(id))
    }

    async fn list_faces(&self, collection: In, person: PersonId) -> StoreResult<Vec<Face>> {
        let mut conn = self.readers().acquire().await.map_err(db_error)?;
        bind::select_person(collection, person)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_error)?
            .ok_or(StoreError::PersonNotFound(person))?;
        let rows = bind::select_faces_of_person(person)
            .fetch_all(&mut *conn)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Face::from).collect())
    }

    async fn delete_face(&self, collection: In, id: FaceId, actor: &Actor) -> StoreResult<Face> {
        self.write(async |tx| {
            let face: Face = bind::delete_face_row(collection, id)
                .fetch_optional(tx.conn())
                .await
                .map_err(db_error)?
                .map(Face::from)
                .ok_or(StoreError::FaceNotFound(id))?;
            let event = NewAuditEvent::face_deleted(face.person_id, id);
            tx.run([bind::audit(collection, event, actor)], Taken::Nothing)
                .await?;
            tx.changed(Change::FacesRemoved(vec![id]));
            Ok(face)
        })
        .await
    }

    async fn count_faces(&self, collection: Option<CollectionId>) -> StoreResult<u64> {
        self.face_count(collection).await
    }

    async fn list_all_faces(
        &self,
        collection: In,
        limit: u32,
        offset: u64,
    ) -> StoreResult<Page<FaceEntry>> {
        let total = bind::select_face_count(Some(collection))
            .fetch_one(self.readers())
            .await
            .map_err(db_error)?;
        let rows = bind::list_face_entries(collection, limit, offset)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        Ok(Page {
            items: rows.into_iter().map(FaceEntry::from).collect(),
            total: total as u64,
        })
    }

    async fn search(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
    ) -> StoreResult<Vec<Candidate>> {
        self.search_except(collection, probe, model, k, None).await
    }

    async fn search_others(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        except: PersonId,
        k: usize,
    ) -> StoreResult<Vec<Candidate>> {
        self.search_except(collection, probe, model, k, Some(except))
            .await
    }

    async fn sample_faces(
        &self,
        collection: In,
        max_persons: u32,
        model: &ModelId,
    ) -> StoreResult<Vec<Face>> {
        let rows = bind::sample_faces_of(collection, max_persons, model)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Face::from).collect())
    }

    async fn save_calibration(
        &self,
        collection: In,
        computed_at: DateTime<Utc>,
        faces: u64,
        document: serde_json::Value,
    ) -> StoreResult<()> {
        let insert = bind::insert_calibration(collection, computed_at, faces, document);
        self.write(async |tx| {
            let statements = [insert, bind::prune_calibrations(collection)];
            tx.run(statements, Taken::Nothing).await
        })
        .await
    }

    async fn recent_calibrations(&self, collection: In) -> StoreResult<Vec<serde_json::Value>> {
        let documents = bind::select_calibrations(collection)
            .fetch_all(self.fresh_readers())
            .await
            .map_err(db_error)?;
        Ok(documents.into_iter().map(|d| d.0).collect())
    }

    async fn record(&self, collection: In, event: NewAuditEvent, actor: &Actor) -> StoreResult<()> {
        let audit = bind::audit(collection, event, actor);
        self.write(async |tx| tx.run([audit], Taken::Nothing).await)
            .await
    }

    async fn audit_events(
        &self,
        collection: Option<CollectionId>,
        filter: &AuditFilter,
    ) -> StoreResult<Vec<AuditEvent>> {
        let rows = bind::select_audit(collection, filter)
            .fetch_all(self.readers())
            .await
            .map_err(db_error)?;
        rows.into_iter().map(AuditEvent::try_from).collect()
    }
}

impl This {
    /// A search, `except` one person (left out in the search itself).
    async fn search_except(
        &self,
        collection: In,
        probe: &NormalizedEmbedding,
        model: &ModelId,
        k: usize,
        except: Option<PersonId>,
    ) -> StoreResult<Vec<Candidate>> {
        check_dimension(probe)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        self.candidates(collection, probe, model, k, except).await
    }

    /// A registration, and the attempt that made it remembered in the same transaction.
    async fn register_remembering(
        &self,
        collection: In,
        new: NewPerson,
        face: NewFace,
        actor: &Actor,
        attempt: Option<&Attempt>,
    ) -> StoreResult<(Person, Face)> {
        let now = Utc::now();
        let person = person_from_new(&new, now)?;
        let face = face_from_new(person.id, face, now)?;
        self.write(async |tx| {
            let mut statements: Vec<bind::Statement> =
                bind::registration(collection, &person, &face, actor)
                    .into_iter()
                    .collect();
            if let Some(attempt) = attempt {
                statements.push(bind::insert_attempt(collection, attempt, &face, true, now));
            }
            let taken = Taken::external_id(person.external_id.as_deref());
            tx.run(statements, taken).await?;
            tx.changed(Change::FaceAdded(collection, face.clone()));
            Ok(())
        })
        .await?;
        Ok((person, face))
    }
}

/// Why a person is deleted.
#[derive(Debug, Clone, Copy)]
enum Deletion {
    OnRequest,
    /// By the retention sweep: their consent had expired at this instant (checked again on the
    /// locked row).
    ConsentExpiredBy(DateTime<Utc>),
}

impl This {
    /// Deletes a person and their faces and records why, in one transaction; `None` when the
    /// reason no longer holds (a consent renewed since it was found expired).
    async fn delete_person_for(
        &self,
        collection: In,
        id: PersonId,
        why: Deletion,
        actor: &Actor,
    ) -> StoreResult<Option<DeletedPerson>> {
        self.write(async |tx| {
            let person = person_for_write(tx, collection, id).await?;
            let event = match why {
                Deletion::OnRequest => NewAuditEvent::person_deleted,
                Deletion::ConsentExpiredBy(now) => {
                    if person.consent.expires_at.is_none_or(|at| at > now) {
                        return Ok(None);
                    }
                    NewAuditEvent::consent_expired
                }
            };
            let faces: Vec<FaceId> = bind::delete_faces_of_person(id)
                .fetch_all(tx.conn())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(FaceId::from)
                .collect();
            let faces_deleted = faces.len() as u64;
            // Their captures go with them (a cascade would too, unseen by SQLite's index).
            let captures: Vec<CaptureId> =
                sqlx::query_scalar(crate::statements::DELETE_CAPTURES_OF_PERSON)
                    .bind(Id::from(collection))
                    .bind(Id::from(id))
                    .fetch_all(tx.conn())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(|c: Id| CaptureId::from(c))
                    .collect();
            tx.changed(Change::CapturesRemoved(captures));
            let statements = [
                bind::delete_person_row(id),
                bind::audit(collection, event(id, faces_deleted), actor),
            ];
            tx.run(statements, Taken::Nothing).await?;
            tx.changed(Change::FacesRemoved(faces));
            // Events about them not yet delivered go too, and the destinations are told to forget
            // them (MQTT's retained topics, Home Assistant's entities), in this transaction; after
            // the appends in flight (which then see them gone).
            super::outbox::lock_events(tx).await?;
            let forget = sqlx::query(crate::statements::DELETE_EVENTS_OF_PERSON)
                .bind(Id::from(collection))
                .bind(Id::from(id));
            tx.run([forget], Taken::Nothing).await?;
            let name: String = sqlx::query_scalar(crate::statements::SELECT_COLLECTION_NAME)
                .bind(Id::from(collection))
                .fetch_one(tx.conn())
                .await
                .map_err(db_error)?;
            let mut deleted = EventData::new(
                EventType::PersonDeleted,
                EventCollection {
                    id: collection,
                    name,
                },
                None,
            );
            deleted.person = Some(EventPerson { id, name: None });
            super::outbox::append_locked(tx, &[deleted]).await?;
            Ok(Some(DeletedPerson {
                person,
                faces_deleted,
            }))
        })
        .await
    }
}

/// The person of the collection, read (and, where the dialect can, locked) inside a write
/// transaction.
pub(super) async fn person_for_write(
    tx: &mut Tx<'_>,
    collection: In,
    id: PersonId,
) -> StoreResult<Person> {
    bind::select_person_for_write(collection, id)
        .fetch_optional(tx.conn())
        .await
        .map_err(db_error)?
        .map(Person::from)
        .ok_or(StoreError::PersonNotFound(id))
}

/// Adds a face to a person held by this write transaction, unless the same photo is already
/// theirs (by sha256, for this model).
pub(super) async fn add_face_in(
    tx: &mut Tx<'_>,
    collection: In,
    person: PersonId,
    new: NewFace,
    actor: &Actor,
) -> StoreResult<(Face, Added)> {
    let existing = bind::select_face_of_image(person, &new)
        .fetch_optional(tx.conn())
        .await
        .map_err(db_error)?;
    if let Some(row) = existing {
        return Ok((row.into(), Added::AlreadyPresent));
    }
    let face = face_from_new(person, new, Utc::now())?;
    tx.run(
        bind::face_addition(collection, &face, actor),
        Taken::Nothing,
    )
    .await?;
    tx.changed(Change::FaceAdded(collection, face.clone()));
    Ok((face, Added::Created))
}
