//! The mismatch tables (migration 0006) on PostgreSQL or SQLite: fingerprints with first and
//! last seen, count, hourly trend and status; redacted exemplars; rule hits; the admin audit.
//!
//! Times are epoch milliseconds, so every statement is the same text on both databases.
//! Everything written here has already passed through [`crate::privacy`].

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::Row;
use strangler_core::config::MismatchConfig;
use strangler_diff::Difference;
use strangler_store::Store;

use crate::error::{Error, Result};

/// One hour in milliseconds (the trend's bucket).
pub const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// Runs `$body` with `$p` bound to the store's pool, whichever database it is.
macro_rules! on_pool {
    ($store:expr, $p:ident => $body:expr) => {
        match $store {
            Store::Postgres($p) => $body,
            Store::Sqlite($p) => $body,
        }
    };
}

/// Triage state of a fingerprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Nobody looked at it yet (or it came back).
    Open,
    /// Someone looked and owns it.
    Acknowledged,
    /// Known and accepted until a date.
    Expected,
    /// Verified fixed by re-sending its request.
    Fixed,
}

impl Status {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Expected => "expected",
            Status::Fixed => "fixed",
        }
    }

    fn parse(s: &str) -> Result<Status> {
        Ok(match s {
            "open" => Status::Open,
            "acknowledged" => Status::Acknowledged,
            "expected" => Status::Expected,
            "fixed" => Status::Fixed,
            other => return Err(Error::Corrupt(format!("fingerprint status `{other}`"))),
        })
    }
}

/// Fingerprint counts gathered since the last flush.
#[derive(Debug, Clone)]
pub struct FingerprintDelta {
    /// Path with indices as `*`.
    pub path: String,
    /// Difference kind.
    pub kind: String,
    /// Value classes.
    pub value_class: String,
    /// First time seen in this batch.
    pub first_ms: i64,
    /// Last time seen in this batch.
    pub last_ms: i64,
    /// Hour start to count.
    pub hourly: BTreeMap<i64, i64>,
}

/// One redacted exemplar, as stored and as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exemplar {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// The capability.
    pub capability: String,
    /// The fingerprint it illustrates.
    pub fingerprint: String,
    /// When it was seen.
    pub seen_ms: i64,
    /// Its verdict (`mismatch` or `stale`).
    pub verdict: String,
    /// Request method.
    pub method: String,
    /// Path and query, redacted.
    pub path_and_query: String,
    /// Request headers, redacted.
    pub request_headers: Vec<(String, String)>,
    /// Request body, redacted.
    pub request_body: String,
    /// Legacy status.
    pub legacy_status: i32,
    /// Legacy headers, redacted.
    pub legacy_headers: Vec<(String, String)>,
    /// Legacy body, redacted.
    pub legacy_body: String,
    /// Candidate status.
    pub candidate_status: i32,
    /// Candidate headers, redacted.
    pub candidate_headers: Vec<(String, String)>,
    /// Candidate body, redacted.
    pub candidate_body: String,
    /// Differences, redacted.
    pub differences: Vec<Difference>,
    /// Kept unredacted by the capability's audited `keep_raw` opt-in.
    pub raw: bool,
}

/// What one flush writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// (capability, fingerprint) to counts.
    pub fingerprints: HashMap<(String, String), FingerprintDelta>,
    /// New exemplars (already redacted).
    pub exemplars: Vec<Exemplar>,
    /// (capability, rule, hour) to (comparisons, forgiven, hidden leaves).
    pub rule_hits: HashMap<(String, String, i64), (i64, i64, i64)>,
}

impl Batch {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty() && self.exemplars.is_empty() && self.rule_hits.is_empty()
    }
}

/// A fingerprint as reports and the API show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FingerprintRow {
    /// The capability.
    pub capability: String,
    /// 16 hex digits.
    pub fingerprint: String,
    /// Path with indices as `*`.
    pub path: String,
    /// Difference kind.
    pub kind: String,
    /// Value classes, `legacy->candidate`.
    pub value_class: String,
    /// First seen.
    pub first_seen_ms: i64,
    /// Last seen.
    pub last_seen_ms: i64,
    /// Times seen.
    pub count: i64,
    /// Triage status in force now (an expired `expected` is `open` again).
    pub status: Status,
    /// Until when it is expected.
    pub status_until_ms: Option<i64>,
    /// Who set the status.
    pub status_by: Option<String>,
    /// Note given with the status.
    pub status_note: String,
    /// Count per hour over the last 24 hours, oldest first.
    pub trend: Vec<i64>,
}

/// What one rule forgave and hid.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHits {
    /// Rule name.
    pub rule: String,
    /// Comparisons in which it forgave or hid anything.
    pub comparisons: i64,
    /// Differences it forgave.
    pub forgiven: i64,
    /// Leaf values it hid.
    pub hidden_leaves: i64,
}

/// One entry of the admin audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    /// Monotonic id.
    pub id: i64,
    /// When.
    pub at_ms: i64,
    /// Token holder (or `config` for opt-ins read from the configuration).
    pub actor: String,
    /// Their role.
    pub role: String,
    /// What was asked.
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// Details (JSON).
    pub detail: serde_json::Value,
}

/// The mismatch store over strangler's control-plane database.
#[derive(Debug, Clone)]
pub struct MismatchStore {
    store: Store,
    cfg: MismatchConfig,
}

const UPSERT_FP: &str = "
INSERT INTO strangler_fingerprint (capability, fingerprint, path, kind, value_class,
    first_seen_ms, last_seen_ms, count)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (capability, fingerprint) DO UPDATE SET
    last_seen_ms = CASE WHEN excluded.last_seen_ms > strangler_fingerprint.last_seen_ms
        THEN excluded.last_seen_ms ELSE strangler_fingerprint.last_seen_ms END,
    count = strangler_fingerprint.count + excluded.count,
    status = CASE WHEN strangler_fingerprint.status = 'fixed' THEN 'open'
        ELSE strangler_fingerprint.status END";

const UPSERT_HOURLY: &str = "
INSERT INTO strangler_fingerprint_hourly (capability, fingerprint, hour_ms, count)
VALUES ($1, $2, $3, $4)
ON CONFLICT (capability, fingerprint, hour_ms) DO UPDATE SET
    count = strangler_fingerprint_hourly.count + excluded.count";

const INSERT_EXEMPLAR: &str = "
INSERT INTO strangler_exemplar (capability, fingerprint, seen_ms, verdict, method, path_and_query,
    request_headers, request_body, legacy_status, legacy_headers, legacy_body, candidate_status,
    candidate_headers, candidate_body, differences, raw)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";

const TRIM_EXEMPLARS: &str = "
DELETE FROM strangler_exemplar WHERE capability = $1 AND fingerprint = $2 AND id NOT IN (
    SELECT id FROM strangler_exemplar WHERE capability = $1 AND fingerprint = $2
    ORDER BY id DESC LIMIT $3)";

const UPSERT_RULE: &str = "
INSERT INTO strangler_rule_hits (capability, rule, hour_ms, comparisons, forgiven, hidden_leaves)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (capability, rule, hour_ms) DO UPDATE SET
    comparisons = strangler_rule_hits.comparisons + excluded.comparisons,
    forgiven = strangler_rule_hits.forgiven + excluded.forgiven,
    hidden_leaves = strangler_rule_hits.hidden_leaves + excluded.hidden_leaves";

const FP_COLS: &str = "capability, fingerprint, path, kind, value_class, first_seen_ms, \
    last_seen_ms, count, status, status_until_ms, status_by, status_note";

const EX_COLS: &str = "id, capability, fingerprint, seen_ms, verdict, method, path_and_query, \
    request_headers, request_body, legacy_status, legacy_headers, legacy_body, candidate_status, \
    candidate_headers, candidate_body, differences, raw";

fn headers_json(h: &[(String, String)]) -> String {
    serde_json::to_string(h).unwrap_or_else(|_| "[]".into())
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Corrupt(format!("{what}: {e}")))
}

fn fp_row<R: Row>(r: &R, now_ms: i64) -> Result<FingerprintRow>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let until: Option<i64> = r.try_get("status_until_ms")?;
    let mut status = Status::parse(&r.try_get::<String, _>("status")?)?;
    if status == Status::Expected && until.is_some_and(|u| u < now_ms) {
        status = Status::Open;
    }
    Ok(FingerprintRow {
        capability: r.try_get("capability")?,
        fingerprint: r.try_get("fingerprint")?,
        path: r.try_get("path")?,
        kind: r.try_get("kind")?,
        value_class: r.try_get("value_class")?,
        first_seen_ms: r.try_get("first_seen_ms")?,
        last_seen_ms: r.try_get("last_seen_ms")?,
        count: r.try_get("count")?,
        status,
        status_until_ms: until,
        status_by: r.try_get("status_by")?,
        status_note: r.try_get("status_note")?,
        trend: Vec::new(),
    })
}

fn ex_row<R: Row>(r: &R) -> Result<Exemplar>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    i32: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    bool: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Exemplar {
        id: r.try_get("id")?,
        capability: r.try_get("capability")?,
        fingerprint: r.try_get("fingerprint")?,
        seen_ms: r.try_get("seen_ms")?,
        verdict: r.try_get("verdict")?,
        method: r.try_get("method")?,
        path_and_query: r.try_get("path_and_query")?,
        request_headers: parse_json(
            "request headers",
            &r.try_get::<String, _>("request_headers")?,
        )?,
        request_body: r.try_get("request_body")?,
        legacy_status: r.try_get("legacy_status")?,
        legacy_headers: parse_json("legacy headers", &r.try_get::<String, _>("legacy_headers")?)?,
        legacy_body: r.try_get("legacy_body")?,
        candidate_status: r.try_get("candidate_status")?,
        candidate_headers: parse_json(
            "candidate headers",
            &r.try_get::<String, _>("candidate_headers")?,
        )?,
        candidate_body: r.try_get("candidate_body")?,
        differences: parse_json("differences", &r.try_get::<String, _>("differences")?)?,
        raw: r.try_get("raw")?,
    })
}

impl MismatchStore {
    /// The mismatch store on `store`, with retention and bounds from `cfg`.
    pub fn new(store: Store, cfg: MismatchConfig) -> MismatchStore {
        MismatchStore { store, cfg }
    }

    /// The control-plane store underneath.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The `[mismatches]` configuration.
    pub fn config(&self) -> &MismatchConfig {
        &self.cfg
    }

    /// Writes one batch in one transaction, keeping at most `exemplars_per_fingerprint` newest
    /// exemplars per fingerprint.
    pub async fn write(&self, batch: &Batch) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let keep = i64::try_from(self.cfg.exemplars_per_fingerprint).unwrap_or(i64::MAX);
        on_pool!(&self.store, p => {
            let mut tx = p.begin().await?;
            for ((cap, fp), d) in &batch.fingerprints {
                let count: i64 = d.hourly.values().sum();
                sqlx::query(UPSERT_FP)
                    .bind(cap).bind(fp).bind(&d.path).bind(&d.kind).bind(&d.value_class)
                    .bind(d.first_ms).bind(d.last_ms).bind(count)
                    .execute(&mut *tx).await?;
                for (hour, n) in &d.hourly {
                    sqlx::query(UPSERT_HOURLY)
                        .bind(cap).bind(fp).bind(*hour).bind(*n)
                        .execute(&mut *tx).await?;
                }
            }
            let mut trimmed = std::collections::HashSet::new();
            for e in &batch.exemplars {
                sqlx::query(INSERT_EXEMPLAR)
                    .bind(&e.capability).bind(&e.fingerprint).bind(e.seen_ms).bind(&e.verdict)
                    .bind(&e.method).bind(&e.path_and_query)
                    .bind(headers_json(&e.request_headers)).bind(&e.request_body)
                    .bind(e.legacy_status).bind(headers_json(&e.legacy_headers)).bind(&e.legacy_body)
                    .bind(e.candidate_status).bind(headers_json(&e.candidate_headers))
                    .bind(&e.candidate_body)
                    .bind(serde_json::to_string(&e.differences).unwrap_or_else(|_| "[]".into()))
                    .bind(e.raw)
                    .execute(&mut *tx).await?;
                trimmed.insert((e.capability.as_str(), e.fingerprint.as_str()));
            }
            for (cap, fp) in trimmed {
                sqlx::query(TRIM_EXEMPLARS).bind(cap).bind(fp).bind(keep)
                    .execute(&mut *tx).await?;
            }
            for ((cap, rule, hour), (n, forgiven, hidden)) in &batch.rule_hits {
                sqlx::query(UPSERT_RULE)
                    .bind(cap).bind(rule).bind(*hour).bind(*n).bind(*forgiven).bind(*hidden)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Fingerprints of a capability, most frequent first, with their 24-hour trend.
    pub async fn fingerprints(&self, capability: &str, now_ms: i64) -> Result<Vec<FingerprintRow>> {
        let sql = format!(
            "SELECT {FP_COLS} FROM strangler_fingerprint WHERE capability = $1 \
             ORDER BY count DESC, fingerprint"
        );
        let mut rows = on_pool!(&self.store, p => {
            sqlx::query(&sql).bind(capability).fetch_all(p).await?
                .iter().map(|r| fp_row(r, now_ms)).collect::<Result<Vec<_>>>()?
        });
        let first_hour = (now_ms / HOUR_MS - 23) * HOUR_MS;
        let trend: Vec<(String, i64, i64)> = on_pool!(&self.store, p => {
            sqlx::query_as(
                "SELECT fingerprint, hour_ms, count FROM strangler_fingerprint_hourly \
                 WHERE capability = $1 AND hour_ms >= $2",
            )
            .bind(capability).bind(first_hour).fetch_all(p).await?
        });
        let mut by_fp: HashMap<String, Vec<i64>> = HashMap::new();
        for (fp, hour, n) in trend {
            let slot = usize::try_from((hour - first_hour) / HOUR_MS)
                .unwrap_or(0)
                .min(23);
            by_fp.entry(fp).or_insert_with(|| vec![0; 24])[slot] += n;
        }
        for r in &mut rows {
            r.trend = by_fp.remove(&r.fingerprint).unwrap_or_else(|| vec![0; 24]);
        }
        Ok(rows)
    }

    /// One fingerprint.
    pub async fn fingerprint(
        &self,
        capability: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<FingerprintRow> {
        self.fingerprints(capability, now_ms)
            .await?
            .into_iter()
            .find(|f| f.fingerprint == fingerprint)
            .ok_or_else(|| Error::UnknownFingerprint {
                capability: capability.to_owned(),
                fingerprint: fingerprint.to_owned(),
            })
    }

    /// Stored exemplars of a fingerprint, newest first.
    pub async fn exemplars(&self, capability: &str, fingerprint: &str) -> Result<Vec<Exemplar>> {
        let sql = format!(
            "SELECT {EX_COLS} FROM strangler_exemplar WHERE capability = $1 AND fingerprint = $2 \
             ORDER BY id DESC"
        );
        on_pool!(&self.store, p => {
            sqlx::query(&sql).bind(capability).bind(fingerprint).fetch_all(p).await?
                .iter().map(ex_row).collect()
        })
    }

    /// Sets a fingerprint's triage status. Returns whether the fingerprint exists.
    #[allow(clippy::too_many_arguments)]
    pub async fn set_status(
        &self,
        capability: &str,
        fingerprint: &str,
        status: Status,
        until_ms: Option<i64>,
        by: &str,
        note: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let sql = "UPDATE strangler_fingerprint SET status = $1, status_until_ms = $2, \
                   status_by = $3, status_note = $4, status_at_ms = $5 \
                   WHERE capability = $6 AND fingerprint = $7";
        let n = on_pool!(&self.store, p => {
            sqlx::query(sql).bind(status.as_str()).bind(until_ms).bind(by).bind(note).bind(at_ms)
                .bind(capability).bind(fingerprint).execute(p).await?.rows_affected()
        });
        Ok(n > 0)
    }

    /// What each rule of a capability forgave and hid since `since_ms`, busiest first.
    pub async fn rule_hits(&self, capability: &str, since_ms: i64) -> Result<Vec<RuleHits>> {
        let sql = "SELECT rule, CAST(SUM(comparisons) AS BIGINT), CAST(SUM(forgiven) AS BIGINT), \
                   CAST(SUM(hidden_leaves) AS BIGINT) FROM strangler_rule_hits \
                   WHERE capability = $1 AND hour_ms >= $2 GROUP BY rule";
        let rows: Vec<(String, i64, i64, i64)> = on_pool!(&self.store, p => {
            sqlx::query_as(sql).bind(capability).bind(since_ms).fetch_all(p).await?
        });
        let mut out: Vec<RuleHits> = rows
            .into_iter()
            .map(|(rule, comparisons, forgiven, hidden_leaves)| RuleHits {
                rule,
                comparisons,
                forgiven,
                hidden_leaves,
            })
            .collect();
        out.sort_by(|a, b| b.comparisons.cmp(&a.comparisons).then(a.rule.cmp(&b.rule)));
        Ok(out)
    }

    /// Appends to the admin audit trail.
    #[allow(clippy::too_many_arguments)]
    pub async fn audit(
        &self,
        at_ms: i64,
        actor: &str,
        role: &str,
        action: &str,
        target: &str,
        outcome: &str,
        detail: &serde_json::Value,
    ) -> Result<()> {
        let sql = "INSERT INTO strangler_admin_audit (at_ms, actor, role, action, target, outcome, detail) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let detail = detail.to_string();
        on_pool!(&self.store, p => {
            sqlx::query(sql).bind(at_ms).bind(actor).bind(role).bind(action).bind(target)
                .bind(outcome).bind(&detail).execute(p).await?;
        });
        Ok(())
    }

    /// The newest `limit` audit entries, newest first.
    pub async fn audit_trail(&self, limit: i64) -> Result<Vec<AuditRow>> {
        let sql = "SELECT id, at_ms, actor, role, action, target, outcome, detail \
                   FROM strangler_admin_audit ORDER BY id DESC LIMIT $1";
        type AuditTuple = (i64, i64, String, String, String, String, String, String);
        let rows: Vec<AuditTuple> =
            on_pool!(&self.store, p => { sqlx::query_as(sql).bind(limit).fetch_all(p).await? });
        rows.into_iter()
            .map(
                |(id, at_ms, actor, role, action, target, outcome, detail)| {
                    Ok(AuditRow {
                        id,
                        at_ms,
                        actor,
                        role,
                        action,
                        target,
                        outcome,
                        detail: parse_json("audit detail", &detail)?,
                    })
                },
            )
            .collect()
    }

    /// Applies retention per capability and the bound on fingerprints per capability. Returns
    /// the fingerprints removed.
    pub async fn prune(&self, capabilities: &[String], now_ms: i64) -> Result<u64> {
        let max = i64::try_from(self.cfg.max_fingerprints).unwrap_or(i64::MAX);
        let mut removed = 0;
        for cap in capabilities {
            let days = i64::try_from(self.cfg.retention_days_of(cap)).unwrap_or(i64::MAX / DAY_MS);
            let horizon = now_ms.saturating_sub(days.saturating_mul(DAY_MS));
            removed += on_pool!(&self.store, p => {
                let mut tx = p.begin().await?;
                let old = sqlx::query(
                    "DELETE FROM strangler_fingerprint WHERE capability = $1 AND (last_seen_ms < $2 \
                     OR fingerprint NOT IN (SELECT fingerprint FROM strangler_fingerprint \
                     WHERE capability = $1 ORDER BY last_seen_ms DESC, fingerprint LIMIT $3))",
                )
                .bind(cap).bind(horizon).bind(max).execute(&mut *tx).await?.rows_affected();
                for table in ["strangler_exemplar", "strangler_fingerprint_hourly"] {
                    let sql = format!(
                        "DELETE FROM {table} WHERE capability = $1 AND fingerprint NOT IN \
                         (SELECT fingerprint FROM strangler_fingerprint WHERE capability = $1)"
                    );
                    sqlx::query(&sql).bind(cap).execute(&mut *tx).await?;
                }
                for (table, col) in [
                    ("strangler_exemplar", "seen_ms"),
                    ("strangler_fingerprint_hourly", "hour_ms"),
                    ("strangler_rule_hits", "hour_ms"),
                ] {
                    let sql = format!("DELETE FROM {table} WHERE capability = $1 AND {col} < $2");
                    sqlx::query(&sql).bind(cap).bind(horizon).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                old
            });
        }
        Ok(removed)
    }
}
