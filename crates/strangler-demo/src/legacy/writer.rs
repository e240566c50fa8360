//! The legacy write path: business change and outbox event in one transaction.

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::json;
use sqlx::sqlite::SqlitePool;
use sqlx::{Row, SqliteConnection};
use uuid::Uuid;

const SCHEMA: &str = include_str!("schema.sql");
/// The outbox DDL strangler ships for SQLite legacy databases.
const OUTBOX_DDL: &str = include_str!("../../../../migrations/outbox/sqlite.sql");

/// Tax rate of the sample shop, in percent.
pub const TAX_PERCENT: i64 = 20;

/// The legacy database (SQLite).
#[derive(Clone)]
pub struct LegacyDb {
    /// Connection pool.
    pub pool: SqlitePool,
}

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

impl LegacyDb {
    /// Creates the legacy schema and the outbox table if absent.
    pub async fn open(pool: SqlitePool) -> sqlx::Result<LegacyDb> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        sqlx::raw_sql(OUTBOX_DDL).execute(&pool).await?;
        Ok(LegacyDb { pool })
    }

    /// Places an order with 1 to 4 items: the order rows and an `OrderPlaced` event, atomically.
    pub async fn place_order(&self, rng: &mut StdRng, customers: u32) -> sqlx::Result<String> {
        let now = Utc::now();
        let order_id = format!("o-{}", &Uuid::new_v4().simple().to_string()[..12]);
        let customer = format!("c-{}", rng.gen_range(1..=customers.max(1)));
        let currency = ["EUR", "GBP", "USD"][rng.gen_range(0..3)];
        let mut items = Vec::new();
        let mut subtotal = 0i64;
        for line in 0..rng.gen_range(1..=4) {
            let sku = format!("SKU-{:04}", rng.gen_range(1..500));
            let qty: i64 = rng.gen_range(1..=5);
            let price: i64 = rng.gen_range(199..=9_999);
            subtotal += qty * price;
            items.push((line, sku, qty, price, format!("WH-{}", rng.gen_range(1..9))));
        }
        let tax = (subtotal * TAX_PERCENT + 50) / 100;

        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO orders (id, cust_id, status, currency, subtotal_cents, tax_cents, created_at, updated_at) VALUES (?, ?, 'open', ?, ?, ?, ?, ?)")
            .bind(&order_id).bind(&customer).bind(currency.to_lowercase() + " ").bind(subtotal).bind(tax)
            .bind(legacy_time(now)).bind(legacy_time(now))
            .execute(&mut *tx).await?;
        for (line, sku, qty, price, wh) in &items {
            sqlx::query("INSERT INTO order_items (order_id, line_no, sku, quantity, price_cents, internal_ref) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(&order_id).bind(line).bind(sku).bind(qty).bind(price).bind(wh)
                .execute(&mut *tx).await?;
        }
        let payload = json!({
            "order_id": order_id,
            "customer_id": customer,
            "status": "open",
            "currency": currency,
            "items": items.iter().map(|(_, sku, qty, price, _)| json!({"sku": sku, "qty": qty, "price": cents(*price)})).collect::<Vec<_>>(),
            "subtotal": cents(subtotal),
            "tax": cents(tax),
            "total": cents(subtotal + tax),
            "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        write_event(&mut tx, &order_id, "OrderPlaced", &payload).await?;
        tx.commit().await?;
        Ok(order_id)
    }

    /// Ships or cancels a random open order; `None` when no order is open.
    pub async fn change_random_order(&self, rng: &mut StdRng) -> sqlx::Result<Option<OrderEvent>> {
        let now = Utc::now();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // One of the 50 most recent open orders: recent orders are the ones that change.
        let row = sqlx::query(
            "SELECT id FROM (SELECT id FROM orders WHERE status = 'open' ORDER BY created_at DESC LIMIT 50) ORDER BY random() LIMIT 1",
        )
        .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let order_id: String = row.get(0);
        let (status, event_type) = if rng.gen_bool(0.75) {
            ("shipped", "OrderShipped")
        } else {
            ("void", "OrderCancelled")
        };
        sqlx::query("UPDATE orders SET status = ?, updated_at = ? WHERE id = ?")
            .bind(status)
            .bind(legacy_time(now))
            .bind(&order_id)
            .execute(&mut *tx)
            .await?;
        let payload = json!({
            "order_id": order_id,
            "status": status,
            "occurred_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        write_event(&mut tx, &order_id, event_type, &payload).await?;
        tx.commit().await?;
        Ok(Some(if status == "shipped" {
            OrderEvent::Shipped { order_id }
        } else {
            OrderEvent::Cancelled { order_id }
        }))
    }

    /// Ids of some existing orders and customers, for read traffic.
    pub async fn sample_ids(&self, limit: i64) -> sqlx::Result<(Vec<String>, Vec<String>)> {
        let orders = sqlx::query_scalar("SELECT id FROM orders ORDER BY random() LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let customers =
            sqlx::query_scalar("SELECT DISTINCT cust_id FROM orders ORDER BY random() LIMIT ?")
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok((orders, customers))
    }
}

async fn write_event(
    tx: &mut SqliteConnection,
    aggregate_id: &str,
    event_type: &str,
    payload: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES (?, 'order', ?, ?, ?)")
        .bind(Uuid::new_v4().to_string())
        .bind(aggregate_id)
        .bind(event_type)
        .bind(payload.to_string())
        .execute(tx)
        .await?;
    Ok(())
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
