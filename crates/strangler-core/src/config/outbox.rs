//! `[legacy]` and `[outbox]`: the legacy database and the outbox table contract.

use serde::Deserialize;

use super::Validator;

/// The legacy application's database, which holds the outbox table.
#[derive(Debug, Clone, Deserialize)]
pub struct LegacyConfig {
    /// Database URL: `postgres://...`, `mysql://...` (MySQL and MariaDB) or `sqlite://...`.
    pub url: String,
}

impl LegacyConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.url(
            "legacy.url",
            &self.url,
            &["postgres", "postgresql", "mysql", "mariadb", "sqlite"],
        );
    }
}

/// The outbox table and how the relay carries its rows to the bus.
///
/// Column names default to Debezium's Outbox Event Router (`table.field.event.*` options).
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxConfig {
    /// Outbox table name, optionally schema-qualified.
    #[serde(default = "default_table")]
    pub table: String,
    /// Column names of the outbox table.
    #[serde(default)]
    pub columns: OutboxColumns,
    /// Topic for each event; `{aggregatetype}` (braces without `$`, so `${ENV}` interpolation leaves it alone) is replaced by the row's aggregate type.
    #[serde(default = "default_topic_template")]
    pub topic_template: String,
    /// What the record value holds: the `payload` column (Debezium's default) or the full `envelope`.
    #[serde(default)]
    pub value: OutboxValue,
    /// What happens to a row after its delivery is confirmed.
    #[serde(default)]
    pub retention: OutboxRetention,
    /// What happens to a row that cannot be published (payload not JSON, no aggregate id).
    #[serde(default)]
    pub bad_rows: BadRowPolicy,
    /// Extra columns sent as record headers (for example `tracingspancontext`).
    #[serde(default)]
    pub additional_headers: Vec<String>,
    /// Rows read per batch.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Delivery reports awaited at most at once.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Pause between polls when the outbox is empty.
    #[serde(default = "default_poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Table, next to the outbox, that receives rows the relay cannot publish, with the reason.
    #[serde(default = "default_dead_letter_table")]
    pub dead_letter_table: String,
    /// SQLite only: how long a relay's lease on the outbox lasts without renewal; a standby takes
    /// over once it expires.
    #[serde(default = "default_lease_ttl_ms")]
    pub lease_ttl_ms: u64,
    /// MySQL/MariaDB only: how long a gap in `seq` must persist, with no uncommitted row in it,
    /// before the relay treats it as a rolled-back insert and moves past it.
    #[serde(default = "default_gap_grace_ms")]
    pub gap_grace_ms: u64,
    /// Longest pause between retries while the broker or a database is away.
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
}

/// Outbox column names (Debezium's `table.field.event.*`).
#[derive(Debug, Clone, Deserialize)]
pub struct OutboxColumns {
    /// Event id column (uuid); `table.field.event.id`.
    #[serde(default = "col_id")]
    pub id: String,
    /// Aggregate type column; `route.by.field`.
    #[serde(default = "col_aggregate_type")]
    pub aggregate_type: String,
    /// Aggregate id column, used as the record key; `table.field.event.key`.
    #[serde(default = "col_aggregate_id")]
    pub aggregate_id: String,
    /// Event type column; `table.field.event.type`.
    #[serde(default = "col_type")]
    pub event_type: String,
    /// Payload column (JSON); `table.field.event.payload`.
    #[serde(default = "col_payload")]
    pub payload: String,
    /// Optional timestamp column; `table.field.event.timestamp`.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Optional tracing context column, sent as header `tracingspancontext`
    /// (Debezium's `tracingspancontext`).
    #[serde(default)]
    pub tracing_span_context: Option<String>,
    /// Published marker column, set when `retention = "mark"`.
    #[serde(default = "col_published_at")]
    pub published_at: String,
}

impl Default for OutboxColumns {
    fn default() -> Self {
        OutboxColumns {
            id: col_id(),
            aggregate_type: col_aggregate_type(),
            aggregate_id: col_aggregate_id(),
            event_type: col_type(),
            payload: col_payload(),
            timestamp: None,
            tracing_span_context: None,
            published_at: col_published_at(),
        }
    }
}

/// Debezium's Outbox Event Router column names.
fn col_id() -> String {
    "id".into()
}
fn col_aggregate_type() -> String {
    "aggregatetype".into()
}
fn col_aggregate_id() -> String {
    "aggregateid".into()
}
fn col_type() -> String {
    "type".into()
}
fn col_payload() -> String {
    "payload".into()
}
/// The marker column of strangler's outbox DDL (`migrations/outbox`).
fn col_published_at() -> String {
    "published_at".into()
}

/// Record value layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxValue {
    /// The payload column only, as Debezium's router writes by default.
    #[default]
    Payload,
    /// A JSON object with every outbox field.
    Envelope,
}

/// What the relay does with a published row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxRetention {
    /// Delete the row once its delivery is confirmed.
    #[default]
    Delete,
    /// Keep the row and set its published marker.
    Mark,
}

/// What the relay does with a row it cannot publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BadRowPolicy {
    /// Move it to the dead-letter table with the reason, and go on.
    #[default]
    DeadLetter,
    /// Stop the relay with a clear error.
    Stop,
}

/// Debezium's router reads a table named `outbox`.
fn default_table() -> String {
    "outbox".into()
}

/// Debezium's router default `route.topic.replacement`.
fn default_topic_template() -> String {
    "outbox.event.{aggregatetype}".into()
}

/// 500 rows: one round trip carries ~500 KB of 1 KB payloads.
fn default_batch_size() -> u32 {
    500
}

/// 10,000 in flight keeps librdkafka's pipeline full without unbounded memory.
fn default_max_in_flight() -> u32 {
    10_000
}

/// 100 ms: an idle outbox costs ten cheap queries a second.
fn default_poll_interval_ms() -> u64 {
    100
}

/// strangler's outbox DDL names it after the outbox table (`migrations/outbox`).
fn default_dead_letter_table() -> String {
    "outbox_dead_letter".into()
}

/// Ten seconds: a crashed relay's standby takes over within that, and a busy SQLite writer
/// renews well inside it.
fn default_lease_ttl_ms() -> u64 {
    10_000
}

/// One second: far longer than the instant between drawing an AUTO_INCREMENT value and writing
/// its row, so an insert still in progress is never mistaken for a rollback.
fn default_gap_grace_ms() -> u64 {
    1_000
}

/// Thirty seconds: a broker back from a restart is noticed within that.
fn default_retry_max_ms() -> u64 {
    30_000
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            table: default_table(),
            columns: OutboxColumns::default(),
            topic_template: default_topic_template(),
            value: OutboxValue::default(),
            retention: OutboxRetention::default(),
            bad_rows: BadRowPolicy::default(),
            additional_headers: Vec::new(),
            batch_size: default_batch_size(),
            max_in_flight: default_max_in_flight(),
            poll_interval_ms: default_poll_interval_ms(),
            dead_letter_table: default_dead_letter_table(),
            lease_ttl_ms: default_lease_ttl_ms(),
            gap_grace_ms: default_gap_grace_ms(),
            retry_max_ms: default_retry_max_ms(),
        }
    }
}

impl OutboxConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.at_least("outbox.batch_size", u64::from(self.batch_size), 1);
        v.at_least("outbox.max_in_flight", u64::from(self.max_in_flight), 1);
        let ident_ok = |s: &str| {
            !s.is_empty()
                && s.split('.').all(|p| {
                    !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                })
        };
        v.at_least("outbox.lease_ttl_ms", self.lease_ttl_ms, 1_000);
        v.at_least("outbox.retry_max_ms", self.retry_max_ms, 100);
        if !ident_ok(&self.dead_letter_table) {
            v.problem(
                "outbox.dead_letter_table",
                format!("`{}` is not a table name", self.dead_letter_table),
                "use letters, digits and _ (schema.table allowed)",
            );
        }
        if !ident_ok(&self.table) {
            v.problem(
                "outbox.table",
                format!("`{}` is not a table name", self.table),
                "use letters, digits and _ (schema.table allowed)",
            );
        }
        let cols = &self.columns;
        for (key, col) in [
            ("outbox.columns.id", &cols.id),
            ("outbox.columns.aggregate_type", &cols.aggregate_type),
            ("outbox.columns.aggregate_id", &cols.aggregate_id),
            ("outbox.columns.event_type", &cols.event_type),
            ("outbox.columns.payload", &cols.payload),
        ]
        .into_iter()
        .chain(
            cols.timestamp
                .iter()
                .map(|t| ("outbox.columns.timestamp", t)),
        )
        .chain(
            cols.tracing_span_context
                .iter()
                .map(|t| ("outbox.columns.tracing_span_context", t)),
        )
        .chain(std::iter::once((
            "outbox.columns.published_at",
            &cols.published_at,
        )))
        .chain(
            self.additional_headers
                .iter()
                .map(|h| ("outbox.additional_headers", h)),
        ) {
            if !ident_ok(col) || col.contains('.') {
                v.problem(
                    key,
                    format!("`{col}` is not a column name"),
                    "use letters, digits and _",
                );
            }
        }
        if self.topic_template.trim().is_empty() {
            v.problem(
                "outbox.topic_template",
                "the topic template is empty",
                "use for example outbox.event.{aggregatetype}",
            );
        }
    }
}
