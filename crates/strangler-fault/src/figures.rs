//! The figures a run ends with, and the invariants they must meet. Each invariant is a named
//! check with the numbers behind it, so a failure says what broke and by how much.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::client::{Class, Kind, Sample};
use crate::cluster::Rss;
use crate::legacy::Legacy;
use crate::profile::Profile;
use crate::schedule::{Component, Fault};

/// A fault as it ran.
#[derive(Debug, Clone)]
pub struct Executed {
    /// When it began, from the run's start.
    pub start: Duration,
    /// When the suite was done causing it (a restarted component is listening again).
    pub end: Duration,
    /// What.
    pub fault: Fault,
}

/// What the malformed bursts put in.
#[derive(Debug, Clone, Default)]
pub struct Injected {
    /// Outbox rows the relay must dead-letter.
    pub relay_dead_letters: u64,
    /// Events whose handler fails.
    pub handler_dead_letters: u64,
    /// Non-JSON records the broker acknowledged.
    pub not_json_dead_letters: u64,
    /// Non-JSON records the broker did not acknowledge (not expected anywhere).
    pub not_json_unsent: u64,
}

/// Everything `collect` reads.
pub struct Inputs<'a> {
    pub profile: &'a Profile,
    pub private_pg: bool,
    pub t0: Instant,
    pub baseline: (Duration, Duration),
    pub faults: (Duration, Duration),
    pub traffic_end: Duration,
    pub executed: Vec<Executed>,
    pub expected: Injected,
    pub samples: Vec<Sample>,
    pub differing: Vec<String>,
    pub legacy: &'a Legacy,
    pub control: &'a PgPool,
    pub read: &'a PgPool,
    pub legacy_events: i64,
    pub applied: i64,
    pub drained_in: Duration,
    pub outbox_left: i64,
    pub reconcile: std::process::Output,
    pub dead_letters: std::process::Output,
    pub rss: BTreeMap<String, Rss>,
    pub starts: BTreeMap<String, (u32, u32)>,
    pub unplanned: Vec<String>,
    /// Times the broker answered no metadata request and was started again ([`crate::cluster::Broker`]).
    pub broker_revived: u32,
    pub clean_exits: BTreeMap<String, bool>,
    pub shim_faulted: u64,
    pub shadow_legacy_requests: u64,
    pub write_failures: u64,
}

/// Client figures of one stretch of time.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    /// Requests that ended in it.
    pub requests: u64,
    /// Transport failures, answers the proxy made up, and differing answers.
    pub errors: u64,
    /// Answers legacy gave with a 5xx (passed through faithfully; legacy's own failures).
    pub legacy_5xx: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

impl Traffic {
    fn of<'a>(samples: impl Iterator<Item = &'a Sample>) -> Traffic {
        let mut lat: Vec<Duration> = Vec::new();
        let mut t = Traffic::default();
        for s in samples {
            t.requests += 1;
            lat.push(s.latency);
            match s.class {
                Class::Equal => {
                    if s.status.is_some_and(|c| c >= 500) {
                        t.legacy_5xx += 1;
                    }
                }
                _ => t.errors += 1,
            }
        }
        lat.sort();
        let q = |p: f64| {
            if lat.is_empty() {
                0.0
            } else {
                let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
                lat[i].as_secs_f64() * 1000.0
            }
        };
        t.p50_ms = q(0.5);
        t.p99_ms = q(0.99);
        t
    }

    /// Errors per request.
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// One invariant: its name, whether it held, and the numbers.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is promised.
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// The figures behind it.
    pub detail: String,
}

/// The end-of-run figures.
#[derive(Debug, Clone)]
pub struct Figures {
    /// The report, as printed.
    pub report: String,
    /// The invariants.
    pub checks: Vec<Check>,
}

impl Figures {
    /// The checks that failed.
    pub fn failed(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }
}

impl fmt::Display for Figures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report)?;
        writeln!(f, "\ninvariants:")?;
        for c in &self.checks {
            writeln!(
                f,
                "  [{}] {}: {}",
                if c.ok { "ok" } else { "FAILED" },
                c.name,
                c.detail
            )?;
        }
        Ok(())
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Windows in which the proxy itself was down or just back: from its SIGKILL to two seconds
/// after the new process listened.
fn proxy_outages(executed: &[Executed]) -> Vec<(Duration, Duration)> {
    executed
        .iter()
        .filter(|e| {
            matches!(
                e.fault,
                Fault::Kill {
                    component: Component::Proxy,
                    ..
                }
            )
        })
        .map(|e| (e.start, e.end + Duration::from_secs(2)))
        .collect()
}

fn within(t: Duration, windows: &[(Duration, Duration)]) -> bool {
    windows.iter().any(|(a, b)| t >= *a && t <= *b)
}

async fn sum(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Reads the stores, classifies the samples, and checks the invariants.
pub async fn collect(i: Inputs<'_>) -> Figures {
    let p = i.profile;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "profile {} seed {}: baseline {:.0}s, faults {:.0}s, {} writes/s, {} reads/s from {} clients; PostgreSQL: {}",
        p.name,
        p.seed,
        secs(p.baseline),
        secs(p.faults),
        p.write_rate,
        p.read_rate,
        p.clients,
        if i.private_pg {
            "private server (restartable)"
        } else {
            "shared server (never restarted)"
        }
    );
    for (kind, why) in &p.skip {
        let _ = writeln!(r, "fault kind `{kind}` left out of this run: {why}");
    }
    let _ = writeln!(r, "\nfaults ({}):", i.executed.len());
    for e in &i.executed {
        let _ = writeln!(
            r,
            "  {:>7.1}s  {} (took {:.1}s)",
            secs(e.start),
            e.fault,
            secs(e.end.saturating_sub(e.start))
        );
    }
    let mut checks = Vec::new();

    // ---- events: exactly once ----
    let rec_stdout = String::from_utf8_lossy(&i.reconcile.stdout).into_owned();
    let rec: serde_json::Value = serde_json::from_str(&rec_stdout).unwrap_or_default();
    let counts = &rec["counts"];
    let n = |k: &str| counts[k].as_u64().unwrap_or(u64::MAX);
    let legacy_rows = sum(&i.legacy.pool, "SELECT count(*) FROM orders").await;
    let read_rows = sum(i.read, "SELECT count(*) FROM orders_v1").await;
    let _ = writeln!(
        r,
        "\nevents: {} written by legacy ({} write attempts failed and rolled back), {} applied to the read model; {:.1}s after traffic stopped {} outbox rows were left unrelayed",
        i.legacy_events,
        i.write_failures,
        i.applied,
        secs(i.drained_in),
        i.outbox_left
    );
    let _ = writeln!(
        r,
        "reconcile: exit {:?}, rows legacy {legacy_rows} / read model {read_rows}, missing {} extra {} different {} in flight {}, {} rows compared",
        i.reconcile.status.code(),
        n("missing"),
        n("extra"),
        n("different"),
        n("in_flight"),
        rec["stats"]["rows_compared"]
    );
    checks.push(Check {
        name: "every legacy event is in the read model exactly once (strangler reconcile)",
        ok: i.reconcile.status.success()
            && n("missing") == 0
            && n("extra") == 0
            && n("different") == 0
            && i.applied == i.legacy_events
            && legacy_rows == read_rows,
        detail: format!(
            "reconcile exit {:?}, drift {}+{}+{} (missing+extra+different), events applied {} of {}{}",
            i.reconcile.status.code(),
            n("missing"),
            n("extra"),
            n("different"),
            i.applied,
            i.legacy_events,
            if i.reconcile.status.success() {
                String::new()
            } else {
                format!(
                    "; reconcile said: {} {}",
                    rec_stdout.chars().take(1500).collect::<String>(),
                    String::from_utf8_lossy(&i.reconcile.stderr)
                        .chars()
                        .take(1500)
                        .collect::<String>()
                )
            }
        ),
    });

    // ---- clients ----
    let outages = proxy_outages(&i.executed);
    let in_range = |s: &&Sample, (a, b): (Duration, Duration)| s.end >= a && s.end < b;
    let base = Traffic::of(i.samples.iter().filter(|s| in_range(s, i.baseline)));
    let fault_end = i.traffic_end.max(i.faults.1);
    let during = Traffic::of(
        i.samples
            .iter()
            .filter(|s| in_range(s, (i.faults.0, fault_end))),
    );
    // Requests of the fault phase that ended while the proxy itself was up.
    let proxy_up = || {
        i.samples
            .iter()
            .filter(|s| in_range(s, (i.faults.0, fault_end)) && !within(s.end, &outages))
    };
    let outside = Traffic::of(proxy_up());
    let differs = i
        .samples
        .iter()
        .filter(|s| s.class == Class::Differs)
        .count();
    let equal = i.samples.iter().filter(|s| s.class == Class::Equal).count();
    let _ = writeln!(
        r,
        "\nclients: {} requests, {equal} answered exactly as legacy answered them, {differs} differing",
        i.samples.len()
    );
    for (name, t) in [
        ("fault-free baseline", &base),
        ("fault phase", &during),
        ("fault phase outside proxy restarts", &outside),
    ] {
        let _ = writeln!(
            r,
            "  {name:<36} {:>7} requests, error rate {:.4} ({} errors), legacy 5xx passed through {}, p50 {:.1} ms, p99 {:.1} ms",
            t.requests,
            t.error_rate(),
            t.errors,
            t.legacy_5xx,
            t.p50_ms,
            t.p99_ms
        );
    }
    // Which requests failed while the proxy was up, so a broken invariant names them.
    for s in proxy_up().filter(|s| s.class != Class::Equal).take(10) {
        let _ = writeln!(
            r,
            "  failed outside proxy restarts: request {} ({:?}) ended at {:.3} s after {:.1} ms: {:?}, status {:?}; restart windows {}",
            s.n,
            s.kind,
            secs(s.end),
            s.latency.as_secs_f64() * 1000.0,
            s.class,
            s.status,
            outages
                .iter()
                .map(|(a, b)| format!("{:.3}-{:.3} s", secs(*a), secs(*b)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if base.p99_ms > 0.0 {
        let _ = writeln!(
            r,
            "  p99 fault phase / baseline: {:.2}x (outside proxy restarts {:.2}x)",
            during.p99_ms / base.p99_ms,
            outside.p99_ms / base.p99_ms
        );
    }
    for d in &i.differing {
        let _ = writeln!(r, "  differing: {d}");
    }
    checks.push(Check {
        name: "every client response equals what legacy returned",
        ok: differs == 0,
        detail: format!("{differs} differing of {} answered", equal + differs),
    });
    checks.push(Check {
        name: "no client error while the proxy itself was up (faults elsewhere do not reach clients)",
        ok: outside.errors == 0,
        detail: format!(
            "{} errors in {} requests outside {} proxy restart windows",
            outside.errors,
            outside.requests,
            outages.len()
        ),
    });
    let mut by_kind: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for s in i.samples.iter().filter(|s| s.kind != Kind::Normal) {
        let outcome = match (s.class, s.status) {
            (Class::Transport, _) => "no answer".to_string(),
            (c, Some(st)) => format!("{st} {c:?}"),
            (c, None) => format!("{c:?}"),
        };
        *by_kind
            .entry(format!("{:?}", s.kind))
            .or_default()
            .entry(outcome)
            .or_default() += 1;
    }
    let _ = writeln!(r, "  oversized requests: {by_kind:?}");

    // ---- shadow copies ----
    let verdicts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'match', COALESCE(SUM(matches),0)::bigint FROM strangler_verdict_counts \
         UNION ALL SELECT 'mismatch', COALESCE(SUM(mismatches),0)::bigint FROM strangler_verdict_counts \
         UNION ALL SELECT 'stale', COALESCE(SUM(stale),0)::bigint FROM strangler_verdict_counts \
         UNION ALL SELECT 'error', COALESCE(SUM(errors),0)::bigint FROM strangler_verdict_counts",
    )
    .fetch_all(i.control)
    .await
    .expect("reading verdict counts");
    let skips: Vec<(String, i64)> = sqlx::query_as(
        "SELECT reason, SUM(count)::bigint FROM strangler_skip_counts GROUP BY reason ORDER BY reason",
    )
    .fetch_all(i.control)
    .await
    .expect("reading skip counts");
    let judged: i64 = verdicts.iter().map(|v| v.1).sum();
    let skipped: i64 = skips.iter().map(|v| v.1).sum();
    let accounted = judged + skipped;
    let answered = i.samples.iter().filter(|s| s.status.is_some()).count() as i64;
    // Counters a SIGKILLed proxy had not written yet die with it: the requests that ended in the
    // last flush + settle + mirror deadline before a kill, or while it was down, can be lost.
    let loss_windows: Vec<(Duration, Duration)> = outages
        .iter()
        .map(|(a, b)| (a.saturating_sub(Duration::from_secs(4)), *b))
        .collect();
    let at_risk = i
        .samples
        .iter()
        .filter(|s| within(s.end, &loss_windows))
        .count() as i64;
    let unaccounted = answered - accounted;
    let _ = writeln!(
        r,
        "\nshadow copies: {answered} requests answered through the proxy; {judged} judged {verdicts:?}, {skipped} skipped or dropped {skips:?}; \
         {unaccounted} unaccounted, at most {at_risk} could die with a SIGKILLed proxy; new path failed {} requests on purpose; legacy re-asked {} times",
        i.shim_faulted, i.shadow_legacy_requests
    );
    checks.push(Check {
        name: "every shadow copy is judged or counted as skipped/dropped",
        ok: unaccounted.abs() <= at_risk,
        detail: format!(
            "{answered} answered, {accounted} accounted ({judged} judged + {skipped} skipped/dropped), |difference| {} <= {at_risk} at risk in proxy SIGKILL windows",
            unaccounted.abs()
        ),
    });

    // ---- dead letters ----
    let relay_dl = sum(&i.legacy.pool, "SELECT count(*) FROM outbox_dead_letter").await;
    let dl_json: serde_json::Value =
        serde_json::from_slice(&i.dead_letters.stdout).unwrap_or_default();
    let dls = dl_json.as_array().cloned().unwrap_or_default();
    let keys: std::collections::BTreeSet<String> = dls
        .iter()
        .filter_map(|d| d["key"].as_str().map(str::to_string))
        .collect();
    let bad_keys = keys.iter().filter(|k| k.starts_with("bad-")).count() as u64;
    let junk_keys = keys.iter().filter(|k| k.starts_with("junk-")).count() as u64;
    let other = dls.len() as u64 - bad_keys - junk_keys;
    let e = &i.expected;
    let _ = writeln!(
        r,
        "\ndead letters: relay {relay_dl} (expected {}); projector {} ({} distinct keys: {bad_keys} failing handlers of {}, {junk_keys} non-JSON records of {}, {other} others); {} non-JSON records not acknowledged by the broker",
        e.relay_dead_letters,
        dls.len(),
        keys.len(),
        e.handler_dead_letters,
        e.not_json_dead_letters,
        e.not_json_unsent
    );
    checks.push(Check {
        name: "every malformed event is dead-lettered and counted, no good event is",
        ok: i.dead_letters.status.success()
            && relay_dl as u64 == e.relay_dead_letters
            && bad_keys == e.handler_dead_letters
            && junk_keys == e.not_json_dead_letters
            && dls.len() as u64 == keys.len() as u64,
        detail: format!(
            "relay {relay_dl}/{}, handlers {bad_keys}/{}, non-JSON {junk_keys}/{}, {} dead letters for {} keys{}",
            e.relay_dead_letters,
            e.handler_dead_letters,
            e.not_json_dead_letters,
            dls.len(),
            keys.len(),
            if i.dead_letters.status.success() {
                String::new()
            } else {
                format!(
                    "; dead-letters list failed: {}",
                    String::from_utf8_lossy(&i.dead_letters.stderr)
                )
            }
        ),
    });

    // ---- memory ----
    let _ = writeln!(r, "\nmemory (RSS sampled every 0.5 s from /proc):");
    let mut over = Vec::new();
    for (name, rss) in &i.rss {
        let (starts, kills) = i.starts.get(name).copied().unwrap_or((1, 0));
        let last = rss.by_start.values().last().cloned().unwrap_or_default();
        let _ = writeln!(
            r,
            "  {name:<16} peak {:>6.1} MiB; last process: first {:>6.1} MiB, last {:>6.1} MiB over {} samples; {starts} starts, {kills} SIGKILLs",
            rss.peak_kib() as f64 / 1024.0,
            last.first().copied().unwrap_or(0) as f64 / 1024.0,
            last.last().copied().unwrap_or(0) as f64 / 1024.0,
            last.len()
        );
        if !name.starts_with("broker") && rss.peak_kib() > p.rss_limit_mib * 1024 {
            over.push(format!("{name} {} MiB", rss.peak_kib() / 1024));
        }
    }
    checks.push(Check {
        name: "every component's memory stays bounded",
        ok: over.is_empty() && i.rss.len() >= 4,
        detail: if over.is_empty() {
            format!("every strangler component below {} MiB", p.rss_limit_mib)
        } else {
            format!("above {} MiB: {}", p.rss_limit_mib, over.join(", "))
        },
    });

    // ---- processes ----
    let _ = writeln!(
        r,
        "\nclean SIGTERM exits at the end: {:?}; unplanned exits: {}",
        i.clean_exits,
        i.unplanned.len()
    );
    for u in &i.unplanned {
        let _ = writeln!(r, "  {u}");
    }
    let _ = writeln!(
        r,
        "broker revived (answered no metadata request, so killed and started again): {}",
        i.broker_revived
    );
    let _ = writeln!(r, "run took {:.1}s", i.t0.elapsed().as_secs_f64());
    Figures { report: r, checks }
}
