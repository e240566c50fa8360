//! Building a [`Report`] from the store: cutover state and gate (through `strangler-proxy`'s
//! cutover API), verdict and skip counts, fingerprints, exemplars and rule hits.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use strangler_core::Config;
use strangler_proxy::gate::{Z95, wilson_lower, wilson_upper};
use strangler_store::Store;

use super::{
    Freshness, HourRow, Latency, PathCount, Rates, Report, Traffic, at_ms, render_exemplar,
};
use crate::error::{Error, Result};
use crate::store::MismatchStore;

/// Exemplar diffs shown in a report (one per top fingerprint).
const REPORT_EXEMPLARS: usize = 5;
/// Top paths shown.
const TOP_PATHS: usize = 10;

/// Builds the report of `capability` as of `now`. `lag_ms` is the live lag from a proxy running
/// in this process, when there is one.
pub async fn build(
    mismatches: &MismatchStore,
    config: &Config,
    capability: &str,
    now: DateTime<Utc>,
    lag_ms: Option<u64>,
) -> Result<Report> {
    let cap = config
        .capability(capability)
        .ok_or_else(|| Error::UnknownCapability(capability.to_owned()))?;
    let store = mismatches.store();
    let views = strangler_proxy::cutover::show(store, config).await?;
    let view = views
        .into_iter()
        .find(|v| v.capability == capability)
        .ok_or_else(|| Error::UnknownCapability(capability.to_owned()))?;
    let since = view.updated_at;
    let since_or_epoch = since.unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let t = &view.totals;
    let skipped_by_reason: BTreeMap<String, i64> = store
        .skip_totals(capability, since_or_epoch)
        .await?
        .into_iter()
        .collect();
    let traffic = Traffic {
        total: t.matches + t.mismatches + t.stale + t.errors + t.skipped,
        compared: t.matches + t.mismatches,
        matches: t.matches,
        mismatches: t.mismatches,
        stale: t.stale,
        errors: t.errors,
        new_errors: t.new_errors,
        skipped: t.skipped,
        skipped_by_reason,
        served_new: t.served_new,
        fallbacks: t.fallbacks,
    };
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    let compared = n(traffic.compared);
    let asked = n(t.matches + t.mismatches + t.stale + t.new_errors);
    let judged = n(t.matches + t.mismatches + t.stale);
    let share = |k: u64, of: u64| if of == 0 { 0.0 } else { k as f64 / of as f64 };
    let rates = Rates {
        mismatch_rate: share(n(t.mismatches), compared),
        mismatch_lower95: if compared == 0 {
            0.0
        } else {
            wilson_lower(n(t.mismatches), compared, Z95)
        },
        mismatch_upper95: wilson_upper(n(t.mismatches), compared, Z95),
        mismatch_budget: cap.mismatch_budget,
        error_rate: share(n(t.new_errors), asked),
        error_upper95: wilson_upper(n(t.new_errors), asked, Z95),
        stale_rate: share(n(t.stale), judged),
    };
    let latency = Latency {
        samples: t.latency_samples,
        p99_delta_ms: t.p99_delta_ms,
        max_p99_delta_ms: cap.max_p99_delta_ms as f64,
    };
    let now_ms = now.timestamp_millis();
    let fingerprints = mismatches.fingerprints(capability, now_ms).await?;
    let mut paths: BTreeMap<&str, (i64, usize)> = BTreeMap::new();
    for f in &fingerprints {
        let e = paths.entry(&f.path).or_default();
        e.0 += f.count;
        e.1 += 1;
    }
    let mut top_paths: Vec<PathCount> = paths
        .into_iter()
        .map(|(path, (count, fps))| PathCount {
            path: path.to_owned(),
            count,
            fingerprints: fps,
        })
        .collect();
    top_paths.sort_by(|a, b| b.count.cmp(&a.count).then(a.path.cmp(&b.path)));
    top_paths.truncate(TOP_PATHS);
    // One exchange often shows several fingerprints: render it once and name them all.
    let mut exemplars: Vec<super::ExemplarDiff> = Vec::new();
    for f in fingerprints.iter().take(REPORT_EXEMPLARS) {
        if let Some(e) = mismatches
            .exemplars(capability, &f.fingerprint)
            .await?
            .first()
        {
            let request = format!("{} {}", e.method, e.path_and_query);
            match exemplars
                .iter_mut()
                .find(|x| x.seen_ms == e.seen_ms && x.request == request)
            {
                Some(same) => same.also.push(f.fingerprint.clone()),
                None => exemplars.push(render_exemplar(e)),
            }
        }
    }
    let rules = mismatches
        .rule_hits(
            capability,
            since_or_epoch.timestamp_millis() / crate::store::HOUR_MS * crate::store::HOUR_MS,
        )
        .await?;
    let last_comparison_at = last_window(store, capability).await?;
    let freshness = Freshness {
        last_comparison_at,
        age_s: last_comparison_at.map(|t| (now - t).num_milliseconds() as f64 / 1000.0),
        last_mismatch_at: fingerprints
            .iter()
            .map(|f| f.last_seen_ms)
            .max()
            .and_then(at_ms),
        lag_ms,
    };
    let hourly = hourly(store, capability, now - TimeDelta::hours(24)).await?;
    let mut report = Report {
        generated_at: now,
        capability: capability.to_owned(),
        class: serde_json::to_value(view.class)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        mode: view.mode.to_string(),
        killed: view.killed || view.all_killed,
        since,
        traffic,
        rates,
        latency,
        gate: view.gate,
        top_paths,
        fingerprints,
        exemplars,
        rules,
        freshness,
        hourly,
        figures: Vec::new(),
    };
    report.figures = report.compute_figures();
    Ok(report)
}

/// Reports of every configured capability.
pub async fn build_all(
    mismatches: &MismatchStore,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<Report>> {
    let mut out = Vec::new();
    for c in &config.capabilities {
        out.push(build(mismatches, config, &c.name, now, None).await?);
    }
    Ok(out)
}

async fn last_window(store: &Store, capability: &str) -> Result<Option<DateTime<Utc>>> {
    let sql = "SELECT MAX(window_start) FROM strangler_verdict_counts WHERE capability = $1";
    Ok(match store {
        Store::Postgres(p) => {
            sqlx::query_scalar::<_, Option<DateTime<Utc>>>(sql)
                .bind(capability)
                .fetch_one(p)
                .await?
        }
        Store::Sqlite(p) => {
            let s: Option<String> = sqlx::query_scalar(sql)
                .bind(capability)
                .fetch_one(p)
                .await?;
            s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
                .map(|t| t.with_timezone(&Utc))
        }
    })
}

async fn hourly(store: &Store, capability: &str, since: DateTime<Utc>) -> Result<Vec<HourRow>> {
    let rows: Vec<(DateTime<Utc>, i64, i64)> = match store {
        Store::Postgres(p) => sqlx::query_as(
            "SELECT date_trunc('hour', window_start), CAST(SUM(matches + mismatches) AS BIGINT), \
                 CAST(SUM(mismatches) AS BIGINT) FROM strangler_verdict_counts \
                 WHERE capability = $1 AND window_start >= $2 GROUP BY 1 ORDER BY 1",
        )
        .bind(capability)
        .bind(since)
        .fetch_all(p)
        .await?,
        Store::Sqlite(p) => {
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT substr(window_start, 1, 13), SUM(matches + mismatches), SUM(mismatches) \
                 FROM strangler_verdict_counts WHERE capability = $1 AND window_start >= $2 \
                 GROUP BY 1 ORDER BY 1",
            )
            .bind(capability)
            .bind(since.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .fetch_all(p)
            .await?;
            rows.into_iter()
                .filter_map(|(h, c, m)| {
                    DateTime::parse_from_rfc3339(&format!("{h}:00:00Z"))
                        .ok()
                        .map(|t| (t.with_timezone(&Utc), c, m))
                })
                .collect()
        }
    };
    Ok(rows
        .into_iter()
        .map(|(hour, compared, mismatches)| HourRow {
            hour,
            compared,
            mismatches,
        })
        .collect())
}
