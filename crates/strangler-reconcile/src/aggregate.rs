//! The legacy side of an aggregate check (`[[reconcile_aggregate]]`): the legacy database's own
//! `GROUP BY`, read as groups of text keys and numeric measures.
//!
//! A projection kept as an aggregate (a ClickHouse table of groups) has no rows to pair with the
//! legacy tables, so it is checked group by group instead: the caller pairs these groups with the
//! sink's own. Every column is cast to text inside the database, so decimals (what `sum` returns
//! on PostgreSQL and MySQL) arrive exactly and dates read as `YYYY-MM-DD` on every dialect.

use crate::db::{Db, Dialect, on_db, redact_url};
use crate::error::{Error, Result};

/// One legacy group: its key columns as text, then its measures.
pub type Group = (Vec<String>, Vec<f64>);

/// Runs `query` on the legacy database at `url` and returns its groups. The query returns
/// `group_columns` key columns, then `measures` numeric columns; `name` is the check's name, for
/// messages. A NULL key column reads as an empty string (as the sink shows a NULL group), a NULL
/// measure as 0 (SQL's `sum` of no values).
pub async fn legacy_groups(
    name: &str,
    url: &str,
    query: &str,
    group_columns: usize,
    measures: usize,
) -> Result<Vec<Group>> {
    let config_err = |message: String| Error::Config {
        name: name.to_string(),
        message,
    };
    let db = Db::connect(url, 1, "legacy").await?;
    let columns = db.describe(query).await.map_err(|source| Error::Sql {
        side: "legacy",
        what: format!("preparing legacy_query on {}", redact_url(url)),
        source,
    })?;
    if columns.len() != group_columns + measures {
        return Err(config_err(format!(
            "legacy_query returns {} columns; the projection's aggregate has {group_columns} group \
             columns and {measures} measures, so it should return {} (the group columns, then the \
             measures, in the projection file's order)",
            columns.len(),
            group_columns + measures
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for (column, _) in &columns {
        if !seen.insert(column.as_str()) {
            return Err(config_err(format!(
                "legacy_query returns two columns named `{column}`; give each its own alias \
                 (`sum(total) AS revenue`)"
            )));
        }
    }
    let sql = as_text(db.dialect(), query, &columns);
    let rows: Vec<Vec<Option<String>>> = on_db!(&db, pool => {
        use sqlx::Row;
        sqlx::query(&sql)
            .fetch_all(pool)
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|r| (0..columns.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect())
                    .collect()
            })
    })
    .map_err(|source| Error::Sql {
        side: "legacy",
        what: "running legacy_query".into(),
        source,
    })?;
    rows.into_iter()
        .map(|row| {
            let key = row[..group_columns]
                .iter()
                .map(|v| v.clone().unwrap_or_default())
                .collect();
            let values = row[group_columns..]
                .iter()
                .zip(&columns[group_columns..])
                .map(|(v, (column, _))| match v {
                    None => Ok(0.0),
                    Some(text) => text.trim().parse::<f64>().map_err(|_| {
                        config_err(format!(
                            "legacy_query's measure `{column}` returned `{text}`, which is not a \
                             number"
                        ))
                    }),
                })
                .collect::<Result<Vec<f64>>>()?;
            Ok((key, values))
        })
        .collect()
}

/// `query` wrapped so every column comes back as text.
fn as_text(dialect: Dialect, query: &str, columns: &[(String, String)]) -> String {
    let cast = |c: &str| match dialect {
        Dialect::MySql => format!("CAST(q.`{}` AS CHAR)", c.replace('`', "``")),
        Dialect::Postgres | Dialect::Sqlite => {
            format!("CAST(q.\"{}\" AS TEXT)", c.replace('"', "\"\""))
        }
    };
    let list: Vec<String> = columns.iter().map(|(c, _)| cast(c)).collect();
    format!("SELECT {} FROM ({query}) AS q", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_cast_to_text_with_its_dialects_quoting() {
        let cols = vec![
            ("day".to_string(), "DATE".to_string()),
            ("sum(\"x\")".to_string(), "NUMERIC".to_string()),
        ];
        assert_eq!(
            as_text(Dialect::Postgres, "SELECT 1", &cols),
            "SELECT CAST(q.\"day\" AS TEXT), CAST(q.\"sum(\"\"x\"\")\" AS TEXT) FROM (SELECT 1) AS q"
        );
        assert!(
            as_text(Dialect::MySql, "SELECT 1", &cols).starts_with("SELECT CAST(q.`day` AS CHAR)")
        );
    }
}
