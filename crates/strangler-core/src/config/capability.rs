//! `[[capability]]`: a set of routes that moves to the new read path together.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;

use super::Validator;
use crate::capability::{ReadModelClass, WriteSafety};

/// One capability: its routes, the rules its comparisons use, and its budgets.
#[derive(Debug, Clone, Deserialize)]
pub struct CapabilityConfig {
    /// Unique name, used in the CLI, the admin API and reports.
    pub name: String,
    /// Routes as `METHOD /path/{param}`, for example `GET /orders/{id}`.
    pub routes: Vec<String>,
    /// Comparison rules file (see shadow-rules/), relative to this file.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// Read-model class; `authoritative` capabilities are never served from the new path.
    #[serde(default)]
    pub class: ReadModelClass,
    /// Largest projection lag at which the new path may still serve this capability.
    #[serde(default = "default_freshness_budget_ms")]
    pub freshness_budget_ms: u64,
    /// Whether requests of this capability may be mirrored.
    #[serde(default)]
    pub write_safety: WriteSafety,
    /// Highest acceptable mismatch rate (upper Wilson 95% bound) for promotion, from 0 to 1.
    #[serde(default = "default_mismatch_budget")]
    pub mismatch_budget: f64,
    /// Fewest comparisons a promotion gate needs.
    #[serde(default = "default_min_sample")]
    pub min_sample: u64,
    /// Highest acceptable error rate (5xx, timeouts, refused connections) of the new path.
    #[serde(default = "default_max_error_rate")]
    pub max_error_rate: f64,
    /// Largest acceptable p99 latency of the new path above legacy's, in milliseconds.
    #[serde(default = "default_max_p99_delta_ms")]
    pub max_p99_delta_ms: u64,
    /// Header whose value picks a request's canary bucket (for example `X-Customer-Id`).
    #[serde(default)]
    pub canary_key_header: Option<String>,
    /// Path parameter whose value picks a request's canary bucket (for example `id`); used when
    /// the header is absent. Without either, the path and query are the key.
    #[serde(default)]
    pub canary_key_param: Option<String>,
    /// In canary mode, ask both sides and serve legacy's answer when the new one differs or fails.
    /// Costs the client the slower of the two answers; counted as a fall-back.
    #[serde(default)]
    pub fallback_on_mismatch: bool,
    /// Share of requests mirrored in shadow mode (and compared in canary), from 0 to 1.
    #[serde(default = "default_sample_rate")]
    pub sample_rate: f64,
    /// Sample by the canary key instead of at random, so one key is always or never compared.
    #[serde(default)]
    pub sample_by_key: bool,
    /// Share of requests compared against legacy in `new` mode (reverse comparison), from 0 to 1.
    #[serde(default = "default_new_compare_rate")]
    pub new_compare_rate: f64,
    /// Most mirrored requests of this capability in flight at once; more are dropped and counted.
    #[serde(default = "default_mirror_max_in_flight")]
    pub mirror_max_in_flight: usize,
    /// Deadline of one mirrored request, answer and comparison included.
    #[serde(default = "default_mirror_timeout_ms")]
    pub mirror_timeout_ms: u64,
    /// Largest body (each side) buffered for comparison; larger answers are skipped as `too_large`.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// How long to wait before asking the new path again when a difference may be lag.
    #[serde(default = "default_settle_ms")]
    pub settle_ms: u64,
    /// Where writes of this capability may be mirrored (a sandbox copy of the new path); without
    /// it, idempotent and side-effecting requests are never mirrored.
    #[serde(default)]
    pub sandbox_url: Option<String>,
    /// Capabilities whose reads a client's write here affects (read-your-writes); empty means all.
    #[serde(default)]
    pub ryw_affects: Vec<String>,
}

/// 1%: a new path failing more often than legacy's usual error rate is not ready.
fn default_max_error_rate() -> f64 {
    0.01
}

/// 50 ms: a p99 step users notice on an interactive screen.
fn default_max_p99_delta_ms() -> u64 {
    50
}

/// Every request: shadowing is cheap and the comparisons are the evidence for promotion.
fn default_sample_rate() -> f64 {
    1.0
}

/// 1%: enough to keep watching drift in `new` mode without doubling legacy's load.
fn default_new_compare_rate() -> f64 {
    0.01
}

/// 64: at a typical 20 ms answer this mirrors over 3,000 requests a second per capability while
/// bounding memory to 64 times two bodies.
fn default_mirror_max_in_flight() -> usize {
    64
}

/// Two seconds: a read slower than that would fail the p99 gate anyway.
fn default_mirror_timeout_ms() -> u64 {
    2_000
}

/// 1 MiB: larger than typical JSON read answers, small enough that 64 in flight stay bounded.
fn default_max_body_bytes() -> usize {
    1 << 20
}

/// 200 ms: a projection usually applies a fresh event within that on a healthy bus.
fn default_settle_ms() -> u64 {
    200
}

/// Five seconds: an operational screen tolerates a few seconds of lag.
fn default_freshness_budget_ms() -> u64 {
    5_000
}

/// 1%: the upper bound most teams accept before moving real traffic.
fn default_mismatch_budget() -> f64 {
    0.01
}

/// 500 comparisons make the Wilson bound tight enough for a 1% budget to be meaningful.
fn default_min_sample() -> u64 {
    500
}

/// A parsed `METHOD /path` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// HTTP method, upper case.
    pub method: String,
    /// Path pattern with `{param}` segments.
    pub path: String,
}

impl RouteSpec {
    /// Parses `GET /orders/{id}`.
    pub fn parse(s: &str) -> Result<RouteSpec, String> {
        let (method, path) = s
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("route `{s}` needs a method and a path"))?;
        let method = method.to_ascii_uppercase();
        const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
        if !METHODS.contains(&method.as_str()) {
            return Err(format!("route `{s}` has unknown method `{method}`"));
        }
        let path = path.trim();
        if !path.starts_with('/') {
            return Err(format!("route `{s}`: path must start with /"));
        }
        for seg in path.split('/') {
            if (seg.starts_with('{') != seg.ends_with('}')) || seg == "{}" {
                return Err(format!(
                    "route `{s}`: segment `{seg}` is not a valid `{{param}}`"
                ));
            }
        }
        Ok(RouteSpec {
            method,
            path: path.to_string(),
        })
    }
}

pub(super) fn validate_all(caps: &[CapabilityConfig], v: &mut Validator) {
    let mut names = HashSet::new();
    let mut routes = HashSet::new();
    for (i, c) in caps.iter().enumerate() {
        let key = |k: &str| format!("capability[{i}].{k}");
        if c.name.is_empty()
            || !c
                .name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            v.problem(
                key("name"),
                format!("`{}` is not a capability name", c.name),
                "use letters, digits, - and _",
            );
        }
        if !names.insert(c.name.as_str()) {
            v.problem(
                key("name"),
                format!("capability `{}` is defined twice", c.name),
                "give each capability a unique name",
            );
        }
        if c.routes.is_empty() {
            v.problem(
                key("routes"),
                "a capability needs at least one route",
                "add routes = [\"GET /path/{id}\"]",
            );
        }
        for (j, r) in c.routes.iter().enumerate() {
            match RouteSpec::parse(r) {
                Ok(spec) => {
                    if !routes.insert((spec.method.clone(), spec.path.clone())) {
                        v.problem(
                            format!("capability[{i}].routes[{j}]"),
                            format!("route `{r}` belongs to two capabilities"),
                            "a route may belong to one capability only",
                        );
                    }
                }
                Err(e) => v.problem(
                    format!("capability[{i}].routes[{j}]"),
                    e,
                    "write routes as \"GET /orders/{id}\"",
                ),
            }
        }
        if let Some(rules) = &c.rules {
            v.existing_file(&key("rules"), rules);
        }
        for (k, rate) in [
            ("mismatch_budget", c.mismatch_budget),
            ("max_error_rate", c.max_error_rate),
            ("sample_rate", c.sample_rate),
            ("new_compare_rate", c.new_compare_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                v.problem(
                    key(k),
                    format!("{rate} is not a rate"),
                    "use a number from 0 to 1, for example 0.01 for 1%",
                );
            }
        }
        v.at_least(
            &key("mirror_max_in_flight"),
            c.mirror_max_in_flight as u64,
            1,
        );
        v.at_least(&key("mirror_timeout_ms"), c.mirror_timeout_ms, 1);
        v.at_least(&key("max_body_bytes"), c.max_body_bytes as u64, 1);
        v.at_least(&key("min_sample"), c.min_sample, 1);
        if let Some(url) = &c.sandbox_url {
            v.url(&key("sandbox_url"), url, &["http", "https"]);
        }
        if let Some(param) = &c.canary_key_param {
            let needle = format!("{{{param}}}");
            if !c.routes.iter().any(|r| r.contains(&needle)) {
                v.problem(
                    key("canary_key_param"),
                    format!("no route of `{}` has a `{needle}` segment", c.name),
                    "name a parameter that appears in the routes, or use canary_key_header",
                );
            }
        }
        for (j, other) in c.ryw_affects.iter().enumerate() {
            if !caps.iter().any(|o| &o.name == other) {
                v.problem(
                    format!("capability[{i}].ryw_affects[{j}]"),
                    format!("no capability is named `{other}`"),
                    "name a capability defined in this file",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RouteSpec;

    #[test]
    fn routes_parse_method_and_pattern() {
        let r = RouteSpec::parse("get /orders/{id}").unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/orders/{id}");
        assert!(RouteSpec::parse("/orders").is_err());
        assert!(RouteSpec::parse("FETCH /orders").is_err());
        assert!(RouteSpec::parse("GET /orders/{id").is_err());
    }
}
