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
        if !(0.0..=1.0).contains(&c.mismatch_budget) {
            v.problem(
                key("mismatch_budget"),
                format!("{} is not a rate", c.mismatch_budget),
                "use a number from 0 to 1, for example 0.01 for 1%",
            );
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
