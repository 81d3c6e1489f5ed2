//! Registrations safe to retry: a client names an attempt with an `Idempotency-Key`, and a retry
//! with the same key answers what the first attempt answered, for [`KEPT_FOR`] (what the IETF
//! draft "The Idempotency-Key HTTP Header Field" and Stripe's API do).

use crate::{FaceId, PersonId};

/// How long an attempt is remembered: a day, long enough for any client's retries.
pub const KEPT_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// The longest key: room for a UUID, a hash or a client's own composite key.
pub const MAX_KEY_LEN: usize = 255;

/// A client's name for one attempt: 1 to [`MAX_KEY_LEN`] visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn new(key: &str) -> Result<Self, String> {
        let visible = key.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if key.is_empty() || key.len() > MAX_KEY_LEN || !visible || key.trim() != key {
            return Err(format!(
                "the Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ));
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One attempt: its key, and a digest of what it asks for (of its meaning, not its bytes: a
/// client's multipart boundary changes between retries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub key: IdempotencyKey,
    pub fingerprint: String,
}

/// What an attempt registered, as remembered under its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub fingerprint: String,
    pub person: PersonId,
    pub face: FaceId,
    /// The attempt added the face (else it was registered already).
    pub created: bool,
}
