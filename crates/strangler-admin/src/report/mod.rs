//! The cutover-readiness report of a capability: traffic, verdict rates with Wilson 95% bounds,
//! top differing paths, exemplar diffs (rendered with `similar`), latency delta, active rules and
//! what they hide, gate status and freshness.
//!
//! [`Report::build`] reads the store once; the renderers ([`text`], [`markdown`], [`html`]) and
//! the JSON form show the same [`Figure`]s, formatted by one function ([`format_figure`]), so
//! the terminal, the attached HTML file and the dashboard never disagree.

mod build;
mod diff;
pub mod html;
pub mod markdown;
pub mod text;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use strangler_proxy::gate::GateReport;

pub use build::{build, build_all};
pub use diff::{DiffRow, ExemplarDiff, render_exemplar};

use crate::store::{FingerprintRow, RuleHits};

/// One capability's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// When it was made.
    pub generated_at: DateTime<Utc>,
    /// The capability.
    pub capability: String,
    /// Its read-model class.
    pub class: String,
    /// Its serving mode now.
    pub mode: String,
    /// Whether a kill switch forces legacy.
    pub killed: bool,
    /// Evidence counts from this time on (the last mode change; all stored counts if never).
    pub since: Option<DateTime<Utc>>,
    /// Counts.
    pub traffic: Traffic,
    /// Rates with bounds.
    pub rates: Rates,
    /// Latency of the new path against legacy.
    pub latency: Latency,
    /// The promotion gate as it stands.
    pub gate: GateReport,
    /// Paths that differ most, by mismatches seen.
    pub top_paths: Vec<PathCount>,
    /// Fingerprints, most frequent first.
    pub fingerprints: Vec<FingerprintRow>,
    /// One exemplar diff for each of the top fingerprints.
    pub exemplars: Vec<ExemplarDiff>,
    /// Rules that forgave or hid something, and how much.
    pub rules: Vec<RuleHits>,
    /// How current the evidence is.
    pub freshness: Freshness,
    /// Compared and mismatching answers per hour (the last 24 hours with traffic).
    pub hourly: Vec<HourRow>,
    /// The figures every rendering shows, formatted once.
    pub figures: Vec<Figure>,
}

/// Traffic counts since [`Report::since`], summed over every proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Traffic {
    /// Everything the proxies counted: compared, stale, errors, skipped.
    pub total: i64,
    /// Answers compared to a decision (matches plus mismatches).
    pub compared: i64,
    /// Matching answers.
    pub matches: i64,
    /// Mismatching answers.
    pub mismatches: i64,
    /// Differences explained by the new path's lag.
    pub stale: i64,
    /// Either side failed.
    pub errors: i64,
    /// The new path failed.
    pub new_errors: i64,
    /// Not compared (all reasons).
    pub skipped: i64,
    /// Skips by reason.
    pub skipped_by_reason: BTreeMap<String, i64>,
    /// Served by the new path.
    pub served_new: i64,
    /// Fell back to legacy.
    pub fallbacks: i64,
}

/// Rates with Wilson 95% bounds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Mismatches over compared answers.
    pub mismatch_rate: f64,
    /// Lower Wilson 95% bound of the mismatch rate.
    pub mismatch_lower95: f64,
    /// Upper Wilson 95% bound of the mismatch rate (what the gate checks).
    pub mismatch_upper95: f64,
    /// The capability's mismatch budget.
    pub mismatch_budget: f64,
    /// New-path errors over requests the new path was asked.
    pub error_rate: f64,
    /// Upper Wilson 95% bound of the error rate.
    pub error_upper95: f64,
    /// Stale answers over all answers judged.
    pub stale_rate: f64,
}

/// Latency of the new path against legacy.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Pairs behind the figure.
    pub samples: i64,
    /// Sample-weighted new p99 minus legacy p99, ms.
    pub p99_delta_ms: Option<f64>,
    /// The capability's limit, ms.
    pub max_p99_delta_ms: f64,
}

/// A differing path and how often it differed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathCount {
    /// Path with indices as `*`.
    pub path: String,
    /// Mismatches seen at it.
    pub count: i64,
    /// Fingerprints at it.
    pub fingerprints: usize,
}

/// How current the evidence is.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Freshness {
    /// The newest counted comparison window.
    pub last_comparison_at: Option<DateTime<Utc>>,
    /// Seconds between it and the report.
    pub age_s: Option<f64>,
    /// The newest fingerprint sighting.
    pub last_mismatch_at: Option<DateTime<Utc>>,
    /// Projection lag the new path last reported to this process's proxy, when it runs here.
    pub lag_ms: Option<u64>,
}

/// One hour of traffic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourRow {
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    /// Compared answers.
    pub compared: i64,
    /// Mismatches.
    pub mismatches: i64,
}

/// How a figure is formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FigureKind {
    /// A whole number.
    Count,
    /// A share, shown as a percentage with two decimals.
    Rate,
    /// Milliseconds with one decimal.
    Ms,
    /// `pass` or `fail`.
    Gate,
}

/// One headline figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    /// Stable key (`data-figure` in HTML).
    pub key: &'static str,
    /// Label.
    pub label: &'static str,
    /// How it is formatted.
    pub kind: FigureKind,
    /// The value (`None`: not measured; gates are 1 for pass, 0 for fail).
    pub value: Option<f64>,
    /// The value formatted.
    pub display: String,
}

/// Formats a figure the one way every rendering uses.
pub fn format_figure(kind: FigureKind, value: Option<f64>) -> String {
    match (kind, value) {
        (_, None) => "n/a".into(),
        (FigureKind::Count, Some(v)) => format!("{}", v as i64),
        (FigureKind::Rate, Some(v)) => format!("{:.2}%", v * 100.0),
        (FigureKind::Ms, Some(v)) => format!("{v:.1} ms"),
        (FigureKind::Gate, Some(v)) => if v >= 1.0 { "pass" } else { "fail" }.into(),
    }
}

impl Report {
    /// The headline figures, in display order.
    pub fn compute_figures(&self) -> Vec<Figure> {
        let t = &self.traffic;
        let r = &self.rates;
        let open = self
            .fingerprints
            .iter()
            .filter(|f| f.status == crate::store::Status::Open)
            .count();
        let c = |v: i64| Some(v as f64);
        let list: [(&'static str, &'static str, FigureKind, Option<f64>); 14] = [
            ("total", "Requests counted", FigureKind::Count, c(t.total)),
            ("compared", "Compared", FigureKind::Count, c(t.compared)),
            ("matches", "Matches", FigureKind::Count, c(t.matches)),
            (
                "mismatches",
                "Mismatches",
                FigureKind::Count,
                c(t.mismatches),
            ),
            ("stale", "Stale (lag)", FigureKind::Count, c(t.stale)),
            ("errors", "Errors", FigureKind::Count, c(t.errors)),
            ("skipped", "Skipped", FigureKind::Count, c(t.skipped)),
            (
                "mismatch_rate",
                "Mismatch rate",
                FigureKind::Rate,
                Some(r.mismatch_rate),
            ),
            (
                "mismatch_upper95",
                "Mismatch rate, upper 95%",
                FigureKind::Rate,
                Some(r.mismatch_upper95),
            ),
            (
                "mismatch_lower95",
                "Mismatch rate, lower 95%",
                FigureKind::Rate,
                Some(r.mismatch_lower95),
            ),
            (
                "error_rate",
                "New-path error rate",
                FigureKind::Rate,
                Some(r.error_rate),
            ),
            (
                "p99_delta_ms",
                "p99 latency delta",
                FigureKind::Ms,
                self.latency.p99_delta_ms,
            ),
            (
                "open_fingerprints",
                "Open fingerprints",
                FigureKind::Count,
                c(open as i64),
            ),
            (
                "gate",
                "Promotion gate",
                FigureKind::Gate,
                Some(if self.gate.passed { 1.0 } else { 0.0 }),
            ),
        ];
        list.into_iter()
            .map(|(key, label, kind, value)| Figure {
                key,
                label,
                kind,
                value,
                display: format_figure(kind, value),
            })
            .collect()
    }
}

/// Milliseconds since the epoch as a UTC time.
pub fn at_ms(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
}
