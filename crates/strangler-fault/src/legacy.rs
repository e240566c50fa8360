//! The legacy system on PostgreSQL: an orders table whose writer adds one outbox event per change
//! in the same transaction, and an HTTP read API that remembers what it answered each client
//! request, so the suite can check that the client got exactly that answer through the proxy.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sqlx::PgPool;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Header carrying the client's request number.
pub const REQ_HEADER: &str = "x-fault-req";
/// Header the proxy sets on copies it sends (re-asks of legacy included).
pub const SHADOW_HEADER: &str = "x-strangler-shadow";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS orders (
    id          BIGSERIAL PRIMARY KEY,
    customer    TEXT   NOT NULL,
    status      TEXT   NOT NULL,
    total_cents BIGINT NOT NULL,
    version     BIGINT NOT NULL,  -- events written for this order
    updated_at  TEXT   NOT NULL
);";

/// What the legacy API answered one client request.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Body.
    pub body: Bytes,
}

/// The legacy database, its writer's figures and its read API's answers.
#[derive(Clone)]
pub struct Legacy {
    /// Pool on the legacy database.
    pub pool: PgPool,
    /// Ids of placed orders, for client traffic.
    pub ids: Arc<Mutex<Vec<i64>>>,
    /// Events committed (one per successful write).
    pub events: Arc<AtomicU64>,
    /// Writes that failed (their transaction rolled back: no row, no event).
    pub write_failures: Arc<AtomicU64>,
    /// Answers to client requests not yet collected, by request number.
    answers: Arc<Mutex<HashMap<u64, Answer>>>,
    /// Copies the proxy sent (re-asks), which are not client requests.
    pub shadow_requests: Arc<AtomicU64>,
}

impl Legacy {
    /// Connects and creates the schema and the outbox table strangler ships.
    pub async fn open(url: &str) -> Legacy {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(5))
            .connect(url)
            .await
            .expect("connecting to the legacy database");
        sqlx::raw_sql(SCHEMA)
            .execute(&pool)
            .await
            .expect("creating the legacy schema");
        let outbox = include_str!("../../../migrations/outbox/postgres.sql");
        sqlx::raw_sql(outbox)
            .execute(&pool)
            .await
            .expect("applying the outbox DDL");
        Legacy {
            pool,
            ids: Arc::default(),
            events: Arc::default(),
            write_failures: Arc::default(),
            answers: Arc::default(),
            shadow_requests: Arc::default(),
        }
    }

    /// Places a new order (70%) or changes a known one, with its outbox event, in one transaction.
    async fn write(&self, rng: &mut StdRng) -> sqlx::Result<()> {
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let known = {
            let ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            (!ids.is_empty() && rng.gen_bool(0.3)).then(|| ids[rng.gen_range(0..ids.len())])
        };
        let mut tx = self.pool.begin().await?;
        let placed = match known {
            Some(id) => {
                let status = ["shipped", "cancelled", "returned"][rng.gen_range(0..3)];
                let version: i64 = sqlx::query_scalar(
                    "UPDATE orders SET status = $1, version = version + 1, updated_at = $2 WHERE id = $3 RETURNING version",
                )
                .bind(status)
                .bind(&now)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
                let payload = json!({"status": status, "version": version, "updated_at": now});
                outbox(&mut tx, id, "OrderChanged", &payload).await?;
                None
            }
            None => {
                let customer = format!("c-{}", rng.gen_range(1..500));
                let total: i64 = rng.gen_range(100..100_000);
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO orders (customer, status, total_cents, version, updated_at) VALUES ($1, 'open', $2, 1, $3) RETURNING id",
                )
                .bind(&customer)
                .bind(total)
                .bind(&now)
                .fetch_one(&mut *tx)
                .await?;
                let payload = json!({"customer": customer, "status": "open", "total_cents": total, "version": 1, "updated_at": now});
                outbox(&mut tx, id, "OrderPlaced", &payload).await?;
                Some(id)
            }
        };
        tx.commit().await?;
        self.events.fetch_add(1, Relaxed);
        if let Some(id) = placed {
            self.ids.lock().unwrap_or_else(|e| e.into_inner()).push(id);
        }
        Ok(())
    }

    /// Writes at `rate` per second until `stop`.
    pub fn spawn_writer(
        &self,
        rate: u32,
        seed: u64,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            while !stop.is_cancelled() {
                tick.tick().await;
                if me.write(&mut rng).await.is_err() {
                    me.write_failures.fetch_add(1, Relaxed);
                    // PostgreSQL is restarting: do not spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        })
    }

    /// Inserts outbox rows the relay must dead-letter (empty aggregate id) and events whose
    /// handler fails (a key that is not an order number), in one transaction.
    pub async fn malformed(
        &self,
        relay_bad: u32,
        handler_bad: u32,
        burst: u32,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        for i in 0..relay_bad {
            sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'order', '', 'OrderPlaced', $2)")
                .bind(uuid::Uuid::new_v4())
                .bind(json!({"burst": burst, "n": i}))
                .execute(&mut *tx)
                .await?;
        }
        for i in 0..handler_bad {
            sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'order', $2, 'OrderPlaced', $3)")
                .bind(uuid::Uuid::new_v4())
                .bind(format!("bad-{burst}-{i}"))
                .bind(json!({"customer": null, "total_cents": "lots"}))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }

    /// Takes the answer to client request `n`.
    pub fn take_answer(&self, n: u64) -> Option<Answer> {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&n)
    }

    /// The read API's router.
    pub fn app(&self) -> Router {
        Router::new()
            .route("/orders/{id}", get(order))
            .with_state(self.clone())
    }
}

async fn outbox(
    tx: &mut sqlx::PgConnection,
    id: i64,
    event_type: &str,
    payload: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) VALUES ($1, 'order', $2, $3, $4)")
        .bind(uuid::Uuid::new_v4())
        .bind(id.to_string())
        .bind(event_type)
        .bind(payload)
        .execute(tx)
        .await?;
    Ok(())
}

async fn order(State(l): State<Legacy>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let row = match id.parse::<i64>() {
        Ok(n) => sqlx::query_as::<_, (i64, String, String, i64, i64, String)>(
            "SELECT id, customer, status, total_cents, version, updated_at FROM orders WHERE id = $1",
        )
        .bind(n)
        .fetch_optional(&l.pool)
        .await
        .map_err(|_| ()),
        Err(_) => Ok(None),
    };
    let (status, body) = match row {
        Ok(Some((id, customer, status, total, version, updated_at))) => (
            StatusCode::OK,
            json!({
                "id": id, "customer": customer, "status": status, "total_cents": total,
                "version": version, "updated_at": updated_at,
                "request_id": uuid::Uuid::new_v4().to_string(),
            }),
        ),
        Ok(None) => (StatusCode::NOT_FOUND, json!({"error": "not found"})),
        Err(()) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "database unavailable"}),
        ),
    };
    let body = Bytes::from(body.to_string());
    if headers.contains_key(SHADOW_HEADER) {
        l.shadow_requests.fetch_add(1, Relaxed);
    } else if let Some(n) = headers
        .get(REQ_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        l.answers.lock().unwrap_or_else(|e| e.into_inner()).insert(
            n,
            Answer {
                status: status.as_u16(),
                body: body.clone(),
            },
        );
    }
    (status, [("content-type", "application/json")], body).into_response()
}
