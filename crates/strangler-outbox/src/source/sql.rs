//! Building the relay's SQL from the `.sql` templates and the configured table and column names.
//!
//! Names were validated at config load (letters, digits, `_`, one optional schema dot), and are
//! quoted here as well.

use strangler_core::config::{OutboxConfig, OutboxRetention};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Postgres,
    Mysql,
    Sqlite,
}

pub(crate) fn quote(d: Dialect, name: &str) -> String {
    name.split('.')
        .map(|part| match d {
            Dialect::Mysql => format!("`{}`", part.replace('`', "")),
            _ => format!("\"{}\"", part.replace('"', "")),
        })
        .collect::<Vec<_>>()
        .join(".")
}

fn as_text(d: Dialect, col: &str) -> String {
    let q = quote(d, col);
    match d {
        Dialect::Postgres => format!("{q}::text"),
        Dialect::Mysql => format!("CAST({q} AS CHAR)"),
        Dialect::Sqlite => format!("CAST({q} AS TEXT)"),
    }
}

fn as_epoch_ms(d: Dialect, col: Option<&str>) -> String {
    match (d, col) {
        (Dialect::Postgres, None) => "NULL::bigint".into(),
        (Dialect::Mysql, None) => "CAST(NULL AS SIGNED)".into(),
        (Dialect::Sqlite, None) => "NULL".into(),
        (Dialect::Postgres, Some(c)) => {
            format!("(extract(epoch from {}) * 1000)::bigint", quote(d, c))
        }
        (Dialect::Mysql, Some(c)) => {
            format!("CAST(UNIX_TIMESTAMP({}) * 1000 AS SIGNED)", quote(d, c))
        }
        (Dialect::Sqlite, Some(c)) => format!(
            "CAST((julianday({}) - 2440587.5) * 86400000.0 AS INTEGER)",
            quote(d, c)
        ),
    }
}

/// The header columns, in order: tracing context (sent as `tracingspancontext`), then
/// `additional_headers` (sent under their column names).
pub(crate) fn header_columns(cfg: &OutboxConfig) -> Vec<(String, String)> {
    cfg.columns
        .tracing_span_context
        .iter()
        .map(|c| ("tracingspancontext".to_string(), c.clone()))
        .chain(
            cfg.additional_headers
                .iter()
                .map(|c| (c.clone(), c.clone())),
        )
        .collect()
}

/// id, aggregate type, aggregate id, type, payload (text), timestamp (ms), header columns (text).
fn columns(d: Dialect, cfg: &OutboxConfig) -> String {
    let c = &cfg.columns;
    let mut cols = vec![
        as_text(d, &c.id),
        as_text(d, &c.aggregate_type),
        as_text(d, &c.aggregate_id),
        as_text(d, &c.event_type),
        as_text(d, &c.payload),
        as_epoch_ms(d, c.timestamp.as_deref()),
    ];
    cols.extend(header_columns(cfg).iter().map(|(_, col)| as_text(d, col)));
    cols.join(", ")
}

/// The read query for `d`.
pub(crate) fn read_query(d: Dialect, cfg: &OutboxConfig) -> String {
    let template = match d {
        Dialect::Postgres => include_str!("sql/pg_read.sql"),
        Dialect::Mysql => include_str!("sql/mysql_read.sql"),
        Dialect::Sqlite => include_str!("sql/sqlite_read.sql"),
    };
    render(template, d, cfg)
}

/// PostgreSQL's split read: the keys of the next batch, then the rows of a key range.
pub(crate) fn pg_split_read_queries(cfg: &OutboxConfig) -> (String, String) {
    (
        render(include_str!("sql/pg_read_keys.sql"), Dialect::Postgres, cfg),
        render(
            include_str!("sql/pg_read_range.sql"),
            Dialect::Postgres,
            cfg,
        ),
    )
}

fn render(template: &str, d: Dialect, cfg: &OutboxConfig) -> String {
    let published = quote(d, &cfg.columns.published_at);
    let mark = cfg.retention == OutboxRetention::Mark;
    template
        .replace("{columns}", &columns(d, cfg))
        .replace("{table}", &quote(d, &cfg.table))
        .replace(
            "{unpublished}",
            &if mark {
                format!("AND {published} IS NULL")
            } else {
                String::new()
            },
        )
        .replace(
            "{published_flag}",
            &if mark {
                format!("({published} IS NOT NULL)")
            } else {
                "0".into()
            },
        )
}

/// Deletes or marks one batch: PostgreSQL by its (transaction id, seq) range and row count,
/// SQLite by its `seq` range, MySQL/MariaDB by the list of `n` seqs.
pub(crate) fn complete_query(d: Dialect, cfg: &OutboxConfig, n: usize) -> String {
    let table = quote(d, &cfg.table);
    let published = quote(d, &cfg.columns.published_at);
    if d == Dialect::Postgres {
        // Rows by ctid from an ordered, limited index scan: the planner misjudges a bare row
        // range on a large outbox and scans it sequentially (1.6 s instead of 3 ms per batch).
        let unpublished = match cfg.retention {
            OutboxRetention::Mark => format!("AND {published} IS NULL"),
            OutboxRetention::Delete => String::new(),
        };
        let rows = include_str!("sql/pg_batch_rows.sql")
            .replace("{table}", &table)
            .replace("{unpublished}", &unpublished);
        return match cfg.retention {
            OutboxRetention::Delete => {
                format!("DELETE FROM {table} WHERE ctid = ANY(ARRAY({rows}))")
            }
            OutboxRetention::Mark => {
                format!("UPDATE {table} SET {published} = now() WHERE ctid = ANY(ARRAY({rows}))")
            }
        };
    }
    let rows = match d {
        // SQLite's single writer numbers rows in commit order, so a batch is every unpublished
        // row of its `seq` range.
        Dialect::Sqlite => match cfg.retention {
            OutboxRetention::Mark => format!("seq BETWEEN ?1 AND ?2 AND {published} IS NULL"),
            OutboxRetention::Delete => "seq BETWEEN ?1 AND ?2".to_string(),
        },
        _ => format!("seq IN ({})", vec!["?"; n].join(", ")),
    };
    match cfg.retention {
        OutboxRetention::Delete => format!("DELETE FROM {table} WHERE {rows}"),
        OutboxRetention::Mark => {
            let now = match d {
                Dialect::Mysql => "CURRENT_TIMESTAMP(6)",
                _ => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            };
            format!("UPDATE {table} SET {published} = {now} WHERE {rows}")
        }
    }
}

/// Inserts one dead letter (8 parameters).
pub(crate) fn dead_letter_query(d: Dialect, cfg: &OutboxConfig) -> String {
    let mut q = include_str!("sql/dead_letter_insert.sql")
        .replace("{dead_letter_table}", &quote(d, &cfg.dead_letter_table));
    for i in 1..=8 {
        let p = match d {
            Dialect::Postgres => format!("${i}"),
            _ => "?".into(),
        };
        q = q.replace(&format!("{{p{i}}}"), &p);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_quote_names_and_follow_retention() {
        let mut cfg = OutboxConfig {
            table: "legacy.outbox".into(),
            ..OutboxConfig::default()
        };
        cfg.columns.timestamp = Some("created_at".into());
        let q = read_query(Dialect::Postgres, &cfg);
        assert!(q.contains("FROM \"legacy\".\"outbox\""), "{q}");
        assert!(q.contains("extract(epoch from \"created_at\")"), "{q}");
        assert!(
            !q.contains("IS NULL"),
            "delete retention reads every row: {q}"
        );
        cfg.retention = OutboxRetention::Mark;
        assert!(read_query(Dialect::Sqlite, &cfg).contains("AND \"published_at\" IS NULL"));
        assert!(read_query(Dialect::Mysql, &cfg).contains("(`published_at` IS NOT NULL)"));
        assert_eq!(
            complete_query(Dialect::Sqlite, &cfg, 0),
            "UPDATE \"legacy\".\"outbox\" SET \"published_at\" = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             WHERE seq BETWEEN ?1 AND ?2 AND \"published_at\" IS NULL"
        );
        assert_eq!(
            complete_query(Dialect::Mysql, &cfg, 2),
            "UPDATE `legacy`.`outbox` SET `published_at` = CURRENT_TIMESTAMP(6) WHERE seq IN (?, ?)"
        );
        let dl = dead_letter_query(Dialect::Postgres, &cfg);
        assert!(dl.contains("$8") && !dl.contains('{'), "{dl}");
    }
}
