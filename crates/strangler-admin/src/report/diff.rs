//! Exemplar diffs with `similar`: a unified diff for terminals and Markdown, and side-by-side
//! rows for the HTML report and the dashboard.

use serde::Serialize;
use similar::{DiffOp, TextDiff};

use crate::store::Exemplar;

/// Most side-by-side rows kept per exemplar; long bodies keep their changes and some context.
const MAX_ROWS: usize = 400;
/// Unchanged lines kept around each change in side-by-side rows.
const CONTEXT: usize = 3;

/// One line pair of a side-by-side diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRow {
    /// `equal`, `delete`, `insert`, `replace`, or `skip` (unchanged lines left out).
    pub tag: &'static str,
    /// The legacy line (empty when absent).
    pub legacy: String,
    /// The candidate line (empty when absent).
    pub candidate: String,
}

/// An exemplar rendered for reading.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExemplarDiff {
    /// The fingerprint it illustrates.
    pub fingerprint: String,
    /// Other fingerprints the same exchange shows (reports render it once).
    pub also: Vec<String>,
    /// `METHOD /path?query` (redacted).
    pub request: String,
    /// Legacy and candidate status.
    pub statuses: (i32, i32),
    /// When it was seen (epoch ms).
    pub seen_ms: i64,
    /// Whether the stored values are raw (the capability opted in).
    pub raw: bool,
    /// The differences the judge reported, one line each.
    pub differences: Vec<String>,
    /// Unified diff of the pretty-printed bodies.
    pub unified: String,
    /// Side-by-side rows.
    pub rows: Vec<DiffRow>,
}

fn pretty(body: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_else(|_| body.to_owned()),
        Err(_) => body.to_owned(),
    }
}

fn line(s: &str) -> String {
    s.trim_end_matches('\n').to_owned()
}

impl ExemplarDiff {
    /// Every fingerprint this exemplar shows, joined with `sep`.
    pub fn fingerprints(&self, sep: &str) -> String {
        std::iter::once(&self.fingerprint)
            .chain(&self.also)
            .cloned()
            .collect::<Vec<_>>()
            .join(sep)
    }
}

/// Renders one stored exemplar.
pub fn render_exemplar(e: &Exemplar) -> ExemplarDiff {
    let legacy = pretty(&e.legacy_body) + "\n";
    let candidate = pretty(&e.candidate_body) + "\n";
    let diff = TextDiff::from_lines(&legacy, &candidate);
    let unified = diff
        .unified_diff()
        .context_radius(CONTEXT)
        .header("legacy", "candidate")
        .to_string();
    let old = diff.old_slices();
    let new = diff.new_slices();
    let mut rows = Vec::new();
    let ops = diff.ops();
    for (i, op) in ops.iter().enumerate() {
        match *op {
            DiffOp::Equal {
                old_index,
                new_index,
                len,
            } => {
                // Keep context after the previous change and before the next one.
                let after = if i > 0 { CONTEXT.min(len) } else { 0 };
                let before = if i + 1 < ops.len() {
                    CONTEXT.min(len)
                } else {
                    0
                };
                // Folding a single line saves nothing.
                if after + before + 1 >= len {
                    for k in 0..len {
                        rows.push(DiffRow {
                            tag: "equal",
                            legacy: line(old[old_index + k]),
                            candidate: line(new[new_index + k]),
                        });
                    }
                } else {
                    for k in 0..after {
                        rows.push(DiffRow {
                            tag: "equal",
                            legacy: line(old[old_index + k]),
                            candidate: line(new[new_index + k]),
                        });
                    }
                    rows.push(DiffRow {
                        tag: "skip",
                        legacy: format!("… {} unchanged lines", len - after - before),
                        candidate: String::new(),
                    });
                    for k in len - before..len {
                        rows.push(DiffRow {
                            tag: "equal",
                            legacy: line(old[old_index + k]),
                            candidate: line(new[new_index + k]),
                        });
                    }
                }
            }
            DiffOp::Delete {
                old_index, old_len, ..
            } => {
                for k in 0..old_len {
                    rows.push(DiffRow {
                        tag: "delete",
                        legacy: line(old[old_index + k]),
                        candidate: String::new(),
                    });
                }
            }
            DiffOp::Insert {
                new_index, new_len, ..
            } => {
                for k in 0..new_len {
                    rows.push(DiffRow {
                        tag: "insert",
                        legacy: String::new(),
                        candidate: line(new[new_index + k]),
                    });
                }
            }
            DiffOp::Replace {
                old_index,
                old_len,
                new_index,
                new_len,
            } => {
                for k in 0..old_len.max(new_len) {
                    rows.push(DiffRow {
                        tag: "replace",
                        legacy: if k < old_len {
                            line(old[old_index + k])
                        } else {
                            String::new()
                        },
                        candidate: if k < new_len {
                            line(new[new_index + k])
                        } else {
                            String::new()
                        },
                    });
                }
            }
        }
    }
    rows.truncate(MAX_ROWS);
    let differences = e
        .differences
        .iter()
        .map(|d| {
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref().map_or("(absent)".to_owned(), |v| v.to_string())
            };
            format!(
                "{} {}: {} -> {}",
                d.kind.as_str(),
                d.path,
                show(&d.legacy),
                show(&d.candidate)
            )
        })
        .collect();
    ExemplarDiff {
        fingerprint: e.fingerprint.clone(),
        also: Vec::new(),
        request: format!("{} {}", e.method, e.path_and_query),
        statuses: (e.legacy_status, e.candidate_status),
        seen_ms: e.seen_ms,
        raw: e.raw,
        differences,
        unified,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exemplar(legacy: &str, candidate: &str) -> Exemplar {
        Exemplar {
            id: 1,
            capability: "orders".into(),
            fingerprint: "00000000000000aa".into(),
            seen_ms: 0,
            verdict: "mismatch".into(),
            method: "GET".into(),
            path_and_query: "/orders/1".into(),
            request_headers: vec![],
            request_body: String::new(),
            legacy_status: 200,
            legacy_headers: vec![],
            legacy_body: legacy.into(),
            candidate_status: 200,
            candidate_headers: vec![],
            candidate_body: candidate.into(),
            differences: vec![],
            raw: false,
        }
    }

    #[test]
    fn json_bodies_are_pretty_printed_and_the_changed_line_is_paired() {
        let d = render_exemplar(&exemplar(
            r#"{"id":"1","total":10}"#,
            r#"{"id":"1","total":11}"#,
        ));
        assert!(
            d.unified.contains("-  \"total\": 10") && d.unified.contains("+  \"total\": 11"),
            "{}",
            d.unified
        );
        let changed: Vec<_> = d.rows.iter().filter(|r| r.tag != "equal").collect();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].legacy.trim(), "\"total\": 10");
        assert_eq!(changed[0].candidate.trim(), "\"total\": 11");
    }

    #[test]
    fn long_unchanged_runs_are_folded() {
        let many: Vec<String> = (0..50).map(|i| format!("\"k{i:02}\":{i}")).collect();
        let legacy = format!("{{{},\"z\":1}}", many.join(","));
        let candidate = format!("{{{},\"z\":2}}", many.join(","));
        let d = render_exemplar(&exemplar(&legacy, &candidate));
        assert!(d.rows.iter().any(|r| r.tag == "skip"));
        assert!(d.rows.len() < 15, "{} rows", d.rows.len());
    }
}
