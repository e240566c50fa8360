-- Outbox table for SQLite, compatible with Debezium's Outbox Event Router column names.
-- SQLite has one writer at a time, so rows commit in `seq` order. AUTOINCREMENT matters: without
-- it SQLite may hand a deleted row's rowid to a new row, and the relay's cursor would pass it by.
-- `created_at` holds ISO-8601 text (the default), which the relay converts to the record time.
CREATE TABLE IF NOT EXISTS outbox (
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT    NOT NULL UNIQUE,
    aggregatetype       TEXT    NOT NULL,
    aggregateid         TEXT    NOT NULL,
    type                TEXT    NOT NULL,
    payload             TEXT,
    created_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    tracingspancontext  TEXT,
    published_at        TEXT                -- set by the relay when retention = "mark"
);

-- Rows the relay could not publish (payload not JSON, no aggregate id, no topic), with the reason.
CREATE TABLE IF NOT EXISTS outbox_dead_letter (
    dead_letter_id      INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_table        TEXT    NOT NULL,
    id                  TEXT,
    aggregatetype       TEXT,
    aggregateid         TEXT,
    type                TEXT,
    payload             TEXT,
    headers             TEXT    NOT NULL DEFAULT '{}',
    reason              TEXT    NOT NULL,
    dead_lettered_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- The relay's lease: one holder per outbox table; a standby takes over when it expires.
CREATE TABLE IF NOT EXISTS strangler_outbox_lease (
    outbox_table        TEXT    PRIMARY KEY,
    holder              TEXT    NOT NULL,
    expires_at_ms       INTEGER NOT NULL
);
