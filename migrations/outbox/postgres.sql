-- Outbox table for PostgreSQL 13+, compatible with Debezium's Outbox Event Router.
-- The legacy application inserts one row per domain event in the same transaction as its change:
--   INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (...);
-- `transaction_id` and `seq` are filled by their defaults and give the relay a commit-order fence:
-- it reads only rows whose transaction is older than every transaction still running
-- (`transaction_id < pg_snapshot_xmin(pg_current_snapshot())`), in (transaction_id, seq) order,
-- so a transaction that commits late is never skipped. Apply with psql or your migration tool.
CREATE TABLE IF NOT EXISTS outbox (
    id                  UUID         NOT NULL PRIMARY KEY,
    aggregatetype       VARCHAR(255) NOT NULL,
    aggregateid         VARCHAR(255) NOT NULL,
    type                VARCHAR(255) NOT NULL,
    payload             JSONB,       -- or JSON: also checked on insert, kept byte for byte, and
                                     -- relayed 1.08-1.15x faster (no jsonb-to-text conversion;
                                     -- docs/BENCHMARKS.md, Outbox relay)
    created_at          TIMESTAMPTZ  NOT NULL DEFAULT now(),
    tracingspancontext  VARCHAR(512),
    transaction_id      XID8         NOT NULL DEFAULT pg_current_xact_id(),
    seq                 BIGSERIAL    NOT NULL,
    published_at        TIMESTAMPTZ                    -- set by the relay when retention = "mark"
);
-- The relay's scan order. Not partial: with retention = "delete" the relay does not filter on
-- published_at, and a partial index would leave it a sequential scan and a sort per batch.
CREATE INDEX IF NOT EXISTS outbox_commit_order ON outbox (transaction_id, seq);

-- Rows the relay could not publish (payload not JSON, no aggregate id, no topic), with the reason.
CREATE TABLE IF NOT EXISTS outbox_dead_letter (
    dead_letter_id      BIGSERIAL    PRIMARY KEY,
    outbox_table        TEXT         NOT NULL,
    id                  TEXT,
    aggregatetype       TEXT,
    aggregateid         TEXT,
    type                TEXT,
    payload             TEXT,
    headers             TEXT         NOT NULL DEFAULT '{}',  -- extra columns, as a JSON object
    reason              TEXT         NOT NULL,
    dead_lettered_at    TIMESTAMPTZ  NOT NULL DEFAULT now()
);
