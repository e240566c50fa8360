//! The shape of a projection file (`projections/*.toml`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::policy::FailurePolicy;
use crate::sink::{SinkDef, SinkOp};

/// One projection: where its events come from, the tables it owns, and the SQL each event runs.
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectionDef {
    /// Projection name: letters, digits and `_`; checkpoints and routes are keyed by it.
    pub name: String,
    /// Version; tables are physically `<table>_v<version>` so a new version builds beside the old.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Topics (Kafka topics or built-in log topics) the projection consumes.
    pub topics: Vec<String>,
    /// Where the effects go: the SQL read store (default), Redis or ClickHouse
    /// ([`crate::sink::config`]).
    #[serde(default)]
    pub sink: SinkDef,
    /// Logical table names this projection owns; SQL refers to them as `{{name}}`. SQL sinks only.
    #[serde(default)]
    pub tables: Vec<String>,
    /// DDL that creates the tables, per store kind.
    #[serde(default)]
    pub setup: Setup,
    /// Event types that are consumed and deliberately ignored (no handler, no dead letter).
    #[serde(default)]
    pub ignore_event_types: Vec<String>,
    /// What to do with an event that cannot be applied.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// How many events go in one transaction.
    #[serde(default)]
    pub batch: BatchConfig,
    /// How long applied event ids are remembered for deduplication, in hours (`[dedup] mode =
    /// "table"`).
    #[serde(default = "default_dedup_retention_hours")]
    pub dedup_retention_hours: u64,
    /// How a redelivered event is recognised.
    #[serde(default)]
    pub dedup: DedupConfig,
    /// Lag that has not moved for this many seconds while events wait makes the projection unhealthy.
    #[serde(default = "default_stall_after_secs")]
    pub stall_after_secs: u64,
    /// Per-key replay (`strangler project replay-keys`, `strangler reconcile --repair`).
    #[serde(default)]
    pub replay: ReplayConfig,
    /// SQL run for each event type, in file order.
    #[serde(default, rename = "handler")]
    pub handlers: Vec<Handler>,
    /// Read API routes served over this projection's tables.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteDef>,
}

/// Version 1 unless a file says otherwise.
fn default_version() -> u32 {
    1
}

/// A week: longer than any realistic relay redelivery window.
fn default_dedup_retention_hours() -> u64 {
    168
}

/// A minute without progress while events wait is worth a page.
fn default_stall_after_secs() -> u64 {
    60
}

/// DDL per store kind: `all` runs on both; `postgres`/`sqlite` run on one (after `all`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Setup {
    /// DDL for every store kind.
    #[serde(default)]
    pub all: Option<String>,
    /// DDL for PostgreSQL read stores.
    #[serde(default)]
    pub postgres: Option<String>,
    /// DDL for SQLite read stores.
    #[serde(default)]
    pub sqlite: Option<String>,
}

/// How one key is rebuilt on its own.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReplayConfig {
    /// Statements that remove one key's rows before its events are applied again, each with
    /// `:key` bound to the key, for example `DELETE FROM {{orders}} WHERE order_id = :key`.
    /// Without them a per-key replay applies the key's events over its current rows, which
    /// repairs upserting projections but leaves rows of keys that have no events.
    #[serde(default)]
    pub reset_key: Vec<String>,
}

/// The failure policy and its retry budget.
#[derive(Debug, Clone, Deserialize)]
pub struct PolicyConfig {
    /// `stop`, `skip`, `retry-then-stop`, `retry-then-skip` or `park-key`.
    #[serde(default)]
    pub on_failure: FailurePolicy,
    /// Attempts after the first for the `retry-then-*` policies.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Pause between retries, in milliseconds.
    #[serde(default = "default_retry_backoff_ms")]
    pub retry_backoff_ms: u64,
}

/// Three retries ride out a deadlock or a brief lock timeout.
fn default_max_retries() -> u32 {
    3
}

/// 100 ms: long enough for a conflicting transaction to finish.
fn default_retry_backoff_ms() -> u64 {
    100
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            on_failure: FailurePolicy::default(),
            max_retries: default_max_retries(),
            retry_backoff_ms: default_retry_backoff_ms(),
        }
    }
}

/// `[dedup]`: how an event the relay delivered twice is recognised, so it applies once.
#[derive(Debug, Clone, Deserialize)]
pub struct DedupConfig {
    /// `table` or `window` ([`DedupMode`]).
    #[serde(default)]
    pub mode: DedupMode,
    /// For `window`: how many offsets before an event, in its own partition, are searched for its
    /// id.
    #[serde(default = "default_dedup_window")]
    pub window: u64,
}

/// Where applied event ids are remembered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupMode {
    /// Every applied id is written to the read store in the batch's transaction and kept for
    /// `dedup_retention_hours`; a duplicate is dropped whatever partition it arrives on.
    #[default]
    Table,
    /// An event is a duplicate when the same id was consumed in the same partition within
    /// `window` offsets before it. Nothing is written per event: the ids are held in memory and
    /// read back from the bus when a partition is claimed.
    Window,
}

/// 100,000 offsets: ten times the relay's default `outbox.max_in_flight` (10,000), the most
/// events a relay can have published without marking them when it dies.
fn default_dedup_window() -> u64 {
    100_000
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            mode: DedupMode::default(),
            window: default_dedup_window(),
        }
    }
}

/// Batch bounds: a batch commits when it holds `max_events` or `max_wait_ms` has passed.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchConfig {
    /// Most events in one transaction.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Longest a batch waits to fill, in milliseconds.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
}

/// 10,000 events: catching up on PostgreSQL ran at 1.2-1.5x the events per second of 2,000
/// (docs/BENCHMARKS.md, Projector, session 9), and a failing event no longer sends the whole
/// batch one event at a time (it is halved first). Light traffic still commits within
/// `max_wait_ms`.
fn default_max_events() -> usize {
    10_000
}

/// 100 ms keeps the read model within a tenth of a second of the bus when traffic is light.
fn default_max_wait_ms() -> u64 {
    100
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: default_max_events(),
            max_wait_ms: default_max_wait_ms(),
        }
    }
}

/// SQL for one event type.
#[derive(Debug, Clone, Deserialize)]
pub struct Handler {
    /// The event type (the `type` header), for example `OrderPlaced`.
    pub event_type: String,
    /// One SQL statement with `:name` parameters and `{{table}}` names (SQL sinks).
    #[serde(default)]
    pub sql: String,
    /// Where each `:name` comes from; a name not listed reads the payload field `/name`.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Other sinks: what the handler does (`hset`, `set`, `del`, `sadd`, `srem`, `insert`).
    #[serde(default)]
    pub op: Option<SinkOp>,
    /// Redis: the key, a template with `{source}` parts, for example `order:{key}`.
    #[serde(default)]
    pub key: Option<String>,
    /// Other sinks: field (hash field, JSON member or column) to value source.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// Redis `sadd`/`srem`: the member's source.
    #[serde(default)]
    pub member: Option<String>,
    /// Redis: expiry of the written key in seconds, over the sink's `ttl_secs` (0: none).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
}

/// One read API route.
#[derive(Debug, Clone, Deserialize)]
pub struct RouteDef {
    /// Path with `{name}` captures, for example `/orders/{id}`.
    pub path: String,
    /// A SELECT with `:name` parameters (path captures or query parameters) and `{{table}}` names
    /// (SQL sinks).
    #[serde(default)]
    pub sql: String,
    /// Redis sinks: the key to look up, a template of path captures and query parameters, for
    /// example `order:{id}`; a hash or a JSON string answers an object, a set a sorted list.
    #[serde(default)]
    pub key: Option<String>,
    /// `one` (an object, 404 when absent) or `many` (a list).
    #[serde(default)]
    pub result: RouteResult,
    /// Query-string parameters the SQL may use; absent ones bind NULL.
    #[serde(default)]
    pub query: Vec<String>,
    /// Columns holding JSON text to return as JSON.
    #[serde(default)]
    pub json_columns: Vec<String>,
}

/// Whether a route answers one object or a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteResult {
    /// The first row as an object; 404 when there is none.
    #[default]
    One,
    /// All rows as a list.
    Many,
}
