//! `[[reconcile]]`: a table-to-table check of a projection against the legacy tables it mirrors.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;

use super::Validator;

/// One reconciliation: two keyed queries, how their columns pair up, and how hard to look.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileConfig {
    /// Unique name, used as `strangler reconcile <name>` and in reports.
    pub name: String,
    /// The legacy side: the truth.
    pub legacy: ReconcileSide,
    /// The projection side: the read model being checked.
    pub projection: ReconcileSide,
    /// Legacy column name -> projection column name, for columns the projection renamed.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Legacy columns the projection does not carry and that are not compared.
    #[serde(default)]
    pub ignore_columns: Vec<String>,
    /// Normalization class per legacy column (`int`, `decimal`, `bool`, `timestamp`, `date`,
    /// `text`) when the database's declared type does not say it (SQLite's loose types).
    #[serde(default)]
    pub column_types: BTreeMap<String, String>,
    /// Comparison rules file (see shadow-rules/) applied to each row's JSON, relative to this file;
    /// paths name the projection's columns, for example `/status`.
    #[serde(default)]
    pub rules: Option<PathBuf>,
    /// First-level chunk: its width in keys for integer keys (equal to rows when keys are dense),
    /// its legacy rows for text and uuid keys.
    #[serde(default = "default_chunk_size")]
    pub chunk_size: u64,
    /// Sub-chunks a differing chunk is split into.
    #[serde(default = "default_bisection_factor")]
    pub bisection_factor: u32,
    /// A differing chunk with at most this many rows on either side is fetched and diffed row by row.
    #[serde(default = "default_leaf_rows")]
    pub leaf_rows: u64,
    /// Decimal places every decimal and floating-point value is rounded to before hashing.
    #[serde(default = "default_decimal_scale")]
    pub decimal_scale: u32,
    /// Legacy column holding each row's last change; rows changed after the projection's
    /// watermark are reported as in flight instead of drift.
    #[serde(default)]
    pub updated_at_column: Option<String>,
    /// Query on the projection database returning the watermark (RFC 3339 text or ms since the
    /// epoch); without it the projector's checkpoint table is read when it exists.
    #[serde(default)]
    pub watermark_query: Option<String>,
    /// Projection name in the projector's checkpoint table; defaults to `name`.
    #[serde(default)]
    pub projection_name: Option<String>,
    /// Columns whose values are replaced by a keyed hash in exemplars.
    #[serde(default)]
    pub sensitive_columns: Vec<String>,
    /// Environment variable holding the redaction key (HMAC-SHA256).
    #[serde(default = "default_redact_key_env")]
    pub redact_key_env: String,
    /// Exemplar rows kept per kind of difference.
    #[serde(default = "default_exemplars")]
    pub exemplars: usize,
    /// Queries in flight at once on each side.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

/// One side of a reconciliation.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileSide {
    /// Database URL; defaults to `[legacy] url` (legacy side) or `[projections] read_store_url`.
    #[serde(default)]
    pub url: Option<String>,
    /// `SELECT key, col, ... FROM ...`: the rows to compare (no trailing `;`, no `ORDER BY`).
    pub query: String,
    /// The key column of `query`: integer, text or uuid (text and uuids are compared in byte
    /// order on both sides, whatever collation the column declares).
    pub key: String,
    /// Where row hashes are computed: `auto` (in SQL on PostgreSQL and MySQL, in Rust on SQLite),
    /// `sql`, or `rust` (the normalized row text is streamed and hashed by strangler).
    #[serde(default = "default_checksum")]
    pub checksum: String,
}

/// One aggregate check: a projection whose sink keeps groups (a ClickHouse `shape = "aggregate"`
/// table) against the legacy database's own `GROUP BY`. `strangler reconcile <name>` runs it.
#[derive(Debug, Clone, Deserialize)]
pub struct ReconcileAggregateConfig {
    /// Unique name across `[[reconcile]]` and `[[reconcile_aggregate]]`, used as
    /// `strangler reconcile <name>` and in reports.
    pub name: String,
    /// The projection (its file's `name`) whose aggregate is checked; its sink must be an
    /// aggregate table.
    pub projection: String,
    /// The projection version to read; without it, the version readers see (the last promoted).
    #[serde(default)]
    pub version: Option<u32>,
    /// Legacy database URL; defaults to `[legacy] url`.
    #[serde(default)]
    pub legacy_url: Option<String>,
    /// `SELECT group columns..., measures... FROM ... GROUP BY ...` on the legacy database: the
    /// projection's group columns, then its measures, in the order the projection file lists them
    /// (`order_by`, then `sum`, then `count`). Groups are paired by their columns as text, so
    /// format them as the sink shows them (a date as `YYYY-MM-DD`).
    pub legacy_query: String,
    /// Largest absolute difference between two measures that still counts as equal.
    #[serde(default)]
    pub tolerance: f64,
}

/// 256 keys: the first pass is one grouped scan however many chunks it returns, so small chunks
/// are nearly free there and spare a second full pass when drift is spread thinly (measured in
/// docs/BENCHMARKS.md, "Reconciliation").
fn default_chunk_size() -> u64 {
    256
}

/// 16: a 256-key chunk becomes leaves of 16 keys after one split.
fn default_bisection_factor() -> u32 {
    16
}

/// 32 rows: fetching them costs less than another level of checksums.
fn default_leaf_rows() -> u64 {
    32
}

/// 6 places: exact for money (2 to 4 places) and below float noise for measurements.
fn default_decimal_scale() -> u32 {
    6
}

/// Shared with the shadow proxy's redaction so fingerprints agree across reports.
fn default_redact_key_env() -> String {
    "STRANGLER_REDACT_KEY".into()
}

/// Three per kind: enough to see a pattern, short enough for a terminal.
fn default_exemplars() -> usize {
    3
}

/// 4: two cores, with queries waiting on the database half the time.
fn default_concurrency() -> usize {
    4
}

fn default_checksum() -> String {
    "auto".into()
}

/// Normalization classes accepted in `column_types`.
pub const COLUMN_TYPES: [&str; 6] = ["int", "decimal", "bool", "timestamp", "date", "text"];

/// Whether `s` is a plain SQL identifier (letters, digits, `_`, not starting with a digit).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub(super) fn validate_all(
    all: &[ReconcileConfig],
    aggregates: &[ReconcileAggregateConfig],
    v: &mut Validator,
) {
    let mut names = HashSet::new();
    validate_aggregates(aggregates, &mut names, v);
    let names = &mut names;
    for (i, r) in all.iter().enumerate() {
        let key = |k: &str| format!("reconcile[{i}].{k}");
        check_name(&r.name, &key("name"), names, v);
        for (side, s) in [("legacy", &r.legacy), ("projection", &r.projection)] {
            if let Some(url) = &s.url {
                v.url(
                    &key(&format!("{side}.url")),
                    url,
                    &["postgres", "postgresql", "mysql", "mariadb", "sqlite"],
                );
            }
            let q = s.query.trim();
            if !q.to_ascii_lowercase().starts_with("select") || q.contains(';') {
                v.problem(
                    key(&format!("{side}.query")),
                    "must be one SELECT statement",
                    "write `SELECT id, col, ... FROM table` without a trailing `;`",
                );
            }
            if !is_identifier(&s.key) {
                v.problem(
                    key(&format!("{side}.key")),
                    format!("`{}` is not a plain column name", s.key),
                    "name the key column as the query returns it (letters, digits, _)",
                );
            }
            if !["auto", "sql", "rust"].contains(&s.checksum.as_str()) {
                v.problem(
                    key(&format!("{side}.checksum")),
                    format!("`{}` is not a checksum mode", s.checksum),
                    "use auto, sql or rust",
                );
            }
        }
        let idents = r
            .columns
            .iter()
            .flat_map(|(a, b)| [a, b])
            .chain(&r.ignore_columns)
            .chain(&r.sensitive_columns)
            .chain(r.column_types.keys())
            .chain(&r.updated_at_column);
        for id in idents {
            if !is_identifier(id) {
                v.problem(
                    key("columns"),
                    format!("`{id}` is not a plain column name"),
                    "use column names of letters, digits and _",
                );
            }
        }
        for (col, ty) in &r.column_types {
            if !COLUMN_TYPES.contains(&ty.as_str()) {
                v.problem(
                    key(&format!("column_types.{col}")),
                    format!("`{ty}` is not a column type"),
                    format!("use one of: {}", COLUMN_TYPES.join(", ")),
                );
            }
        }
        if let Some(rules) = &r.rules {
            v.existing_file(&key("rules"), rules);
        }
        v.at_least(&key("chunk_size"), r.chunk_size, 1);
        v.at_least(&key("bisection_factor"), u64::from(r.bisection_factor), 2);
        v.at_least(&key("leaf_rows"), r.leaf_rows, 1);
        v.at_least(&key("concurrency"), r.concurrency as u64, 1);
        if r.decimal_scale > 30 {
            v.problem(
                key("decimal_scale"),
                format!(
                    "{} places is more than MySQL's DECIMAL allows",
                    r.decimal_scale
                ),
                "use 30 or fewer",
            );
        }
        if let Some(q) = &r.watermark_query
            && (!q.trim().to_ascii_lowercase().starts_with("select") || q.contains(';'))
        {
            v.problem(
                key("watermark_query"),
                "must be one SELECT statement",
                "write `SELECT max(updated_at) FROM ...` without a trailing `;`",
            );
        }
    }
}

/// A reconciliation's name: a plain word, unique across `[[reconcile]]` and
/// `[[reconcile_aggregate]]` (both are run as `strangler reconcile <name>`).
fn check_name<'a>(name: &'a str, key: &str, names: &mut HashSet<&'a str>, v: &mut Validator) {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        v.problem(
            key,
            format!("`{name}` is not a reconciliation name"),
            "use letters, digits, - and _",
        );
    }
    if !names.insert(name) {
        v.problem(
            key,
            format!("reconciliation `{name}` is defined twice"),
            "give each [[reconcile]] and [[reconcile_aggregate]] a unique name",
        );
    }
}

fn validate_aggregates<'a>(
    all: &'a [ReconcileAggregateConfig],
    names: &mut HashSet<&'a str>,
    v: &mut Validator,
) {
    for (i, r) in all.iter().enumerate() {
        let key = |k: &str| format!("reconcile_aggregate[{i}].{k}");
        check_name(&r.name, &key("name"), names, v);
        if r.projection.trim().is_empty() {
            v.problem(
                key("projection"),
                "names no projection",
                "write the `name` of the projection file whose aggregate is checked",
            );
        }
        if let Some(url) = &r.legacy_url {
            v.url(
                &key("legacy_url"),
                url,
                &["postgres", "postgresql", "mysql", "mariadb", "sqlite"],
            );
        }
        let q = r.legacy_query.trim();
        if !q.to_ascii_lowercase().starts_with("select") || q.contains(';') {
            v.problem(
                key("legacy_query"),
                "must be one SELECT statement",
                "write `SELECT day, region, sum(amount) FROM ... GROUP BY 1, 2` without a trailing `;`",
            );
        }
        if !(r.tolerance >= 0.0 && r.tolerance.is_finite()) {
            v.problem(
                key("tolerance"),
                format!("{} is not a tolerance", r.tolerance),
                "use 0 (exact) or a positive number",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    const EXAMPLE: &str = r#"
[legacy]
url = "mysql://app@legacy-db/shop"

[[reconcile]]
name = "orders"
columns = { id = "order_id" }
updated_at_column = "updated_at"
sensitive_columns = ["email"]

[reconcile.legacy]
query = "SELECT id, status, total, updated_at, email FROM orders"
key = "id"

[reconcile.projection]
url = "postgres://strangler@read-db/read"
query = "SELECT order_id, status, total, email FROM order_summary"
key = "order_id"
"#;

    #[test]
    fn an_example_parses_with_defaults() {
        let c = Config::parse(EXAMPLE, Path::new("strangler.toml")).unwrap();
        let r = &c.reconcile[0];
        assert_eq!(r.name, "orders");
        assert_eq!(r.legacy.url, None);
        assert_eq!(r.projection.checksum, "auto");
        assert_eq!(
            (r.chunk_size, r.bisection_factor, r.leaf_rows),
            (256, 16, 32)
        );
        assert_eq!(r.columns.get("id").map(String::as_str), Some("order_id"));
    }

    #[test]
    fn unsafe_identifiers_and_unknown_modes_are_reported_together() {
        let bad = EXAMPLE
            .replace(r#"key = "id""#, r#"key = "id; DROP TABLE x""#)
            .replace(
                r#"key = "order_id""#,
                "key = \"order_id\"\nchecksum = \"fast\"",
            );
        let err = Config::parse(&bad, Path::new("strangler.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("reconcile[0].legacy.key"), "{err}");
        assert!(err.contains("reconcile[0].projection.checksum"), "{err}");
    }

    const AGGREGATE: &str = r#"
[[reconcile_aggregate]]
name = "revenue"
projection = "revenue_by_day"
legacy_query = "SELECT to_char(placed_at, 'YYYY-MM-DD'), region, sum(total) FROM orders GROUP BY 1, 2"
"#;

    #[test]
    fn an_aggregate_check_parses_beside_row_checks() {
        let c = Config::parse(
            &format!("{EXAMPLE}{AGGREGATE}"),
            Path::new("strangler.toml"),
        )
        .unwrap();
        let a = &c.reconcile_aggregate[0];
        assert_eq!(
            (a.name.as_str(), a.projection.as_str()),
            ("revenue", "revenue_by_day")
        );
        assert_eq!(
            (a.version, a.tolerance, a.legacy_url.as_deref()),
            (None, 0.0, None)
        );
    }

    #[test]
    fn an_aggregate_check_names_every_problem() {
        let bad = AGGREGATE
            .replace(r#"name = "revenue""#, "name = \"orders\"\ntolerance = -1.0")
            .replace("GROUP BY 1, 2", "GROUP BY 1, 2; DELETE FROM orders");
        let err = Config::parse(&format!("{EXAMPLE}{bad}"), Path::new("strangler.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reconciliation `orders` is defined twice"),
            "{err}"
        );
        assert!(err.contains("reconcile_aggregate[0].legacy_query"), "{err}");
        assert!(err.contains("reconcile_aggregate[0].tolerance"), "{err}");
    }
}
