//! The subscriber that turns the proxy's comparison feed into mismatch-store rows.
//!
//! It runs in its own task: redaction, JSON parsing and SQL never touch a mirror task or the
//! client. Observations are gathered in memory and written in one transaction every `flush_ms`
//! (bounded: at most `exemplars_per_fingerprint` exemplars per fingerprint per flush). If the
//! feed overflows, the oldest observations are lost and counted
//! (`strangler_mismatch_store_dropped_total`); verdict counts do not depend on this feed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use strangler_diff::Verdict;
use strangler_proxy::Observation;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::privacy::{Redactor, Taint};
use crate::store::{Batch, Exemplar, FingerprintDelta, HOUR_MS, MismatchStore};

/// At shutdown, the feed is drained until it has been quiet this long...
const DRAIN_QUIET: Duration = Duration::from_millis(300);
/// ...or for at most this long.
const DRAIN_MAX: Duration = Duration::from_secs(5);
/// How often retention and the size bound are applied.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Adds one observation to `batch`, redacting before anything is kept.
pub fn record(
    batch: &mut Batch,
    obs: &Observation,
    redactor: &Redactor,
    store: &MismatchStore,
    now_ms: i64,
) {
    let cap = obs.capability.to_string();
    let hour = now_ms / HOUR_MS * HOUR_MS;
    let c = &obs.comparison;
    for (rule, n) in &c.forgiven {
        let e = batch
            .rule_hits
            .entry((cap.clone(), rule.clone(), hour))
            .or_default();
        e.0 += 1;
        e.1 += i64::from(*n);
    }
    for (rule, n) in &c.hidden_leaves {
        let e = batch
            .rule_hits
            .entry((cap.clone(), rule.clone(), hour))
            .or_default();
        if !c.forgiven.contains_key(rule) {
            e.0 += 1;
        }
        e.2 += i64::try_from(*n).unwrap_or(i64::MAX);
    }
    if !matches!(c.verdict, Verdict::Mismatch | Verdict::Stale { .. }) || c.fingerprints.is_empty()
    {
        return;
    }
    let mut new_fps = Vec::new();
    for fp in &c.fingerprints {
        let id = fp.id.to_string();
        let d = batch
            .fingerprints
            .entry((cap.clone(), id.clone()))
            .or_insert_with(|| FingerprintDelta {
                path: fp.path.clone(),
                kind: fp.kind.as_str().to_owned(),
                value_class: fp.value_class.clone(),
                first_ms: now_ms,
                last_ms: now_ms,
                hourly: BTreeMap::new(),
            });
        d.last_ms = now_ms;
        *d.hourly.entry(hour).or_default() += 1;
        if !new_fps.contains(&id) {
            new_fps.push(id);
        }
    }
    let Some(ex) = &obs.exchange else { return };
    let cfg = store.config();
    let per_fp = usize::try_from(cfg.exemplars_per_fingerprint).unwrap_or(usize::MAX);
    let wanted: Vec<String> = new_fps
        .into_iter()
        .filter(|fp| {
            batch
                .exemplars
                .iter()
                .filter(|e| e.capability == cap && &e.fingerprint == fp)
                .count()
                < per_fp
        })
        .collect();
    if wanted.is_empty() {
        return;
    }
    let raw = cfg.keeps_raw(&cap);
    let max = cfg.max_exemplar_bytes;
    let header_pairs = |h: &http::HeaderMap| -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect()
    };
    let mut taint = Taint::default();
    let mut exemplar = if raw {
        Exemplar {
            id: 0,
            capability: cap.clone(),
            fingerprint: String::new(),
            seen_ms: now_ms,
            verdict: c.verdict.as_str().to_owned(),
            method: ex.method.to_string(),
            path_and_query: ex.path_and_query.clone(),
            request_headers: header_pairs(&ex.request_headers),
            request_body: crate::privacy::cut(
                String::from_utf8_lossy(&ex.request_body).into_owned(),
                max,
            ),
            legacy_status: i32::from(ex.legacy.status.as_u16()),
            legacy_headers: header_pairs(&ex.legacy.headers),
            legacy_body: crate::privacy::cut(
                String::from_utf8_lossy(&ex.legacy.body).into_owned(),
                max,
            ),
            candidate_status: i32::from(ex.candidate.status.as_u16()),
            candidate_headers: header_pairs(&ex.candidate.headers),
            candidate_body: crate::privacy::cut(
                String::from_utf8_lossy(&ex.candidate.body).into_owned(),
                max,
            ),
            differences: c.differences.clone(),
            raw: true,
        }
    } else {
        let hdrs = |h: &http::HeaderMap, taint: &mut Taint| {
            let pairs = header_pairs(h);
            redactor.headers(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())), taint)
        };
        // Request first: its secrets are the ones answers most often echo.
        let request_headers = hdrs(&ex.request_headers, &mut taint);
        let path_and_query = redactor.path_and_query(&ex.path_and_query, &mut taint);
        let request_body = redactor.body(&ex.request_body, max, &mut taint);
        let legacy_headers = hdrs(&ex.legacy.headers, &mut taint);
        let legacy_body = redactor.body(&ex.legacy.body, max, &mut taint);
        let candidate_headers = hdrs(&ex.candidate.headers, &mut taint);
        let candidate_body = redactor.body(&ex.candidate.body, max, &mut taint);
        let differences = redactor.differences(&c.differences, &mut taint);
        // Scrub every stored text of every raw value seen anywhere in this exchange.
        let s = |t: String| redactor.scrub(&t, &taint);
        let sh = |h: Vec<(String, String)>| -> Vec<(String, String)> {
            h.into_iter()
                .map(|(k, v)| (k, redactor.scrub(&v, &taint)))
                .collect()
        };
        let differences = serde_json::to_string(&differences)
            .ok()
            .map(|t| redactor.scrub(&t, &taint))
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Exemplar {
            id: 0,
            capability: cap.clone(),
            fingerprint: String::new(),
            seen_ms: now_ms,
            verdict: c.verdict.as_str().to_owned(),
            method: ex.method.to_string(),
            path_and_query: s(path_and_query),
            request_headers: sh(request_headers),
            request_body: s(request_body),
            legacy_status: i32::from(ex.legacy.status.as_u16()),
            legacy_headers: sh(legacy_headers),
            legacy_body: s(legacy_body),
            candidate_status: i32::from(ex.candidate.status.as_u16()),
            candidate_headers: sh(candidate_headers),
            candidate_body: s(candidate_body),
            differences,
            raw: false,
        }
    };
    for fp in wanted {
        exemplar.fingerprint = fp;
        batch.exemplars.push(exemplar.clone());
    }
}

/// Records that raw values are kept for the capabilities that opted in (audited at each start).
pub async fn audit_raw_opt_ins(store: &MismatchStore) -> crate::Result<()> {
    let now = Utc::now().timestamp_millis();
    for (name, c) in &store.config().capability {
        if c.keep_raw {
            tracing::warn!(capability = %name, "raw sensitive values are kept in the mismatch store (keep_raw)");
            store
                .audit(
                    now,
                    "config",
                    "config",
                    "keep_raw",
                    name,
                    "ok",
                    &serde_json::json!({"keep_raw": true, "source": "mismatches.capability"}),
                )
                .await?;
        }
    }
    Ok(())
}

/// Subscribes to `feed` and writes what it sees until `cancel`, then flushes a last time.
pub fn spawn(
    store: MismatchStore,
    redactor: Redactor,
    capabilities: Vec<String>,
    mut feed: broadcast::Receiver<Arc<Observation>>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    let flush_every = Duration::from_millis(store.config().flush_ms);
    tokio::spawn(
        async move {
            if let Err(e) = audit_raw_opt_ins(&store).await {
                tracing::warn!(error = %e, "recording keep_raw opt-ins in the audit trail failed");
            }
            let mut tick = tokio::time::interval(flush_every);
            tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut prune = tokio::time::interval(PRUNE_EVERY);
            prune.set_missed_tick_behavior(MissedTickBehavior::Skip);
            let mut batch = Batch::default();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    got = feed.recv() => match got {
                        Ok(obs) => record(&mut batch, &obs, &redactor, &store, Utc::now().timestamp_millis()),
                        Err(RecvError::Lagged(n)) => {
                            metrics::counter!("strangler_mismatch_store_dropped_total").increment(n);
                            tracing::warn!(dropped = n, "mismatch store fell behind the comparison feed");
                        }
                        Err(RecvError::Closed) => break,
                    },
                    _ = tick.tick() => flush(&store, &mut batch).await,
                    _ = prune.tick() => {
                        if let Err(e) = store.prune(&capabilities, Utc::now().timestamp_millis()).await {
                            tracing::warn!(error = %e, "pruning the mismatch store failed");
                        }
                    }
                }
            }
            // Mirror tasks still finish while the proxy drains: keep what they judge until the
            // feed has been quiet for a moment (bounded, so shutdown never hangs on it).
            let until = tokio::time::Instant::now() + DRAIN_MAX;
            while let Ok(Ok(obs)) = tokio::time::timeout_at(
                until.min(tokio::time::Instant::now() + DRAIN_QUIET),
                feed.recv(),
            )
            .await
            {
                record(&mut batch, &obs, &redactor, &store, Utc::now().timestamp_millis());
            }
            flush(&store, &mut batch).await;
        }
        .instrument(tracing::info_span!("mismatch_store")),
    )
}

async fn flush(store: &MismatchStore, batch: &mut Batch) {
    if batch.is_empty() {
        return;
    }
    match store.write(batch).await {
        Ok(()) => *batch = Batch::default(),
        Err(e) => {
            metrics::counter!("strangler_mismatch_store_write_errors_total").increment(1);
            tracing::warn!(error = %e, "writing the mismatch store failed; retrying next tick");
            // Bounded: exemplars are dropped on a failing store, counts are kept for the retry.
            batch.exemplars.clear();
        }
    }
}
