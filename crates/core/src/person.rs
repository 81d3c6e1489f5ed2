//! The rules every backend applies when a person or a face is stored or changed: fields are
//! checked, names folded, ids and timestamps given, here once, before any statement runs.

use facerec_types::NormalizedEmbedding;

use crate::domain::*;
use crate::error::{StoreError, StoreResult};

/// Checks an embedding's length before it reaches a database.
pub fn check_dimension(embedding: &NormalizedEmbedding) -> StoreResult<()> {
    if embedding.dim() != crate::EMBEDDING_DIM {
        return Err(StoreError::EmbeddingDimension {
            expected: crate::EMBEDDING_DIM,
            actual: embedding.dim(),
        });
    }
    Ok(())
}

/// The largest metadata object a person may carry, as JSON text: every read of the person parses
/// it. The same as a form's text field (an upload's metadata field is bounded there first).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Checks a person's metadata: a JSON object (or nothing) of at most [`MAX_METADATA_BYTES`].
pub fn check_metadata(metadata: &serde_json::Value) -> StoreResult<()> {
    if !(metadata.is_object() || metadata.is_null()) {
        return Err(StoreError::InvalidPerson(
            "metadata must be a JSON object".into(),
        ));
    }
    let len = serde_json::to_string(metadata).map_or(usize::MAX, |t| t.len());
    if len > MAX_METADATA_BYTES {
        return Err(StoreError::InvalidPerson(format!(
            "metadata must be at most {MAX_METADATA_BYTES} bytes of JSON, not {len}"
        )));
    }
    Ok(())
}

/// Checks a new person's fields.
pub fn check_new_person(person: &NewPerson) -> StoreResult<()> {
    check_name(&person.name)?;
    check_metadata(&person.metadata)?;
    if person.consent.basis.trim().is_empty() {
        return Err(StoreError::ConsentRequired);
    }
    if let Some(ext) = &person.external_id {
        check_external_id(ext)?;
    }
    Ok(())
}

/// A name as case-insensitive search compares it: Unicode lowercase (`str::to_lowercase`, no locale),
/// so "ÉMILE", "Émile" and "émile" are one. Both backends store it beside the name and fold the
/// search text the same way (a database's own `lower()` may fold ASCII only).
pub fn fold_name(name: &str) -> String {
    name.to_lowercase()
}

pub fn check_name(name: &str) -> StoreResult<()> {
    if name.trim().is_empty() || name.chars().count() > 200 {
        return Err(StoreError::InvalidPerson(
            "name must have 1 to 200 characters".into(),
        ));
    }
    Ok(())
}

pub fn check_external_id(external_id: &str) -> StoreResult<()> {
    if external_id.is_empty() || external_id.len() > 200 {
        return Err(StoreError::InvalidPerson(
            "external_id must have 1 to 200 bytes".into(),
        ));
    }
    Ok(())
}

/// A consent may run out later, never already.
pub fn check_expiry(
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<()> {
    match expires_at {
        Some(at) if at <= now => Err(StoreError::InvalidPerson(
            "consent_expires_at must be in the future".into(),
        )),
        _ => Ok(()),
    }
}

/// A new person as stored: validated, with a fresh id and timestamps.
pub fn person_from_new(new: &NewPerson, now: chrono::DateTime<chrono::Utc>) -> StoreResult<Person> {
    check_new_person(new)?;
    check_expiry(new.consent.expires_at, now)?;
    Ok(Person {
        id: PersonId::new(),
        name: new.name.trim().to_owned(),
        external_id: new.external_id.clone(),
        metadata: new.metadata.clone(),
        consent: new.consent.clone(),
        created_at: now,
        updated_at: now,
    })
}

/// A new face as stored: dimension checked, with a fresh id.
pub fn face_from_new(
    person: PersonId,
    new: NewFace,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Face> {
    check_dimension(&new.embedding)?;
    Ok(Face {
        id: FaceId::new(),
        person_id: person,
        embedding: new.embedding,
        det_score: new.det_score,
        bbox: new.bbox,
        quality: new.quality,
        model: new.model,
        image_sha256: new.image_sha256,
        created_at: now,
    })
}

/// Applies a validated patch; returns the names of the fields it changed (for the audit log).
pub fn apply_patch(
    person: &mut Person,
    patch: PersonPatch,
    now: chrono::DateTime<chrono::Utc>,
) -> StoreResult<Vec<&'static str>> {
    let mut changed = Vec::new();
    if let Some(name) = patch.name {
        check_name(&name)?;
        person.name = name.trim().to_owned();
        changed.push("name");
    }
    if let Some(external_id) = patch.external_id {
        if let Some(ext) = &external_id {
            check_external_id(ext)?;
        }
        person.external_id = external_id;
        changed.push("external_id");
    }
    if let Some(metadata) = patch.metadata {
        check_metadata(&metadata)?;
        person.metadata = metadata;
        changed.push("metadata");
    }
    if let Some(expires_at) = patch.consent_expires_at {
        check_expiry(expires_at, now)?;
        person.consent.expires_at = expires_at;
        changed.push("consent_expires_at");
    }
    person.updated_at = now;
    Ok(changed)
}
