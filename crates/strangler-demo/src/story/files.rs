//! The files the demo writes into its folder, so a user can open, change and rerun them.

/// Which SQL the `OrderPlaced` handler carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotalSql {
    /// `total` from the event: right.
    Correct,
    /// `total = subtotal`: the classic bug, tax dropped.
    TaxDropped,
}

/// The order-summary projection, with the `OrderPlaced` handler's total as given.
pub fn projection(total: TotalSql, topic: &str) -> String {
    let (total_expr, total_param) = match total {
        TotalSql::Correct => (":total", r#", total = "/total""#),
        TotalSql::TaxDropped => (":subtotal", ""),
    };
    format!(
        r#"# Order summary read model, fed by the legacy outbox's order events.
name = "order_summary"
version = 1
topics = ["{topic}"]
tables = ["orders"]

[setup]
all = """
CREATE TABLE IF NOT EXISTS {{{{orders}}}} (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    subtotal    DOUBLE PRECISION NOT NULL,
    tax         DOUBLE PRECISION NOT NULL,
    total       DOUBLE PRECISION NOT NULL,
    items       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
)
"""

[policy]
on_failure = "park-key"
max_retries = 3
retry_backoff_ms = 50

[batch]
max_events = 500
max_wait_ms = 50

[[handler]]
event_type = "OrderPlaced"
sql = """
INSERT INTO {{{{orders}}}} (id, customer_id, status, currency, subtotal, tax, total, items, created_at, updated_at)
VALUES (:id, :customer_id, 'processing', :currency, :subtotal, :tax, {total_expr}, :items, :at, :at)
ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id, status = excluded.status,
    currency = excluded.currency, subtotal = excluded.subtotal, tax = excluded.tax,
    total = excluded.total, items = excluded.items, updated_at = excluded.updated_at
"""
params = {{ id = "key", customer_id = "/customer_id", currency = "/currency", subtotal = "/subtotal", tax = "/tax"{total_param}, items = "/items", at = "/occurred_at" }}

[[handler]]
event_type = "OrderShipped"
sql = "UPDATE {{{{orders}}}} SET status = 'dispatched', updated_at = :at WHERE id = :id"
params = {{ id = "key", at = "/occurred_at" }}

[[handler]]
event_type = "OrderCancelled"
sql = "UPDATE {{{{orders}}}} SET status = 'cancelled', updated_at = :at WHERE id = :id"
params = {{ id = "key", at = "/occurred_at" }}

[[route]]
path = "/orders/{{id}}"
sql = """
SELECT id, customer_id, status, subtotal, tax, total, currency, items, created_at, updated_at
FROM {{{{orders}}}} WHERE id = :id
"""
result = "one"
json_columns = ["items"]
"#
    )
}

/// Where the demo's state lives and which bus carries its events.
pub struct Wiring<'a> {
    /// The legacy database (it holds the outbox).
    pub legacy_url: &'a str,
    /// strangler's control store.
    pub control_url: &'a str,
    /// The read store the projection writes to.
    pub read_url: &'a str,
    /// The outbox table, schema-qualified on PostgreSQL so the relay's lease is the demo's own.
    pub outbox_table: &'a str,
    /// Dead letters beside the outbox.
    pub dead_letter_table: &'a str,
    /// `{aggregatetype}` expands to `order`.
    pub topic_template: &'a str,
    /// Kafka brokers; `None` runs the built-in log.
    pub kafka: Option<&'a str>,
    /// Kafka consumer group prefix.
    pub group_prefix: &'a str,
}

/// The demo's strangler configuration: its stores, its bus, one capability.
pub fn config(
    w: &Wiring<'_>,
    legacy_api: &str,
    new_api: &str,
    proxy_listen: &str,
    admin_token: &str,
) -> String {
    let bus = match w.kafka {
        None => "kind = \"log\"".to_string(),
        Some(brokers) => format!(
            "kind = \"kafka\"\n\n[bus.kafka]\nbrokers = \"{brokers}\"\n\
             # A demo wants each event in the read model within a second: fetch without waiting\n\
             # for a fuller batch (librdkafka's default waits up to 500 ms).\n\
             properties = {{ \"fetch.wait.max.ms\" = \"20\" }}"
        ),
    };
    // Kafka adds a network hop and a consumer's fetch cycle to every event's way.
    let settle_ms: u64 = if w.kafka.is_some() { 5_000 } else { 2_000 };
    let settle_s = settle_ms / 1000;
    let mirror_timeout_ms = settle_ms + 6_000;
    let Wiring {
        legacy_url,
        control_url,
        read_url,
        outbox_table,
        dead_letter_table,
        topic_template,
        group_prefix,
        ..
    } = w;
    format!(
        r#"# Written by `strangler demo`; every key is described in docs/configuration.md.
[store]
url = "{control_url}"

[legacy]
url = "{legacy_url}"

[outbox]
table = "{outbox_table}"
dead_letter_table = "{dead_letter_table}"
topic_template = "{topic_template}"

[bus]
{bus}

[projections]
dir = "projections"
read_store_url = "{read_url}"
group_prefix = "{group_prefix}"

[proxy]
listen = "{proxy_listen}"
legacy_url = "{legacy_api}"
new_url = "{new_api}"
mode_poll_ms = 100

[[capability]]
name = "order-summary"
routes = ["GET /orders/{{id}}"]
rules = "shadow-rules/orders.toml"
class = "operational"
freshness_budget_ms = 60000
mismatch_budget = 0.01
min_sample = 200
# Every service of the demo shares one machine, so the latency gap measures that machine's load
# more than the read path: a busy laptop or CI runner put it just over the 50 ms default.
max_p99_delta_ms = 250
# The pipeline (relay poll, bus, projector batch) takes a few hundred ms: re-ask a differing
# answer once after {settle_s} seconds before calling it drift.
settle_ms = {settle_ms}
mirror_timeout_ms = {mirror_timeout_ms}
# Copies wait through the settle delay; room for a few seconds of demo traffic.
mirror_max_in_flight = 1024
canary_key_param = "id"

# The admin API and dashboard (`strangler demo --keep-running` opens them on a free port).
[admin]
listen = "127.0.0.1:9090"

[[admin.tokens]]
name = "demo"
token = "{admin_token}"
role = "operator"
"#
    )
}

/// The comparison rules the demo uses: the repository's `shadow-rules/orders.toml`.
pub const RULES: &str = include_str!("../../../../shadow-rules/orders.toml");
