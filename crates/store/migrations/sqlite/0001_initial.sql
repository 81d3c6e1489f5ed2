-- Persons, their faces (embeddings only, never images) and an append-only audit log.
CREATE TABLE persons (
    id               TEXT PRIMARY KEY,          -- UUID
    name             TEXT NOT NULL,
    external_id      TEXT UNIQUE,               -- the caller's id; NULLs do not collide
    metadata         TEXT NOT NULL DEFAULT '{}', -- JSON object
    consent_given_at TEXT NOT NULL,             -- RFC 3339
    consent_basis    TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX persons_name ON persons (name COLLATE NOCASE);

CREATE TABLE faces (
    id           TEXT PRIMARY KEY,
    person_id    TEXT NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    embedding    BLOB NOT NULL,                 -- 512 little-endian f32, L2-normalized
    det_score    REAL NOT NULL,
    bbox         TEXT NOT NULL,                 -- JSON [x1, y1, x2, y2]
    quality      TEXT NOT NULL,                 -- JSON FaceQuality
    model_name   TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    image_sha256 TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (person_id, model_name, model_sha256, image_sha256)
);
CREATE INDEX faces_person ON faces (person_id);

CREATE TABLE audit_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    action    TEXT NOT NULL,
    person_id TEXT,                             -- no foreign key: events outlive what they describe
    face_id   TEXT,
    actor     TEXT NOT NULL,
    details   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_person ON audit_events (person_id);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
