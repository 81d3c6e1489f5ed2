-- Captured faces (facerec_core::capture): only where a collection's `capture` setting is on, kept
-- `capture_retention_hours` and at most `capture_max` per collection. A capture's chip (the aligned
-- 112x112 face, JPEG) is in its own row: neither is ever kept without the other. Everything here
-- goes with its collection, and a capture named for (or rejected for) a person goes with them.
CREATE TABLE capture_clusters (
    id            uuid PRIMARY KEY,
    collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    -- A cluster merged into another resolves to it (ids given out stay valid).
    merged_into   uuid REFERENCES capture_clusters (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL
);
CREATE INDEX capture_clusters_collection ON capture_clusters (collection_id);
CREATE INDEX capture_clusters_merged ON capture_clusters (merged_into);

CREATE TABLE captures (
    id                 uuid PRIMARY KEY,
    collection_id      uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    status             text NOT NULL CHECK (status IN ('known', 'unknown', 'rejected')),
    person_id          uuid REFERENCES persons (id) ON DELETE CASCADE,
    rejected_person_id uuid REFERENCES persons (id) ON DELETE CASCADE,
    cluster_id         uuid REFERENCES capture_clusters (id) ON DELETE CASCADE,
    similarity         real,
    threshold          real NOT NULL,
    estimated_fpir     double precision,
    source             text NOT NULL,
    route              text NOT NULL,
    first_seen         timestamptz NOT NULL,
    seen_at            timestamptz NOT NULL,
    sightings          bigint NOT NULL,
    det_score          real NOT NULL,
    quality            jsonb NOT NULL,
    bbox               jsonb NOT NULL,
    model_name         text NOT NULL,
    model_sha256       text NOT NULL,
    embedding          vector(512) NOT NULL,
    chip               bytea              -- JPEG; gone once the capture is named
);
CREATE INDEX captures_collection ON captures (collection_id, id);
CREATE INDEX captures_seen ON captures (collection_id, seen_at);
CREATE INDEX captures_cluster ON captures (cluster_id);
CREATE INDEX captures_person ON captures (person_id);
CREATE INDEX captures_rejected ON captures (rejected_person_id);
CREATE INDEX captures_embedding_hnsw ON captures USING hnsw (embedding vector_ip_ops);
