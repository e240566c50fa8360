-- Projector state kept in the read store, so each batch commits its rows, its checkpoint, its
-- dedup keys and its dead letters in one transaction (exactly-once effect).

-- Next offset to apply per projection version and partition, with freshness and a fencing
-- generation: a consumer claims a partition by bumping `generation`, and every batch updates its
-- checkpoint only `WHERE generation = <claimed>`, so a stale consumer cannot commit.
CREATE TABLE IF NOT EXISTS strangler_projection_checkpoint (
    projection          TEXT    NOT NULL,
    version             INTEGER NOT NULL,
    topic               TEXT    NOT NULL,
    partition           INTEGER NOT NULL,
    next_offset         INTEGER NOT NULL DEFAULT 0,
    generation          INTEGER NOT NULL DEFAULT 0,
    owner               TEXT    NOT NULL DEFAULT '',
    last_event_time_ms  BIGINT,
    applied_at_ms       BIGINT,
    end_offset          BIGINT,
    end_checked_at_ms   BIGINT,
    events_applied      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (projection, version, topic, partition)
);

-- Event ids already applied, so the relay's at-least-once duplicates never apply twice.
CREATE TABLE IF NOT EXISTS strangler_projection_dedup (
    projection     TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    topic          TEXT    NOT NULL,
    partition      INTEGER NOT NULL,
    "offset"       INTEGER NOT NULL,
    applied_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (projection, version, event_id)
);
CREATE INDEX IF NOT EXISTS strangler_projection_dedup_age
    ON strangler_projection_dedup (projection, version, applied_at_ms);

-- Events a projection could not apply: skipped, or parked with every later event of their key.
CREATE TABLE IF NOT EXISTS strangler_projection_dead_letter (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    projection     TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    topic          TEXT    NOT NULL,
    partition      INTEGER NOT NULL,
    "offset"       INTEGER NOT NULL,
    event_key      TEXT,
    event_id       TEXT,
    event_type     TEXT,
    status         TEXT    NOT NULL,   -- parked | skipped | redriven
    reason         TEXT    NOT NULL,   -- bad_payload | unknown_event_type | sql_error | constraint_violation | key_parked
    detail         TEXT    NOT NULL,
    key_bytes      BLOB,
    value          BLOB,
    headers        TEXT    NOT NULL DEFAULT '[]',
    timestamp_ms   BIGINT,
    created_at_ms  INTEGER NOT NULL,
    resolved_at_ms BIGINT
);
CREATE INDEX IF NOT EXISTS strangler_projection_dead_letter_key
    ON strangler_projection_dead_letter (projection, version, status, event_key);

-- The version of each projection the read API serves; promote swaps it in one statement.
CREATE TABLE IF NOT EXISTS strangler_projection_version (
    projection      TEXT    PRIMARY KEY,
    serving_version INTEGER NOT NULL,
    promoted_at_ms  INTEGER NOT NULL
);
