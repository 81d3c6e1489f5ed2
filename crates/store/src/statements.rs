//! Every statement both backends run, as text: SQLite accepts PostgreSQL's `$n` placeholders, so
//! one text serves both. How values are bound to them is in `ops/bind.rs`; the few statements a
//! dialect writes its own way stay with its backend (`sqlite.rs`, `postgres.rs`).

macro_rules! person_columns {
    () => {
        "id, name, external_id, metadata, consent_given_at, consent_basis, consent_expires_at, created_at, \
         updated_at"
    };
}
macro_rules! face_columns {
    () => {
        "id, person_id, embedding, det_score, bbox, quality, model_name, model_sha256, image_sha256, \
         created_at"
    };
}
/// `$1`: the collection; `$2`: a LIKE pattern over the folded name, or NULL for every person;
/// `$3`: the latest consent expiry to list, or NULL for every person; `$4`: an external id, or
/// NULL for every person.
macro_rules! person_filter {
    () => {
        "collection_id = $1 AND (CAST($2 AS TEXT) IS NULL OR name_folded LIKE $2 ESCAPE '\\') \
         AND ($3 IS NULL OR consent_expires_at <= $3) \
         AND (CAST($4 AS TEXT) IS NULL OR external_id = $4)"
    };
}

/// `$1`: the person, `$2`: the collection it must be in.
pub(crate) const SELECT_PERSON: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE id = $1 AND collection_id = $2"
);
pub(crate) const INSERT_PERSON: &str = concat!(
    "INSERT INTO persons (",
    person_columns!(),
    ", name_folded, collection_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
pub(crate) const UPDATE_PERSON: &str = "UPDATE persons SET name = $1, external_id = $2, metadata = $3, \
                             updated_at = $4, name_folded = $6, consent_expires_at = $7 WHERE id = $5";
pub(crate) const SELECT_UNFOLDED_NAMES: &str =
    "SELECT id, name FROM persons WHERE name_folded IS NULL";
pub(crate) const SET_FOLDED_NAME: &str = "UPDATE persons SET name_folded = $1 WHERE id = $2";
pub(crate) const DELETE_PERSON: &str = "DELETE FROM persons WHERE id = $1";
pub(crate) const SELECT_PERSONS_NAMED: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE collection_id = $3 AND name_folded = $1 ORDER BY created_at, id LIMIT $2"
);
pub(crate) const COUNT_PERSONS: &str =
    concat!("SELECT count(*) FROM persons WHERE ", person_filter!());
pub(crate) const LIST_PERSONS: &str = concat!(
    "SELECT ",
    person_columns!(),
    " FROM persons WHERE ",
    person_filter!(),
    " ORDER BY created_at, id LIMIT $5 OFFSET $6"
);
/// The faces of each person of one page of `LIST_PERSONS` (same parameters).
pub(crate) const COUNT_FACES_OF_PAGE: &str = concat!(
    "SELECT person_id, count(*) FROM faces WHERE person_id IN (SELECT id FROM persons WHERE ",
    person_filter!(),
    " ORDER BY created_at, id LIMIT $5 OFFSET $6) GROUP BY person_id"
);

pub(crate) const INSERT_FACE: &str = concat!(
    "INSERT INTO faces (",
    face_columns!(),
    ", collection_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
);
pub(crate) const SELECT_FACE_OF_IMAGE: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE person_id = $1 AND model_name = $2 AND model_sha256 = $3 AND image_sha256 = $4"
);
pub(crate) const SELECT_FACE: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE id = $1 AND collection_id = $2"
);
pub(crate) const SELECT_FACES_OF_PERSON: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE person_id = $1 ORDER BY created_at, id"
);
pub(crate) const DELETE_FACE: &str = concat!(
    "DELETE FROM faces WHERE id = $1 AND collection_id = $2 RETURNING ",
    face_columns!()
);
pub(crate) const DELETE_FACES_OF_PERSON: &str =
    "DELETE FROM faces WHERE person_id = $1 RETURNING id";
pub(crate) const SELECT_EXPIRED: &str =
    "SELECT id, collection_id FROM persons WHERE consent_expires_at <= $1 \
                              ORDER BY consent_expires_at, id LIMIT $2";
pub(crate) const SAMPLE_FACES: &str = concat!(
    "SELECT ",
    face_columns!(),
    " FROM faces WHERE collection_id = $4 AND model_name = $1 AND model_sha256 = $2 \
     AND person_id IN (SELECT id FROM persons WHERE collection_id = $4 ORDER BY random() LIMIT $3)"
);
pub(crate) const INSERT_CALIBRATION: &str =
    "INSERT INTO calibrations (computed_at, faces, document, \
                                  collection_id) VALUES ($1, $2, $3, $4)";
pub(crate) const PRUNE_CALIBRATIONS: &str =
    "DELETE FROM calibrations WHERE collection_id = $1 AND id NOT IN \
     (SELECT id FROM calibrations WHERE collection_id = $1 ORDER BY id DESC LIMIT $2)";
/// `$1`: the collection, `$2`: the key.
pub(crate) const SELECT_ATTEMPT: &str =
    "SELECT fingerprint, person_id, face_id, created FROM idempotency_keys \
     WHERE collection_id = $1 AND key = $2";
pub(crate) const INSERT_ATTEMPT: &str =
    "INSERT INTO idempotency_keys (collection_id, key, fingerprint, person_id, face_id, created, at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const FORGET_ATTEMPTS: &str = "DELETE FROM idempotency_keys WHERE at < $1";
pub(crate) const SELECT_CALIBRATIONS: &str =
    "SELECT document FROM calibrations WHERE collection_id = $1 ORDER BY id DESC LIMIT $2";
/// `$6`: whether the events about keys are included (their action names are
/// `AuditAction::KeyCreated` and `KeyRevoked`'s).
pub(crate) const SELECT_AUDIT: &str =
    "SELECT id, at, collection_id, action, person_id, face_id, actor, details \
     FROM audit_events WHERE (CAST($1 AS TEXT) IS NULL OR collection_id = $1) \
     AND (CAST($2 AS TEXT) IS NULL OR person_id = $2) AND ($3 IS NULL OR id < $3) \
     AND ($4 IS NULL OR at >= $4) AND ($6 OR action NOT IN ('key_created', 'key_revoked')) \
     ORDER BY id DESC LIMIT $5";
pub(crate) const COUNT_FACES: &str = "SELECT count(*) FROM faces";
pub(crate) const COUNT_FACES_IN: &str = "SELECT count(*) FROM faces WHERE collection_id = $1";
pub(crate) const LIST_FACE_ENTRIES: &str = "SELECT f.id, f.person_id, p.name FROM faces f \
    JOIN persons p ON p.id = f.person_id WHERE f.collection_id = $3 \
    ORDER BY f.created_at, f.id LIMIT $1 OFFSET $2";
pub(crate) const DELETE_EXPIRED_TICKETS: &str = "DELETE FROM stream_tickets WHERE expires_at <= $1";
pub(crate) const COUNT_TICKETS: &str = "SELECT count(*) FROM stream_tickets";
pub(crate) const COUNT_TICKETS_IN: &str =
    "SELECT count(*) FROM stream_tickets WHERE collection_id = $1";
pub(crate) const COUNT_TICKETS_OF: &str = "SELECT count(*) FROM stream_tickets WHERE actor = $1";
pub(crate) const INSERT_TICKET: &str =
    "INSERT INTO stream_tickets (ticket_sha256, actor, expires_at, \
                             collection_id) VALUES ($1, $2, $3, $4)";
pub(crate) const SELECT_TICKET: &str = "SELECT actor, collection_id FROM stream_tickets \
                             WHERE ticket_sha256 = $1 AND expires_at > $2";
pub(crate) const REDEEM_TICKET: &str =
    "DELETE FROM stream_tickets WHERE ticket_sha256 = $1 AND expires_at > $2 RETURNING actor";

pub(crate) const INSERT_AUDIT: &str =
    "INSERT INTO audit_events (at, action, person_id, face_id, actor, details, collection_id) \
                            VALUES ($1, $2, $3, $4, $5, $6, $7)";

macro_rules! collection_columns {
    () => {
        "id, name, settings, created_at, updated_at, model_pack, recognizer, recognizer_sha256, \
         detector_pack, detector_sha256"
    };
}
pub(crate) const INSERT_COLLECTION: &str = concat!(
    "INSERT INTO collections (",
    collection_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
);
pub(crate) const SELECT_COLLECTION: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM collections WHERE id = $1"
);
pub(crate) const SELECT_COLLECTION_NAMED: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM collections WHERE name = $1"
);
pub(crate) const LIST_COLLECTIONS: &str = concat!(
    "SELECT ",
    collection_columns!(),
    " FROM collections ORDER BY created_at, id LIMIT $1"
);
pub(crate) const COUNT_COLLECTIONS: &str = "SELECT count(*) FROM collections";
pub(crate) const UPDATE_COLLECTION: &str =
    "UPDATE collections SET name = $2, settings = $3, updated_at = $4 WHERE id = $1";
pub(crate) const DELETE_FACES_OF_COLLECTION: &str =
    "DELETE FROM faces WHERE collection_id = $1 RETURNING id";
pub(crate) const DELETE_PERSONS_OF_COLLECTION: &str =
    "DELETE FROM persons WHERE collection_id = $1 RETURNING id";
/// A person's captures: named for them, or rejected for them.
pub(crate) const DELETE_CAPTURES_OF_PERSON: &str = "DELETE FROM captures WHERE collection_id = $1 \
     AND (person_id = $2 OR rejected_person_id = $2) RETURNING id";
pub(crate) const DELETE_CAPTURES_OF_COLLECTION: &str =
    "DELETE FROM captures WHERE collection_id = $1 RETURNING id";
pub(crate) const DELETE_KEYS_OF_COLLECTION: &str =
    "DELETE FROM api_keys WHERE collection_id = $1 RETURNING id";
pub(crate) const DELETE_CALIBRATIONS_OF_COLLECTION: &str =
    "DELETE FROM calibrations WHERE collection_id = $1";
pub(crate) const DELETE_TICKETS_OF_COLLECTION: &str =
    "DELETE FROM stream_tickets WHERE collection_id = $1";
pub(crate) const DELETE_COLLECTION: &str = "DELETE FROM collections WHERE id = $1";

macro_rules! key_columns {
    () => {
        "id, collection_id, label, scopes, created_at, expires_at, revoked_at, last_used_at"
    };
}
pub(crate) const INSERT_KEY: &str = concat!(
    "INSERT INTO api_keys (",
    key_columns!(),
    ", secret_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
);
pub(crate) const LIST_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE (CAST($1 AS TEXT) IS NULL OR collection_id = $1) \
     ORDER BY created_at, id LIMIT $2"
);
/// `$1`: now. Revoked and expired keys do not count against the cap.
/// `$1`: now. Scopes are space-separated names.
pub(crate) const SELECT_KEYS_IN_FORCE: &str = "SELECT \
     EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)), \
     EXISTS (SELECT 1 FROM api_keys WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1) \
             AND (' ' || scopes || ' ') LIKE '% admin %')";
pub(crate) const COUNT_LIVE_KEYS: &str = "SELECT count(*) FROM api_keys \
     WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > $1)";
/// Keys that ended (revoked or expired) are kept for the listing and the audit trail, then pruned:
/// those that ended at or before `$1`, and beyond the newest `$2` ended ones.
pub(crate) const PRUNE_ENDED_KEYS: &str = "DELETE FROM api_keys WHERE id IN \
     (SELECT id FROM api_keys WHERE revoked_at IS NOT NULL OR expires_at <= $3 \
      ORDER BY coalesce(revoked_at, expires_at) DESC, id LIMIT $4 OFFSET $2) \
     OR coalesce(revoked_at, expires_at) <= $1";
pub(crate) const SELECT_KEY: &str =
    concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = $1");
pub(crate) const SELECT_KEY_BY_SECRET: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM api_keys WHERE secret_sha256 = $1"
);
pub(crate) const REVOKE_KEY: &str = concat!(
    "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1 RETURNING ",
    key_columns!()
);
pub(crate) const TOUCH_KEY: &str = "UPDATE api_keys SET last_used_at = $2 WHERE id = $1";

pub(crate) use {collection_columns, person_columns};

/// Calibrations kept per collection (the newest is in force; the others are history for the
/// operator).
pub(crate) const CALIBRATIONS_KEPT: i64 = 10;

/// A capture's columns as [`crate::rows::CaptureRow`] reads them (never its embedding or chip).
macro_rules! capture_columns {
    () => {
        "id, status, person_id, rejected_person_id, cluster_id, similarity, threshold, \
         estimated_fpir, source, route, first_seen, seen_at, sightings, det_score, quality, bbox, \
         chip IS NOT NULL AS has_chip"
    };
}
pub(crate) use capture_columns;
pub(crate) const INSERT_CAPTURE: &str = "INSERT INTO captures (id, collection_id, status, \
     person_id, cluster_id, similarity, threshold, estimated_fpir, source, route, first_seen, \
     seen_at, sightings, det_score, quality, bbox, model_name, model_sha256, embedding, chip) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, 1, $12, $13, $14, $15, $16, $17, $18)";
/// Another sighting of a capture: `$3`, whether this one is better (its chip, embedding and
/// detection replace the old ones).
pub(crate) const SIGHTED_AGAIN: &str =
    "UPDATE captures SET seen_at = $2, sightings = sightings + 1, \
     det_score = CASE WHEN $3 THEN $4 ELSE det_score END, \
     quality = CASE WHEN $3 THEN $5 ELSE quality END, \
     bbox = CASE WHEN $3 THEN $6 ELSE bbox END, \
     embedding = CASE WHEN $3 THEN $7 ELSE embedding END, \
     chip = CASE WHEN $3 THEN $8 ELSE chip END, \
     similarity = CASE WHEN $3 THEN $9 ELSE similarity END WHERE id = $1";
pub(crate) const SELECT_CAPTURE: &str = concat!(
    "SELECT ",
    capture_columns!(),
    " FROM captures WHERE id = $1 AND collection_id = $2"
);
pub(crate) const SELECT_CAPTURE_CHIP: &str =
    "SELECT chip FROM captures WHERE id = $1 AND collection_id = $2";
pub(crate) const SELECT_CAPTURE_EMBEDDING: &str =
    "SELECT embedding, model_name, model_sha256 FROM captures WHERE id = $1 AND collection_id = $2";
/// `$2`..`$6`: status, source, cluster, person (named or rejected for), seen since; `$7`: before
/// this id; `$8`: the limit. Newest first.
pub(crate) const LIST_CAPTURES: &str = concat!(
    "SELECT ",
    capture_columns!(),
    " FROM captures WHERE collection_id = $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
     AND (CAST($3 AS TEXT) IS NULL OR source = $3) AND ($4 IS NULL OR cluster_id = $4) \
     AND ($5 IS NULL OR person_id = $5 OR rejected_person_id = $5) AND ($6 IS NULL OR seen_at >= $6) \
     AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8"
);
pub(crate) const COUNT_CAPTURES_IN: &str = "SELECT count(*) FROM captures WHERE collection_id = $1";
/// The oldest `$2` captures of a collection, to stay within its bound.
pub(crate) const EVICT_CAPTURES: &str = "DELETE FROM captures WHERE id IN \
     (SELECT id FROM captures WHERE collection_id = $1 ORDER BY id LIMIT $2) RETURNING id";
pub(crate) const DELETE_CAPTURES_BEFORE: &str =
    "DELETE FROM captures WHERE collection_id = $1 AND seen_at < $2 RETURNING id";
pub(crate) const DELETE_CAPTURE: &str =
    "DELETE FROM captures WHERE id = $1 AND collection_id = $2 RETURNING id";
pub(crate) const DELETE_CLUSTER_CAPTURES: &str =
    "DELETE FROM captures WHERE cluster_id = $1 RETURNING id";
pub(crate) const DELETE_CLUSTER: &str = "DELETE FROM capture_clusters WHERE id = $1";
/// Clusters none of whose captures are left (their aliases go with them).
pub(crate) const DELETE_EMPTY_CLUSTERS: &str = "DELETE FROM capture_clusters WHERE collection_id = $1 \
     AND merged_into IS NULL AND NOT EXISTS (SELECT 1 FROM captures WHERE cluster_id = capture_clusters.id)";
pub(crate) const COLLECTIONS_WITH_CAPTURES: &str = "SELECT DISTINCT collection_id FROM captures";
/// A cluster id as given out: itself, or the survivor it was merged into.
pub(crate) const RESOLVE_CLUSTER: &str = "SELECT coalesce(merged_into, id) FROM capture_clusters \
     WHERE id = $1 AND collection_id = $2";
pub(crate) const INSERT_CLUSTER: &str =
    "INSERT INTO capture_clusters (id, collection_id, merged_into, \
     created_at) VALUES ($1, $2, $3, $4)";
/// Merges cluster `$2` into `$1`: its captures, itself and its aliases.
pub(crate) const MOVE_CLUSTER_CAPTURES: &str =
    "UPDATE captures SET cluster_id = $1 WHERE cluster_id = $2";
pub(crate) const MERGE_CLUSTER: &str =
    "UPDATE capture_clusters SET merged_into = $1 WHERE id = $2 OR merged_into = $2";
/// `$1`: the cluster: captures, sightings, first and last seen.
pub(crate) const CLUSTER_SUMMARY: &str =
    "SELECT count(*), CAST(coalesce(sum(sightings), 0) AS BIGINT), min(first_seen), \
     max(seen_at) FROM captures WHERE cluster_id = $1";
/// The collection's clusters, most captures first, then the most recently seen, then by id (a
/// total order: pages neither overlap nor skip while nothing changes). `$2` of them after `$3`.
pub(crate) const LIST_CLUSTERS: &str = "SELECT cluster_id, count(*), CAST(coalesce(sum(sightings), 0) AS BIGINT), \
     min(first_seen), max(seen_at) FROM captures WHERE collection_id = $1 AND cluster_id IS NOT NULL \
     GROUP BY cluster_id ORDER BY count(*) DESC, max(seen_at) DESC, cluster_id LIMIT $2 OFFSET $3";
pub(crate) const CLUSTER_SOURCES: &str =
    "SELECT DISTINCT source FROM captures WHERE cluster_id = $1 ORDER BY source LIMIT 16";
pub(crate) const CLUSTER_BEST: &str =
    "SELECT id FROM captures WHERE cluster_id = $1 ORDER BY det_score DESC, id LIMIT $2";
/// A capture named for a person: out of its cluster, no chip, held against nobody.
pub(crate) const ASSIGN_CAPTURE: &str = "UPDATE captures SET status = 'known', person_id = $2, \
     rejected_person_id = NULL, cluster_id = NULL, chip = NULL WHERE id = $1";
pub(crate) const REJECT_CAPTURE: &str = "UPDATE captures SET status = 'rejected', \
     rejected_person_id = person_id, person_id = NULL, cluster_id = $2 WHERE id = $1";
pub(crate) const COUNT_REJECTIONS: &str =
    "SELECT count(*) FROM captures WHERE collection_id = $1 AND status = 'rejected'";
pub(crate) const SELECT_REJECTIONS_OF: &str = "SELECT id, embedding FROM captures \
     WHERE collection_id = $1 AND rejected_person_id = $2 AND status = 'rejected' \
     AND model_name = $3 AND model_sha256 = $4";

// The event outbox (`ops/outbox.rs`).
pub(crate) const SELECT_COLLECTION_NAME: &str = "SELECT name FROM collections WHERE id = $1";
pub(crate) const INSERT_EVENT: &str = "INSERT INTO events (id, collection_id, type, person_id, \
     created_at, data) VALUES ($1, $2, $3, $4, $5, $6)";
pub(crate) const EVENTS_HEAD: &str = "SELECT COALESCE(max(seq), 0) FROM events";
/// The deletions, which destinations need in order to forget (kept while MQTT may need them).
macro_rules! forgetting {
    () => {
        "('person.deleted', 'collection.deleted', 'collection.renamed')"
    };
}
/// Beyond the bound, the oldest but deletions (`$1`: how many may stay).
pub(crate) const DROP_EVENTS_BEYOND: &str = concat!(
    "DELETE FROM events WHERE seq <= (SELECT max(seq) FROM events) - $1 AND type NOT IN ",
    forgetting!()
);
pub(crate) const PERSON_EXISTS: &str = "SELECT count(*) FROM persons WHERE id = $1";
pub(crate) const EVENTS_AFTER: &str =
    "SELECT seq, data FROM events WHERE seq > $1 AND seq <= $2 ORDER BY seq LIMIT $3";
pub(crate) const EVENTS_AFTER_IN: &str = "SELECT seq, data FROM events WHERE seq > $1 AND \
     seq <= $2 AND collection_id = $4 ORDER BY seq LIMIT $3";
/// Events every destination driven lately (`$1`: since when) has taken; deletions once every
/// destination has.
pub(crate) const DELETE_TAKEN_EVENTS: &str = concat!(
    "DELETE FROM events WHERE seq <= COALESCE((SELECT min(cursor) FROM event_sinks WHERE \
     kind = 'webhook' OR lease_until > $1), (SELECT max(seq) FROM events)) AND type NOT IN ",
    forgetting!()
);
pub(crate) const DELETE_TAKEN_DELETIONS: &str = concat!(
    "DELETE FROM events WHERE seq <= COALESCE((SELECT min(cursor) FROM event_sinks), \
     (SELECT max(seq) FROM events)) AND type IN ",
    forgetting!()
);
/// Past their age (`$1`), but deletions; deletions past `$2`.
pub(crate) const DELETE_OLD_EVENTS: &str = concat!(
    "DELETE FROM events WHERE (created_at < $1 AND type NOT IN ",
    forgetting!(),
    ") OR created_at < $2"
);
/// The MQTT destination no replica has driven since `$1`.
pub(crate) const DELETE_FORGOTTEN_MQTT: &str =
    "DELETE FROM event_sinks WHERE kind = 'mqtt' AND COALESCE(lease_until, created_at) < $1";
pub(crate) const DELETE_EVENTS_OF_PERSON: &str =
    "DELETE FROM events WHERE collection_id = $1 AND person_id = $2";
/// Collections with a webhook, and `mqtt` when the MQTT destination was driven lately (`$1`).
pub(crate) const EVENT_DESTINATIONS: &str = "SELECT DISTINCT kind, collection_id FROM event_sinks \
     WHERE kind = 'webhook' OR lease_until > $1";
macro_rules! sink_columns {
    () => {
        "id, kind, collection_id, url, events, secret, created_at, cursor, failing_seq, attempts, \
         first_failed_at, next_attempt_at, last_error"
    };
}
pub(crate) const SELECT_SINKS: &str = concat!("SELECT ", sink_columns!(), " FROM event_sinks");
pub(crate) const SELECT_WEBHOOKS: &str = concat!(
    "SELECT ",
    sink_columns!(),
    " FROM event_sinks WHERE kind = 'webhook' AND collection_id = $1 ORDER BY created_at, id"
);
pub(crate) const SELECT_WEBHOOK: &str = concat!(
    "SELECT ",
    sink_columns!(),
    " FROM event_sinks WHERE kind = 'webhook' AND collection_id = $1 AND id = $2"
);
pub(crate) const COUNT_WEBHOOKS: &str =
    "SELECT count(*) FROM event_sinks WHERE kind = 'webhook' AND collection_id = $1";
pub(crate) const INSERT_SINK: &str = "INSERT INTO event_sinks (id, kind, collection_id, url, \
     events, secret, created_at, cursor) VALUES ($1, $2, $3, $4, $5, $6, $7, \
     (SELECT COALESCE(max(seq), 0) FROM events)) ON CONFLICT (id) DO NOTHING";
pub(crate) const DELETE_WEBHOOK: &str =
    "DELETE FROM event_sinks WHERE kind = 'webhook' AND collection_id = $1 AND id = $2";
/// `$1`: the sink, `$2`: the owner, `$3`: until when, `$4`: now.
pub(crate) const LEASE_SINK: &str = "UPDATE event_sinks SET lease_owner = $2, lease_until = $3 \
     WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < $4) \
     RETURNING cursor, failing_seq, attempts, first_failed_at, next_attempt_at, last_error";
pub(crate) const ADVANCE_SINK: &str = "UPDATE event_sinks SET cursor = $3, attempts = $4, \
     first_failed_at = $5, next_attempt_at = $6, last_error = $7, lease_until = $8, \
     failing_seq = $9 WHERE id = $1 AND lease_owner = $2";
pub(crate) const DELETE_EVENTS_OF_COLLECTION: &str = "DELETE FROM events WHERE collection_id = $1";
pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO event_deliveries (sink_id, seq, event_id, \
     event_type, status, attempts, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (sink_id, seq) DO NOTHING";
/// Keeps the newest `$2` entries of a sink's log.
pub(crate) const TRIM_DELIVERIES: &str = "DELETE FROM event_deliveries WHERE sink_id = $1 AND \
     seq < (SELECT seq FROM event_deliveries WHERE sink_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)";
pub(crate) const SELECT_DELIVERIES: &str = "SELECT seq, event_id, event_type, status, attempts, \
     reason, at FROM event_deliveries WHERE sink_id = $1 ORDER BY seq DESC LIMIT $2";

/// The capture an id names: its own, or the one it was merged into (`capture_aliases`).
pub(crate) const RESOLVE_CAPTURE: &str = "SELECT capture_id FROM capture_aliases WHERE alias = $1";
pub(crate) const COUNT_CAPTURE_ALIASES: &str =
    "SELECT count(*) FROM capture_aliases WHERE capture_id = $1";
pub(crate) const INSERT_CAPTURE_ALIAS: &str =
    "INSERT INTO capture_aliases (alias, capture_id) VALUES ($1, $2) ON CONFLICT (alias) DO NOTHING";
