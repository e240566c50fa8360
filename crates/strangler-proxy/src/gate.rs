//! Promotion gates: pure arithmetic over verdict counts, no I/O.
//!
//! A capability may move towards the new path when enough answers were compared, the upper
//! Wilson 95% bound of its mismatch rate is within its budget, and the new path's error rate and
//! p99 latency delta are within their limits. A running canary demotes itself when the evidence
//! is confidently bad: the *lower* Wilson bound is over budget, so a handful of unlucky requests
//! cannot flap it. The same demotion rule moves a capability in `new` mode back, judged on its
//! reverse comparisons and on the errors of the answers it served.

use serde::Serialize;
use strangler_core::config::CapabilityConfig;
use strangler_store::cutover::VerdictTotals;

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// The limits a capability declares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GatePolicy {
    /// Fewest compared answers before the gate can pass.
    pub min_sample: u64,
    /// Highest acceptable upper bound of the mismatch rate.
    pub mismatch_budget: f64,
    /// Highest acceptable error rate of the new path.
    pub max_error_rate: f64,
    /// Largest acceptable p99 latency of the new path above legacy's, in ms.
    pub max_p99_delta_ms: f64,
}

impl From<&CapabilityConfig> for GatePolicy {
    fn from(c: &CapabilityConfig) -> Self {
        GatePolicy {
            min_sample: c.min_sample,
            mismatch_budget: c.mismatch_budget,
            max_error_rate: c.max_error_rate,
            max_p99_delta_ms: c.max_p99_delta_ms as f64,
        }
    }
}

/// What the gate looks at.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Evidence {
    /// Answers compared to a decision (matches plus mismatches; stale ones prove nothing).
    pub compared: u64,
    /// Mismatches among them.
    pub mismatches: u64,
    /// Differences explained by the projection's lag.
    pub stale: u64,
    /// Requests the new path was asked (compared, stale and errors).
    pub requests: u64,
    /// Of those, how many failed on the new path.
    pub new_errors: u64,
    /// Sample-weighted p99 latency of new minus legacy, ms; `None` without samples.
    pub p99_delta_ms: Option<f64>,
}

impl From<&VerdictTotals> for Evidence {
    fn from(t: &VerdictTotals) -> Self {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Evidence {
            compared: n(t.matches) + n(t.mismatches),
            mismatches: n(t.mismatches),
            stale: n(t.stale),
            requests: n(t.matches) + n(t.mismatches) + n(t.stale) + n(t.new_errors),
            new_errors: n(t.new_errors),
            p99_delta_ms: t.p99_delta_ms,
        }
    }
}

impl Evidence {
    /// The evidence of a capability the new path serves (`canary`, `new`). In `new` mode only a
    /// sample is compared (`new_compare_rate`), but every answer the new path served counts
    /// towards its error rate: the requests it was asked are at least those it served plus
    /// those it failed.
    pub fn serving(t: &VerdictTotals) -> Self {
        let mut e = Evidence::from(t);
        let served = u64::try_from(t.served_new).unwrap_or(0);
        e.requests = e.requests.max(served + e.new_errors);
        e
    }
}

/// One check of a gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// `sample`, `mismatch_rate`, `error_rate` or `p99_delta_ms`.
    pub name: &'static str,
    /// Whether it passed.
    pub passed: bool,
    /// The observed value the check compares (a bound, a rate, a count or ms).
    pub observed: Option<f64>,
    /// The limit.
    pub limit: f64,
}

/// A gate evaluation, stored as JSON in the audit trail.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    /// All checks passed.
    pub passed: bool,
    /// Each check.
    pub checks: Vec<Check>,
    /// The counts behind it.
    pub evidence: Evidence,
    /// The limits applied.
    pub policy: GatePolicy,
}

impl GateReport {
    /// The failing checks, as `name observed above limit`, for messages.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| match c.observed {
                // The sample fails by being too small; the other checks by being too large.
                Some(o) if c.name == "sample" => format!("sample {o} below {}", c.limit),
                Some(o) => format!("{} {o:.4} above {}", c.name, c.limit),
                None => format!("{} not measured", c.name),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Upper bound of the Wilson score interval for `k` successes in `n` trials.
pub fn wilson_upper(k: u64, n: u64, z: f64) -> f64 {
    wilson(k, n, z).1
}

/// Lower bound of the Wilson score interval for `k` successes in `n` trials.
pub fn wilson_lower(k: u64, n: u64, z: f64) -> f64 {
    wilson(k, n, z).0
}

fn wilson(k: u64, n: u64, z: f64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let n = n as f64;
    let p = (k as f64 / n).min(1.0);
    let z2 = z * z;
    let centre = p + z2 / (2.0 * n);
    let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    let denom = 1.0 + z2 / n;
    (
        ((centre - spread) / denom).max(0.0),
        ((centre + spread) / denom).min(1.0),
    )
}

/// Whether the evidence allows a move towards the new path.
pub fn promotion(e: &Evidence, policy: &GatePolicy) -> GateReport {
    let upper = wilson_upper(e.mismatches, e.compared, Z95);
    let error_rate = (e.requests > 0).then(|| e.new_errors as f64 / e.requests as f64);
    let checks = vec![
        Check {
            name: "sample",
            passed: e.compared >= policy.min_sample,
            observed: Some(e.compared as f64),
            limit: policy.min_sample as f64,
        },
        Check {
            name: "mismatch_rate_upper95",
            passed: e.compared > 0 && upper <= policy.mismatch_budget,
            observed: Some(upper),
            limit: policy.mismatch_budget,
        },
        Check {
            name: "error_rate",
            passed: error_rate.is_some_and(|r| r <= policy.max_error_rate),
            observed: error_rate,
            limit: policy.max_error_rate,
        },
        Check {
            name: "p99_delta_ms",
            passed: e.p99_delta_ms.is_some_and(|d| d <= policy.max_p99_delta_ms),
            observed: e.p99_delta_ms,
            limit: policy.max_p99_delta_ms,
        },
    ];
    GateReport {
        passed: checks.iter().all(|c| c.passed),
        checks,
        evidence: *e,
        policy: *policy,
    }
}

/// Fewest answers before a canary may demote itself: a tenth of the promotion sample, at least 20.
pub fn demotion_sample(policy: &GatePolicy) -> u64 {
    (policy.min_sample / 10).max(20)
}

/// Why a running canary must step back, or `None` while its evidence is not confidently bad.
pub fn demotion(e: &Evidence, policy: &GatePolicy) -> Option<GateReport> {
    let min = demotion_sample(policy);
    let mut checks = Vec::new();
    if e.compared >= min {
        let lower = wilson_lower(e.mismatches, e.compared, Z95);
        checks.push(Check {
            name: "mismatch_rate_lower95",
            passed: lower <= policy.mismatch_budget,
            observed: Some(lower),
            limit: policy.mismatch_budget,
        });
    }
    if e.requests >= min {
        let lower = wilson_lower(e.new_errors, e.requests, Z95);
        checks.push(Check {
            name: "error_rate_lower95",
            passed: lower <= policy.max_error_rate,
            observed: Some(lower),
            limit: policy.max_error_rate,
        });
    }
    if e.compared >= min
        && let Some(d) = e.p99_delta_ms
    {
        checks.push(Check {
            name: "p99_delta_ms",
            passed: d <= policy.max_p99_delta_ms,
            observed: Some(d),
            limit: policy.max_p99_delta_ms,
        });
    }
    let broken = checks.iter().any(|c| !c.passed);
    broken.then_some(GateReport {
        passed: false,
        checks,
        evidence: *e,
        policy: *policy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> GatePolicy {
        GatePolicy {
            min_sample: 500,
            mismatch_budget: 0.01,
            max_error_rate: 0.01,
            max_p99_delta_ms: 50.0,
        }
    }

    fn evidence(compared: u64, mismatches: u64) -> Evidence {
        Evidence {
            compared,
            mismatches,
            stale: 0,
            requests: compared,
            new_errors: 0,
            p99_delta_ms: Some(3.0),
        }
    }

    #[test]
    fn wilson_bounds_match_published_values() {
        // 0 of 500: upper bound z^2/(n+z^2) = 3.8415/503.8415.
        assert!((wilson_upper(0, 500, Z95) - 0.007_624).abs() < 1e-5);
        // 10 of 100: the textbook interval is [0.0552, 0.1744].
        assert!((wilson_lower(10, 100, Z95) - 0.0552).abs() < 1e-3);
        assert!((wilson_upper(10, 100, Z95) - 0.1744).abs() < 1e-3);
        assert_eq!(wilson_upper(0, 0, Z95), 1.0);
    }

    #[test]
    fn promotion_needs_the_sample_and_a_low_mismatch_bound() {
        assert!(promotion(&evidence(2_000, 2), &policy()).passed);
        let high = promotion(&evidence(2_000, 100), &policy());
        assert!(!high.passed);
        assert!(high.failures().contains("mismatch_rate_upper95"));
        // A perfect but small sample is not evidence yet.
        let small = promotion(&evidence(100, 0), &policy());
        assert!(!small.passed);
        assert!(
            small.failures().contains("sample 100 below 500"),
            "{}",
            small.failures()
        );
    }

    #[test]
    fn promotion_checks_errors_and_latency() {
        let mut e = evidence(2_000, 0);
        e.requests = 2_100;
        e.new_errors = 100;
        assert!(promotion(&e, &policy()).failures().contains("error_rate"));
        let mut e = evidence(2_000, 0);
        e.p99_delta_ms = Some(80.0);
        assert!(promotion(&e, &policy()).failures().contains("p99_delta_ms"));
        e.p99_delta_ms = None;
        assert!(!promotion(&e, &policy()).passed);
    }

    #[test]
    fn demotion_waits_for_confident_evidence() {
        // One mismatch in 3 answers is a 1/3 rate but says little.
        assert!(demotion(&evidence(3, 1), &policy()).is_none());
        // 0.5% of 10,000 is within a 1% budget.
        assert!(demotion(&evidence(10_000, 50), &policy()).is_none());
        // Half of 60 answers differ: demote.
        let report = demotion(&evidence(60, 30), &policy()).expect("demotes");
        assert!(report.failures().contains("mismatch_rate_lower95"));
    }

    #[test]
    fn in_new_mode_served_answers_count_towards_the_error_rate() {
        let totals = |served_new, new_errors| VerdictTotals {
            matches: 5,
            served_new,
            new_errors,
            errors: new_errors,
            ..VerdictTotals::default()
        };
        // 30 failures beside 5 compared answers would be 86%: in truth 30 of 10,030 served.
        assert!(demotion(&Evidence::serving(&totals(10_000, 30)), &policy()).is_none());
        let report = demotion(&Evidence::serving(&totals(1_000, 300)), &policy())
            .expect("a 23% error rate demotes");
        assert!(
            report.failures().contains("error_rate_lower95"),
            "{}",
            report.failures()
        );
        assert_eq!(Evidence::serving(&totals(1_000, 300)).requests, 1_300);
    }
}
