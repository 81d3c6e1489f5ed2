//! Every error code facerec answers with, in one table: its HTTP status on `/v1`, how CompreFace's
//! and DeepStack's clients receive it, where the OpenAPI document lists it, and what it means.
//! Errors of every layer name a row ([`ErrorCode`]); the HTTP envelope, both compatible dialects,
//! the OpenAPI descriptions and docs/API.md's table are derived from it (a test holds docs/API.md to
//! it). No code string is written anywhere else.

/// Where the OpenAPI document lists a code among an operation's refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Documented {
    /// Every operation (malformed requests, the access guard, overload and the database).
    Always,
    /// Operations that need a key.
    Keyed,
    /// Operations that write to the database.
    Writes,
    /// Operations on a person or face named in the path.
    ById,
    /// Operations that take a body (an image upload).
    WithBody,
    /// Operations that register a face: a person from a photo, or one more photo of them.
    Registers,
    /// Operations that write a person's fields: registering one, or updating them.
    PersonFields,
    /// Listed by the operations that answer it themselves, or not an HTTP answer of `/v1` at all
    /// (start-up failures, messages on an open stream, the compatible APIs' own refusals).
    Own,
}

/// How CompreFace answers a code: its HTTP status and its numeric code (`CommonExceptionCode` in
/// CompreFace's sources; 0 is its `UNDEFINED`, 26 its generic "bad request"), and, where its
/// clients look for fixed words, its message (`{service}` is the service's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompreFace {
    pub status: u16,
    pub code: u32,
    pub message: Option<&'static str>,
}

macro_rules! error_codes {
    ($(
        $variant:ident $code:literal $status:literal
        compreface($cf_status:literal, $cf_code:literal $(, $cf_message:literal)?)
        deepstack($ds_status:literal) $documented:ident
        $description:literal;
    )*) => {
        /// A stable, machine-readable error code: clients branch on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $description] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(Self::$variant),*];

            /// The code as clients see it.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $code,)* }
            }

            /// The HTTP status on `/v1`.
            pub fn status(self) -> u16 {
                match self { $(Self::$variant => $status,)* }
            }

            /// How CompreFace's clients receive it.
            pub fn compreface(self) -> CompreFace {
                match self {
                    $(Self::$variant => CompreFace {
                        status: $cf_status,
                        code: $cf_code,
                        message: error_codes!(@message $($cf_message)?),
                    },)*
                }
            }

            /// The HTTP status DeepStack's clients receive (DeepStack has no 415 or 422).
            pub fn deepstack_status(self) -> u16 {
                match self { $(Self::$variant => $ds_status,)* }
            }

            /// Where the OpenAPI document lists it.
            pub fn documented(self) -> Documented {
                match self { $(Self::$variant => Documented::$documented,)* }
            }

            /// What it means, in one line (the OpenAPI document and docs/API.md say this).
            pub fn description(self) -> &'static str {
                match self { $(Self::$variant => $description,)* }
            }
        }
    };
    (@message) => { None };
    (@message $m:literal) => { Some($m) };
}

error_codes! {
    // Malformed requests and the access guard.
    InvalidRequest "invalid_request" 400 compreface(400, 26) deepstack(400) Always
        "a missing or malformed field, body or parameter (a number out of its range names the range)";
    ForbiddenOrigin "forbidden_origin" 403 compreface(403, 0) deepstack(403) Always
        "a request from another web page";
    ForbiddenHost "forbidden_host" 403 compreface(403, 0) deepstack(403) Always
        "a host name this server does not answer to";
    NotFound "not_found" 404 compreface(404, 0) deepstack(404) Own
        "no such route";
    MethodNotAllowed "method_not_allowed" 405 compreface(405, 0) deepstack(405) Own
        "this route does not take this method (with Allow)";
    PayloadTooLarge "payload_too_large" 413 compreface(413, 0) deepstack(413) WithBody
        "the request body is larger than the server accepts";
    RequestTimeout "request_timeout" 503 compreface(503, 0) deepstack(503) Always
        "the request took longer than the server allows";
    // Keys and tickets.
    MissingApiKey "missing_api_key" 401 compreface(400, 20, "Missing header: x-api-key") deepstack(401) Keyed
        "no API key was sent";
    InvalidApiKey "invalid_api_key" 401
        compreface(404, 10, "{service} service with this API Key not found") deepstack(401) Keyed
        "the API key is not one of this server's";
    InsufficientScope "insufficient_scope" 403 compreface(403, 0) deepstack(403) Keyed
        "the key lacks the scope this route needs (details.scope names it; raw embeddings need `embeddings`, which no key holds unless granted by name)";
    InvalidTicket "invalid_ticket" 401 compreface(401, 0) deepstack(401) Keyed
        "the stream ticket is unknown, expired or spent";
    RateLimited "rate_limited" 429 compreface(429, 0) deepstack(429) Keyed
        "the key is past its budget (Retry-After: the limiter's own wait, in whole seconds)";
    // Collections and keys.
    CollectionNotFound "collection_not_found" 404 compreface(404, 0) deepstack(404) Own
        "no such collection (or none this key may reach)";
    CollectionExists "collection_exists" 409 compreface(409, 0) deepstack(409) Own
        "a collection of this name already exists";
    InvalidCollection "invalid_collection" 422 compreface(400, 26) deepstack(400) Own
        "a collection's name or setting is invalid, it names a model pack not loaded here, or the collection `default` was to be deleted or renamed";
    KeyNotFound "key_not_found" 404 compreface(404, 0) deepstack(404) Own
        "no such API key";
    InvalidKey "invalid_key" 422 compreface(400, 26) deepstack(400) Own
        "a key to create has no scopes, an empty or long label, or an expiry not in the future";
    // Images.
    EmptyImage "empty_image" 400 compreface(400, 26) deepstack(400) WithBody
        "the image is empty";
    CorruptImage "corrupt_image" 400 compreface(400, 26) deepstack(400) WithBody
        "the image cannot be decoded (undecodable or truncated)";
    TooManyScans "too_many_scans" 400 compreface(400, 26) deepstack(400) WithBody
        "a progressive JPEG of more than 128 scans";
    UnsupportedFormat "unsupported_format" 415 compreface(400, 21) deepstack(400) WithBody
        "not a JPEG, PNG, WebP or BMP image";
    UnsupportedMediaType "unsupported_media_type" 415 compreface(400, 26) deepstack(400) WithBody
        "a body of a media type this route does not take (refused before it is read)";
    ImageTooLarge "image_too_large" 413 compreface(413, 0) deepstack(413) WithBody
        "the image file is larger than the image byte limit";
    ImageDimensionsTooLarge "image_dimensions_too_large" 413 compreface(413, 0) deepstack(413) WithBody
        "the image has more pixels, or a longer side, than allowed (read from its header)";
    // Faces and persons.
    NoFace "no_face" 422 compreface(400, 28, "No face is found in the given image") deepstack(400) WithBody
        "no face was found in the image";
    MultipleFaces "multiple_faces" 422 compreface(400, 31) deepstack(400) Registers
        "the photo shows several faces where one is needed (details.faces)";
    PoorQuality "poor_quality" 422 compreface(400, 26) deepstack(400) Registers
        "the face is not good enough to enroll (details.reason: too_small, low_confidence, not_frontal, indistinct)";
    ConsentRequired "consent_required" 422 compreface(405, 32) deepstack(403) Registers
        "registration needs explicit consent (the compatible APIs: the operator's consent statement)";
    InvalidPerson "invalid_person" 422 compreface(400, 26) deepstack(400) PersonFields
        "a person's field is invalid: a name or external id empty or too long, metadata too large, a consent expiry not in the future";
    InvalidEmbedding "invalid_embedding" 400 compreface(400, 26) deepstack(400) Own
        "an embedding of the wrong length, or not a finite unit vector";
    PersonNotFound "person_not_found" 404 compreface(404, 42) deepstack(404) ById
        "no such person";
    FaceNotFound "face_not_found" 404 compreface(404, 44) deepstack(404) ById
        "no such face";
    CaptureNotFound "capture_not_found" 404 compreface(404, 0) deepstack(404) Own
        "no such captured face (or it expired)";
    ClusterNotFound "cluster_not_found" 404 compreface(404, 0) deepstack(404) Own
        "no such cluster of unknown faces (a merged cluster's id names the one it joined)";
    CaptureConflict "capture_conflict" 409 compreface(409, 0) deepstack(409) Own
        "the captured face is not in a state for this: already named for a person, not named for anyone, or its chip is gone";
    WebhookNotFound "webhook_not_found" 404 compreface(404, 0) deepstack(404) Own
        "no such webhook in this collection";
    InvalidWebhook "invalid_webhook" 422 compreface(400, 26) deepstack(400) Own
        "a webhook's url is not http(s) with a host, its events name an unknown type, or the collection holds its limit of webhooks";
    WebhookAddressRefused "webhook_address_refused" 422 compreface(400, 26) deepstack(400) Own
        "the webhook's address is loopback, private, link-local (cloud metadata) or reserved: refused unless the operator allows private networks";
    ConsentExpired "consent_expired" 410 compreface(404, 42) deepstack(404) WithBody
        "the person's consent has expired: they are matched and compared with no more, and the next sweep deletes them";
    AmbiguousName "ambiguous_name" 409 compreface(409, 0) deepstack(409) Own
        "several persons have this name, which a compatible API uses as the id: rename one";
    DuplicateExternalId "duplicate_external_id" 409 compreface(409, 0) deepstack(409) Own
        "another person already has this external id (details.person_id: who)";
    IdempotencyKeyReused "idempotency_key_reused" 422 compreface(400, 26) deepstack(400) Own
        "this Idempotency-Key was used for another request (another photo, person or field) within a day";
    SubjectExists "subject_exists" 400 compreface(400, 43, "Subject already exists") deepstack(400) Own
        "a person of this name already exists (the compatible APIs)";
    // Streams.
    TooManyStreams "too_many_streams" 503 compreface(503, 0) deepstack(503) Own
        "every stream slot is taken";
    TooManyStreamsForKey "too_many_streams_for_key" 429 compreface(429, 0) deepstack(429) Own
        "this key holds its share of stream slots";
    InvalidMessage "invalid_message" 400 compreface(400, 26) deepstack(400) Own
        "a stream message that is not a binary image frame";
    FrameTooLarge "frame_too_large" 413 compreface(413, 0) deepstack(413) Own
        "a stream frame larger than the frame limit";
    // Capacity, models and the database.
    Overloaded "overloaded" 503 compreface(503, 0) deepstack(503) Always
        "the inference queue is full, or too many uploads are in flight (with Retry-After)";
    Unavailable "unavailable" 503 compreface(503, 0) deepstack(503) Own
        "the inference workers have stopped";
    InferenceFailed "inference_failed" 500 compreface(500, 0) deepstack(500) Own
        "the job failed on its worker, which was replaced";
    RuntimeUnavailable "runtime_unavailable" 500 compreface(500, 0) deepstack(500) Own
        "ONNX Runtime cannot be loaded";
    ModelUnavailable "model_unavailable" 503 compreface(503, 0) deepstack(503) Own
        "a model file is missing or unusable, or the collection's model pack is not loaded here";
    DeviceUnavailable "device_unavailable" 500 compreface(500, 0) deepstack(500) Own
        "the asked-for inference device is not available";
    DatabaseUnavailable "database_unavailable" 503 compreface(503, 0) deepstack(503) Always
        "the database cannot be reached (within ~2 s, with Retry-After)";
    DatabaseError "database_error" 503 compreface(503, 0) deepstack(503) Always
        "the database did not answer as expected (the log has the details)";
    DatabaseReadOnly "database_read_only" 503 compreface(503, 0) deepstack(503) Always
        "the database refuses writes (a read-only file or mount, or a standby)";
    DatabaseLocked "database_locked" 503 compreface(503, 0) deepstack(503) Own
        "another facerec process holds the SQLite database";
    DatabaseTooNew "database_too_new" 503 compreface(503, 0) deepstack(503) Own
        "the database's schema is newer than this binary (refused at start, nothing changed)";
    StorageFull "storage_full" 507 compreface(507, 0) deepstack(507) Writes
        "the database's storage is full: nothing was written";
    UnreadableFile "unreadable_file" 400 compreface(400, 26) deepstack(400) Own
        "a file the command line could not read";
    InternalError "internal_error" 500 compreface(500, 0) deepstack(500) Own
        "the server failed to answer this request";
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Codes compare with the text clients see (`code == "no_face"`).
impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_their_statuses_are_errors() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(text.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
            for status in [
                code.status(),
                code.compreface().status,
                code.deepstack_status(),
            ] {
                assert!((400..600).contains(&status), "{text}: {status}");
            }
            // DeepStack's clients know no 415 or 422.
            assert!(![415, 422].contains(&code.deepstack_status()), "{text}");
        }
    }
}
