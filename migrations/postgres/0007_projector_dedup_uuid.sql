-- Dedup keys as 16-byte uuids with a BRIN age index. The batched projector inserts one key per
-- event; as 36-character text under a collation, with a second B-tree for pruning by age, that
-- insert cost more than the read model's own rows (docs/BENCHMARKS.md, Projector). Event ids are
-- uuids once decoded; an id that is not one (a raw `id` header of an undecodable record) is kept
-- as the md5 of its text, as `dedup.rs` does.
ALTER TABLE strangler_projection_dedup ALTER COLUMN event_id TYPE uuid USING (
    CASE WHEN event_id ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
         THEN event_id::uuid
         ELSE md5(event_id)::uuid
    END);

-- Rows arrive in applied_at_ms order, so a BRIN index serves the periodic prune at almost no
-- cost per insert.
DROP INDEX IF EXISTS strangler_projection_dedup_age;
CREATE INDEX IF NOT EXISTS strangler_projection_dedup_age_brin
    ON strangler_projection_dedup USING brin (applied_at_ms);
