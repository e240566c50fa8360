//! The files the suite writes: strangler's configuration, the projection and the comparison rules.

/// Addresses and URLs a run uses.
pub struct Urls {
    /// Legacy database (orders and outbox).
    pub legacy_db: String,
    /// strangler's control store.
    pub control_db: String,
    /// The read store.
    pub read_db: String,
    /// Kafka bootstrap.
    pub brokers: String,
    /// Proxy listen address.
    pub proxy: String,
    /// Read API listen address.
    pub serve: String,
    /// Legacy read API.
    pub legacy_api: String,
    /// The shim in front of the read API.
    pub new_api: String,
}

/// `strangler.toml`.
pub fn config(u: &Urls) -> String {
    format!(
        r#"# Written by the fault suite (crates/strangler-fault).
[store]
url = "{control}"

[legacy]
url = "{legacy}"

[outbox]
poll_interval_ms = 20
batch_size = 500
retry_max_ms = 1000

[bus]
kind = "kafka"

[bus.kafka]
brokers = "{brokers}"
# A SIGKILLed projector leaves a member behind in its consumer group until its session times
# out; 6 s instead of librdkafka's 45 s keeps its partitions from idling for most of a run.
properties = {{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "1000" }}

[projections]
dir = "projections"
read_store_url = "{read}"

[serve]
listen = "{serve}"

[proxy]
listen = "{proxy}"
legacy_url = "http://{legacy_api}"
new_url = "http://{new_api}"
mode_poll_ms = 100
stats_flush_ms = 250
upstream_timeout_ms = 10000

[[capability]]
name = "orders"
routes = ["GET /orders/{{id}}"]
rules = "rules.toml"
class = "operational"
freshness_budget_ms = 60000
settle_ms = 500
mirror_timeout_ms = 2000
mirror_max_in_flight = 64
max_body_bytes = 65536

[[reconcile]]
name = "orders"

[reconcile.legacy]
query = "SELECT id, customer, status, total_cents, version, version AS events, updated_at FROM orders"
key = "id"

[reconcile.projection]
query = "SELECT id, customer, status, total_cents, version, events, updated_at FROM orders_v1"
key = "id"

[telemetry]
shutdown_grace_ms = 20000
"#,
        control = u.control_db,
        legacy = u.legacy_db,
        brokers = u.brokers,
        read = u.read_db,
        serve = u.serve,
        proxy = u.proxy,
        legacy_api = u.legacy_api,
        new_api = u.new_api,
    )
}

/// The orders projection. `events` counts the events applied to a row; legacy's `version` counts
/// the events written for it, so a lost or doubly applied event shows as drift in reconcile.
pub const PROJECTION: &str = r#"name = "orders"
version = 1
topics = ["outbox.event.order"]
tables = ["orders"]

[setup]
postgres = """
CREATE TABLE IF NOT EXISTS {{orders}} (
    id          BIGINT PRIMARY KEY,
    customer    TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    total_cents BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    events      BIGINT NOT NULL,
    updated_at  TEXT   NOT NULL
)
"""

[policy]
on_failure = "park-key"

[batch]
max_events = 500
max_wait_ms = 50

[[handler]]
event_type = "OrderPlaced"
sql = """
INSERT INTO {{orders}} (id, customer, status, total_cents, version, events, updated_at)
VALUES (CAST(:id AS BIGINT), :customer, :status, :total_cents, :version, 1, :updated_at)
ON CONFLICT (id) DO UPDATE SET events = {{orders}}.events + 1
"""
params = { id = "key" }

[[handler]]
event_type = "OrderChanged"
sql = """
UPDATE {{orders}} SET status = :status, version = :version, updated_at = :updated_at,
    events = events + 1
WHERE id = CAST(:id AS BIGINT)
"""
params = { id = "key" }

[[route]]
path = "/orders/{id}"
sql = "SELECT id, customer, status, total_cents, version, updated_at FROM {{orders}} WHERE id = CAST(:id AS BIGINT)"
result = "one"
"#;

/// Comparison rules: legacy's request id is noise; its `updated_at` tells lag from drift.
pub const RULES: &str = r#"capability = "orders"
owner = "fault-suite"

[http]
status = true

[freshness]
legacy_changed_at = "/updated_at"

[[ignore]]
name = "legacy-request-id"
reason = "legacy echoes a per-request id; the new path has none"
paths = ["/request_id"]
"#;
