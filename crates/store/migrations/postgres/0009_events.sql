-- The event outbox (facerec_core::events): what recognitions decided, waiting for every destination
-- (webhooks, MQTT) to take it. Bounded: at most 100,000 events and 24 hours (OUTBOX_MAX,
-- OUTBOX_MAX_AGE); delivered events go at the next prune. A person's undelivered events go with them.
-- Appends hold a transaction-level advisory lock, so that events commit in `seq` order and a
-- destination's cursor never passes an event still being written.
CREATE TABLE events (
    seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            uuid NOT NULL UNIQUE,
    -- No reference: collection.deleted outlives its collection (deleted explicitly with it).
    collection_id uuid NOT NULL,
    type          text NOT NULL,
    -- No reference: a person.deleted event outlives its person.
    person_id     uuid,
    created_at    timestamptz NOT NULL,
    data          jsonb NOT NULL
);
CREATE INDEX events_collection ON events (collection_id, seq);
CREATE INDEX events_person ON events (person_id);
CREATE INDEX events_created ON events (created_at);

-- Where events go: a webhook of a collection, or the MQTT broker (every collection). Each follows
-- the outbox with a cursor; one replica at a time drives it (the lease).
CREATE TABLE event_sinks (
    id              text PRIMARY KEY,   -- a webhook's id, or 'mqtt'
    kind            text NOT NULL CHECK (kind IN ('webhook', 'mqtt')),
    collection_id   uuid REFERENCES collections (id) ON DELETE CASCADE,
    url             text,
    events          jsonb NOT NULL,
    secret          text,
    created_at      timestamptz NOT NULL,
    cursor          bigint NOT NULL,
    failing_seq     bigint,
    attempts        bigint NOT NULL DEFAULT 0,
    first_failed_at timestamptz,
    next_attempt_at timestamptz,
    last_error      text,
    lease_owner     text,
    lease_until     timestamptz
);
CREATE INDEX event_sinks_collection ON event_sinks (collection_id);

-- The newest deliveries per destination (DELIVERY_LOG_MAX, 1,000).
CREATE TABLE event_deliveries (
    sink_id    text NOT NULL REFERENCES event_sinks (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    event_id   uuid NOT NULL,
    event_type text NOT NULL,
    status     text NOT NULL CHECK (status IN ('delivered', 'failed')),
    attempts   bigint NOT NULL,
    reason     text,
    at         timestamptz NOT NULL,
    PRIMARY KEY (sink_id, seq)
);

-- The id an answer and its event gave a capture that the writer then merged into an earlier sighting
-- of the same face: it names that capture (at most 1,000 a capture; ALIASES_PER_CAPTURE).
CREATE TABLE capture_aliases (
    alias      uuid PRIMARY KEY,
    capture_id uuid NOT NULL REFERENCES captures (id) ON DELETE CASCADE
);
CREATE INDEX capture_aliases_capture ON capture_aliases (capture_id);
