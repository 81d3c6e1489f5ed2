-- Persons, their faces (embeddings only, never images) and an append-only audit log.
-- The HNSW index on faces.embedding is created by the application (its parameters are configuration).
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE persons (
    id               uuid PRIMARY KEY,
    name             text NOT NULL,
    external_id      text UNIQUE,
    metadata         jsonb NOT NULL DEFAULT '{}',
    consent_given_at timestamptz NOT NULL,
    consent_basis    text NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX persons_name_lower ON persons (lower(name));

CREATE TABLE faces (
    id           uuid PRIMARY KEY,
    person_id    uuid NOT NULL REFERENCES persons (id) ON DELETE CASCADE,
    embedding    vector(512) NOT NULL,          -- L2-normalized: inner product = cosine
    det_score    real NOT NULL,
    bbox         jsonb NOT NULL,
    quality      jsonb NOT NULL,
    model_name   text NOT NULL,
    model_sha256 text NOT NULL,
    image_sha256 text NOT NULL,
    created_at   timestamptz NOT NULL,
    UNIQUE (person_id, model_name, model_sha256, image_sha256)
);
CREATE INDEX faces_person ON faces (person_id);

CREATE TABLE audit_events (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL,
    action    text NOT NULL,
    person_id uuid,                             -- no foreign key: events outlive what they describe
    face_id   uuid,
    actor     text NOT NULL,
    details   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_person ON audit_events (person_id);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
