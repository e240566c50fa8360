//! A ClickHouse aggregate checked against the legacy system's own aggregate.
//!
//! Row-by-row reconciliation (strangler-reconcile) compares keyed rows; an aggregate in a column
//! store has no rows to pair with the legacy tables, but its groups can be: the legacy side runs
//! its own `GROUP BY` (the caller's SQL, on the legacy database), this side reads the projection's
//! `FINAL` aggregate, and [`compare`] pairs the groups and names every one that differs. The
//! comparison is pure; [`fetch`] is the only I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::sql::qualified;
use crate::table::{TableKind, TableSpec};

/// Groups by their key (the group columns as text), each with its measures in order.
pub type Groups = BTreeMap<Vec<String>, Vec<f64>>;

/// One group that does not match.
#[derive(Debug, Clone, PartialEq)]
pub enum Mismatch {
    /// The legacy system has the group, ClickHouse does not.
    MissingInClickHouse {
        /// The group key.
        key: Vec<String>,
        /// The legacy measures.
        legacy: Vec<f64>,
    },
    /// ClickHouse has a group the legacy system does not.
    MissingInLegacy {
        /// The group key.
        key: Vec<String>,
        /// ClickHouse's measures.
        clickhouse: Vec<f64>,
    },
    /// Both have the group; a measure differs.
    Differs {
        /// The group key.
        key: Vec<String>,
        /// The measure's name.
        measure: String,
        /// The legacy value.
        legacy: f64,
        /// ClickHouse's value.
        clickhouse: f64,
    },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::MissingInClickHouse { key, legacy } => {
                write!(
                    f,
                    "group {key:?}: in legacy {legacy:?}, absent in ClickHouse"
                )
            }
            Mismatch::MissingInLegacy { key, clickhouse } => {
                write!(
                    f,
                    "group {key:?}: in ClickHouse {clickhouse:?}, absent in legacy"
                )
            }
            Mismatch::Differs {
                key,
                measure,
                legacy,
                clickhouse,
            } => write!(
                f,
                "group {key:?}: {measure} is {legacy} in legacy, {clickhouse} in ClickHouse"
            ),
        }
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    /// Groups on either side.
    pub groups: usize,
    /// Every group that differs, in key order.
    pub mismatches: Vec<Mismatch>,
}

impl Report {
    /// True when every group matches.
    pub fn clean(&self) -> bool {
        self.mismatches.is_empty()
    }

    fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for m in &self.mismatches {
            match m {
                Mismatch::MissingInClickHouse { .. } => c.0 += 1,
                Mismatch::MissingInLegacy { .. } => c.1 += 1,
                Mismatch::Differs { .. } => c.2 += 1,
            }
        }
        c
    }

    /// For a terminal: the counts, then every differing group (at most `limit`).
    pub fn to_table(&self, name: &str, limit: usize) -> String {
        let (missing, extra, differ) = self.counts();
        let mut out = format!(
            "aggregate check `{name}`: {} groups, {} differ\n  missing in ClickHouse  {missing}\n  \
             absent in legacy       {extra}\n  measure differs        {differ}\n",
            self.groups,
            self.mismatches.len()
        );
        for m in self.mismatches.iter().take(limit) {
            out.push_str(&format!("  - {m}\n"));
        }
        if self.mismatches.len() > limit {
            out.push_str(&format!(
                "  ... and {} more\n",
                self.mismatches.len() - limit
            ));
        }
        out
    }

    /// As Markdown, for a ticket or a CI summary.
    pub fn to_markdown(&self, name: &str, limit: usize) -> String {
        let (missing, extra, differ) = self.counts();
        let mut out = format!(
            "## Aggregate check `{name}`\n\n{} groups; {} differ.\n\n| kind | groups |\n|---|---:|\n\
             | missing in ClickHouse | {missing} |\n| absent in legacy | {extra} |\n\
             | measure differs | {differ} |\n",
            self.groups,
            self.mismatches.len()
        );
        if !self.mismatches.is_empty() {
            out.push('\n');
            for m in self.mismatches.iter().take(limit) {
                out.push_str(&format!("- {m}\n"));
            }
        }
        out
    }

    /// As JSON: counts and every differing group.
    pub fn to_json(&self, name: &str) -> Value {
        let (missing, extra, differ) = self.counts();
        let mismatches: Vec<Value> = self
            .mismatches
            .iter()
            .map(|m| match m {
                Mismatch::MissingInClickHouse { key, legacy } => serde_json::json!({
                    "kind": "missing_in_clickhouse", "group": key, "legacy": legacy,
                }),
                Mismatch::MissingInLegacy { key, clickhouse } => serde_json::json!({
                    "kind": "absent_in_legacy", "group": key, "clickhouse": clickhouse,
                }),
                Mismatch::Differs {
                    key,
                    measure,
                    legacy,
                    clickhouse,
                } => serde_json::json!({
                    "kind": "measure_differs", "group": key, "measure": measure,
                    "legacy": legacy, "clickhouse": clickhouse,
                }),
            })
            .collect();
        serde_json::json!({
            "name": name,
            "kind": "aggregate",
            "groups": self.groups,
            "counts": {
                "missing_in_clickhouse": missing,
                "absent_in_legacy": extra,
                "measure_differs": differ,
            },
            "drift": !self.clean(),
            "mismatches": mismatches,
        })
    }
}

/// Pairs the groups of both sides; measures equal within `tolerance` (absolute) match.
pub fn compare(
    measures: &[String],
    legacy: &Groups,
    clickhouse: &Groups,
    tolerance: f64,
) -> Report {
    let keys: BTreeSet<&Vec<String>> = legacy.keys().chain(clickhouse.keys()).collect();
    let mut mismatches = Vec::new();
    for key in &keys {
        match (legacy.get(*key), clickhouse.get(*key)) {
            (Some(l), None) => mismatches.push(Mismatch::MissingInClickHouse {
                key: (*key).clone(),
                legacy: l.clone(),
            }),
            (None, Some(c)) => mismatches.push(Mismatch::MissingInLegacy {
                key: (*key).clone(),
                clickhouse: c.clone(),
            }),
            (Some(l), Some(c)) => {
                for (i, name) in measures.iter().enumerate() {
                    let (lv, cv) = (l.get(i).copied(), c.get(i).copied());
                    let (lv, cv) = (lv.unwrap_or(f64::NAN), cv.unwrap_or(f64::NAN));
                    // NaN (a measure missing on one side) never matches.
                    let same = (lv - cv).abs() <= tolerance;
                    if !same {
                        mismatches.push(Mismatch::Differs {
                            key: (*key).clone(),
                            measure: name.clone(),
                            legacy: lv,
                            clickhouse: cv,
                        });
                    }
                }
            }
            (None, None) => {}
        }
    }
    Report {
        groups: keys.len(),
        mismatches,
    }
}

/// Builds [`Groups`] from rows of text keys and numeric measures (for the legacy side's rows).
pub fn groups(rows: impl IntoIterator<Item = (Vec<String>, Vec<f64>)>) -> Groups {
    rows.into_iter().collect()
}

/// The number of group columns of an aggregate spec (0 for an append table).
pub fn group_columns(spec: &TableSpec) -> usize {
    match &spec.kind {
        TableKind::Aggregate { group_by, .. } => group_by.len(),
        TableKind::Append { .. } => 0,
    }
}

/// The measure names of an aggregate spec, in order.
pub fn measure_names(spec: &TableSpec) -> Vec<String> {
    match &spec.kind {
        TableKind::Aggregate { measures, .. } => measures.iter().map(|m| m.name.clone()).collect(),
        TableKind::Append { .. } => Vec::new(),
    }
}

/// Reads an aggregate's groups from its view `view` (the version's view, or the readers'
/// `<table>`): group columns as text (`toString`, so a `Date` is `YYYY-MM-DD`), measures as
/// numbers.
pub async fn fetch(client: &Client, spec: &TableSpec, view: &str) -> Result<Groups> {
    let TableKind::Aggregate { group_by, measures } = &spec.kind else {
        return Err(Error::Decode {
            statement: format!("aggregate check of {}", spec.name),
            reason: "the table is an append table; only aggregates are checked this way".into(),
        });
    };
    let mut cols: Vec<String> = group_by
        .iter()
        .enumerate()
        .map(|(i, g)| format!("toString(`{g}`) AS k{i}"))
        .collect();
    cols.extend(
        measures
            .iter()
            .enumerate()
            .map(|(i, m)| format!("toFloat64(`{}`) AS m{i}", m.name)),
    );
    let sql = format!(
        "SELECT {} FROM {}",
        cols.join(", "),
        qualified(client.database(), view)
    );
    let rows: Vec<serde_json::Map<String, Value>> = client.query(&sql).await?;
    let mut out = Groups::new();
    for row in rows {
        let key = (0..group_by.len())
            .map(|i| {
                row.get(&format!("k{i}"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        let values = (0..measures.len())
            .map(|i| {
                row.get(&format!("m{i}"))
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NAN)
            })
            .collect();
        out.insert(key, values);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(day: &str, region: &str) -> Vec<String> {
        vec![day.into(), region.into()]
    }

    #[test]
    fn every_differing_group_is_named() {
        let names = vec!["revenue_cents".to_string()];
        let legacy = groups([
            (k("2026-11-01", "eu"), vec![100.0]),
            (k("2026-11-01", "us"), vec![50.0]),
            (k("2026-11-02", "eu"), vec![7.0]),
        ]);
        let ch = groups([
            (k("2026-11-01", "eu"), vec![100.0]),
            (k("2026-11-01", "us"), vec![49.0]),
            (k("2026-11-03", "eu"), vec![1.0]),
        ]);
        let r = compare(&names, &legacy, &ch, 0.0);
        assert_eq!(r.groups, 4);
        assert_eq!(r.mismatches.len(), 3, "{:?}", r.mismatches);
        assert!(
            r.mismatches[0]
                .to_string()
                .contains("is 50 in legacy, 49 in ClickHouse")
        );
        assert!(compare(&names, &legacy, &legacy, 0.0).clean());

        let json = r.to_json("revenue");
        assert_eq!(json["counts"]["measure_differs"], 1);
        assert_eq!(json["counts"]["missing_in_clickhouse"], 1);
        assert_eq!(json["counts"]["absent_in_legacy"], 1);
        assert_eq!(json["mismatches"][0]["group"][1], "us");
        let table = r.to_table("revenue", 2);
        assert!(table.contains("4 groups, 3 differ"), "{table}");
        assert!(table.contains("... and 1 more"), "{table}");
        assert!(
            r.to_markdown("revenue", 10)
                .contains("| measure differs | 1 |")
        );
    }
}
