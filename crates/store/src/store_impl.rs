//! The one implementation of [`facerec_core::Store`] for both SQL backends. The steps of every
//! operation are the same on SQLite and PostgreSQL; only the types differ, so the implementation is
//! written once here and expanded for each backend (`impl_store!(SqliteStore, Sqlite, "sqlite")`).
//! A macro rather than generic code: sqlx's executor bounds over a generic database do not survive
//! `async_trait`'s `Send` futures.
//!
//! A backend store provides these inherent methods:
//! - `writer(&self) -> StoreResult<impl DerefMut<Target = <DB as Database>::Connection>>`: the
//!   connection a write transaction begins on (SQLite: its one writer, held until the end of the
//!   write; PostgreSQL: a pooled connection);
//! - `readers(&self) -> &Pool<DB>`: where reads run (PostgreSQL: a standby, when configured);
//! - `fresh_readers(&self) -> &Pool<DB>`: where reads that must see the latest write run;
//! - `committed(&self, Committed)`: called after each commit, while the writer is still held (SQLite
//!   updates its in-memory index; PostgreSQL has nothing to do);
//! - `erase(&self, conn)`: called after a deletion commits, so that the deleted rows become
//!   unreadable in the database files too (SQLite: a WAL checkpoint; PostgreSQL: a batched VACUUM);
//! - `candidates(&self, probe, model, k)` and `face_count(&self)`: search and the face count, which
//!   each backend answers its own way.

use facerec_core::{Face, FaceId};

/// What a committed write changed, for a backend that keeps state beside the database.
pub(crate) enum Committed<'a> {
    FaceAdded(&'a Face),
    FacesRemoved(&'a [FaceId]),
}

/// Runs a change's statements on an open transaction; a unique violation on `external_id` becomes
/// its own error.
macro_rules! execute {
    ($tx:expr, $statements:expr, $external_id:expr) => {
        for statement in $statements {
            statement
                .execute(&mut *$tx)
                .await
                .map_err(|e| $crate::sql::write_error(e, $external_id))?;
        }
    };
}
pub(crate) use execute;

macro_rules! impl_store {
    ($store:ty, $db:ty, $backend:literal) => {
        impl $store {
            /// The person, read (and, where the dialect can, locked) inside a write transaction.
            async fn person_for_write(
                tx: &mut <$db as sqlx::Database>::Connection,
                id: PersonId,
            ) -> StoreResult<Person> {
                <$db>::select_person_for_write(id)
                    .fetch_optional(tx)
                    .await
                    .map_err(db_error)?
                    .map(Person::from)
                    .ok_or(StoreError::PersonNotFound(id))
            }

            /// Adds a face to a person held by this write transaction, unless the same photo is
            /// already theirs (by sha256, for this model).
            async fn add_face_in(
                tx: &mut <$db as sqlx::Database>::Connection,
                person: PersonId,
                new: NewFace,
                actor: &Actor,
            ) -> StoreResult<(Face, Added)> {
                let existing = <$db>::select_face_of_image(person, &new)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if let Some(row) = existing {
                    return Ok((row.into(), Added::AlreadyPresent));
                }
                let face = facerec_core::store::face_from_new(person, new, chrono::Utc::now())?;
                $crate::store_impl::execute!(tx, <$db>::add_face(&face, actor), None);
                Ok((face, Added::Created))
            }

            /// Fills in the folded names that migration 0002 could not compute (SQL's `lower()`
            /// folds differently); a no-op once done.
            async fn fold_missing_names(&self) -> StoreResult<()> {
                let rows = <$db>::select_unfolded_names()
                    .fetch_all(self.fresh_readers())
                    .await
                    .map_err(db_error)?;
                if rows.is_empty() {
                    return Ok(());
                }
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                let statements = rows
                    .iter()
                    .map(|(id, name)| <$db>::set_folded_name(*id, name));
                $crate::store_impl::execute!(tx, statements, None);
                tx.commit().await.map_err(db_error)?;
                tracing::info!(persons = rows.len(), "folded the names of existing persons");
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl facerec_core::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
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

            async fn register(
                &self,
                new: NewPerson,
                face: NewFace,
                actor: &Actor,
            ) -> StoreResult<(Person, Face)> {
                let now = chrono::Utc::now();
                let person = facerec_core::store::person_from_new(&new, now)?;
                let face = facerec_core::store::face_from_new(person.id, face, now)?;
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                let statements = <$db>::register(&person, &face, actor);
                $crate::store_impl::execute!(tx, statements, person.external_id.as_deref());
                tx.commit().await.map_err(db_error)?;
                self.committed($crate::store_impl::Committed::FaceAdded(&face));
                Ok((person, face))
            }

            async fn get_person(&self, id: PersonId) -> StoreResult<Person> {
                let row = <$db>::select_person(id)
                    .fetch_optional(self.readers())
                    .await
                    .map_err(db_error)?;
                row.map(Person::from).ok_or(StoreError::PersonNotFound(id))
            }

            async fn persons_named(&self, name: &str, limit: u32) -> StoreResult<Vec<Person>> {
                let rows = <$db>::select_persons_named(name, limit)
                    .fetch_all(self.fresh_readers())
                    .await
                    .map_err(db_error)?;
                Ok(rows.into_iter().map(Person::from).collect())
            }

            async fn register_named(
                &self,
                new: NewPerson,
                faces: Vec<NewFace>,
                actor: &Actor,
            ) -> StoreResult<RegisteredNamed> {
                let candidate = facerec_core::store::person_from_new(&new, chrono::Utc::now())?;
                for face in &faces {
                    facerec_core::store::check_dimension(&face.embedding)?;
                }
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                if let Some(lock) = <$db>::lock_name(&candidate.name) {
                    $crate::store_impl::execute!(tx, [lock], None);
                }
                let mut named = <$db>::select_persons_named(&candidate.name, 2)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if named.len() > 1 {
                    return Err(StoreError::AmbiguousName(candidate.name));
                }
                let (person, created) = match named.pop() {
                    Some(row) => {
                        let person = Self::person_for_write(&mut tx, Person::from(row).id).await?;
                        (person, false)
                    }
                    None => {
                        let statements = <$db>::create(&candidate, actor);
                        let external_id = candidate.external_id.as_deref();
                        $crate::store_impl::execute!(tx, statements, external_id);
                        (candidate, true)
                    }
                };
                let mut added = Vec::with_capacity(faces.len());
                for face in faces {
                    added.push(Self::add_face_in(&mut tx, person.id, face, actor).await?);
                }
                tx.commit().await.map_err(db_error)?;
                for (face, _) in added.iter().filter(|(_, a)| *a == Added::Created) {
                    self.committed($crate::store_impl::Committed::FaceAdded(face));
                }
                Ok(RegisteredNamed {
                    person,
                    created,
                    faces: added,
                })
            }

            async fn list_persons(&self, page: &PageRequest) -> StoreResult<Page<Person>> {
                let total = <$db>::count_persons(page)
                    .fetch_one(self.readers())
                    .await
                    .map_err(db_error)?;
                let rows = <$db>::list_persons(page)
                    .fetch_all(self.readers())
                    .await
                    .map_err(db_error)?;
                Ok(Page {
                    items: rows.into_iter().map(Person::from).collect(),
                    total: total as u64,
                })
            }

            async fn update_person(
                &self,
                id: PersonId,
                patch: PersonPatch,
                actor: &Actor,
            ) -> StoreResult<Person> {
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                let mut person = Self::person_for_write(&mut tx, id).await?;
                let changed =
                    facerec_core::store::apply_patch(&mut person, patch, chrono::Utc::now())?;
                let statements = <$db>::update(&person, &changed, actor);
                $crate::store_impl::execute!(tx, statements, person.external_id.as_deref());
                tx.commit().await.map_err(db_error)?;
                Ok(person)
            }

            async fn delete_person(
                &self,
                id: PersonId,
                actor: &Actor,
            ) -> StoreResult<DeletedPerson> {
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                let person = Self::person_for_write(&mut tx, id).await?;
                let faces: Vec<FaceId> = <$db>::delete_faces_of_person(id)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(FaceId::from)
                    .collect();
                let faces_deleted = faces.len() as u64;
                let statements = [
                    <$db>::delete_person(id),
                    <$db>::audit(NewAuditEvent::person_deleted(id, faces_deleted), actor),
                ];
                $crate::store_impl::execute!(tx, statements, None);
                tx.commit().await.map_err(db_error)?;
                self.committed($crate::store_impl::Committed::FacesRemoved(&faces));
                self.erase(&mut *writer).await;
                Ok(DeletedPerson {
                    person,
                    faces_deleted,
                })
            }

            async fn add_face(
                &self,
                person: PersonId,
                new: NewFace,
                actor: &Actor,
            ) -> StoreResult<(Face, Added)> {
                facerec_core::store::check_dimension(&new.embedding)?;
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                // Holding the person's row serializes concurrent adds for them, so the idempotency
                // check holds.
                Self::person_for_write(&mut tx, person).await?;
                let (face, added) = Self::add_face_in(&mut tx, person, new, actor).await?;
                if added == Added::Created {
                    tx.commit().await.map_err(db_error)?;
                    self.committed($crate::store_impl::Committed::FaceAdded(&face));
                }
                Ok((face, added))
            }

            async fn get_face(&self, id: FaceId) -> StoreResult<Face> {
                <$db>::select_face(id)
                    .fetch_optional(self.readers())
                    .await
                    .map_err(db_error)?
                    .map(Face::from)
                    .ok_or(StoreError::FaceNotFound(id))
            }

            async fn list_faces(&self, person: PersonId) -> StoreResult<Vec<Face>> {
                let mut conn = self.readers().acquire().await.map_err(db_error)?;
                <$db>::select_person(person)
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(db_error)?
                    .ok_or(StoreError::PersonNotFound(person))?;
                let rows = <$db>::select_faces_of_person(person)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db_error)?;
                Ok(rows.into_iter().map(Face::from).collect())
            }

            async fn delete_face(&self, id: FaceId, actor: &Actor) -> StoreResult<Face> {
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                let row = <$db>::delete_face(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_error)?;
                let face = row.map(Face::from).ok_or(StoreError::FaceNotFound(id))?;
                let event = NewAuditEvent::face_deleted(face.person_id, id);
                $crate::store_impl::execute!(tx, [<$db>::audit(event, actor)], None);
                tx.commit().await.map_err(db_error)?;
                self.committed($crate::store_impl::Committed::FacesRemoved(&[id]));
                self.erase(&mut *writer).await;
                Ok(face)
            }

            async fn record(&self, event: NewAuditEvent, actor: &Actor) -> StoreResult<()> {
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                $crate::store_impl::execute!(tx, [<$db>::audit(event, actor)], None);
                tx.commit().await.map_err(db_error)
            }

            async fn count_faces(&self) -> StoreResult<u64> {
                self.face_count().await
            }

            async fn list_all_faces(
                &self,
                limit: u32,
                offset: u64,
            ) -> StoreResult<Page<FaceEntry>> {
                let total = <$db>::count_faces()
                    .fetch_one(self.readers())
                    .await
                    .map_err(db_error)?;
                let rows = <$db>::list_face_entries(limit, offset)
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
                probe: &NormalizedEmbedding,
                model: &ModelId,
                k: usize,
            ) -> StoreResult<Vec<Candidate>> {
                facerec_core::store::check_dimension(probe)?;
                if k == 0 {
                    return Ok(Vec::new());
                }
                self.candidates(probe, model, k).await
            }

            async fn issue_ticket(
                &self,
                ticket_sha256: &str,
                actor: &Actor,
                expires_at: chrono::DateTime<chrono::Utc>,
                max_outstanding: u64,
            ) -> StoreResult<bool> {
                let mut writer = self.writer().await?;
                let mut tx = writer.begin().await.map_err(db_error)?;
                let now = chrono::Utc::now();
                $crate::store_impl::execute!(tx, [<$db>::delete_expired_tickets(now)], None);
                let outstanding = <$db>::count_tickets()
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_error)?;
                if outstanding as u64 >= max_outstanding {
                    return Ok(false);
                }
                let insert = <$db>::insert_ticket(ticket_sha256, actor, expires_at);
                $crate::store_impl::execute!(tx, [insert], None);
                tx.commit().await.map_err(db_error)?;
                Ok(true)
            }

            async fn ticket_holder(&self, ticket_sha256: &str) -> StoreResult<Option<Actor>> {
                let actor = <$db>::select_ticket(ticket_sha256, chrono::Utc::now())
                    .fetch_optional(self.fresh_readers())
                    .await
                    .map_err(db_error)?;
                Ok(actor.map(Actor))
            }

            async fn redeem_ticket(&self, ticket_sha256: &str) -> StoreResult<bool> {
                let mut writer = self.writer().await?;
                let redeemed = <$db>::redeem_ticket(ticket_sha256, chrono::Utc::now())
                    .fetch_optional(&mut *writer)
                    .await
                    .map_err(db_error)?;
                Ok(redeemed.is_some())
            }
        }
    };
}
pub(crate) use impl_store;
