-- Collections (a gallery per application) and API keys kept in the database. Every person, face,
-- audit event, stream ticket and calibration belongs to one collection; the data from before
-- lives in `default` (facerec_core::CollectionId::DEFAULT, the nil UUID).
CREATE TABLE collections (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    settings   TEXT NOT NULL DEFAULT '{}', -- JSON CollectionSettings
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
INSERT INTO collections (id, name, settings, created_at, updated_at) VALUES
    ('00000000-0000-0000-0000-000000000000', 'default', '{}',
     strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

-- An external id is unique within its collection (a global one would tell one collection what
-- another holds). SQLite cannot change a constraint in place: persons and faces are rebuilt, faces
-- first dropped so that dropping persons cascades to nothing.
CREATE TABLE persons_v6 (
    id                 TEXT PRIMARY KEY,
    collection_id      TEXT NOT NULL REFERENCES collections (id),
    name               TEXT NOT NULL,
    name_folded        TEXT,
    external_id        TEXT,
    metadata           TEXT NOT NULL DEFAULT '{}',
    consent_given_at   TEXT NOT NULL,
    consent_basis      TEXT NOT NULL,
    consent_expires_at TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    UNIQUE (collection_id, external_id)
);
INSERT INTO persons_v6 (id, collection_id, name, name_folded, external_id, metadata,
                        consent_given_at, consent_basis, consent_expires_at, created_at, updated_at)
    SELECT id, '00000000-0000-0000-0000-000000000000', name, name_folded, external_id, metadata,
           consent_given_at, consent_basis, consent_expires_at, created_at, updated_at
    FROM persons;

CREATE TABLE faces_v6 (
    id            TEXT PRIMARY KEY,
    person_id     TEXT NOT NULL REFERENCES persons_v6 (id) ON DELETE CASCADE,
    collection_id TEXT NOT NULL,              -- the person's, kept here for the per-collection index
    embedding     BLOB NOT NULL,
    det_score     REAL NOT NULL,
    bbox          TEXT NOT NULL,
    quality       TEXT NOT NULL,
    model_name    TEXT NOT NULL,
    model_sha256  TEXT NOT NULL,
    image_sha256  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    UNIQUE (person_id, model_name, model_sha256, image_sha256)
);
INSERT INTO faces_v6 (id, person_id, collection_id, embedding, det_score, bbox, quality,
                      model_name, model_sha256, image_sha256, created_at)
    SELECT id, person_id, '00000000-0000-0000-0000-000000000000', embedding, det_score, bbox,
           quality, model_name, model_sha256, image_sha256, created_at
    FROM faces;

DROP TABLE faces;
DROP TABLE persons;
ALTER TABLE persons_v6 RENAME TO persons;
ALTER TABLE faces_v6 RENAME TO faces;
CREATE INDEX persons_collection_name_folded ON persons (collection_id, name_folded);
CREATE INDEX persons_collection_created ON persons (collection_id, created_at, id);
CREATE INDEX persons_consent_expires_at ON persons (consent_expires_at)
    WHERE consent_expires_at IS NOT NULL;
CREATE INDEX faces_person ON faces (person_id);
CREATE INDEX faces_collection ON faces (collection_id, created_at, id);

-- Events outlive their collection: no foreign key.
ALTER TABLE audit_events ADD COLUMN collection_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
CREATE INDEX audit_events_collection ON audit_events (collection_id, id);
ALTER TABLE stream_tickets ADD COLUMN collection_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE calibrations ADD COLUMN collection_id TEXT NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    label         TEXT NOT NULL,
    scopes        TEXT NOT NULL,         -- space-separated scope names
    secret_sha256 TEXT NOT NULL UNIQUE,  -- hex; the secret itself is never stored
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    revoked_at    TEXT,
    last_used_at  TEXT
);
CREATE INDEX api_keys_collection ON api_keys (collection_id);
