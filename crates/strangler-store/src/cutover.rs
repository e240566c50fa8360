//! Cutover state in the control plane: each capability's serving mode, kill switches, the audit
//! trail of every change, and the verdict counts the shadow proxies flush for promotion gates.
//!
//! Every change bumps the row's `version`; proxies poll [`Store::cutover_version`] and reload the
//! modes only when it moved. Gate logic lives in `strangler-proxy`; this module only stores.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;
use sqlx::Row;
use strangler_core::Mode;

use crate::{Error, Result, Store};

/// The capability name of the switch that forces every capability to legacy.
pub const ALL: &str = "*";

/// The current mode of one capability.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CutoverState {
    /// The capability (or [`ALL`] for the global kill switch).
    pub capability: String,
    /// Its serving mode.
    pub mode: Mode,
    /// Kill switch: forces legacy whatever the mode.
    pub killed: bool,
    /// Bumped on every change.
    pub version: i64,
    /// When the mode or switch last changed.
    pub updated_at: DateTime<Utc>,
    /// Who changed it.
    pub updated_by: String,
    /// Why.
    pub reason: String,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Monotonic id.
    pub id: i64,
    /// The capability.
    pub capability: String,
    /// Mode before (`None` for the first change).
    pub from_mode: Option<String>,
    /// Mode after (`killed` / `unkilled` for the kill switch).
    pub to_mode: String,
    /// Who: an operator, or `strangler-proxy` for an automatic demotion.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// Whether a failing gate or a disallowed step was overridden.
    pub forced: bool,
    /// The gate evaluation behind the change, when one ran.
    pub gate: Option<serde_json::Value>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A requested change of mode.
#[derive(Debug, Clone)]
pub struct ModeChange {
    /// The capability.
    pub capability: String,
    /// The new mode.
    pub to: Mode,
    /// Who asks.
    pub actor: String,
    /// Why.
    pub reason: String,
    /// Whether a gate or step rule was overridden.
    pub forced: bool,
    /// The gate evaluation, recorded in the audit trail.
    pub gate: Option<serde_json::Value>,
    /// Apply only if the row still has this version (`Some(0)`: only if there is no row yet);
    /// lets several proxies race to demote a canary and record it once.
    pub expected_version: Option<i64>,
}

/// Verdict counts of one capability in one minute from one proxy (deltas since its last flush,
/// latencies as of now for the window).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictCounts {
    /// The capability.
    pub capability: String,
    /// Start of the minute.
    pub window_start: DateTime<Utc>,
    /// The proxy process that counted them.
    pub proxy_id: String,
    /// Answers that matched.
    pub matches: i64,
    /// Answers that differed.
    pub mismatches: i64,
    /// Differences explained by the new path's lag.
    pub stale: i64,
    /// Either side failed.
    pub errors: i64,
    /// The new path failed.
    pub new_errors: i64,
    /// Comparisons skipped or copies dropped (all reasons).
    pub skipped: i64,
    /// Requests served by the new path.
    pub served_new: i64,
    /// Requests that fell back to legacy (mismatch, error, lag, read-your-writes).
    pub fallbacks: i64,
    /// Pairs behind the latencies.
    pub latency_samples: i64,
    /// Legacy p50 in this window, microseconds.
    pub legacy_p50_us: i64,
    /// Legacy p99 in this window, microseconds.
    pub legacy_p99_us: i64,
    /// New path p50 in this window, microseconds.
    pub new_p50_us: i64,
    /// New path p99 in this window, microseconds.
    pub new_p99_us: i64,
    /// Skips by reason.
    pub skipped_by_reason: Vec<(String, i64)>,
}

/// Sums of [`VerdictCounts`] over proxies and minutes, what a gate reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerdictTotals {
    /// Answers that matched.
    pub matches: i64,
    /// Answers that differed.
    pub mismatches: i64,
    /// Differences explained by lag.
    pub stale: i64,
    /// Either side failed.
    pub errors: i64,
    /// The new path failed.
    pub new_errors: i64,
    /// Skipped comparisons.
    pub skipped: i64,
    /// Served by the new path.
    pub served_new: i64,
    /// Fell back to legacy.
    pub fallbacks: i64,
    /// Pairs behind the latency figures.
    pub latency_samples: i64,
    /// Sample-weighted mean over windows of (new p99 - legacy p99), milliseconds.
    pub p99_delta_ms: Option<f64>,
}

fn mode_parts(mode: Mode) -> (&'static str, i32) {
    match mode {
        Mode::Legacy => ("legacy", 0),
        Mode::Shadow => ("shadow", 0),
        Mode::Canary(p) => ("canary", i32::from(p)),
        Mode::New => ("new", 0),
        Mode::Retired => ("retired", 0),
    }
}

fn mode_from(name: &str, percent: i64) -> Result<Mode> {
    let text = if name == "canary" {
        format!("canary:{percent}")
    } else {
        name.to_owned()
    };
    text.parse()
        .map_err(|e: strangler_core::capability::ParseModeError| Error::Corrupt(e.to_string()))
}

/// Windows are stored as fixed-width text on SQLite so they sort and compare as text.
fn sqlite_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn parse_sqlite_time(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Corrupt(format!("time `{s}`: {e}")))
}

/// Width of a verdict-count window. One second keeps a gate's evidence window (counts since the
/// last mode change, whole windows only) close to the change itself, so evidence gathered just
/// before a fix never leaks into the window after it; flushes are batched, so rows stay few.
pub const WINDOW_SECS: i64 = 1;

/// The start of the verdict-count window `t` falls in.
pub fn window_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(WINDOW_SECS))
        .unwrap_or(t)
}

const ADD_VERDICT_COUNTS: &str = "
INSERT INTO strangler_verdict_counts (capability, window_start, proxy_id, matches, mismatches,
    stale, errors, new_errors, skipped, served_new, fallbacks, latency_samples, legacy_p50_us,
    legacy_p99_us, new_p50_us, new_p99_us)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (capability, window_start, proxy_id) DO UPDATE SET
    matches = strangler_verdict_counts.matches + excluded.matches,
    mismatches = strangler_verdict_counts.mismatches + excluded.mismatches,
    stale = strangler_verdict_counts.stale + excluded.stale,
    errors = strangler_verdict_counts.errors + excluded.errors,
    new_errors = strangler_verdict_counts.new_errors + excluded.new_errors,
    skipped = strangler_verdict_counts.skipped + excluded.skipped,
    served_new = strangler_verdict_counts.served_new + excluded.served_new,
    fallbacks = strangler_verdict_counts.fallbacks + excluded.fallbacks,
    latency_samples = excluded.latency_samples,
    legacy_p50_us = excluded.legacy_p50_us,
    legacy_p99_us = excluded.legacy_p99_us,
    new_p50_us = excluded.new_p50_us,
    new_p99_us = excluded.new_p99_us";

// Latencies are per proxy and minute; the delta is their sample-weighted mean.
const VERDICT_TOTALS: &str = "
SELECT CAST(COALESCE(SUM(matches), 0) AS BIGINT),
       CAST(COALESCE(SUM(mismatches), 0) AS BIGINT),
       CAST(COALESCE(SUM(stale), 0) AS BIGINT),
       CAST(COALESCE(SUM(errors), 0) AS BIGINT),
       CAST(COALESCE(SUM(new_errors), 0) AS BIGINT),
       CAST(COALESCE(SUM(skipped), 0) AS BIGINT),
       CAST(COALESCE(SUM(served_new), 0) AS BIGINT),
       CAST(COALESCE(SUM(fallbacks), 0) AS BIGINT),
       CAST(COALESCE(SUM(latency_samples), 0) AS BIGINT),
       CAST(SUM((new_p99_us - legacy_p99_us) * latency_samples) AS DOUBLE PRECISION)
           / CAST(NULLIF(SUM(latency_samples), 0) AS DOUBLE PRECISION)
           / CAST(1000 AS DOUBLE PRECISION)
FROM strangler_verdict_counts
WHERE capability = $1 AND window_start >= $2";

const STATE_COLS: &str =
    "capability, mode, percent, killed, version, updated_at, updated_by, reason";

impl Store {
    /// Every stored cutover row (capabilities without a row are in `legacy`).
    pub async fn cutover_all(&self) -> Result<Vec<CutoverState>> {
        let sql = format!("SELECT {STATE_COLS} FROM strangler_cutover ORDER BY capability");
        match self {
            Store::Postgres(p) => sqlx::query(&sql)
                .fetch_all(p)
                .await?
                .iter()
                .map(pg_state)
                .collect(),
            Store::Sqlite(p) => sqlx::query(&sql)
                .fetch_all(p)
                .await?
                .iter()
                .map(sqlite_state)
                .collect(),
        }
    }

    /// The stored row of one capability.
    pub async fn cutover_get(&self, capability: &str) -> Result<Option<CutoverState>> {
        let sql = format!("SELECT {STATE_COLS} FROM strangler_cutover WHERE capability = $1");
        match self {
            Store::Postgres(p) => sqlx::query(&sql)
                .bind(capability)
                .fetch_optional(p)
                .await?
                .as_ref()
                .map(pg_state)
                .transpose(),
            Store::Sqlite(p) => sqlx::query(&sql)
                .bind(capability)
                .fetch_optional(p)
                .await?
                .as_ref()
                .map(sqlite_state)
                .transpose(),
        }
    }

    /// A number that changes whenever any mode or switch changes: what proxies poll.
    pub async fn cutover_version(&self) -> Result<i64> {
        let sql = "SELECT CAST(COALESCE(SUM(version), 0) AS BIGINT) FROM strangler_cutover";
        Ok(match self {
            Store::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?,
            Store::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await?,
        })
    }

    /// Sets a capability's mode and appends the audit entry, in one transaction. Returns the new
    /// state, or `None` when `expected_version` no longer matched (someone else changed it).
    pub async fn cutover_set(&self, change: &ModeChange) -> Result<Option<CutoverState>> {
        let (name, percent) = mode_parts(change.to);
        self.change(
            &change.capability,
            change.expected_version,
            Update::Mode(name, percent),
            Audit {
                to: change.to.to_string(),
                actor: &change.actor,
                reason: &change.reason,
                forced: change.forced,
                gate: change.gate.as_ref(),
            },
        )
        .await
    }

    /// Turns a capability's kill switch (or the global one, [`ALL`]) on or off, audited.
    pub async fn cutover_set_killed(
        &self,
        capability: &str,
        killed: bool,
        actor: &str,
        reason: &str,
    ) -> Result<CutoverState> {
        let to = if killed { "killed" } else { "unkilled" };
        self.change(
            capability,
            None,
            Update::Killed(killed),
            Audit {
                to: to.into(),
                actor,
                reason,
                forced: false,
                gate: None,
            },
        )
        .await?
        .ok_or_else(|| Error::Corrupt("kill switch update matched no row".into()))
    }

    /// The audit trail of a capability, oldest first, at most `limit` newest entries.
    pub async fn cutover_history(&self, capability: &str, limit: i64) -> Result<Vec<AuditEntry>> {
        let sql = "SELECT id, capability, from_mode, to_mode, actor, reason, forced, gate, at \
                   FROM strangler_cutover_audit WHERE capability = $1 ORDER BY id DESC LIMIT $2";
        let mut out = match self {
            Store::Postgres(p) => {
                let rows = sqlx::query(sql)
                    .bind(capability)
                    .bind(limit)
                    .fetch_all(p)
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(AuditEntry {
                            id: r.try_get("id")?,
                            capability: r.try_get("capability")?,
                            from_mode: r.try_get("from_mode")?,
                            to_mode: r.try_get("to_mode")?,
                            actor: r.try_get("actor")?,
                            reason: r.try_get("reason")?,
                            forced: r.try_get("forced")?,
                            gate: r.try_get("gate")?,
                            at: r.try_get("at")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            Store::Sqlite(p) => {
                let rows = sqlx::query(sql)
                    .bind(capability)
                    .bind(limit)
                    .fetch_all(p)
                    .await?;
                rows.iter()
                    .map(|r| {
                        let gate: Option<String> = r.try_get("gate")?;
                        let at: String = r.try_get("at")?;
                        Ok(AuditEntry {
                            id: r.try_get("id")?,
                            capability: r.try_get("capability")?,
                            from_mode: r.try_get("from_mode")?,
                            to_mode: r.try_get("to_mode")?,
                            actor: r.try_get("actor")?,
                            reason: r.try_get("reason")?,
                            forced: r.try_get("forced")?,
                            gate: gate
                                .map(|g| serde_json::from_str(&g))
                                .transpose()
                                .map_err(|e| Error::Corrupt(format!("audit gate JSON: {e}")))?,
                            at: parse_sqlite_time(&at)?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        out.reverse();
        Ok(out)
    }

    /// Adds one flush of verdict counts from one proxy, all rows in one transaction.
    pub async fn add_verdict_counts(&self, batch: &[VerdictCounts]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let upsert = ADD_VERDICT_COUNTS;
        let skip = "INSERT INTO strangler_skip_counts (capability, window_start, proxy_id, reason, count) \
                    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (capability, window_start, proxy_id, reason) \
                    DO UPDATE SET count = strangler_skip_counts.count + excluded.count";
        macro_rules! run {
            ($pool:expr, $window:expr) => {{
                let mut tx = $pool.begin().await?;
                for c in batch {
                    sqlx::query(upsert)
                        .bind(&c.capability)
                        .bind(($window)(c.window_start))
                        .bind(&c.proxy_id)
                        .bind(c.matches)
                        .bind(c.mismatches)
                        .bind(c.stale)
                        .bind(c.errors)
                        .bind(c.new_errors)
                        .bind(c.skipped)
                        .bind(c.served_new)
                        .bind(c.fallbacks)
                        .bind(c.latency_samples)
                        .bind(c.legacy_p50_us)
                        .bind(c.legacy_p99_us)
                        .bind(c.new_p50_us)
                        .bind(c.new_p99_us)
                        .execute(&mut *tx)
                        .await?;
                    for (reason, n) in &c.skipped_by_reason {
                        sqlx::query(skip)
                            .bind(&c.capability)
                            .bind(($window)(c.window_start))
                            .bind(&c.proxy_id)
                            .bind(reason)
                            .bind(*n)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
            }};
        }
        match self {
            Store::Postgres(p) => run!(p, |t: DateTime<Utc>| t),
            Store::Sqlite(p) => run!(p, sqlite_time),
        }
        Ok(())
    }

    /// Sums the verdict counts of a capability over every proxy since `since` (rounded down to
    /// its minute).
    pub async fn verdict_totals(
        &self,
        capability: &str,
        since: DateTime<Utc>,
    ) -> Result<VerdictTotals> {
        let sql = VERDICT_TOTALS;
        let since = window_of(since);
        let row = match self {
            Store::Postgres(p) => {
                let r = sqlx::query(sql)
                    .bind(capability)
                    .bind(since)
                    .fetch_one(p)
                    .await?;
                totals_tuple(&r)?
            }
            Store::Sqlite(p) => {
                let r = sqlx::query(sql)
                    .bind(capability)
                    .bind(sqlite_time(since))
                    .fetch_one(p)
                    .await?;
                totals_tuple(&r)?
            }
        };
        let (matches, mismatches, stale, errors, new_errors, skipped, served_new, fallbacks, n, d) =
            row;
        Ok(VerdictTotals {
            matches,
            mismatches,
            stale,
            errors,
            new_errors,
            skipped,
            served_new,
            fallbacks,
            latency_samples: n,
            p99_delta_ms: d,
        })
    }

    /// Skips of a capability since `since`, by reason.
    pub async fn skip_totals(
        &self,
        capability: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, i64)>> {
        let sql = "SELECT reason, CAST(SUM(count) AS BIGINT) FROM strangler_skip_counts \
                   WHERE capability = $1 AND window_start >= $2 GROUP BY reason ORDER BY reason";
        let since = window_of(since);
        Ok(match self {
            Store::Postgres(p) => {
                sqlx::query_as(sql)
                    .bind(capability)
                    .bind(since)
                    .fetch_all(p)
                    .await?
            }
            Store::Sqlite(p) => {
                sqlx::query_as(sql)
                    .bind(capability)
                    .bind(sqlite_time(since))
                    .fetch_all(p)
                    .await?
            }
        })
    }

    async fn change(
        &self,
        capability: &str,
        expected_version: Option<i64>,
        update: Update,
        audit: Audit<'_>,
    ) -> Result<Option<CutoverState>> {
        let now = Utc::now();
        let current = self.cutover_get(capability).await?;
        let from_mode = current.as_ref().map(|c| c.mode.to_string());
        let (mode, percent, killed) = match (&update, &current) {
            (Update::Mode(m, p), Some(c)) => (m.to_string(), *p, c.killed),
            (Update::Mode(m, p), None) => (m.to_string(), *p, false),
            (Update::Killed(k), Some(c)) => {
                let (m, p) = mode_parts(c.mode);
                (m.to_string(), p, *k)
            }
            (Update::Killed(k), None) => ("legacy".to_string(), 0, *k),
        };
        // Optimistic concurrency: the write applies only when the version is still the one read
        // (or the one the caller expects), so two racing writers never both succeed.
        let seen = current.as_ref().map_or(0, |c| c.version);
        if let Some(expected) = expected_version
            && expected != seen
        {
            return Ok(None);
        }
        let upsert = "INSERT INTO strangler_cutover \
             (capability, mode, percent, killed, version, updated_at, updated_by, reason) \
             VALUES ($1, $2, $3, $4, 1, $5, $6, $7) \
             ON CONFLICT (capability) DO UPDATE SET mode = excluded.mode, \
             percent = excluded.percent, killed = excluded.killed, \
             version = strangler_cutover.version + 1, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by, reason = excluded.reason \
             WHERE strangler_cutover.version = $8";
        let audit_sql = "INSERT INTO strangler_cutover_audit \
             (capability, from_mode, to_mode, actor, reason, forced, gate, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let applied = match self {
            Store::Postgres(p) => {
                let mut tx = p.begin().await?;
                let n = sqlx::query(upsert)
                    .bind(capability)
                    .bind(&mode)
                    .bind(percent as i16)
                    .bind(killed)
                    .bind(now)
                    .bind(audit.actor)
                    .bind(audit.reason)
                    .bind(seen)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    sqlx::query(audit_sql)
                        .bind(capability)
                        .bind(&from_mode)
                        .bind(&audit.to)
                        .bind(audit.actor)
                        .bind(audit.reason)
                        .bind(audit.forced)
                        .bind(audit.gate.cloned().map(sqlx::types::Json))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                n == 1
            }
            Store::Sqlite(p) => {
                let mut tx = p.begin().await?;
                let n = sqlx::query(upsert)
                    .bind(capability)
                    .bind(&mode)
                    .bind(percent)
                    .bind(killed)
                    .bind(sqlite_time(now))
                    .bind(audit.actor)
                    .bind(audit.reason)
                    .bind(seen)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 1 {
                    sqlx::query(audit_sql)
                        .bind(capability)
                        .bind(&from_mode)
                        .bind(&audit.to)
                        .bind(audit.actor)
                        .bind(audit.reason)
                        .bind(audit.forced)
                        .bind(audit.gate.map(|g| g.to_string()))
                        .bind(sqlite_time(now))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                n == 1
            }
        };
        if !applied {
            return Ok(None);
        }
        self.cutover_get(capability).await
    }
}

enum Update {
    Mode(&'static str, i32),
    Killed(bool),
}

struct Audit<'a> {
    to: String,
    actor: &'a str,
    reason: &'a str,
    forced: bool,
    gate: Option<&'a serde_json::Value>,
}

type Totals = (i64, i64, i64, i64, i64, i64, i64, i64, i64, Option<f64>);

fn totals_tuple<'r, R: Row>(r: &'r R) -> std::result::Result<Totals, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok((
        r.try_get(0)?,
        r.try_get(1)?,
        r.try_get(2)?,
        r.try_get(3)?,
        r.try_get(4)?,
        r.try_get(5)?,
        r.try_get(6)?,
        r.try_get(7)?,
        r.try_get(8)?,
        r.try_get(9)?,
    ))
}

fn pg_state(r: &sqlx::postgres::PgRow) -> Result<CutoverState> {
    let mode: String = r.try_get("mode")?;
    let percent: i16 = r.try_get("percent")?;
    Ok(CutoverState {
        capability: r.try_get("capability")?,
        mode: mode_from(&mode, i64::from(percent))?,
        killed: r.try_get("killed")?,
        version: r.try_get("version")?,
        updated_at: r.try_get("updated_at")?,
        updated_by: r.try_get("updated_by")?,
        reason: r.try_get("reason")?,
    })
}

fn sqlite_state(r: &sqlx::sqlite::SqliteRow) -> Result<CutoverState> {
    let mode: String = r.try_get("mode")?;
    let percent: i64 = r.try_get("percent")?;
    let at: String = r.try_get("updated_at")?;
    Ok(CutoverState {
        capability: r.try_get("capability")?,
        mode: mode_from(&mode, percent)?,
        killed: r.try_get("killed")?,
        version: r.try_get("version")?,
        updated_at: parse_sqlite_time(&at)?,
        updated_by: r.try_get("updated_by")?,
        reason: r.try_get("reason")?,
    })
}
