//! The legacy write path: business change and outbox event in one transaction, on SQLite or
//! PostgreSQL.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::json;
use sqlx::postgres::PgPool;
use sqlx::sqlite::SqlitePool;
use uuid::Uuid;

const SCHEMA_SQLITE: &str = include_str!("schema.sql");
const SCHEMA_POSTGRES: &str = include_str!("schema_postgres.sql");
/// The outbox DDL strangler ships for SQLite legacy databases.
const OUTBOX_SQLITE: &str = include_str!("../../../../migrations/outbox/sqlite.sql");
/// The outbox DDL strangler ships for PostgreSQL legacy databases.
const OUTBOX_POSTGRES: &str = include_str!("../../../../migrations/outbox/postgres.sql");

/// Tax rate of the sample shop, in percent.
pub const TAX_PERCENT: i64 = 20;

/// The legacy database: the same schema and queries on SQLite or PostgreSQL.
#[derive(Clone)]
pub struct LegacyDb {
    /// Connection pool.
    pub pool: LegacyPool,
}

/// Where the legacy system keeps its data.
#[derive(Clone)]
pub enum LegacyPool {
    /// A SQLite file (the embedded demo).
    Sqlite(SqlitePool),
    /// A PostgreSQL database (`strangler demo --postgres`).
    Postgres(PgPool),
}

impl From<SqlitePool> for LegacyPool {
    fn from(p: SqlitePool) -> Self {
        LegacyPool::Sqlite(p)
    }
}

impl From<PgPool> for LegacyPool {
    fn from(p: PgPool) -> Self {
        LegacyPool::Postgres(p)
    }
}

/// Runs `$body` with `$p` bound to the concrete pool: the queries are written once, with `$n`
/// placeholders, which both SQLite and PostgreSQL accept.
macro_rules! with_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            LegacyPool::Sqlite($p) => $body,
            LegacyPool::Postgres($p) => $body,
        }
    };
}
pub(crate) use with_pool;

/// What the writer did, for the demo's narration and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderEvent {
    /// A new order.
    Placed { order_id: String },
    /// An open order shipped.
    Shipped { order_id: String },
    /// An open order cancelled.
    Cancelled { order_id: String },
}

/// Timestamps as the legacy database writes them: naive UTC with microseconds.
pub fn legacy_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

/// One order line as the writer stores it.
struct Line {
    no: i64,
    sku: String,
    qty: i64,
    price: i64,
    warehouse: String,
}

/// One outbox row.
struct OutboxEvent {
    id: String,
    aggregate_id: String,
    event_type: &'static str,
    payload: String,
}

impl OutboxEvent {
    fn new(aggregate_id: &str, event_type: &'static str, payload: &serde_json::Value) -> Self {
        OutboxEvent {
            id: Uuid::new_v4().to_string(),
            aggregate_id: aggregate_id.to_string(),
            event_type,
            payload: payload.to_string(),
        }
    }
}

/// The outbox insert: PostgreSQL's outbox has `uuid` and `jsonb` columns, SQLite's text.
fn outbox_insert(pool: &LegacyPool) -> &'static str {
    match pool {
        LegacyPool::Sqlite(_) => {
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'order', $2, $3, $4)"
        }
        LegacyPool::Postgres(_) => {
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1::uuid, 'order', $2, $3, $4::jsonb)"
        }
    }
}

/// Begins a write transaction: SQLite takes the writer lock up front so two writers never
/// deadlock on an upgrade.
macro_rules! begin_write {
    (sqlite $p:ident) => {
        $p.begin_with("BEGIN IMMEDIATE").await?
    };
    (postgres $p:ident) => {
        $p.begin().await?
    };
}

impl LegacyDb {
    /// Creates the legacy schema and the outbox table if absent.
    pub async fn open(pool: impl Into<LegacyPool>) -> sqlx::Result<LegacyDb> {
        let pool = pool.into();
        match &pool {
            LegacyPool::Sqlite(p) => {
                sqlx::raw_sql(SCHEMA_SQLITE).execute(p).await?;
                sqlx::raw_sql(OUTBOX_SQLITE).execute(p).await?;
            }
            LegacyPool::Postgres(p) => {
                sqlx::raw_sql(SCHEMA_POSTGRES).execute(p).await?;
                sqlx::raw_sql(OUTBOX_POSTGRES).execute(p).await?;
            }
        }
        Ok(LegacyDb { pool })
    }

    /// `SELECT count(*) ...` on the legacy database, for checks and tests.
    pub async fn count(&self, sql: &str) -> sqlx::Result<i64> {
        with_pool!(&self.pool, |p| sqlx::query_scalar(sql).fetch_one(p).await)
    }

    /// Places an order with 1 to 4 items: the order rows and an `OrderPlaced` event, atomically.
    pub async fn place_order(&self, rng: &mut StdRng, customers: u32) -> sqlx::Result<String> {
        let now = Utc::now();
        let order_id = format!("o-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let customer = format!("c-{}", rng.gen_range(1..=customers.max(1)));
        let currency = ["EUR", "GBP", "USD"][rng.gen_range(0..3)];
        let mut lines = Vec::new();
        let mut subtotal = 0i64;
        for no in 0..rng.gen_range(1..=4i64) {
            let qty: i64 = rng.gen_range(1..=5);
            let price: i64 = rng.gen_range(199..=9_999);
            subtotal += qty * price;
            lines.push(Line {
                no,
                sku: format!("SKU-{:04}", rng.gen_range(1..500)),
                qty,
                price,
                warehouse: format!("WH-{}", rng.gen_range(1..9)),
            });
        }
        let tax = (subtotal * TAX_PERCENT + 50) / 100;
        let payload = json!({
            "order_id": order_id,
            "customer_id": customer,
            "status": "open",
            "currency": currency,
            "items": lines.iter().map(|l| json!({"sku": l.sku, "qty": l.qty, "price": cents(l.price)})).collect::<Vec<_>>(),
            "subtotal": cents(subtotal),
            "tax": cents(tax),
            "total": cents(subtotal + tax),
            "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        let event = OutboxEvent::new(&order_id, "OrderPlaced", &payload);
        let outbox_sql = outbox_insert(&self.pool);
        // The legacy app pads its lower-case currency codes; the read API passes that on.
        let stored_currency = currency.to_lowercase() + " ";

        macro_rules! write {
            ($kind:ident $p:ident) => {{
                let mut tx = begin_write!($kind $p);
                sqlx::query("INSERT INTO orders (id, cust_id, status, currency, subtotal_cents, tax_cents, created_at, updated_at) VALUES ($1, $2, 'open', $3, $4, $5, $6, $7)")
                    .bind(&order_id).bind(&customer).bind(&stored_currency).bind(subtotal).bind(tax)
                    .bind(legacy_time(now)).bind(legacy_time(now))
                    .execute(&mut *tx).await?;
                for l in &lines {
                    sqlx::query("INSERT INTO order_items (order_id, line_no, sku, quantity, price_cents, internal_ref) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(&order_id).bind(l.no).bind(&l.sku).bind(l.qty).bind(l.price).bind(&l.warehouse)
                        .execute(&mut *tx).await?;
                }
                sqlx::query(outbox_sql)
                    .bind(&event.id).bind(&event.aggregate_id).bind(event.event_type).bind(&event.payload)
                    .execute(&mut *tx).await?;
                tx.commit().await?;
            }};
        }
        match &self.pool {
            LegacyPool::Sqlite(p) => write!(sqlite p),
            LegacyPool::Postgres(p) => write!(postgres p),
        }
        Ok(order_id)
    }

    /// Ships or cancels a random open order; `None` when no order is open.
    pub async fn change_random_order(&self, rng: &mut StdRng) -> sqlx::Result<Option<OrderEvent>> {
        let now = Utc::now();
        let (status, event_type) = if rng.gen_bool(0.75) {
            ("shipped", "OrderShipped")
        } else {
            ("void", "OrderCancelled")
        };
        let outbox_sql = outbox_insert(&self.pool);
        // One of the 50 most recent open orders: recent orders are the ones that change.
        const PICK: &str = "SELECT id FROM (SELECT id FROM orders WHERE status = 'open' ORDER BY created_at DESC LIMIT 50) AS recent ORDER BY random() LIMIT 1";

        macro_rules! change {
            ($kind:ident $p:ident) => {{
                let mut tx = begin_write!($kind $p);
                let picked: Option<String> = sqlx::query_scalar(PICK).fetch_optional(&mut *tx).await?;
                let Some(order_id) = picked else { return Ok(None) };
                sqlx::query("UPDATE orders SET status = $1, updated_at = $2 WHERE id = $3")
                    .bind(status).bind(legacy_time(now)).bind(&order_id)
                    .execute(&mut *tx).await?;
                let payload = json!({
                    "order_id": order_id,
                    "status": status,
                    "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                });
                let event = OutboxEvent::new(&order_id, event_type, &payload);
                sqlx::query(outbox_sql)
                    .bind(&event.id).bind(&event.aggregate_id).bind(event.event_type).bind(&event.payload)
                    .execute(&mut *tx).await?;
                tx.commit().await?;
                order_id
            }};
        }
        let order_id = match &self.pool {
            LegacyPool::Sqlite(p) => change!(sqlite p),
            LegacyPool::Postgres(p) => change!(postgres p),
        };
        Ok(Some(if status == "shipped" {
            OrderEvent::Shipped { order_id }
        } else {
            OrderEvent::Cancelled { order_id }
        }))
    }

    /// Ids of some existing orders and customers, for read traffic.
    pub async fn sample_ids(&self, limit: i64) -> sqlx::Result<(Vec<String>, Vec<String>)> {
        const ORDERS: &str = "SELECT id FROM orders ORDER BY random() LIMIT $1";
        const CUSTOMERS: &str = "SELECT cust_id FROM (SELECT DISTINCT cust_id FROM orders) AS c ORDER BY random() LIMIT $1";
        with_pool!(&self.pool, |p| {
            let orders = sqlx::query_scalar(ORDERS).bind(limit).fetch_all(p).await?;
            let customers = sqlx::query_scalar(CUSTOMERS)
                .bind(limit)
                .fetch_all(p)
                .await?;
            Ok((orders, customers))
        })
    }
}

/// Money as a JSON number with two decimals of meaning (cents / 100).
fn cents(c: i64) -> serde_json::Value {
    json!(c as f64 / 100.0)
}

/// A mix of writes: mostly new orders, some shipments and cancellations.
pub struct Workload {
    /// Share of writes that change an existing order instead of placing one.
    pub change_share: f64,
    /// Number of distinct customers.
    pub customers: u32,
}

impl Workload {
    /// Performs one write.
    pub async fn step(&self, db: &LegacyDb, rng: &mut StdRng) -> sqlx::Result<OrderEvent> {
        if rng.gen_bool(self.change_share)
            && let Some(ev) = db.change_random_order(rng).await?
        {
            return Ok(ev);
        }
        let order_id = db.place_order(rng, self.customers).await?;
        Ok(OrderEvent::Placed { order_id })
    }
}
