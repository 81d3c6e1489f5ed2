-- Registrations a client may retry (the `Idempotency-Key` header): a key names what its first
-- attempt registered, so that a retry answers the same. Kept 24 hours by the retention sweep, and
-- gone at once with the face (or person) it names: nothing about a deleted person stays here.
CREATE TABLE idempotency_keys (
    collection_id TEXT NOT NULL,
    key           TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,    -- sha256 of what the request asked for
    person_id     TEXT NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    face_id       TEXT NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    created       INTEGER NOT NULL, -- 1: the first attempt added the face; 0: it was there already
    at            TEXT NOT NULL,    -- RFC 3339
    PRIMARY KEY (collection_id, key)
);
CREATE INDEX idempotency_keys_at ON idempotency_keys (at);
CREATE INDEX idempotency_keys_face ON idempotency_keys (face_id);
CREATE INDEX idempotency_keys_person ON idempotency_keys (person_id);
