-- Dedup keys under a 4-byte scope id in place of the projection's name and version.
--
-- The batched projector inserts one key per event, and that insert is the largest cost of a
-- batch after the read model's own rows (docs/BENCHMARKS.md, Projector). Every insert compares
-- its key against a leaf page's keys, and with the name first each comparison was a collated
-- text comparison. Keyed by (scope, event_id), an index entry is 32 bytes instead of 48 and
-- compares two integers and 16 bytes. The row is 72 bytes instead of 88.
--
-- A scope is never deleted, so its id stays valid for every process that looked it up (retire
-- deletes the keys, not the scope).
CREATE TABLE IF NOT EXISTS strangler_projection_scope (
    id          INTEGER GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection  TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    UNIQUE (projection, version)
);

INSERT INTO strangler_projection_scope (projection, version)
    SELECT DISTINCT projection, version FROM strangler_projection_dedup
    ORDER BY projection, version
    ON CONFLICT DO NOTHING;

ALTER TABLE strangler_projection_dedup RENAME TO strangler_projection_dedup_0007;
ALTER INDEX strangler_projection_dedup_pkey RENAME TO strangler_projection_dedup_0007_pkey;
DROP INDEX IF EXISTS strangler_projection_dedup_age_brin;

-- Fixed-width columns first, so the row needs no alignment padding.
CREATE TABLE strangler_projection_dedup (
    scope          INTEGER NOT NULL,
    partition      INTEGER NOT NULL,
    "offset"       BIGINT  NOT NULL,
    applied_at_ms  BIGINT  NOT NULL,
    event_id       uuid    NOT NULL,
    topic          TEXT    NOT NULL,
    PRIMARY KEY (scope, event_id)
);

INSERT INTO strangler_projection_dedup (scope, partition, "offset", applied_at_ms, event_id, topic)
    SELECT s.id, d.partition, d."offset", d.applied_at_ms, d.event_id, d.topic
    FROM strangler_projection_dedup_0007 d
    JOIN strangler_projection_scope s USING (projection, version)
    ORDER BY s.id, d.event_id;

DROP TABLE strangler_projection_dedup_0007;

-- Rows arrive in applied_at_ms order, so a BRIN index serves the periodic prune at almost no
-- cost per insert.
CREATE INDEX strangler_projection_dedup_age_brin
    ON strangler_projection_dedup USING brin (applied_at_ms);
