-- The event outbox (facerec_core::events): what recognitions decided, waiting for every destination
-- (webhooks, MQTT) to take it. Bounded: at most 100,000 events and 24 hours (OUTBOX_MAX,
-- OUTBOX_MAX_AGE); delivered events go at the next prune. A person's undelivered events go with them.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    -- No reference: collection.deleted outlives its collection (deleted explicitly with it).
    collection_id TEXT NOT NULL,
    type          TEXT NOT NULL,
    -- No reference: a person.deleted event outlives its person.
    person_id     TEXT,
    created_at    TEXT NOT NULL,
    data          TEXT NOT NULL      -- JSON EventData
);
CREATE INDEX events_collection ON events (collection_id, seq);
CREATE INDEX events_person ON events (person_id);
CREATE INDEX events_created ON events (created_at);

-- Where events go: a webhook of a collection, or the MQTT broker (every collection). Each follows
-- the outbox with a cursor; one replica at a time drives it (the lease).
CREATE TABLE event_sinks (
    id              TEXT PRIMARY KEY,   -- a webhook's id, or 'mqtt'
    kind            TEXT NOT NULL CHECK (kind IN ('webhook', 'mqtt')),
    collection_id   TEXT REFERENCES collections (id) ON DELETE CASCADE,
    url             TEXT,
    events          TEXT NOT NULL,      -- JSON list of event types
    secret          TEXT,
    created_at      TEXT NOT NULL,
    cursor          INTEGER NOT NULL,
    failing_seq     INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    first_failed_at TEXT,
    next_attempt_at TEXT,
    last_error      TEXT,
    lease_owner     TEXT,
    lease_until     TEXT
);
CREATE INDEX event_sinks_collection ON event_sinks (collection_id);

-- The newest deliveries per destination (DELIVERY_LOG_MAX, 1,000).
CREATE TABLE event_deliveries (
    sink_id    TEXT NOT NULL REFERENCES event_sinks (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('delivered', 'failed')),
    attempts   INTEGER NOT NULL,
    reason     TEXT,
    at         TEXT NOT NULL,
    PRIMARY KEY (sink_id, seq)
);

-- The id an answer and its event gave a capture that the writer then merged into an earlier sighting
-- of the same face: it names that capture (at most 1,000 a capture; ALIASES_PER_CAPTURE).
CREATE TABLE capture_aliases (
    alias      TEXT PRIMARY KEY,
    capture_id TEXT NOT NULL REFERENCES captures (id) ON DELETE CASCADE
);
CREATE INDEX capture_aliases_capture ON capture_aliases (capture_id);
