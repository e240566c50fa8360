//! Table shapes for projections and their DDL.
//!
//! Every row a projection writes carries the position of the event it came from (`_topic`,
//! `_partition`, `_offset`, and `_seq`, the row's index among that event's rows). Tables are
//! `ReplacingMergeTree`s whose sorting key ends with that position, so a row written twice (a
//! replay, or a batch re-applied after a crash before its offset was stored) is one row under
//! `FINAL` and after merges. Rows from the same event are identical on every replay, so no version
//! column is needed to choose between copies.
//!
//! - **append**: one table of facts, sorted by the projection's own columns first (`order_by`),
//!   then the position.
//! - **aggregate**: the same facts table (`<name>_facts`) plus a view `<name>` that groups it
//!   `FINAL`, so an aggregate never counts a duplicated fact. A materialized view or a
//!   `SummingMergeTree` would add each inserted block as it arrives, duplicates included.

use crate::error::Result;
use crate::sql::{check_name, qualified};

/// Columns strangler adds to every table, in this order, after the projection's own.
pub const POSITION_COLUMNS: [(&str, &str); 4] = [
    ("_topic", "String"),
    ("_partition", "Int32"),
    ("_offset", "Int64"),
    ("_seq", "UInt32"),
];

/// One column of a projection's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// ClickHouse type, for example `Date`, `String`, `Int64`, `Nullable(String)`.
    pub ty: String,
}

/// An aggregate function over the facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFn {
    /// `sum(column)`.
    Sum,
    /// `count()` (no column).
    Count,
    /// `min(column)`.
    Min,
    /// `max(column)`.
    Max,
}

impl AggFn {
    /// Parses `sum`, `count`, `min`, `max`.
    pub fn parse(s: &str) -> Option<AggFn> {
        Some(match s {
            "sum" => AggFn::Sum,
            "count" => AggFn::Count,
            "min" => AggFn::Min,
            "max" => AggFn::Max,
            _ => return None,
        })
    }
}

/// One output column of an aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    /// Output column name.
    pub name: String,
    /// The function.
    pub func: AggFn,
    /// The facts column it reads (none for `count`).
    pub column: Option<String>,
}

impl Measure {
    fn expr(&self) -> String {
        let col = self.column.as_deref().unwrap_or_default();
        match self.func {
            AggFn::Count => format!("count() AS `{}`", self.name),
            AggFn::Sum => format!("sum(`{col}`) AS `{}`", self.name),
            AggFn::Min => format!("min(`{col}`) AS `{}`", self.name),
            AggFn::Max => format!("max(`{col}`) AS `{}`", self.name),
        }
    }
}

/// What a table is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableKind {
    /// Facts, sorted by `order_by` and then the event position.
    Append {
        /// Leading sort columns (non-nullable).
        order_by: Vec<String>,
    },
    /// Facts plus a grouped view over them.
    Aggregate {
        /// Grouping columns; also the leading sort columns of the facts.
        group_by: Vec<String>,
        /// What the view computes per group.
        measures: Vec<Measure>,
    },
}

/// A projection's table in ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// Logical name (what the projection's rows name as their target).
    pub name: String,
    /// The projection's own columns.
    pub columns: Vec<Column>,
    /// Append or aggregate.
    pub kind: TableKind,
}

/// Where a table's data physically lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The `ReplacingMergeTree` rows are inserted into.
    pub facts: String,
    /// For aggregates, the grouped view readers query.
    pub view: Option<String>,
}

impl TableSpec {
    /// Checks names and cross-references; every problem in one message per table.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems: Vec<String> = std::iter::once(("table", &self.name))
            .chain(self.columns.iter().map(|c| ("column", &c.name)))
            .filter_map(|(what, name)| check_name(what, name).err())
            .map(|e| e.to_string())
            .collect();
        let known = |n: &str| self.columns.iter().any(|c| c.name == n);
        if self.columns.is_empty() {
            problems.push(format!("table {}: no columns", self.name));
        }
        for c in &self.columns {
            if c.name.starts_with('_') {
                problems.push(format!(
                    "table {}: column {} starts with `_`, which strangler keeps for the event position",
                    self.name, c.name
                ));
            }
        }
        match &self.kind {
            TableKind::Append { order_by } => {
                for c in order_by.iter().filter(|c| !known(c)) {
                    problems.push(format!(
                        "table {}: order_by names {c}, which is not a column",
                        self.name
                    ));
                }
            }
            TableKind::Aggregate { group_by, measures } => {
                if group_by.is_empty() {
                    problems.push(format!("table {}: an aggregate needs group_by", self.name));
                }
                for c in group_by.iter().filter(|c| !known(c)) {
                    problems.push(format!(
                        "table {}: group_by names {c}, which is not a column",
                        self.name
                    ));
                }
                if measures.is_empty() {
                    problems.push(format!(
                        "table {}: an aggregate needs at least one measure",
                        self.name
                    ));
                }
                for m in measures {
                    if let Err(e) = check_name("measure", &m.name) {
                        problems.push(e.to_string());
                    }
                    match (&m.func, &m.column) {
                        (AggFn::Count, _) => {}
                        (_, None) => problems.push(format!(
                            "table {}: measure {} needs a column",
                            self.name, m.name
                        )),
                        (_, Some(c)) if !known(c) => problems.push(format!(
                            "table {}: measure {} reads {c}, which is not a column",
                            self.name, m.name
                        )),
                        _ => {}
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Physical names for this table under `base` (for example `revenue_v1`, or
    /// `revenue_v1__rebuild` while a rebuild runs).
    pub fn layout(&self, base: &str) -> Layout {
        match self.kind {
            TableKind::Append { .. } => Layout {
                facts: base.to_string(),
                view: None,
            },
            TableKind::Aggregate { .. } => Layout {
                facts: format!("{base}_facts"),
                view: Some(base.to_string()),
            },
        }
    }

    fn leading_sort(&self) -> &[String] {
        match &self.kind {
            TableKind::Append { order_by } => order_by,
            TableKind::Aggregate { group_by, .. } => group_by,
        }
    }

    /// `CREATE TABLE IF NOT EXISTS` for the facts table.
    pub fn create_facts(&self, database: &str, facts: &str) -> String {
        let mut cols: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("`{}` {}", c.name, c.ty))
            .collect();
        cols.extend(POSITION_COLUMNS.iter().map(|(n, t)| format!("`{n}` {t}")));
        let mut sort: Vec<String> = self
            .leading_sort()
            .iter()
            .map(|c| format!("`{c}`"))
            .collect();
        sort.extend(POSITION_COLUMNS.iter().map(|(n, _)| format!("`{n}`")));
        // No PARTITION BY: one insert is one part, so a batch lands whole or not at all.
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE = ReplacingMergeTree() ORDER BY ({})",
            qualified(database, facts),
            cols.join(", "),
            sort.join(", ")
        )
    }

    /// The grouped `SELECT` over `facts`, deduplicated with `FINAL`; `None` for append tables.
    pub fn aggregate_select(&self, database: &str, facts: &str) -> Option<String> {
        let TableKind::Aggregate { group_by, measures } = &self.kind else {
            return None;
        };
        let groups: Vec<String> = group_by.iter().map(|c| format!("`{c}`")).collect();
        let mut out = groups.clone();
        out.extend(measures.iter().map(Measure::expr));
        Some(format!(
            "SELECT {} FROM {} FINAL GROUP BY {}",
            out.join(", "),
            qualified(database, facts),
            groups.join(", ")
        ))
    }

    /// `CREATE VIEW IF NOT EXISTS` for an aggregate's view.
    pub fn create_view(&self, database: &str, layout: &Layout) -> Option<String> {
        let view = layout.view.as_ref()?;
        let select = self.aggregate_select(database, &layout.facts)?;
        Some(format!(
            "CREATE VIEW IF NOT EXISTS {} AS {select}",
            qualified(database, view)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn revenue() -> TableSpec {
        TableSpec {
            name: "revenue".into(),
            columns: vec![
                Column {
                    name: "day".into(),
                    ty: "Date".into(),
                },
                Column {
                    name: "region".into(),
                    ty: "String".into(),
                },
                Column {
                    name: "amount_cents".into(),
                    ty: "Int64".into(),
                },
            ],
            kind: TableKind::Aggregate {
                group_by: vec!["day".into(), "region".into()],
                measures: vec![
                    Measure {
                        name: "revenue_cents".into(),
                        func: AggFn::Sum,
                        column: Some("amount_cents".into()),
                    },
                    Measure {
                        name: "orders".into(),
                        func: AggFn::Count,
                        column: None,
                    },
                ],
            },
        }
    }

    #[test]
    fn aggregate_ddl_sorts_by_groups_then_position_and_views_final() {
        let spec = revenue();
        spec.validate().unwrap();
        let layout = spec.layout("revenue_v1");
        assert_eq!(layout.facts, "revenue_v1_facts");
        let ddl = spec.create_facts("db", &layout.facts);
        assert!(
            ddl.ends_with(
                "ReplacingMergeTree() ORDER BY (`day`, `region`, `_topic`, `_partition`, `_offset`, `_seq`)"
            ),
            "{ddl}"
        );
        let view = spec.create_view("db", &layout).unwrap();
        assert!(view.contains("FROM `db`.`revenue_v1_facts` FINAL GROUP BY `day`, `region`"));
    }

    #[test]
    fn validation_lists_every_problem() {
        let mut spec = revenue();
        spec.columns.push(Column {
            name: "_offset".into(),
            ty: "Int64".into(),
        });
        if let TableKind::Aggregate { group_by, measures } = &mut spec.kind {
            group_by.push("nope".into());
            measures[0].column = Some("missing".into());
        }
        let problems = spec.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
    }
}
