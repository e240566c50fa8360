//! The legacy HTTP read API, with the quirks real legacy APIs have: a per-request id, money as
//! DECIMAL strings, naive timestamps, legacy field names (`cust_id`, `quantity`), padded lower-case
//! currency codes, legacy status words, items in insertion order, lists newest first.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::LegacyDb;
use super::writer::{LegacyPool, with_pool};

/// The legacy read API's router.
pub fn app(db: LegacyDb) -> Router {
    Router::new()
        .route("/orders/{id}", get(order))
        .route("/customers/{id}/orders", get(customer_orders))
        .route("/orders", get(search))
        .with_state(db)
}

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// An `orders` row.
#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    cust_id: String,
    status: String,
    currency: String,
    subtotal_cents: i64,
    tax_cents: i64,
    created_at: String,
    updated_at: String,
}

/// An `order_items` row.
#[derive(sqlx::FromRow)]
struct ItemRow {
    sku: String,
    quantity: i64,
    price_cents: i64,
    internal_ref: String,
}

const ORDER_COLUMNS: &str =
    "id, cust_id, status, currency, subtotal_cents, tax_cents, created_at, updated_at";

fn summary(row: &OrderRow) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(row.id));
    m.insert("cust_id".into(), json!(row.cust_id));
    m.insert("status".into(), json!(row.status));
    m.insert("subtotal".into(), json!(money(row.subtotal_cents)));
    m.insert("tax".into(), json!(money(row.tax_cents)));
    m.insert(
        "total".into(),
        json!(money(row.subtotal_cents + row.tax_cents)),
    );
    m.insert("currency".into(), json!(row.currency));
    m.insert("created_at".into(), json!(row.created_at));
    m.insert("updated_at".into(), json!(row.updated_at));
    m
}

/// Orders matching `where_sql` (one `$1` parameter), newest first, at most `limit`.
async fn orders_where(
    db: &LegacyDb,
    where_sql: &str,
    arg: &str,
    limit: i64,
) -> sqlx::Result<Vec<OrderRow>> {
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE {where_sql} ORDER BY created_at DESC LIMIT {limit}"
    );
    with_pool!(&db.pool, |p| sqlx::query_as::<_, OrderRow>(&sql)
        .bind(arg)
        .fetch_all(p)
        .await)
}

enum ApiError {
    NotFound,
    Internal,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound => {
                (StatusCode::NOT_FOUND, Json(json!({"error": "not found"}))).into_response()
            }
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "internal error"})),
            )
                .into_response(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::warn!(error = %e, "legacy read failed");
        ApiError::Internal
    }
}

async fn order(
    State(db): State<LegacyDb>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let row = orders_where(&db, "id = $1", &id, 1)
        .await?
        .pop()
        .ok_or(ApiError::NotFound)?;
    let mut m = serde_json::Map::new();
    m.insert("request_id".into(), json!(Uuid::new_v4().to_string()));
    m.extend(summary(&row));
    const ITEMS: &str = "SELECT sku, quantity, price_cents, internal_ref FROM order_items WHERE order_id = $1 ORDER BY line_no";
    let items: Vec<ItemRow> = with_pool!(&db.pool, |p| sqlx::query_as(ITEMS)
        .bind(&id)
        .fetch_all(p)
        .await)?;
    let items: Vec<Value> = items
        .iter()
        .map(|r| {
            json!({
                "sku": r.sku,
                "quantity": r.quantity,
                "price": money(r.price_cents),
                "internal_ref": r.internal_ref,
            })
        })
        .collect();
    m.insert("items".into(), Value::Array(items));
    Ok(Json(Value::Object(m)))
}

async fn customer_orders(
    State(db): State<LegacyDb>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let rows = orders_where(&db, "cust_id = $1", &id, 100).await?;
    let orders: Vec<Value> = rows.iter().map(|r| Value::Object(summary(r))).collect();
    Ok(Json(
        json!({"request_id": Uuid::new_v4().to_string(), "customer": id, "orders": orders}),
    ))
}

#[derive(Deserialize)]
struct SearchQuery {
    status: String,
}

async fn search(
    State(db): State<LegacyDb>,
    Query(q): Query<SearchQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = orders_where(&db, "status = $1", &q.status, 50).await?;
    let orders: Vec<Value> = rows.iter().map(|r| Value::Object(summary(r))).collect();
    Ok(Json(
        json!({"request_id": Uuid::new_v4().to_string(), "status": q.status, "orders": orders}),
    ))
}
