//! Registration: a person from a photo, or one more photo of a registered person. Consent first,
//! then the face (one face, good enough to enroll), then one transaction in the store.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use facerec_core::retry::{Attempt, IdempotencyKey, Remembered};
use facerec_core::{
    Added, Caller, Consent, Face, NewFace, NewPerson, PageRequest, Person, PersonId, StoreError,
};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::error::{AppError, AppResult};
pub use crate::selection::FacePick;
use crate::selection::Selection;

/// A registration request, as the HTTP layer or the CLI parsed it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub image: Bytes,
    pub target: RegistrationTarget,
    /// The caller's explicit statement that the person consented.
    pub consent: bool,
    pub consent_basis: Option<String>,
    /// When the consent runs out (a new person only; default: the configured retention).
    pub consent_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub pick: FacePick,
    /// The client's name for this attempt: a retry under it answers what the first attempt did.
    pub idempotency_key: Option<IdempotencyKey>,
}

#[derive(Debug, Clone)]
pub enum RegistrationTarget {
    NewPerson {
        name: String,
        external_id: Option<String>,
        metadata: serde_json::Value,
    },
    Existing(PersonId),
}

#[derive(Debug, Clone)]
pub struct Registered {
    pub person: Person,
    pub face: Face,
    pub added: Added,
    /// The answer of an earlier attempt under the same `Idempotency-Key`.
    pub replayed: bool,
}

/// What consent basis is recorded when the caller gives none beyond `consent=true`.
pub const DEFAULT_CONSENT_BASIS: &str =
    "explicit consent confirmed by the registering client (consent=true)";

impl App {
    /// The face of a photo to enroll: the one face (or the largest, as `pick` says), good enough
    /// for the quality policy, embedded by the collection's recognizer.
    pub(crate) async fn enrollable_face(
        &self,
        caller: &Caller,
        image: Bytes,
        pick: FacePick,
    ) -> AppResult<NewFace> {
        let image_sha256 = hex::encode(Sha256::digest(&image));
        let analysis = self
            .analyze_selecting(caller, image, Selection::Pick(pick))
            .await?;
        let face = analysis.faces.into_iter().next().ok_or(AppError::NoFace)?;
        self.quality.check(face.detection.score, &face.quality)?;
        Ok(NewFace {
            embedding: face.embedding,
            det_score: face.detection.score,
            bbox: face.detection.bbox.to_array(),
            quality: face.quality,
            model: caller.collection.model.recognizer.clone(),
            image_sha256,
        })
    }

    /// Registers a person from a photo, or adds the photo's face to an existing person. Under an
    /// `Idempotency-Key`, an attempt remembered under it is answered again (and a concurrent one
    /// that was remembered first, too), without registering anything.
    pub async fn register(&self, request: Registration, caller: &Caller) -> AppResult<Registered> {
        let Some(key) = request.idempotency_key.clone() else {
            return self.register_now(request, caller, None).await;
        };
        let attempt = Attempt {
            key,
            fingerprint: fingerprint(&request),
        };
        if let Some(earlier) = self.replay(caller, &attempt).await? {
            return Ok(earlier);
        }
        match self.register_now(request, caller, Some(&attempt)).await {
            // A concurrent attempt under the key committed first: its answer. (Its external id,
            // if it gave one, is what the unique index reports first.)
            Err(
                e @ (AppError::Store(StoreError::IdempotencyKeyTaken)
                | AppError::DuplicateExternalId { .. }
                | AppError::Store(StoreError::DuplicateExternalId(_))),
            ) => Ok(self.replay(caller, &attempt).await?.ok_or(e)?),
            done => done,
        }
    }

    /// The registration an earlier attempt under this key made, if it asked for the same.
    async fn replay(&self, caller: &Caller, attempt: &Attempt) -> AppResult<Option<Registered>> {
        let c = caller.collection_id();
        let Some(Remembered {
            fingerprint,
            person,
            face,
            created,
        }) = self.store.remembered(c, &attempt.key).await?
        else {
            return Ok(None);
        };
        if fingerprint != attempt.fingerprint {
            return Err(AppError::IdempotencyKeyReused);
        }
        Ok(Some(Registered {
            person: self.store.get_person(c, person).await?,
            face: self.store.get_face(c, face).await?,
            added: if created {
                Added::Created
            } else {
                Added::AlreadyPresent
            },
            replayed: true,
        }))
    }

    async fn register_now(
        &self,
        request: Registration,
        caller: &Caller,
        attempt: Option<&Attempt>,
    ) -> AppResult<Registered> {
        if !request.consent {
            return Err(AppError::ConsentRequired);
        }
        let new_face = self
            .enrollable_face(caller, request.image, request.pick)
            .await?;
        let (c, actor) = (caller.collection_id(), &caller.actor);
        match request.target {
            RegistrationTarget::Existing(person_id) => {
                let person = self.store.get_person(c, person_id).await?;
                let (face, added) = match attempt {
                    Some(attempt) => {
                        (self.store)
                            .add_face_once(c, person_id, new_face, actor, attempt)
                            .await?
                    }
                    None => self.store.add_face(c, person_id, new_face, actor).await?,
                };
                Ok(Registered {
                    person,
                    face,
                    added,
                    replayed: false,
                })
            }
            RegistrationTarget::NewPerson {
                name,
                external_id,
                metadata,
            } => {
                let basis = request.consent_basis.filter(|b| !b.trim().is_empty());
                let basis = basis.unwrap_or_else(|| DEFAULT_CONSENT_BASIS.to_owned());
                let consent = self.consent(caller, basis, request.consent_expires_at)?;
                let new_person = NewPerson {
                    name,
                    external_id,
                    metadata,
                    consent,
                };
                let external_id = new_person.external_id.clone();
                let registered = match attempt {
                    Some(attempt) => {
                        (self.store)
                            .register_once(c, new_person, new_face, actor, attempt)
                            .await
                    }
                    None => self.store.register(c, new_person, new_face, actor).await,
                };
                let (person, face) = match registered {
                    Err(StoreError::DuplicateExternalId(taken)) => {
                        return Err(self.external_id_holder(caller, taken, external_id).await)
                    }
                    other => other?,
                };
                Ok(Registered {
                    person,
                    face,
                    added: Added::Created,
                    replayed: false,
                })
            }
        }
    }

    /// The error for an external id another person holds, naming them (found after the fact: the
    /// write that failed held nothing).
    async fn external_id_holder(
        &self,
        caller: &Caller,
        taken: String,
        asked: Option<String>,
    ) -> AppError {
        let page = PageRequest {
            limit: 1,
            external_id: asked,
            ..PageRequest::default()
        };
        match self.store.list_persons(caller.collection_id(), &page).await {
            Ok(found) => match found.items.first() {
                Some(holder) => AppError::DuplicateExternalId {
                    external_id: taken,
                    person: holder.id,
                },
                None => StoreError::DuplicateExternalId(taken).into(),
            },
            Err(e) => e.into(),
        }
    }

    /// A consent given now, until `expires_at` or else the caller's collection's default
    /// retention, or the server's.
    pub(crate) fn consent(
        &self,
        caller: &Caller,
        basis: String,
        expires_at: Option<DateTime<Utc>>,
    ) -> AppResult<Consent> {
        let consent = Consent::given_now(basis)?;
        let default = caller
            .collection
            .settings
            .retention_days
            .or(self.retention.default_days)
            .map(|days| consent.given_at + chrono::Duration::days(i64::from(days)));
        Ok(consent.until(expires_at.or(default)))
    }
}

/// What a registration asks for, as a digest: the photo's sha256 and every field, so that a retry
/// (whatever its multipart boundary) matches and another request under the same key does not.
fn fingerprint(request: &Registration) -> String {
    let target = match &request.target {
        RegistrationTarget::NewPerson {
            name,
            external_id,
            metadata,
        } => serde_json::json!({ "name": name, "external_id": external_id, "metadata": metadata }),
        RegistrationTarget::Existing(person) => serde_json::json!({ "person_id": person.0 }),
    };
    let asked = serde_json::json!({
        "image": hex::encode(Sha256::digest(&request.image)),
        "target": target,
        "consent": request.consent,
        "consent_basis": request.consent_basis,
        "consent_expires_at": request.consent_expires_at,
        "pick": format!("{:?}", request.pick),
    });
    hex::encode(Sha256::digest(asked.to_string()))
}
