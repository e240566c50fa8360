//! Rows and messages to Debezium change-event records (pure).
//!
//! The value is Debezium's PostgreSQL envelope with schemas disabled, field for field as the
//! connector writes it (`before`, `after`, `source`, `op`, `ts_ms`, `transaction`); the key is
//! the primary key as a JSON object (`{"id": 7}`); topics are `<prefix>.<schema>.<table>`.

use serde_json::{Map, Value, json};
use strangler_bus::OutgoingRecord;

use crate::pgoutput::Cell;
use crate::value::{UNAVAILABLE, base64, to_json};

/// Debezium's `source.connector` for PostgreSQL; kept so consumers that switch on it still work.
pub const CONNECTOR: &str = "postgresql";

/// A captured table: its columns in attribute order and its primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Table oid.
    pub oid: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Columns: name, type oid, and the type as SQL (`format_type`, for casts).
    pub columns: Vec<(String, u32, String)>,
    /// Primary key columns, in key order; empty when the table has none (key = null).
    pub key: Vec<String>,
    /// Destination topic.
    pub topic: String,
}

impl TableInfo {
    /// Indexes of the key columns within `columns`.
    pub fn key_indexes(&self) -> Vec<usize> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|(c, _, _)| c == k))
            .collect()
    }
}

/// The `source` block's variable parts.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// `source.name`: the topic prefix (Debezium's logical server name).
    pub name: String,
    /// Database name.
    pub db: String,
    /// Commit time in ms since the epoch.
    pub ts_ms: i64,
    /// `"false"` while streaming, `"incremental"` for snapshot reads between watermarks.
    pub snapshot: &'static str,
    /// Transaction id.
    pub tx_id: Option<u32>,
    /// LSN of the change (snapshot reads: of the high watermark).
    pub lsn: Option<u64>,
}

impl SourceInfo {
    fn json(&self, schema: &str, table: &str) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "connector": CONNECTOR,
            "name": self.name,
            "ts_ms": self.ts_ms,
            "snapshot": self.snapshot,
            "db": self.db,
            "schema": schema,
            "table": table,
            "txId": self.tx_id,
            "lsn": self.lsn,
            "xmin": null,
        })
    }
}

/// A change operation Debezium writes for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    /// `c`
    Create,
    /// `u`
    Update,
    /// `d`
    Delete,
    /// `r`
    Read,
}

impl RowOp {
    fn code(self) -> &'static str {
        match self {
            RowOp::Create => "c",
            RowOp::Update => "u",
            RowOp::Delete => "d",
            RowOp::Read => "r",
        }
    }
}

/// A row as a JSON object, columns named by `names` with their type oids.
pub fn row_json(names: &[(String, u32)], cells: &[Cell]) -> Map<String, Value> {
    names
        .iter()
        .zip(cells)
        .map(|((name, oid), cell)| {
            let v = match cell {
                Cell::Null => Value::Null,
                Cell::Unchanged => Value::String(UNAVAILABLE.into()),
                Cell::Text(t) => to_json(*oid, t),
            };
            (name.clone(), v)
        })
        .collect()
}

/// The record key: the primary key columns of `row` as a JSON object; `None` without a key.
pub fn key_of(key: &[String], row: &Map<String, Value>) -> Option<Vec<u8>> {
    if key.is_empty() {
        return None;
    }
    let obj: Map<String, Value> = key
        .iter()
        .map(|k| (k.clone(), row.get(k).cloned().unwrap_or(Value::Null)))
        .collect();
    Some(serde_json::to_vec(&obj).expect("a key always serializes"))
}

/// A row change event.
pub fn change(
    table: &TableInfo,
    op: RowOp,
    before: Option<Map<String, Value>>,
    after: Option<Map<String, Value>>,
    source: &SourceInfo,
    now_ms: i64,
) -> OutgoingRecord {
    let key_row = after.as_ref().or(before.as_ref());
    let key = key_row.and_then(|r| key_of(&table.key, r));
    let value = json!({
        "before": before.map(Value::Object),
        "after": after.map(Value::Object),
        "source": source.json(&table.schema, &table.table),
        "op": op.code(),
        "ts_ms": now_ms,
        "transaction": null,
    });
    OutgoingRecord {
        topic: table.topic.clone(),
        key,
        value: Some(serde_json::to_vec(&value).expect("an event always serializes")),
        headers: Vec::new(),
        timestamp_ms: Some(source.ts_ms),
    }
}

/// The tombstone that follows a delete: the delete's key, no value.
pub fn tombstone(delete: &OutgoingRecord) -> OutgoingRecord {
    OutgoingRecord {
        topic: delete.topic.clone(),
        key: delete.key.clone(),
        value: None,
        headers: Vec::new(),
        timestamp_ms: delete.timestamp_ms,
    }
}

/// A truncate event (op `t`): no rows, no key.
pub fn truncate(table: &TableInfo, source: &SourceInfo, now_ms: i64) -> OutgoingRecord {
    let value = json!({
        "source": source.json(&table.schema, &table.table),
        "op": "t",
        "ts_ms": now_ms,
    });
    OutgoingRecord {
        topic: table.topic.clone(),
        key: None,
        value: Some(serde_json::to_vec(&value).expect("an event always serializes")),
        headers: Vec::new(),
        timestamp_ms: Some(source.ts_ms),
    }
}

/// A logical decoding message event (op `m`) on `topic`, content base64 as Debezium writes it.
pub fn message(
    topic: &str,
    prefix: &str,
    content: &[u8],
    source: &SourceInfo,
    now_ms: i64,
) -> OutgoingRecord {
    let value = json!({
        "source": source.json("", ""),
        "op": "m",
        "ts_ms": now_ms,
        "message": { "prefix": prefix, "content": base64(content) },
    });
    OutgoingRecord {
        topic: topic.to_string(),
        key: Some(serde_json::to_vec(&json!({ "prefix": prefix })).expect("a key serializes")),
        value: Some(serde_json::to_vec(&value).expect("an event always serializes")),
        headers: Vec::new(),
        timestamp_ms: Some(source.ts_ms),
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
