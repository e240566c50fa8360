-- Mismatch store (strangler-admin): mismatches grouped by fingerprint, a few redacted exemplars
-- each, hourly trend counts, what each rule forgave or hid, and the admin audit trail.
-- Times are epoch milliseconds so PostgreSQL and SQLite share every query.

CREATE TABLE IF NOT EXISTS strangler_fingerprint (
    capability     TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,          -- 16 hex digits (strangler-diff FingerprintId)
    path           TEXT    NOT NULL,          -- JSON pointer with indices as *
    kind           TEXT    NOT NULL,          -- value | type | missing | extra | status | ...
    value_class    TEXT    NOT NULL,          -- legacy->candidate value classes
    first_seen_ms  BIGINT  NOT NULL,
    last_seen_ms   BIGINT  NOT NULL,
    count          BIGINT  NOT NULL DEFAULT 0,
    status         TEXT    NOT NULL DEFAULT 'open',   -- open | acknowledged | expected | fixed
    status_until_ms BIGINT,                   -- expected until (then open again)
    status_by      TEXT,
    status_note    TEXT    NOT NULL DEFAULT '',
    status_at_ms   BIGINT,
    PRIMARY KEY (capability, fingerprint)
);
CREATE INDEX IF NOT EXISTS strangler_fingerprint_seen
    ON strangler_fingerprint (capability, last_seen_ms);

CREATE TABLE IF NOT EXISTS strangler_fingerprint_hourly (
    capability     TEXT    NOT NULL,
    fingerprint    TEXT    NOT NULL,
    hour_ms        BIGINT  NOT NULL,          -- start of the hour
    count          BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (capability, fingerprint, hour_ms)
);

-- Redacted exemplars: the request as it can be re-sent, both answers, the differences.
CREATE TABLE IF NOT EXISTS strangler_exemplar (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    capability        TEXT    NOT NULL,
    fingerprint       TEXT    NOT NULL,
    seen_ms           BIGINT  NOT NULL,
    verdict           TEXT    NOT NULL,
    method            TEXT    NOT NULL,
    path_and_query    TEXT    NOT NULL,
    request_headers   TEXT    NOT NULL,       -- JSON [[name, value], ...], redacted
    request_body      TEXT    NOT NULL,
    legacy_status     INTEGER NOT NULL,
    legacy_headers    TEXT    NOT NULL,
    legacy_body       TEXT    NOT NULL,
    candidate_status  INTEGER NOT NULL,
    candidate_headers TEXT    NOT NULL,
    candidate_body    TEXT    NOT NULL,
    differences       TEXT    NOT NULL,       -- JSON [Difference], redacted
    raw               INTEGER NOT NULL DEFAULT 0   -- kept unredacted by an audited opt-in
);
CREATE INDEX IF NOT EXISTS strangler_exemplar_fp
    ON strangler_exemplar (capability, fingerprint, id);

CREATE TABLE IF NOT EXISTS strangler_rule_hits (
    capability     TEXT    NOT NULL,
    rule           TEXT    NOT NULL,
    hour_ms        BIGINT  NOT NULL,
    comparisons    BIGINT  NOT NULL DEFAULT 0,   -- comparisons in which the rule did anything
    forgiven       BIGINT  NOT NULL DEFAULT 0,   -- would-be differences it forgave
    hidden_leaves  BIGINT  NOT NULL DEFAULT 0,   -- leaf values it hid
    PRIMARY KEY (capability, rule, hour_ms)
);

CREATE TABLE IF NOT EXISTS strangler_admin_audit (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms          BIGINT  NOT NULL,
    actor          TEXT    NOT NULL,
    role           TEXT    NOT NULL,
    action         TEXT    NOT NULL,
    target         TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,          -- ok | denied | failed
    detail         TEXT    NOT NULL DEFAULT '{}'
);
