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
pub fn projection(total: TotalSql) -> String {
    let (total_expr, total_param) = match total {
        TotalSql::Correct => (":total", r#", total = "/total""#),
        TotalSql::TaxDropped => (":subtotal", ""),
    };
    format!(
        r#"# Order summary read model, fed by the legacy outbox's order events.
name = "order_summary"
version = 1
topics = ["outbox.event.order"]
tables = ["orders"]

[setup]
all = """
CREATE TABLE IF NOT EXISTS {{{{orders}}}} (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    status      TEXT NOT NULL,
    currency    TEXT NOT NULL,
    subtotal    REAL NOT NULL,
    tax         REAL NOT NULL,
    total       REAL NOT NULL,
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

/// The demo's strangler configuration: SQLite stores, the built-in log, one capability.
pub fn config(dir: &str, legacy_url: &str, new_url: &str, proxy_listen: &str) -> String {
    format!(
        r#"# Written by `strangler demo`; every key is described in README.md.
[store]
url = "sqlite://{dir}/control.db"

[legacy]
url = "sqlite://{dir}/legacy.db"

[bus]
kind = "log"

[projections]
dir = "projections"
read_store_url = "sqlite://{dir}/read.db"

[proxy]
listen = "{proxy_listen}"
legacy_url = "{legacy_url}"
new_url = "{new_url}"
mode_poll_ms = 100

[[capability]]
name = "order-summary"
routes = ["GET /orders/{{id}}"]
rules = "shadow-rules/orders.toml"
class = "operational"
freshness_budget_ms = 60000
mismatch_budget = 0.01
min_sample = 200
# The pipeline (relay poll, projector batch) takes a few hundred ms: re-ask a differing answer
# once after two seconds before calling it drift.
settle_ms = 2000
mirror_timeout_ms = 8000
# Copies wait through the settle delay; room for a few seconds of demo traffic.
mirror_max_in_flight = 1024
canary_key_param = "id"
"#
    )
}

/// The comparison rules the demo uses: the repository's `shadow-rules/orders.toml`.
pub const RULES: &str = include_str!("../../../../shadow-rules/orders.toml");
