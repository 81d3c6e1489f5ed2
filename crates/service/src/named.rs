//! Persons called by name: the compatible APIs name a person by the name itself (CompreFace's
//! subject, DeepStack's userid), and `facerec enroll` by its folder. A name resolves through the
//! Unicode-folded name (`fold_name`) to exactly one person, or the call answers that several
//! share it — never "the first". Finding or creating the person and adding photos is one store
//! transaction, serialized per name, so concurrent requests create one person.

use bytes::Bytes;
use facerec_core::{Caller, DeletedPerson, NewPerson, Person, PersonPatch, StoreError};

use crate::app::App;
use crate::error::{AppError, AppResult};
use crate::persons::Persons;
use crate::selection::FacePick;

/// Photos of the person called `name`, to add to them, creating them when nobody has the name.
#[derive(Debug, Clone)]
pub struct NamedRegistration {
    pub name: String,
    /// Every photo must give an enrollable face, or nothing is stored.
    pub images: Vec<Bytes>,
    /// How the person's consent was collected, recorded when they are created.
    pub consent_basis: String,
    /// Recorded on a person created here.
    pub metadata: serde_json::Value,
    pub pick: FacePick,
}

pub use facerec_core::RegisteredNamed;

impl Persons {
    /// The one person called `name` (Unicode-folded), if anybody is.
    pub async fn person_named(&self, caller: &Caller, name: &str) -> AppResult<Option<Person>> {
        let mut named = self
            .store
            .persons_named(caller.collection_id(), name, 2)
            .await?;
        if named.len() > 1 {
            return Err(AppError::AmbiguousName(name.to_owned()));
        }
        Ok(named.pop())
    }

    /// The one person called `name`, or [`AppError::NameNotFound`].
    pub async fn require_named(&self, caller: &Caller, name: &str) -> AppResult<Person> {
        self.person_named(caller, name)
            .await?
            .ok_or_else(|| AppError::NameNotFound(name.to_owned()))
    }

    /// Renames the person called `from`. Onto a name another person has, it refuses
    /// ([`AppError::NameTaken`]): merging two persons would merge two people's consent.
    pub async fn rename(&self, from: &str, to: &str, caller: &Caller) -> AppResult<Person> {
        let person = self.require_named(caller, from).await?;
        if to == person.name {
            return Ok(person);
        }
        match self.person_named(caller, to).await? {
            Some(other) if other.id != person.id => Err(AppError::NameTaken(to.to_owned())),
            _ => {
                let patch = PersonPatch {
                    name: Some(to.to_owned()),
                    ..PersonPatch::default()
                };
                Ok(self
                    .store
                    .update_person(caller.collection_id(), person.id, patch, &caller.actor)
                    .await?)
            }
        }
    }

    /// Deletes the person called `name` and every face of theirs; `None` when nobody has the name.
    pub async fn delete_named(
        &self,
        name: &str,
        caller: &Caller,
    ) -> AppResult<Option<DeletedPerson>> {
        let Some(person) = self.person_named(caller, name).await? else {
            return Ok(None);
        };
        match self
            .store
            .delete_person(caller.collection_id(), person.id, &caller.actor)
            .await
        {
            Ok(deleted) => Ok(Some(deleted)),
            // Deleted meanwhile.
            Err(StoreError::PersonNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

impl App {
    /// Analyzes every photo (all must give an enrollable face), then finds or creates the person
    /// and adds the faces, in one transaction: all or nothing.
    pub async fn register_named(
        &self,
        request: NamedRegistration,
        caller: &Caller,
    ) -> AppResult<RegisteredNamed> {
        let person = self.new_person(
            caller,
            &request.name,
            request.consent_basis,
            request.metadata,
        )?;
        let mut faces = Vec::with_capacity(request.images.len());
        // One after another: admission counted this request as one upload, so it holds one place in
        // the inference queue at a time.
        for image in request.images {
            faces.push(self.enrollable_face(caller, image, request.pick).await?);
        }
        Ok(self
            .store
            .register_named(caller.collection_id(), person, faces, &caller.actor)
            .await?)
    }

    /// A person of this name without faces yet (clients that name a subject before sending photos
    /// of them); [`AppError::NameTaken`] when somebody already has the name.
    pub async fn create_named(
        &self,
        name: &str,
        consent_basis: String,
        caller: &Caller,
    ) -> AppResult<Person> {
        let person = self.new_person(caller, name, consent_basis, serde_json::Value::Null)?;
        let registered = self
            .store
            .register_named(caller.collection_id(), person, Vec::new(), &caller.actor)
            .await?;
        if !registered.created {
            return Err(AppError::NameTaken(name.to_owned()));
        }
        Ok(registered.person)
    }

    fn new_person(
        &self,
        caller: &Caller,
        name: &str,
        consent_basis: String,
        metadata: serde_json::Value,
    ) -> AppResult<NewPerson> {
        Ok(NewPerson {
            name: name.trim().to_owned(),
            external_id: None,
            metadata,
            consent: self.consent(caller, consent_basis, None)?,
        })
    }
}
