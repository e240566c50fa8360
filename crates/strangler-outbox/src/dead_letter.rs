//! Rows the relay cannot publish: the typed event that logs and counts them in one place.

use crate::OutboxRow;

/// A row that cannot be published, with the reason; it goes to the dead-letter table (in the
/// same transaction that deletes or marks it in the outbox) or stops the relay.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// The row as read.
    pub row: OutboxRow,
    /// Why it cannot be published.
    pub reason: String,
}

impl BadRow {
    /// Logs the row loudly: someone must look at it.
    pub(crate) fn log(&self, table: &str, stopping: bool) {
        tracing::error!(
            outbox = table,
            seq = self.row.seq,
            id = self.row.id.as_deref().unwrap_or("?"),
            aggregate_type = self.row.aggregate_type.as_deref().unwrap_or("?"),
            reason = %self.reason,
            stopping,
            "outbox row cannot be published"
        );
    }

    /// The extra columns as a JSON object, for the dead-letter table's `headers` column.
    pub(crate) fn headers_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .row
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.clone().map_or(serde_json::Value::Null, Into::into),
                )
            })
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// The id to name in messages: the event id, else the seq.
    pub(crate) fn display_id(&self) -> String {
        self.row
            .id
            .clone()
            .unwrap_or_else(|| format!("seq {}", self.row.seq))
    }
}
