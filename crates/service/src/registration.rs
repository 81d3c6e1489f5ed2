//! Registration: a person from a photo, or one more photo of a registered person. Consent first,
//! then the face (one face, good enough to enroll), then one transaction in the store.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use facerec_core::{Added, Caller, Consent, Face, NewFace, NewPerson, Person, PersonId};
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
}

/// What consent basis is recorded when the caller gives none beyond `consent=true`.
pub const DEFAULT_CONSENT_BASIS: &str =
    "explicit consent confirmed by the registering client (consent=true)";

impl App {
    /// The face of a photo to enroll: the one face (or the largest, as `pick` says), good enough
    /// for the quality policy, embedded by the current model.
    pub(crate) async fn enrollable_face(&self, image: Bytes, pick: FacePick) -> AppResult<NewFace> {
        let image_sha256 = hex::encode(Sha256::digest(&image));
        let analysis = self.analyze_selecting(image, Selection::Pick(pick)).await?;
        let face = analysis.faces.into_iter().next().ok_or(AppError::NoFace)?;
        self.quality.check(face.detection.score, &face.quality)?;
        Ok(NewFace {
            embedding: face.embedding,
            det_score: face.detection.score,
            bbox: face.detection.bbox.to_array(),
            quality: face.quality,
            model: self.model.clone(),
            image_sha256,
        })
    }

    /// Registers a person from a photo, or adds the photo's face to an existing person.
    pub async fn register(&self, request: Registration, caller: &Caller) -> AppResult<Registered> {
        if !request.consent {
            return Err(AppError::ConsentRequired);
        }
        let new_face = self.enrollable_face(request.image, request.pick).await?;
        match request.target {
            RegistrationTarget::Existing(person_id) => {
                let person = self
                    .store
                    .get_person(caller.collection_id(), person_id)
                    .await?;
                let (face, added) = self
                    .store
                    .add_face(caller.collection_id(), person_id, new_face, &caller.actor)
                    .await?;
                Ok(Registered {
                    person,
                    face,
                    added,
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
                let (person, face) = self
                    .store
                    .register(caller.collection_id(), new_person, new_face, &caller.actor)
                    .await?;
                Ok(Registered {
                    person,
                    face,
                    added: Added::Created,
                })
            }
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
