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
use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::LegacyDb;

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

fn summary(row: &SqliteRow) -> serde_json::Map<String, Value> {
    let subtotal: i64 = row.get("subtotal_cents");
    let tax: i64 = row.get("tax_cents");
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(row.get::<String, _>("id")));
    m.insert("cust_id".into(), json!(row.get::<String, _>("cust_id")));
    m.insert("status".into(), json!(row.get::<String, _>("status")));
    m.insert("subtotal".into(), json!(money(subtotal)));
    m.insert("tax".into(), json!(money(tax)));
    m.insert("total".into(), json!(money(subtotal + tax)));
    m.insert("currency".into(), json!(row.get::<String, _>("currency")));
    m.insert(
        "created_at".into(),
        json!(row.get::<String, _>("created_at")),
    );
    m.insert(
        "updated_at".into(),
        json!(row.get::<String, _>("updated_at")),
    );
    m
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
    let row = sqlx::query("SELECT * FROM orders WHERE id = ?")
        .bind(&id)
        .fetch_optional(&db.pool)
        .await?;
    let row = row.ok_or(ApiError::NotFound)?;
    let mut m = serde_json::Map::new();
    m.insert("request_id".into(), json!(Uuid::new_v4().to_string()));
    m.extend(summary(&row));
    let items = sqlx::query("SELECT sku, quantity, price_cents, internal_ref FROM order_items WHERE order_id = ? ORDER BY line_no")
        .bind(&id)
        .fetch_all(&db.pool)
        .await?;
    let items: Vec<Value> = items
        .iter()
        .map(|r| {
            json!({
                "sku": r.get::<String, _>("sku"),
                "quantity": r.get::<i64, _>("quantity"),
                "price": money(r.get("price_cents")),
                "internal_ref": r.get::<String, _>("internal_ref"),
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
    let rows =
        sqlx::query("SELECT * FROM orders WHERE cust_id = ? ORDER BY created_at DESC LIMIT 100")
            .bind(&id)
            .fetch_all(&db.pool)
            .await?;
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
    let rows =
        sqlx::query("SELECT * FROM orders WHERE status = ? ORDER BY created_at DESC LIMIT 50")
            .bind(&q.status)
            .fetch_all(&db.pool)
            .await?;
    let orders: Vec<Value> = rows.iter().map(|r| Value::Object(summary(r))).collect();
    Ok(Json(
        json!({"request_id": Uuid::new_v4().to_string(), "status": q.status, "orders": orders}),
    ))
}
