//! Rows as a projection hands them to ClickHouse: the projection's values plus the position of
//! the event they came from, encoded as `JSONEachRow`.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Where an event sits on the bus.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.topic, self.partition, self.offset)
    }
}

/// One row for one table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The event the row came from.
    pub position: Position,
    /// The row's index among the rows its event produced for this table (0 for the first).
    pub seq: u32,
    /// Column values by name; absent columns take the type's default.
    pub values: Map<String, Value>,
}

/// Appends `row` to `out` as one `JSONEachRow` line, refusing columns the table does not have.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    table: &str,
    columns: &BTreeSet<String>,
    row: &Row,
) -> Result<()> {
    if let Some(unknown) = row.values.keys().find(|k| !columns.contains(*k)) {
        return Err(Error::Row {
            table: table.to_string(),
            position: row.position.to_string(),
            reason: format!(
                "column {unknown} is not in the table (its columns: {})",
                columns.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let mut line = row.values.clone();
    line.insert("_topic".into(), Value::from(row.position.topic.clone()));
    line.insert("_partition".into(), Value::from(row.position.partition));
    line.insert("_offset".into(), Value::from(row.position.offset));
    line.insert("_seq".into(), Value::from(row.seq));
    serde_json::to_writer(&mut *out, &line).expect("a JSON map serializes");
    out.push(b'\n');
    Ok(())
}

/// A timestamp or date as ClickHouse's `Date` text (`YYYY-MM-DD`): the first ten characters of
/// an RFC 3339 timestamp or of a date. `None` when it does not start with a date.
pub fn date_of(text: &str) -> Option<String> {
    let d = text.get(..10)?;
    let b = d.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        .then(|| d.to_string())
}

/// An RFC 3339 timestamp in UTC (`2026-11-23T01:02:03Z`, fractions dropped) as ClickHouse's
/// `DateTime` text (`2026-11-23 01:02:03`). `None` for other shapes or offsets.
pub fn datetime_of(text: &str) -> Option<String> {
    let day = date_of(text)?;
    let rest = text.get(10..)?;
    let rest = rest.strip_prefix('T').or_else(|| rest.strip_prefix(' '))?;
    let time = rest.get(..8)?;
    let tail = &rest[8..];
    let tail = match tail.strip_prefix('.') {
        Some(t) => t.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => tail,
    };
    if !matches!(tail, "Z" | "+00:00" | "") {
        return None;
    }
    let t = time.as_bytes();
    let ok =
        t[2] == b':' && t[5] == b':' && [0, 1, 3, 4, 6, 7].iter().all(|&i| t[i].is_ascii_digit());
    ok.then(|| format!("{day} {time}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_carry_their_position_and_unknown_columns_are_refused() {
        let cols: BTreeSet<String> = ["region".to_string()].into();
        let mut row = Row {
            position: Position {
                topic: "orders".into(),
                partition: 2,
                offset: 41,
            },
            seq: 1,
            values: Map::new(),
        };
        row.values.insert("region".into(), "eu".into());
        let mut out = Vec::new();
        encode(&mut out, "t", &cols, &row).unwrap();
        let line: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(line["_offset"], 41);
        assert_eq!(line["_seq"], 1);
        row.values.insert("city".into(), "x".into());
        let err = encode(&mut out, "t", &cols, &row).unwrap_err().to_string();
        assert!(
            err.contains("orders/2@41") && err.contains("column city"),
            "{err}"
        );
    }

    #[test]
    fn timestamps_become_clickhouse_dates_and_datetimes() {
        assert_eq!(
            date_of("2026-11-23T01:02:03Z").as_deref(),
            Some("2026-11-23")
        );
        assert_eq!(date_of("23/11/2026"), None);
        assert_eq!(
            datetime_of("2026-11-23T01:02:03.123456Z").as_deref(),
            Some("2026-11-23 01:02:03")
        );
        assert_eq!(datetime_of("2026-11-23T01:02:03+02:00"), None);
    }
}
