-- Collections (a gallery per application) and API keys kept in the database. Every person, face,
-- audit event, stream ticket and calibration belongs to one collection; the data from before
-- lives in `default` (facerec_core::CollectionId::DEFAULT, the nil UUID). Adding a column with a
-- constant default rewrites no rows (and fires no trigger on the append-only audit log).
CREATE TABLE collections (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    settings   jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
INSERT INTO collections (id, name, settings, created_at, updated_at)
    VALUES ('00000000-0000-0000-0000-000000000000', 'default', '{}', now(), now());

ALTER TABLE persons ADD COLUMN collection_id uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000' REFERENCES collections (id);
ALTER TABLE persons ALTER COLUMN collection_id DROP DEFAULT;
-- An external id is unique within its collection (a global one would tell one collection what
-- another holds).
ALTER TABLE persons DROP CONSTRAINT persons_external_id_key;
ALTER TABLE persons ADD CONSTRAINT persons_collection_external_id_key
    UNIQUE (collection_id, external_id);
DROP INDEX persons_name_folded;
CREATE INDEX persons_collection_name_folded ON persons (collection_id, name_folded);
CREATE INDEX persons_collection_created ON persons (collection_id, created_at, id);

-- The person's collection, kept beside each face so that a search filters on it in the index scan.
ALTER TABLE faces ADD COLUMN collection_id uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE faces ALTER COLUMN collection_id DROP DEFAULT;
CREATE INDEX faces_collection ON faces (collection_id, created_at, id);
-- A 512-d vector (2,056 bytes) is just over PostgreSQL's TOAST threshold (2,032): stored out of
-- line, every exact comparison fetches it from the TOAST table. A small collection is searched
-- exactly (its rows by the index above), so its vectors stay in the row (rows written from now on).
ALTER TABLE faces ALTER COLUMN embedding SET STORAGE PLAIN;

-- Events outlive their collection: no foreign key.
ALTER TABLE audit_events ADD COLUMN collection_id uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE audit_events ALTER COLUMN collection_id DROP DEFAULT;
CREATE INDEX audit_events_collection ON audit_events (collection_id, id);
ALTER TABLE stream_tickets ADD COLUMN collection_id uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE stream_tickets ALTER COLUMN collection_id DROP DEFAULT;
ALTER TABLE calibrations ADD COLUMN collection_id uuid NOT NULL
    DEFAULT '00000000-0000-0000-0000-000000000000';
ALTER TABLE calibrations ALTER COLUMN collection_id DROP DEFAULT;

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    collection_id uuid NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    label         text NOT NULL,
    scopes        text NOT NULL,         -- space-separated scope names
    secret_sha256 text NOT NULL UNIQUE,  -- hex; the secret itself is never stored
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_keys_collection ON api_keys (collection_id);
