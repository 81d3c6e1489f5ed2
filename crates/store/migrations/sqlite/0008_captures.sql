-- Captured faces (facerec_core::capture): only where a collection's `capture` setting is on, kept
-- `capture_retention_hours` and at most `capture_max` per collection. A capture's chip (the aligned
-- 112x112 face, JPEG) is in its own row: neither is ever kept without the other. Everything here
-- goes with its collection, and a capture named for (or rejected for) a person goes with them.
CREATE TABLE capture_clusters (
    id            TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    -- A cluster merged into another resolves to it (ids given out stay valid).
    merged_into   TEXT REFERENCES capture_clusters (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL
);
CREATE INDEX capture_clusters_collection ON capture_clusters (collection_id);
CREATE INDEX capture_clusters_merged ON capture_clusters (merged_into);

CREATE TABLE captures (
    id                 TEXT PRIMARY KEY,
    collection_id      TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    status             TEXT NOT NULL CHECK (status IN ('known', 'unknown', 'rejected')),
    person_id          TEXT REFERENCES persons (id) ON DELETE CASCADE,
    rejected_person_id TEXT REFERENCES persons (id) ON DELETE CASCADE,
    cluster_id         TEXT REFERENCES capture_clusters (id) ON DELETE CASCADE,
    similarity         REAL,
    threshold          REAL NOT NULL,
    estimated_fpir     REAL,
    source             TEXT NOT NULL,
    route              TEXT NOT NULL,
    first_seen         TEXT NOT NULL,
    seen_at            TEXT NOT NULL,
    sightings          INTEGER NOT NULL,
    det_score          REAL NOT NULL,
    quality            TEXT NOT NULL,     -- JSON FaceQuality
    bbox               TEXT NOT NULL,     -- JSON [x1, y1, x2, y2]
    model_name         TEXT NOT NULL,
    model_sha256       TEXT NOT NULL,
    embedding          BLOB NOT NULL,
    chip               BLOB               -- JPEG; gone once the capture is named
);
CREATE INDEX captures_collection ON captures (collection_id, id);
CREATE INDEX captures_seen ON captures (collection_id, seen_at);
CREATE INDEX captures_cluster ON captures (cluster_id);
CREATE INDEX captures_person ON captures (person_id);
CREATE INDEX captures_rejected ON captures (rejected_person_id);
