//! The `[sink]` table of a projection file and the sink fields of handlers and routes.
//!
//! ```toml
//! [sink]
//! kind = "redis"                      # "sql" (default), "redis" or "clickhouse"
//! prefix = "shop:orders"              # Redis: every key lives under this prefix
//! ttl_secs = 0                        # Redis: default expiry of written keys (0 = none)
//! # url = "redis://127.0.0.1:6379/0"  # else [projections.sinks.redis] url of the config
//!
//! [[handler]]
//! event_type = "OrderPlaced"
//! op = "hset"                         # hset, set, del, sadd, srem (Redis); insert (ClickHouse)
//! key = "order:{key}"                 # {source}: key, event_id, /json/pointer, header:NAME, ...
//! fields = { status = "/status", total = "/total" }
//! ```

use serde::Deserialize;

/// Which store a projection writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// The SQL read store (`[projections] read_store_url`): handlers are SQL.
    #[default]
    Sql,
    /// Redis: handlers set, update and delete keys, hashes and sets.
    Redis,
    /// ClickHouse: handlers insert rows, appended or aggregated.
    #[serde(rename = "clickhouse")]
    ClickHouse,
}

impl SinkKind {
    /// The spelling in files.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Sql => "sql",
            SinkKind::Redis => "redis",
            SinkKind::ClickHouse => "clickhouse",
        }
    }
}

/// `[sink]`: the kind and the target. Keys of other kinds are refused by validation.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SinkDef {
    /// `sql` (default), `redis` or `clickhouse`.
    #[serde(default)]
    pub kind: SinkKind,
    /// Redis or ClickHouse URL; absent takes `[projections.sinks.<kind>] url` from the config.
    #[serde(default)]
    pub url: Option<String>,
    /// Redis: the key prefix; keys are `<prefix>:v<version>.<build>:<key>` and readers follow
    /// `<prefix>:ptr`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Redis: default expiry of keys a handler writes, in seconds (0 or absent: none).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// ClickHouse: the database; absent takes `[projections.sinks.clickhouse] database`.
    #[serde(default)]
    pub database: Option<String>,
    /// ClickHouse: the logical table; physically `<table>_v<version>`.
    #[serde(default)]
    pub table: Option<String>,
    /// ClickHouse: `append` (one row per event) or `aggregate` (rows summed per key columns).
    #[serde(default)]
    pub shape: Option<ClickHouseShape>,
    /// ClickHouse: the columns handlers fill, in table order.
    #[serde(default)]
    pub columns: Vec<ClickHouseColumn>,
    /// ClickHouse: the sorting key (for `aggregate`, the group key).
    #[serde(default)]
    pub order_by: Vec<String>,
    /// ClickHouse `aggregate`: the columns summed per `order_by` key.
    #[serde(default)]
    pub sum: Vec<String>,
    /// ClickHouse `aggregate`: the name of a column counting the events of each group (for example
    /// `orders`); absent, the view has no count.
    #[serde(default)]
    pub count: Option<String>,
}

/// How a ClickHouse projection's rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClickHouseShape {
    /// One row per event.
    Append,
    /// Rows summed per `order_by` key (for example revenue per day and region).
    Aggregate,
}

/// One ClickHouse column.
#[derive(Debug, Clone, Deserialize)]
pub struct ClickHouseColumn {
    /// Column name.
    pub name: String,
    /// ClickHouse type, for example `Date`, `String`, `Int64`, `Decimal(18, 2)`.
    #[serde(rename = "type")]
    pub ty: String,
}

/// What a non-SQL handler does for its event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkOp {
    /// Redis: set the hash `key`'s `fields` (a field whose value is null is removed).
    Hset,
    /// Redis: set the string `key` to the JSON object of `fields`.
    Set,
    /// Redis: delete `key`.
    Del,
    /// Redis: add `member` to the set `key`.
    Sadd,
    /// Redis: remove `member` from the set `key`.
    Srem,
    /// ClickHouse: insert one row of `fields` (column = source).
    Insert,
}

impl SinkOp {
    /// The spelling in files.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkOp::Hset => "hset",
            SinkOp::Set => "set",
            SinkOp::Del => "del",
            SinkOp::Sadd => "sadd",
            SinkOp::Srem => "srem",
            SinkOp::Insert => "insert",
        }
    }

    /// The sink kind the op belongs to.
    pub fn kind(self) -> SinkKind {
        match self {
            SinkOp::Insert => SinkKind::ClickHouse,
            _ => SinkKind::Redis,
        }
    }
}
