//! Row-level comparison of fetched rows: missing, extra, different (through strangler-diff's
//! rules, so mappings and tolerances apply) and in flight (changed after the watermark).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use strangler_diff::{RuleSet, compare_json};

use crate::normalize::parse_timestamp;
use crate::redact::Redactor;
use crate::report::{Exemplar, Kind, Report};
use crate::side::Row;

/// A compared column: its names on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// Name in the legacy query.
    pub legacy: String,
    /// Name in the projection query; rule paths use this name.
    pub projection: String,
}

/// Classifies rows and accumulates them into a report.
#[derive(Debug)]
pub struct Differ<'a> {
    /// Compared columns, in order (the key first).
    pub pairs: &'a [Pair],
    /// Rules applied to each row's JSON.
    pub rules: &'a RuleSet,
    /// Legacy changes after this are in flight.
    pub watermark: Option<DateTime<Utc>>,
    /// Position of the legacy `updated_at` among the legacy row's values.
    pub updated_at: Option<usize>,
    /// Hides sensitive values in exemplars.
    pub redactor: &'a Redactor,
    /// Exemplars kept per kind.
    pub exemplars: usize,
}

impl Differ<'_> {
    fn in_flight(&self, legacy: &Row) -> bool {
        match (self.watermark, self.updated_at) {
            (Some(w), Some(i)) => legacy
                .values
                .get(i)
                .and_then(|v| v.as_deref())
                .and_then(parse_timestamp)
                .is_some_and(|t| t > w),
            _ => false,
        }
    }

    fn json(&self, row: &Row) -> Value {
        let mut m = Map::new();
        for (p, v) in self.pairs.iter().zip(&row.values) {
            m.insert(
                p.projection.clone(),
                v.clone().map_or(Value::Null, Value::String),
            );
        }
        Value::Object(m)
    }

    fn whole_row(&self, row: &Row, legacy: bool) -> Exemplar {
        let values = self
            .pairs
            .iter()
            .zip(&row.values)
            .map(|(p, v)| {
                let col = if legacy { &p.legacy } else { &p.projection };
                (p.projection.clone(), self.redactor.show(col, v.as_deref()))
            })
            .collect();
        Exemplar {
            key: row.key.to_string(),
            values,
            changes: Vec::new(),
        }
    }

    /// A row only legacy has.
    pub fn legacy_only(&self, l: &Row, report: &mut Report) {
        let kind = if self.in_flight(l) {
            Kind::InFlight
        } else {
            Kind::Missing
        };
        report.record(kind, l.key.clone(), self.exemplars, || {
            self.whole_row(l, true)
        });
    }

    /// A row only the projection has.
    pub fn projection_only(&self, p: &Row, report: &mut Report) {
        report.record(Kind::Extra, p.key.clone(), self.exemplars, || {
            self.whole_row(p, false)
        });
    }

    /// A row both have: equal normalized values are equal; otherwise the rules decide.
    pub fn both(&self, l: &Row, p: &Row, report: &mut Report) {
        let n = self.pairs.len();
        report.stats.rows_compared += 1;
        if l.values[..n] == p.values[..n] {
            return;
        }
        let diffs = compare_json(&self.json(l), &self.json(p), self.rules);
        if diffs.is_empty() {
            return;
        }
        if self.in_flight(l) {
            report.record(Kind::InFlight, l.key.clone(), self.exemplars, || Exemplar {
                key: l.key.to_string(),
                ..Exemplar::default()
            });
            return;
        }
        let mut columns: Vec<String> = diffs
            .iter()
            .map(|d| {
                d.path
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        columns.dedup();
        for c in &columns {
            *report.columns.entry(c.clone()).or_default() += 1;
        }
        report.record(Kind::Different, l.key.clone(), self.exemplars, || {
            Exemplar {
                key: l.key.to_string(),
                values: Vec::new(),
                changes: self
                    .pairs
                    .iter()
                    .enumerate()
                    .filter(|(_, pair)| columns.contains(&pair.projection))
                    .map(|(i, pair)| {
                        (
                            pair.projection.clone(),
                            self.redactor.show(&pair.legacy, l.values[i].as_deref()),
                            self.redactor.show(&pair.projection, p.values[i].as_deref()),
                        )
                    })
                    .collect(),
            }
        });
    }

    /// Merge-joins two key-ordered row lists.
    pub fn merge(&self, legacy: &[Row], projection: &[Row], report: &mut Report) {
        let (mut i, mut j) = (0, 0);
        while i < legacy.len() || j < projection.len() {
            match (legacy.get(i), projection.get(j)) {
                (Some(l), Some(p)) if l.key == p.key => {
                    self.both(l, p, report);
                    i += 1;
                    j += 1;
                }
                (Some(l), Some(p)) if l.key < p.key => {
                    self.legacy_only(l, report);
                    i += 1;
                }
                (Some(l), None) => {
                    self.legacy_only(l, report);
                    i += 1;
                }
                (_, Some(p)) => {
                    self.projection_only(p, report);
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }
}
