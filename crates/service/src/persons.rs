//! Managing what is stored: persons and their faces. Every deletion is for good; the audit log keeps
//! only that it happened.

use facerec_core::{
    AuditEvent, AuditFilter, Caller, DeletedPerson, Face, FaceEntry, FaceId, ListedPerson, Page,
    PageRequest, Person, PersonId, PersonPatch, Store,
};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::AppResult;

/// How long the face count for metrics is reused.
pub const FACE_COUNT_TTL: Duration = Duration::from_secs(60);

/// Page size used to walk every match of a name.
const NAME_PAGE: u32 = 500;

/// All that is held about one person (GDPR art. 15 and 20): the person with their consent, their
/// faces and every audit event about them.
#[derive(Debug, Clone)]
pub struct PersonExport {
    pub person: Person,
    pub faces: Vec<Face>,
    /// Newest first; at most [`PersonExport::MAX_AUDIT_EVENTS`].
    pub audit_events: Vec<AuditEvent>,
    /// More events exist than were exported.
    pub audit_events_truncated: bool,
    /// The captured faces named for them, or rejected for them, newest first (at most
    /// [`crate::captures::MAX_LIST`]); never their chips.
    pub captures: Vec<facerec_core::capture::Capture>,
}

impl PersonExport {
    /// A bound on one answer's size; a person compared this often is a monitoring subject whose
    /// log an operator exports from the database.
    pub const MAX_AUDIT_EVENTS: u32 = 10_000;
}

/// What is stored about persons, read, changed and deleted (by id or by name), and the sweep of
/// those whose consent ran out. Needs no inference engine.
pub struct Persons {
    pub(crate) store: Arc<dyn Store>,
    /// Time between two sweeps of expired consents (`Retention::sweep_every`).
    pub(crate) sweep_every: Duration,
    /// The last face count and when it was taken (metrics).
    face_count: Mutex<Option<(Instant, u64)>>,
}

impl Persons {
    pub fn new(store: Arc<dyn Store>, sweep_every: Duration) -> Self {
        Self {
            store,
            sweep_every,
            face_count: Mutex::new(None),
        }
    }

    /// A page of persons, each with their number of faces.
    pub async fn persons(
        &self,
        caller: &Caller,
        page: &PageRequest,
    ) -> AppResult<Page<ListedPerson>> {
        let collection = caller.collection_id();
        let (listed, mut faces) = tokio::try_join!(
            self.store.list_persons(collection, page),
            self.store.faces_per_person(collection, page),
        )?;
        let items = listed.items.into_iter().map(|person| ListedPerson {
            faces: faces.remove(&person.id).unwrap_or(0),
            person,
        });
        Ok(Page {
            items: items.collect(),
            total: listed.total,
        })
    }

    pub async fn person(&self, caller: &Caller, id: PersonId) -> AppResult<Person> {
        Ok(self.store.get_person(caller.collection_id(), id).await?)
    }

    /// Everything held about the person.
    pub async fn export_person(&self, caller: &Caller, id: PersonId) -> AppResult<PersonExport> {
        let person = self.store.get_person(caller.collection_id(), id).await?;
        let faces = self.store.list_faces(caller.collection_id(), id).await?;
        let limit = PersonExport::MAX_AUDIT_EVENTS;
        let filter = AuditFilter::newest(Some(id), limit + 1);
        let mut audit_events = self
            .store
            .audit_events(Some(caller.collection_id()), &filter)
            .await?;
        let audit_events_truncated = audit_events.len() > limit as usize;
        audit_events.truncate(limit as usize);
        let of_person = facerec_core::capture::CaptureFilter {
            person: Some(id),
            limit: crate::captures::MAX_LIST,
            ..Default::default()
        };
        let captures = self
            .store
            .list_captures(caller.collection_id(), &of_person)
            .await?;
        Ok(PersonExport {
            person,
            faces,
            audit_events,
            audit_events_truncated,
            captures,
        })
    }

    /// Every person's name, in registration order.
    pub async fn person_names(&self, caller: &Caller) -> AppResult<Vec<String>> {
        let mut names = Vec::new();
        let mut page = PageRequest {
            limit: NAME_PAGE,
            offset: 0,
            name_contains: None,
            expires_before: None,
            external_id: None,
        };
        loop {
            let found = self
                .store
                .list_persons(caller.collection_id(), &page)
                .await?;
            let n = found.items.len();
            names.extend(found.items.into_iter().map(|p| p.name));
            if n < NAME_PAGE as usize {
                return Ok(names);
            }
            page.offset += n as u64;
        }
    }

    pub async fn update_person(
        &self,
        id: PersonId,
        patch: PersonPatch,
        caller: &Caller,
    ) -> AppResult<Person> {
        Ok(self
            .store
            .update_person(caller.collection_id(), id, patch, &caller.actor)
            .await?)
    }

    /// Deletes the person and every face of theirs.
    pub async fn delete_person(&self, id: PersonId, caller: &Caller) -> AppResult<DeletedPerson> {
        Ok(self
            .store
            .delete_person(caller.collection_id(), id, &caller.actor)
            .await?)
    }

    /// A person's faces (their embeddings stay inside the service unless a caller asks).
    pub async fn faces(&self, caller: &Caller, person: PersonId) -> AppResult<Vec<Face>> {
        Ok(self
            .store
            .list_faces(caller.collection_id(), person)
            .await?)
    }

    pub async fn face(&self, caller: &Caller, id: FaceId) -> AppResult<Face> {
        Ok(self.store.get_face(caller.collection_id(), id).await?)
    }

    /// Every stored face in registration order, a page at a time, with whose it is.
    pub async fn all_faces(
        &self,
        caller: &Caller,
        limit: u32,
        offset: u64,
    ) -> AppResult<Page<FaceEntry>> {
        Ok(self
            .store
            .list_all_faces(caller.collection_id(), limit, offset)
            .await?)
    }

    /// Deletes every person and every face, for good; how many persons and faces went.
    pub async fn delete_all_persons(&self, caller: &Caller) -> AppResult<(u64, u64)> {
        let (mut persons, mut faces) = (0, 0);
        loop {
            let page = self
                .store
                .list_persons(
                    caller.collection_id(),
                    &PageRequest {
                        limit: NAME_PAGE,
                        offset: 0,
                        name_contains: None,
                        expires_before: None,
                        external_id: None,
                    },
                )
                .await?;
            let before = persons;
            for person in page.items {
                match self
                    .store
                    .delete_person(caller.collection_id(), person.id, &caller.actor)
                    .await
                {
                    Ok(deleted) => {
                        persons += 1;
                        faces += deleted.faces_deleted;
                    }
                    // Deleted meanwhile (or a lagging standby still lists them).
                    Err(facerec_core::StoreError::PersonNotFound(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if persons == before {
                return Ok((persons, faces));
            }
        }
    }

    pub async fn delete_face(&self, id: FaceId, caller: &Caller) -> AppResult<Face> {
        Ok(self
            .store
            .delete_face(caller.collection_id(), id, &caller.actor)
            .await?)
    }

    /// Deletes one face and says whose it was (the person stays, with their other faces; `None`
    /// when they were deleted meanwhile).
    pub async fn delete_face_of(
        &self,
        id: FaceId,
        caller: &Caller,
    ) -> AppResult<(Face, Option<Person>)> {
        let face = self
            .store
            .delete_face(caller.collection_id(), id, &caller.actor)
            .await?;
        let person = self
            .store
            .get_person(caller.collection_id(), face.person_id)
            .await
            .ok();
        Ok((face, person))
    }

    /// How many faces are stored in all collections, for metrics: counted at most once per
    /// [`FACE_COUNT_TTL`], so a scrape costs nothing (a count over a large PostgreSQL table is a
    /// scan).
    pub async fn faces_stored(&self) -> AppResult<u64> {
        if let Some((at, n)) = *self.face_count.lock().expect("face count lock") {
            if at.elapsed() < FACE_COUNT_TTL {
                return Ok(n);
            }
        }
        let n = self.store.count_faces(None).await?;
        *self.face_count.lock().expect("face count lock") = Some((Instant::now(), n));
        Ok(n)
    }
}
