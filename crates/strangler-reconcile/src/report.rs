//! What a reconciliation found, and its renderings: terminal table, JSON and Markdown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::key::Key;

/// The kinds of difference a row can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// In legacy, not in the projection.
    Missing,
    /// In the projection, not in legacy.
    Extra,
    /// In both, different after the rules.
    Different,
    /// Changed in legacy after the projection's watermark: not drift yet.
    InFlight,
}

/// Row counts per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Rows missing from the projection.
    pub missing: u64,
    /// Rows only the projection has.
    pub extra: u64,
    /// Rows that differ.
    pub different: u64,
    /// Rows changed after the watermark.
    pub in_flight: u64,
}

impl Counts {
    /// Rows that are drift (in flight is not).
    pub fn drift(&self) -> u64 {
        self.missing + self.extra + self.different
    }
}

/// One example row; sensitive values are keyed hashes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Exemplar {
    /// The key.
    pub key: String,
    /// The whole row of a missing (legacy values) or extra (projection values) row.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(String, Option<String>)>,
    /// The differing columns of a different row: (column, legacy value, projection value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<(String, Option<String>, Option<String>)>,
}

impl Exemplar {
    fn describe(&self) -> String {
        let v = |x: &Option<String>| x.clone().unwrap_or_else(|| "NULL".into());
        let mut parts: Vec<String> = self
            .values
            .iter()
            .map(|(c, x)| format!("{c}={}", v(x)))
            .collect();
        parts.extend(
            self.changes
                .iter()
                .map(|(c, l, p)| format!("{c}: {} -> {}", v(l), v(p))),
        );
        parts.join(" ")
    }
}

/// Exemplars per kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Exemplars {
    /// Missing rows (legacy values).
    pub missing: Vec<Exemplar>,
    /// Extra rows (projection values).
    pub extra: Vec<Exemplar>,
    /// Differing rows (differing columns, both values).
    pub different: Vec<Exemplar>,
    /// Rows in flight (keys only).
    pub in_flight: Vec<Exemplar>,
}

/// How the run went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    /// `bisect`, `naive` or `recheck`.
    pub method: String,
    /// How each side's row hashes were computed (`sql` or `rust`).
    pub legacy_hashing: String,
    /// See `legacy_hashing`.
    pub projection_hashing: String,
    /// Key range examined, inclusive.
    pub key_range: Option<(Key, Key)>,
    /// Grouped checksum queries per side.
    pub checksum_queries: u64,
    /// Chunks whose checksums were compared.
    pub chunks_compared: u64,
    /// Chunks that differed.
    pub chunks_differing: u64,
    /// Rows fetched from both sides for row diffs.
    pub rows_fetched: u64,
    /// Rows present on both sides and compared value by value.
    pub rows_compared: u64,
    /// Wall time in milliseconds.
    pub elapsed_ms: u64,
}

/// The result of one reconciliation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// The reconciliation.
    pub name: String,
    /// The projection's watermark, RFC 3339, when known.
    pub watermark: Option<String>,
    /// Row counts per kind.
    pub counts: Counts,
    /// Per projection column: rows where it differs.
    pub columns: BTreeMap<String, u64>,
    /// A few rows of each kind.
    pub exemplars: Exemplars,
    /// Run statistics.
    pub stats: Stats,
    /// Keys that drifted (missing, extra, different), for repair.
    #[serde(skip)]
    pub drifted_keys: Vec<Key>,
    /// Keys in flight.
    #[serde(skip)]
    pub in_flight_keys: Vec<Key>,
}

impl Report {
    /// Counts a row of `kind`, keeps its key, and keeps an exemplar while fewer than `max`.
    pub fn record(
        &mut self,
        kind: Kind,
        key: Key,
        max: usize,
        exemplar: impl FnOnce() -> Exemplar,
    ) {
        let (count, list) = match kind {
            Kind::Missing => (&mut self.counts.missing, &mut self.exemplars.missing),
            Kind::Extra => (&mut self.counts.extra, &mut self.exemplars.extra),
            Kind::Different => (&mut self.counts.different, &mut self.exemplars.different),
            Kind::InFlight => (&mut self.counts.in_flight, &mut self.exemplars.in_flight),
        };
        *count += 1;
        if list.len() < max {
            list.push(exemplar());
        }
        if kind == Kind::InFlight {
            self.in_flight_keys.push(key);
        } else {
            self.drifted_keys.push(key);
        }
    }

    /// Whether drift was found (rows in flight are not drift).
    pub fn has_drift(&self) -> bool {
        self.counts.drift() > 0
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serializes")
    }

    fn groups(&self) -> [(&'static str, u64, &[Exemplar]); 4] {
        let (c, e) = (&self.counts, &self.exemplars);
        [
            ("missing", c.missing, &e.missing),
            ("extra", c.extra, &e.extra),
            ("different", c.different, &e.different),
            ("in flight", c.in_flight, &e.in_flight),
        ]
    }

    /// Plain text for a terminal.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        let verdict = if self.has_drift() { "DRIFT" } else { "OK" };
        let _ = writeln!(s, "reconcile {}: {verdict}", self.name);
        if let Some(w) = &self.watermark {
            let _ = writeln!(s, "watermark  {w}");
        }
        let _ = writeln!(s, "\n{:<12} {:>10}", "kind", "rows");
        for (name, n, _) in self.groups() {
            let _ = writeln!(s, "{name:<12} {n:>10}");
        }
        if !self.columns.is_empty() {
            let _ = writeln!(s, "\n{:<24} {:>10}", "column", "rows differ");
            for (c, n) in &self.columns {
                let _ = writeln!(s, "{c:<24} {n:>10}");
            }
        }
        for (name, _, ex) in self.groups() {
            for e in ex {
                let _ = writeln!(s, "{name:<10} key={} {}", e.key, e.describe());
            }
        }
        let _ = writeln!(s, "\n{}", self.stats_line());
        s
    }

    /// Markdown for a pull request or an issue.
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let verdict = if self.has_drift() {
            "drift found"
        } else {
            "no drift"
        };
        let _ = writeln!(s, "## Reconciliation `{}`: {verdict}\n", self.name);
        if let Some(w) = &self.watermark {
            let _ = writeln!(s, "Projection watermark: `{w}`\n");
        }
        let _ = writeln!(s, "| kind | rows |\n|---|---:|");
        for (name, n, _) in self.groups() {
            let _ = writeln!(s, "| {name} | {n} |");
        }
        if !self.columns.is_empty() {
            let _ = writeln!(s, "\n| column | rows differ |\n|---|---:|");
            for (c, n) in &self.columns {
                let _ = writeln!(s, "| `{c}` | {n} |");
            }
        }
        let any = self.groups().iter().any(|(_, _, e)| !e.is_empty());
        if any {
            let _ = writeln!(s, "\n| kind | key | columns |\n|---|---|---|");
            for (name, _, ex) in self.groups() {
                for e in ex {
                    let _ = writeln!(
                        s,
                        "| {name} | `{}` | {} |",
                        e.key,
                        e.describe().replace('|', "\\|")
                    );
                }
            }
        }
        let _ = writeln!(s, "\n{}", self.stats_line());
        s
    }

    fn stats_line(&self) -> String {
        let t = &self.stats;
        format!(
            "{} ({} / {} hashing): {} checksum queries, {} chunks compared, {} differing, {} rows fetched, {} ms",
            t.method,
            t.legacy_hashing,
            t.projection_hashing,
            t.checksum_queries,
            t.chunks_compared,
            t.chunks_differing,
            t.rows_fetched,
            t.elapsed_ms
        )
    }
}
