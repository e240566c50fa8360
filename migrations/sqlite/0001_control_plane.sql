-- strangler control plane: the serving mode of each capability and the audit trail of changes.
CREATE TABLE IF NOT EXISTS strangler_cutover (
    capability   TEXT PRIMARY KEY,
    mode         TEXT NOT NULL,
    percent      INTEGER NOT NULL DEFAULT 0,
    killed       INTEGER NOT NULL DEFAULT 0,
    version      INTEGER NOT NULL DEFAULT 1,
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_by   TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS strangler_cutover_audit (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    capability   TEXT NOT NULL,
    from_mode    TEXT,
    to_mode      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    forced       INTEGER NOT NULL DEFAULT 0,
    gate         TEXT,
    at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS strangler_cutover_audit_cap ON strangler_cutover_audit (capability, id);
