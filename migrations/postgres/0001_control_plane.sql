-- strangler control plane: the serving mode of each capability and the audit trail of changes.
CREATE TABLE IF NOT EXISTS strangler_cutover (
    capability   TEXT PRIMARY KEY,
    mode         TEXT NOT NULL,          -- legacy | shadow | canary | new | retired
    percent      SMALLINT NOT NULL DEFAULT 0,
    killed       BOOLEAN NOT NULL DEFAULT FALSE,
    version      BIGINT NOT NULL DEFAULT 1,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by   TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT ''
);

CREATE TABLE IF NOT EXISTS strangler_cutover_audit (
    id           BIGSERIAL PRIMARY KEY,
    capability   TEXT NOT NULL,
    from_mode    TEXT,
    to_mode      TEXT NOT NULL,
    actor        TEXT NOT NULL,
    reason       TEXT NOT NULL DEFAULT '',
    forced       BOOLEAN NOT NULL DEFAULT FALSE,
    gate         JSONB,
    at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS strangler_cutover_audit_cap ON strangler_cutover_audit (capability, id);
