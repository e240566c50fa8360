//! Verdicts: the outcome of comparing one pair of HTTP answers.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::answer::{CompareInput, HttpAnswer, Watermark};
use std::borrow::Cow;

use crate::compare::report;
use crate::difference::{DiffKind, Difference};
use crate::fingerprint::Fingerprint;
use crate::normalize::{TimestampRule, read_number};
use crate::rules::RuleSet;
use crate::text::render_text_diff;

/// Which side failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The legacy system.
    Legacy,
    /// The new read path.
    Candidate,
    /// Both.
    Both,
}

/// The outcome of one comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// No difference after the rules.
    Match,
    /// At least one difference remains.
    Mismatch,
    /// Differences remain, but the candidate had not yet seen the legacy's latest change.
    Stale {
        /// The legacy's last-change time or version.
        legacy_changed_at: String,
        /// What the candidate had applied.
        candidate_watermark: String,
    },
    /// A side failed (5xx, timeout, connection error); nothing was compared.
    Error {
        /// Which side.
        side: Side,
        /// What happened.
        reason: String,
    },
    /// Not compared, on purpose.
    Skipped {
        /// Why.
        reason: String,
    },
}

impl Verdict {
    /// Short stable name (`match`, `mismatch`, `stale`, `error`, `skipped`) for metrics labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
            Verdict::Stale { .. } => "stale",
            Verdict::Error { .. } => "error",
            Verdict::Skipped { .. } => "skipped",
        }
    }
}

/// Everything learnt from one comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Capability from the rule set (empty when the rules name none).
    pub capability: String,
    /// The outcome.
    pub verdict: Verdict,
    /// Differences that remain after the rules.
    pub differences: Vec<Difference>,
    /// One fingerprint per difference, same order.
    pub fingerprints: Vec<Fingerprint>,
    /// Rule name to the number of would-be differences it forgave here (non-zero only).
    pub forgiven: BTreeMap<String, u32>,
    /// Rule name to the number of leaf values it hid here (non-zero only).
    pub hidden_leaves: BTreeMap<String, u64>,
    /// Leaf values in the union of both bodies.
    pub total_leaves: u64,
    /// Share of leaf values hidden by any rule (0 to 1).
    pub hidden_share: f64,
    /// Unified diff when the bodies were compared as text.
    pub text_diff: Option<String>,
}

impl Comparison {
    fn bare(rules: &RuleSet, verdict: Verdict) -> Comparison {
        Comparison {
            capability: rules.capability().unwrap_or_default().to_owned(),
            verdict,
            differences: Vec::new(),
            fingerprints: Vec::new(),
            forgiven: BTreeMap::new(),
            hidden_leaves: BTreeMap::new(),
            total_leaves: 0,
            hidden_share: 0.0,
            text_diff: None,
        }
    }

    /// A comparison that could not happen because a side failed (timeout, 5xx, I/O).
    pub fn error(rules: &RuleSet, side: Side, reason: impl Into<String>) -> Comparison {
        Self::bare(
            rules,
            Verdict::Error {
                side,
                reason: reason.into(),
            },
        )
    }

    /// A comparison deliberately not made (sampling, unsupported method, body too large).
    pub fn skipped(rules: &RuleSet, reason: impl Into<String>) -> Comparison {
        Self::bare(
            rules,
            Verdict::Skipped {
                reason: reason.into(),
            },
        )
    }
}

/// Compares two HTTP answers under the rules of their capability.
pub fn compare(input: CompareInput<'_>, rules: &RuleSet) -> Comparison {
    let (legacy, candidate) = (input.legacy, input.candidate);
    let failed = |a: &HttpAnswer| a.status >= 500;
    match (failed(legacy), failed(candidate)) {
        (true, true) => {
            return Comparison::error(
                rules,
                Side::Both,
                format!("both answered {} / {}", legacy.status, candidate.status),
            );
        }
        (true, false) => {
            return Comparison::error(
                rules,
                Side::Legacy,
                format!("legacy answered {}", legacy.status),
            );
        }
        (false, true) => {
            return Comparison::error(
                rules,
                Side::Candidate,
                format!("candidate answered {}", candidate.status),
            );
        }
        (false, false) => {}
    }
    let mut out = Comparison::bare(rules, Verdict::Match);
    let mut differences = Vec::new();
    if rules.compare_status && legacy.status != candidate.status {
        differences.push(Difference {
            path: "@status".to_owned(),
            kind: DiffKind::Status,
            legacy: Some(Value::from(legacy.status)),
            candidate: Some(Value::from(candidate.status)),
        });
    }
    for name in rules.headers() {
        let (l, c) = (legacy.header(name), candidate.header(name));
        if l != c {
            differences.push(Difference {
                path: format!("@header/{name}"),
                kind: DiffKind::Header,
                legacy: l.map(Value::String),
                candidate: c.map(Value::String),
            });
        }
    }
    let parsed = match (
        serde_json::from_slice::<Value>(&legacy.body),
        serde_json::from_slice::<Value>(&candidate.body),
    ) {
        (Ok(l), Ok(c)) => Some((l, c)),
        _ => None,
    };
    let mut changed_at = None;
    match parsed {
        Some((l, c)) => {
            // read before renames may move it: the freshness path names the legacy shape
            changed_at = rules
                .freshness
                .as_ref()
                .and_then(|p| l.pointer(p.as_str()))
                .cloned();
            let report = report(Cow::Owned(l), &c, rules);
            for (rule, n) in rules.rules().iter().zip(&report.forgiven) {
                if *n > 0 {
                    out.forgiven.insert(rule.name.clone(), *n);
                }
            }
            let mut hidden = 0;
            for (rule, n) in rules.rules().iter().zip(&report.hidden) {
                if *n > 0 {
                    out.hidden_leaves.insert(rule.name.clone(), *n);
                    hidden += n;
                }
            }
            out.total_leaves = report.total_leaves;
            out.hidden_share = if report.total_leaves == 0 {
                0.0
            } else {
                (hidden as f64 / report.total_leaves as f64).min(1.0)
            };
            differences.extend(report.differences);
        }
        None if legacy.body != candidate.body => {
            let (a, b) = (
                String::from_utf8_lossy(&legacy.body),
                String::from_utf8_lossy(&candidate.body),
            );
            out.text_diff = Some(render_text_diff(&a, &b));
            differences.push(Difference {
                path: String::new(),
                kind: DiffKind::Text,
                legacy: Some(Value::String(a.into_owned())),
                candidate: Some(Value::String(b.into_owned())),
            });
        }
        None => {}
    }
    out.fingerprints = differences
        .iter()
        .map(|d| Fingerprint::of(&out.capability, d))
        .collect();
    out.verdict = if differences.is_empty() {
        Verdict::Match
    } else {
        staleness(changed_at.as_ref(), input.candidate_watermark).unwrap_or(Verdict::Mismatch)
    };
    out.differences = differences;
    out
}

/// `Stale` when the legacy body shows a change newer than the candidate's watermark.
fn staleness(changed: Option<&Value>, watermark: Option<Watermark>) -> Option<Verdict> {
    let changed = changed?;
    let watermark = watermark?;
    let newer = match watermark {
        Watermark::Time(t) => {
            let changed_at = TimestampRule::default().read(changed)?;
            changed_at > t
        }
        Watermark::Offset(o) => {
            let v = read_number(changed, true)?;
            match v {
                crate::normalize::Num::Int(i) => i > i128::from(o),
                crate::normalize::Num::Float(f) => f > o as f64,
            }
        }
    };
    newer.then(|| Verdict::Stale {
        legacy_changed_at: match changed {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        },
        candidate_watermark: watermark.to_string(),
    })
}
