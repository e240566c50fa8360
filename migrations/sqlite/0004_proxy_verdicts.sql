-- Shadow proxy: verdict counts and latencies per capability, per minute, per proxy process.
-- Each proxy adds its deltas in one batch every `proxy.stats_flush_ms`; gates sum across proxies.
CREATE TABLE IF NOT EXISTS strangler_verdict_counts (
    capability      TEXT NOT NULL,
    window_start    TEXT NOT NULL,          -- start of the minute, RFC 3339 UTC
    proxy_id        TEXT NOT NULL,
    matches         INTEGER NOT NULL DEFAULT 0,
    mismatches      INTEGER NOT NULL DEFAULT 0,
    stale           INTEGER NOT NULL DEFAULT 0,
    errors          INTEGER NOT NULL DEFAULT 0,
    new_errors      INTEGER NOT NULL DEFAULT 0,
    skipped         INTEGER NOT NULL DEFAULT 0,
    served_new      INTEGER NOT NULL DEFAULT 0,
    fallbacks       INTEGER NOT NULL DEFAULT 0,
    latency_samples INTEGER NOT NULL DEFAULT 0,
    legacy_p50_us   INTEGER NOT NULL DEFAULT 0,
    legacy_p99_us   INTEGER NOT NULL DEFAULT 0,
    new_p50_us      INTEGER NOT NULL DEFAULT 0,
    new_p99_us      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (capability, window_start, proxy_id)
);
CREATE INDEX IF NOT EXISTS strangler_verdict_counts_window
    ON strangler_verdict_counts (capability, window_start);

CREATE TABLE IF NOT EXISTS strangler_skip_counts (
    capability   TEXT NOT NULL,
    window_start TEXT NOT NULL,
    proxy_id     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    count        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (capability, window_start, proxy_id, reason)
);
