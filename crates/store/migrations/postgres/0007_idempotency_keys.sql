-- Registrations a client may retry (the `Idempotency-Key` header): a key names what its first
-- attempt registered, so that a retry answers the same. Kept 24 hours by the retention sweep, and
-- gone at once with the face (or person) it names: nothing about a deleted person stays here.
CREATE TABLE idempotency_keys (
    collection_id uuid NOT NULL,
    key           text NOT NULL,
    fingerprint   text NOT NULL,
    person_id     uuid NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    face_id       uuid NOT NULL REFERENCES faces (id) ON DELETE CASCADE,
    created       boolean NOT NULL,
    at            timestamptz NOT NULL,
    PRIMARY KEY (collection_id, key)
);
CREATE INDEX idempotency_keys_at ON idempotency_keys (at);
CREATE INDEX idempotency_keys_face ON idempotency_keys (face_id);
CREATE INDEX idempotency_keys_person ON idempotency_keys (person_id);
