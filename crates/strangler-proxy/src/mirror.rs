//! Mirroring: the copy of a request sent to the other side, and its lag-aware comparison, in a
//! spawned task that never touches the client's path.
//!
//! Each capability has a bounded pool (a semaphore): a copy that finds no permit is dropped and
//! counted, so a slow new path costs at most `mirror_max_in_flight` tasks, each holding at most
//! two bodies of `max_body_bytes`. Every task has a deadline and a tracing span.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use strangler_diff::{CompareInput, Comparison, HttpAnswer, RuleSet, Side, Verdict, compare};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::Upstream;
use crate::error::ProxyError;
use crate::forward::{self, Captured, Collected};
use crate::freshness::{LAG_HEADER, WATERMARK_HEADER, watermark_of};
use crate::modes::Serve;
use crate::observe::Answer;
use crate::state::Proxy;
use crate::stats::Skip;

/// Header naming the capability and copy id on every mirrored request.
pub const SHADOW_HEADER: &str = "x-strangler-shadow";

/// A capability's bound on mirrored requests in flight.
pub struct MirrorPool {
    sem: Arc<Semaphore>,
    in_flight: AtomicUsize,
    high_water: AtomicUsize,
}

/// A slot in the pool, released when the mirror task ends.
pub struct Permit {
    _permit: OwnedSemaphorePermit,
    pool: Arc<MirrorPool>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.pool.in_flight.fetch_sub(1, Relaxed);
    }
}

impl MirrorPool {
    /// A pool of `max` slots.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(MirrorPool {
            sem: Arc::new(Semaphore::new(max)),
            in_flight: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
        })
    }

    /// A slot, or `None` when the pool is full (never waits).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let permit = self.sem.clone().try_acquire_owned().ok()?;
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.high_water.fetch_max(now, Relaxed);
        Some(Permit {
            _permit: permit,
            pool: self.clone(),
        })
    }

    /// Mirror tasks running now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Relaxed)
    }

    /// The most that ever ran at once.
    pub fn high_water(&self) -> usize {
        self.high_water.load(Relaxed)
    }
}

/// The client's request, buffered, as it is re-sent to the other side.
#[derive(Clone)]
pub struct Copy {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path_and_query: String,
    /// Client headers (hop-by-hop removed when sent).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

/// The answer the client got, as far as the comparison needs it.
pub struct Served {
    /// Which side served.
    pub side: Serve,
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Time to the response head.
    pub latency: Duration,
    /// The body, once the client has received it.
    pub body: oneshot::Receiver<Captured>,
}

/// An answer fetched and read whole (bounded).
pub struct Fetched {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body, or the unread remainder when over the cap.
    pub body: Collected,
    /// Time to the response head.
    pub latency: Duration,
}

/// Sends `copy` to `to` through `client` and reads the answer up to `cap` bytes.
pub async fn fetch(
    client: &forward::Client,
    to: &Upstream,
    copy: &Copy,
    extra: &[(HeaderName, HeaderValue)],
    shadow: Option<&HeaderValue>,
    timeout: Duration,
    cap: usize,
) -> Result<Fetched, ProxyError> {
    let mut req = forward::request(
        &copy.method,
        &copy.headers,
        to.uri(&copy.path_and_query),
        Body::from(copy.body.clone()),
    );
    for (k, v) in extra {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    if let Some(v) = shadow {
        req.headers_mut()
            .insert(HeaderName::from_static(SHADOW_HEADER), v.clone());
    }
    let deadline = Instant::now() + timeout;
    let (resp, latency) = forward::send(client, req, timeout).await?;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout_at(deadline, forward::collect_capped(body, cap))
        .await
        .map_err(|_| ProxyError::Timeout)?
        .map_err(|_| ProxyError::Upstream)?;
    Ok(Fetched {
        status: parts.status,
        headers: parts.headers,
        body,
        latency,
    })
}

/// Converts an answer for `strangler-diff`.
pub fn answer(status: StatusCode, headers: &HeaderMap, body: &Bytes) -> HttpAnswer {
    HttpAnswer {
        status: status.as_u16(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    }
}

/// One side's answer as the judge sees it, borrowed.
#[derive(Clone, Copy)]
pub struct AnswerRef<'a> {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: &'a HeaderMap,
    /// Body.
    pub body: &'a Bytes,
}

impl AnswerRef<'_> {
    /// An owned copy (reference counts for the body).
    pub fn owned(self) -> Answer {
        Answer {
            status: self.status,
            headers: self.headers.clone(),
            body: self.body.clone(),
        }
    }
}

impl Answer {
    /// Borrowed, for judging.
    pub fn borrowed(&self) -> AnswerRef<'_> {
        AnswerRef {
            status: self.status,
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// Whether two answers are the same to a client as far as `rules` look: same status (not a
/// server error, which is judged as an error), same values of every compared header, same body
/// bytes. Rules only ever forgive differences, so identical answers need no parsing.
pub fn identical(legacy: AnswerRef<'_>, candidate: AnswerRef<'_>, rules: &RuleSet) -> bool {
    legacy.status == candidate.status
        && !legacy.status.is_server_error()
        && legacy.body == candidate.body
        && rules.headers().iter().all(|name| {
            legacy
                .headers
                .get_all(name.as_str())
                .iter()
                .eq(candidate.headers.get_all(name.as_str()).iter())
        })
}

/// Judges a pair of answers: byte-identical ones match without parsing, the others go through
/// `strangler-diff` with the capability's rules.
pub fn judge(
    legacy: AnswerRef<'_>,
    candidate: AnswerRef<'_>,
    watermark: Option<strangler_diff::Watermark>,
    rules: &RuleSet,
) -> Comparison {
    if identical(legacy, candidate, rules) {
        return Comparison {
            capability: rules.capability().unwrap_or_default().to_owned(),
            verdict: Verdict::Match,
            differences: Vec::new(),
            fingerprints: Vec::new(),
            forgiven: Default::default(),
            hidden_leaves: Default::default(),
            total_leaves: 0,
            hidden_share: 0.0,
            text_diff: None,
        };
    }
    let l = answer(legacy.status, legacy.headers, legacy.body);
    let c = answer(candidate.status, candidate.headers, candidate.body);
    compare(
        CompareInput {
            legacy: &l,
            candidate: &c,
            candidate_watermark: watermark,
        },
        rules,
    )
}

/// Whether a difference may be the new path's lag: it says it lags, or it reports a watermark.
fn lag_suspected(headers: &HeaderMap) -> bool {
    let lag = headers
        .get(LAG_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok());
    lag.is_some_and(|l| l > 0.0) || headers.contains_key(WATERMARK_HEADER)
}

/// Where the mirrored copy goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The new read path.
    New,
    /// The capability's sandbox (writes).
    Sandbox,
    /// Legacy (the new path served; legacy is the reference).
    Legacy,
}

/// Spawns the comparison of a served answer with the other side's.
pub fn spawn(
    proxy: Arc<Proxy>,
    cap: usize,
    copy: Copy,
    served: Served,
    target: Target,
    permit: Permit,
) {
    let tracker = proxy.tasks.clone();
    let lane = proxy.lane.handle().clone();
    // On the mirror lane, not the client's threads; the id and span are made there too.
    tracker.spawn_on(
        async move {
            let id = proxy.next_shadow_id();
            let name = proxy.settings.caps[cap].name.clone();
            let span = tracing::info_span!("mirror", capability = %name, shadow_id = %id);
            // Bounded by the mirror deadline, so shutdown can wait for it to finish.
            run(&proxy, cap, &id, copy, served, target)
                .instrument(span)
                .await;
            drop(permit);
        },
        &lane,
    );
}

async fn run(proxy: &Proxy, cap: usize, id: &str, copy: Copy, served: Served, target: Target) {
    let c = &proxy.settings.caps[cap];
    let stats = &proxy.stats[cap];
    let timeout = Duration::from_millis(c.cfg.mirror_timeout_ms);
    let deadline = Instant::now() + timeout;
    let cap_bytes = c.cfg.max_body_bytes;
    let shadow = HeaderValue::from_str(&format!("{}/{id}", c.name)).ok();
    let shadow = shadow.as_ref();
    let upstream = match target {
        Target::New => &proxy.settings.new,
        Target::Sandbox => c.sandbox.as_ref().unwrap_or(&proxy.settings.new),
        Target::Legacy => &proxy.settings.legacy,
    };
    // Legacy is told the copy is a shadow, but the header and host rewrites are for the new side.
    let rewrites: &[_] = &proxy.mirror_headers;
    let mirrored_extra: &[_] = if target == Target::Legacy {
        &[]
    } else {
        rewrites
    };
    let client = &proxy.lane.client;
    let (other, served_body) = tokio::join!(
        fetch(
            client,
            upstream,
            &copy,
            mirrored_extra,
            shadow,
            timeout,
            cap_bytes
        ),
        tokio::time::timeout_at(deadline, served.body),
    );
    let served_body = match served_body {
        Ok(Ok(Captured::Complete(b))) => b,
        Ok(Ok(Captured::TooLarge)) => return stats.skip(Skip::TooLarge),
        Ok(Ok(Captured::Failed)) => return stats.skip(Skip::ServedFailed),
        Ok(Ok(Captured::Aborted)) | Ok(Err(_)) => return stats.skip(Skip::ClientAborted),
        Err(_) => return stats.skip(Skip::Deadline),
    };
    let other_side = if served.side == Serve::Legacy {
        Side::Candidate
    } else {
        Side::Legacy
    };
    let other = match other {
        Ok(f) => f,
        Err(e) => {
            let v = Verdict::Error {
                side: other_side,
                reason: e.to_string(),
            };
            tracing::debug!(verdict = v.as_str(), error = %e, "mirror failed");
            return stats.verdict(&v);
        }
    };
    let other_body = match &other.body {
        Collected::Full(b) => b,
        Collected::TooLarge(_) => return stats.skip(Skip::TooLarge),
    };
    let served_answer = AnswerRef {
        status: served.status,
        headers: &served.headers,
        body: &served_body,
    };
    let other_answer = AnswerRef {
        status: other.status,
        headers: &other.headers,
        body: other_body,
    };
    let (legacy, candidate) = match served.side {
        Serve::Legacy => {
            stats.legacy_latency(served.latency);
            stats.new_latency(other.latency);
            (served_answer, other_answer)
        }
        Serve::New => {
            stats.legacy_latency(other.latency);
            stats.new_latency(served.latency);
            (other_answer, served_answer)
        }
    };
    let cand_headers = candidate.headers;
    if target != Target::Sandbox {
        proxy.fresh[cap].observe(cand_headers, Utc::now());
    }
    let first = judge(legacy, candidate, watermark_of(cand_headers), &c.rules);
    let mut verdict = first.verdict;
    // A mismatch the re-ask confirmed is reported with the re-asked pair and its differences.
    let mut reasked: Option<(Comparison, Answer, Answer)> = None;
    let differs = matches!(verdict, Verdict::Mismatch | Verdict::Stale { .. });
    let settle = Duration::from_millis(c.cfg.settle_ms);
    if differs
        && (matches!(verdict, Verdict::Stale { .. }) || lag_suspected(cand_headers))
        && Instant::now() + settle < deadline
    {
        // The projection may not have applied the change legacy shows yet: ask again once. Both
        // sides are asked again, because legacy may itself have moved on during the delay; if
        // the fresh pair agrees, the first difference was lag, not drift.
        tokio::time::sleep(settle).await;
        let to = if target == Target::Sandbox {
            upstream
        } else {
            &proxy.settings.new
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let (retry, legacy_again) = tokio::join!(
            fetch(client, to, &copy, rewrites, shadow, left, cap_bytes),
            fetch(
                client,
                &proxy.settings.legacy,
                &copy,
                &[],
                shadow,
                left,
                cap_bytes
            ),
        );
        if let (Ok(n), Ok(l)) = (retry, legacy_again)
            && let (Collected::Full(nb), Collected::Full(lb)) = (n.body, l.body)
        {
            proxy.fresh[cap].observe(&n.headers, Utc::now());
            let new_again = Answer {
                status: n.status,
                headers: n.headers,
                body: nb,
            };
            let legacy_again = Answer {
                status: l.status,
                headers: l.headers,
                body: lb,
            };
            let second = judge(
                legacy_again.borrowed(),
                new_again.borrowed(),
                watermark_of(&new_again.headers),
                &c.rules,
            );
            verdict = match second.verdict {
                Verdict::Match | Verdict::Stale { .. } => Verdict::Stale {
                    legacy_changed_at: String::new(),
                    candidate_watermark: watermark_of(cand_headers)
                        .map(|w| w.to_string())
                        .unwrap_or_default(),
                },
                // Still different once the projection caught up: drift, and what differs is
                // what the fresh pair shows. The first pair's differences were partly lag (a key
                // not projected yet reads as fields "missing"), so they are not reported.
                Verdict::Mismatch => {
                    reasked = Some((second, legacy_again, new_again));
                    Verdict::Mismatch
                }
                _ => Verdict::Mismatch,
            };
        }
    }
    let (comparison, pair) = match reasked {
        Some((second, l, n)) => (second, Some((l, n))),
        None => (Comparison { verdict, ..first }, None),
    };
    let (legacy, candidate) = match &pair {
        Some((l, n)) => (l.borrowed(), n.borrowed()),
        None => (legacy, candidate),
    };
    tracing::debug!(
        verdict = comparison.verdict.as_str(),
        differences = comparison.differences.len(),
        reasked = pair.is_some(),
        "compared"
    );
    stats.verdict(&comparison.verdict);
    if proxy.observers.receiver_count() > 0 {
        // Only differences need the exchange (for exemplars); matches carry just their counts.
        let differed = matches!(
            comparison.verdict,
            Verdict::Mismatch | Verdict::Stale { .. }
        );
        let _ = proxy.observers.send(Arc::new(crate::observe::Observation {
            capability: c.name.clone(),
            request: format!("{} {}", copy.method, copy.path_and_query),
            exchange: differed.then(|| {
                Arc::new(crate::observe::Exchange {
                    method: copy.method.clone(),
                    path_and_query: copy.path_and_query.clone(),
                    request_headers: copy.headers.clone(),
                    request_body: copy.body.clone(),
                    legacy: legacy.owned(),
                    candidate: candidate.owned(),
                })
            }),
            comparison,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RuleSet {
        RuleSet::parse(
            "capability = \"orders\"\n[http]\nstatus = true\nheaders = [\"content-type\"]\n",
            "orders.toml",
        )
        .unwrap()
    }

    fn side<'a>(status: u16, headers: &'a HeaderMap, body: &'a Bytes) -> AnswerRef<'a> {
        AnswerRef {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body,
        }
    }

    #[test]
    fn identical_answers_match_without_parsing_and_any_difference_is_judged() {
        let rules = rules();
        let mut json = HeaderMap::new();
        json.insert("content-type", HeaderValue::from_static("application/json"));
        let mut text = HeaderMap::new();
        text.insert("content-type", HeaderValue::from_static("text/plain"));
        // Not even JSON: identical bytes are a match all the same.
        let body = Bytes::from_static(b"{not json");
        let same = judge(
            side(200, &json, &body),
            side(200, &json, &body),
            None,
            &rules,
        );
        assert_eq!(same.verdict, Verdict::Match);
        assert_eq!(same.capability, "orders");
        // A compared header differs: judged, and the difference is found.
        let hdr = judge(
            side(200, &json, &body),
            side(200, &text, &body),
            None,
            &rules,
        );
        assert_eq!(hdr.verdict, Verdict::Mismatch);
        assert!(
            hdr.differences
                .iter()
                .any(|d| d.path == "@header/content-type")
        );
        // Same bytes, another status.
        let status = judge(
            side(200, &json, &body),
            side(404, &json, &body),
            None,
            &rules,
        );
        assert_eq!(status.verdict, Verdict::Mismatch);
        // Two identical server errors are errors, not a match.
        let failed = judge(
            side(503, &json, &body),
            side(503, &json, &body),
            None,
            &rules,
        );
        assert!(matches!(failed.verdict, Verdict::Error { .. }));
        // Equal JSON in other bytes still matches through the full comparison.
        let (a, b) = (
            Bytes::from_static(b"{\"a\":1,\"b\":2}"),
            Bytes::from_static(b"{\"b\":2,\"a\":1}"),
        );
        let reordered = judge(side(200, &json, &a), side(200, &json, &b), None, &rules);
        assert_eq!(reordered.verdict, Verdict::Match);
    }
}
