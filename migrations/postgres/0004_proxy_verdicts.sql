-- Shadow proxy: verdict counts and latencies per capability, per minute, per proxy process.
-- Each proxy adds its deltas in one batch every `proxy.stats_flush_ms`; gates sum across proxies.
CREATE TABLE IF NOT EXISTS strangler_verdict_counts (
    capability      TEXT NOT NULL,
    window_start    TIMESTAMPTZ NOT NULL,   -- start of the minute
    proxy_id        TEXT NOT NULL,
    matches         BIGINT NOT NULL DEFAULT 0,
    mismatches      BIGINT NOT NULL DEFAULT 0,
    stale           BIGINT NOT NULL DEFAULT 0,
    errors          BIGINT NOT NULL DEFAULT 0,  -- either side failed
    new_errors      BIGINT NOT NULL DEFAULT 0,  -- the new path failed (5xx, timeout, refused)
    skipped         BIGINT NOT NULL DEFAULT 0,
    served_new      BIGINT NOT NULL DEFAULT 0,
    fallbacks       BIGINT NOT NULL DEFAULT 0,
    latency_samples BIGINT NOT NULL DEFAULT 0,  -- pairs behind the p50/p99 below
    legacy_p50_us   BIGINT NOT NULL DEFAULT 0,
    legacy_p99_us   BIGINT NOT NULL DEFAULT 0,
    new_p50_us      BIGINT NOT NULL DEFAULT 0,
    new_p99_us      BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (capability, window_start, proxy_id)
);
CREATE INDEX IF NOT EXISTS strangler_verdict_counts_window
    ON strangler_verdict_counts (capability, window_start);

-- Why comparisons were skipped or mirror copies dropped (too_large, pool_full, sampled_out, ...).
CREATE TABLE IF NOT EXISTS strangler_skip_counts (
    capability   TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    proxy_id     TEXT NOT NULL,
    reason       TEXT NOT NULL,
    count        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (capability, window_start, proxy_id, reason)
);
