//! Projector benchmark (run by `deploy/bench-projector.sh`): EVENTS `OrderPlaced` events in the
//! built-in log on PostgreSQL, applied by a batched projection (a rebuild: truncate, then replay
//! every event, checkpoints and dedup keys in the same transactions), beside loading the same rows
//! with `COPY ... FROM STDIN` in the same run (the ceiling).
//!
//! Usage: bench_projector POSTGRES_URL EVENTS [BATCH] [IDS] [POISON] [DEDUP]
//!
//! IDS is `seq` (default: event ids in publishing order, like UUIDv7 outbox ids) or `random`
//! (UUIDv4 ids, which land anywhere in the dedup index). POISON (default 0) events, spread evenly,
//! carry a null subtotal, which the table's NOT NULL refuses; the projection skips them to its
//! dead letters, so each one costs its batch the failure path. COPY still loads every row. DEDUP
//! is `table` (default: every id recorded in the read store) or `window` (`[dedup] mode =
//! "window"`: ids held in memory per partition). The durability settings of the URL
//! (for example `?options=-c%20synchronous_commit%3Doff`) apply to the projector and to COPY
//! alike: both use the same pool.

mod common;
#[path = "common/orders.rs"]
mod orders;

use std::time::Instant;

use strangler_projector::{Projector, Source};
use strangler_store::Store;
use strangler_test_support::cpu;

const PROJECTION: &str = r#"
name = "bench"
topics = ["bench_orders"]
tables = ["orders"]

[setup]
all = """
CREATE TABLE IF NOT EXISTS {{orders}} (
    order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, subtotal BIGINT NOT NULL,
    tax BIGINT NOT NULL, total BIGINT NOT NULL, placed_at TEXT NOT NULL
)
"""

[policy]
on_failure = "skip"

[batch]
max_events = @BATCH@
max_wait_ms = 50

[[handler]]
event_type = "OrderPlaced"
sql = """
INSERT INTO {{orders}} (order_id, customer_id, subtotal, tax, total, placed_at)
VALUES (:order_id, :customer_id, :subtotal, :tax, :subtotal + :tax, :at)
"""
params = { order_id = "key", at = "event_time" }
"#;

/// The event id of event `i`.
fn event_id(i: usize, random: bool) -> String {
    if random {
        uuid::Uuid::new_v4().to_string()
    } else {
        common::seq_id(i)
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .expect("usage: bench_projector POSTGRES_URL EVENTS [BATCH] [seq|random]");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let random = match args.get(4).map(String::as_str) {
        None | Some("seq") => false,
        Some("random") => true,
        Some(other) => panic!("IDS must be `seq` or `random`, not `{other}`"),
    };
    let poison: usize = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(0);
    let dedup = match args.get(6).map(String::as_str) {
        None | Some("table") => "table",
        Some("window") => "window",
        Some(other) => panic!("DEDUP must be `table` or `window`, not `{other}`"),
    };
    // Event i is poisoned when it is one of `poison` evenly spaced events.
    let poisoned = |i: usize| poison > 0 && i % (n / poison).max(1) == n / poison / 2;
    let store = Store::connect(url).await.expect("connecting");
    store.migrate().await.expect("migrating");
    let Store::Postgres(pool) = &store else {
        panic!("PostgreSQL only")
    };

    common::publish(
        &store,
        "bench_orders",
        n,
        |i| {
            let mut e = orders::order(i).event();
            if poisoned(i) {
                e.payload["subtotal"] = serde_json::Value::Null;
            }
            e
        },
        |i| event_id(i, random),
    )
    .await;

    let dir = std::env::temp_dir().join(format!("strangler-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("bench.toml"),
        format!(
            "{}\n[dedup]\nmode = \"{dedup}\"\n",
            PROJECTION.replace("@BATCH@", &batch.to_string())
        ),
    )
    .expect("projection file");
    let p = Projector::load(
        store.clone(),
        Source::Log {
            store: store.clone(),
        },
        &dir,
    )
    .expect("loading");
    p.setup().await.expect("setup");
    let one = p.one("bench", None).expect("bench projection");
    let cpu = Cpu::now();
    let projector_s = common::timed_rebuild(&p, &one, n).await;
    let projector_cpu = cpu.per_event(n);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM orders_v1")
        .fetch_one(pool)
        .await
        .expect("count");
    let skipped = (0..n).filter(|&i| poisoned(i)).count();
    assert_eq!(
        rows as usize,
        n - skipped,
        "every event but the poisoned ones applied"
    );

    sqlx::query("CREATE TABLE orders_copy (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, subtotal BIGINT NOT NULL, tax BIGINT NOT NULL, total BIGINT NOT NULL, placed_at TEXT NOT NULL)")
        .execute(pool)
        .await
        .expect("copy table");
    let cpu = Cpu::now();
    let t = Instant::now();
    let mut csv = String::with_capacity(n * 64);
    for i in 0..n {
        let o = orders::order(i);
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            o.id,
            o.customer,
            o.subtotal,
            o.tax,
            o.subtotal + o.tax,
            o.placed_at()
        ));
    }
    let mut conn = pool.acquire().await.expect("connection");
    let mut copy = conn
        .copy_in_raw("COPY orders_copy FROM STDIN (FORMAT csv)")
        .await
        .expect("COPY");
    copy.send(csv.into_bytes()).await.expect("sending");
    let copied = copy.finish().await.expect("finishing COPY");
    let copy_s = t.elapsed().as_secs_f64();
    let copy_cpu = cpu.per_event(n);
    assert_eq!(copied as usize, n);
    let same: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders_v1 v JOIN orders_copy c USING (order_id) \
         WHERE v.total = c.total AND v.placed_at = c.placed_at AND v.customer_id = c.customer_id",
    )
    .fetch_one(pool)
    .await
    .expect("comparing");
    assert_eq!(
        same as usize,
        n - skipped,
        "the projection and COPY wrote the same rows"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(pool)
        .await
        .expect("synchronous_commit");
    let ids = if random { "random" } else { "seq" };
    let pr = n as f64 / projector_s;
    let cr = n as f64 / copy_s;
    let mut ids = format!("{ids}, {dedup} dedup");
    if poison > 0 {
        ids.push_str(&format!(", {skipped} poisoned"));
    }
    println!(
        "| {n} | {batch} | {ids} | {sync} | {projector_s:.2} | {pr:.0} | {copy_s:.2} | {cr:.0} | {:.2} | {:.1} / {:.1} | {:.1} / {:.1} |",
        pr / cr,
        projector_cpu.0,
        projector_cpu.1,
        copy_cpu.0,
        copy_cpu.1,
    );
}

/// CPU seconds spent so far by this process and by every PostgreSQL process.
#[derive(Clone, Copy)]
struct Cpu {
    me: f64,
    postgres: f64,
}

impl Cpu {
    fn now() -> Cpu {
        Cpu {
            me: cpu::process_secs("self", false),
            postgres: cpu::postgres_secs(),
        }
    }

    /// CPU µs per event since `self`: (this process, PostgreSQL).
    fn per_event(self, events: usize) -> (f64, f64) {
        let now = Cpu::now();
        let per = |s: f64| s * 1e6 / events as f64;
        (per(now.me - self.me), per(now.postgres - self.postgres))
    }
}
