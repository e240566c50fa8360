//! Sink benchmark (run by `deploy/bench-sinks.sh`): EVENTS `OrderPlaced` events in the built-in
//! log on PostgreSQL, projected into Redis by the runtime (a rebuild: a fresh key namespace
//! filled batch by batch, each batch one Lua script with the sink's positions and applied ids,
//! checkpoints and dedup keys in the read store), beside writing the same hashes with pipelined
//! `HSET` from the same process in the same run (the ceiling for these rows).
//!
//! Usage: bench_sinks POSTGRES_URL REDIS_URL EVENTS [BATCH]

mod common;
#[path = "common/orders.rs"]
mod orders;

use std::time::Instant;

use strangler_core::config::{RedisSinkConfig, SinksConfig};
use strangler_projector::{Projector, Source};
use strangler_store::Store;

const PROJECTION: &str = r#"
name = "bench_redis"
topics = ["bench_orders"]

[sink]
kind = "redis"
prefix = "@PREFIX@"

[batch]
max_events = @BATCH@
max_wait_ms = 50

[[handler]]
event_type = "OrderPlaced"
op = "hset"
key = "order:{key}"
fields = { customer_id = "/customer_id", subtotal = "/subtotal", tax = "/tax", placed_at = "event_time" }
"#;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bench_sinks POSTGRES_URL REDIS_URL EVENTS [BATCH]";
    let url = args.get(1).expect(usage);
    let redis_url = args.get(2).expect(usage);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let store = Store::connect(url).await.expect("connecting");
    store.migrate().await.expect("migrating");
    let prefix = format!("bench{}", std::process::id());

    common::publish(
        &store,
        "bench_orders",
        n,
        |i| orders::order(i).event(),
        common::seq_id,
    )
    .await;

    let dir = std::env::temp_dir().join(format!("strangler-bench-sinks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("bench.toml"),
        PROJECTION
            .replace("@BATCH@", &batch.to_string())
            .replace("@PREFIX@", &prefix),
    )
    .expect("projection file");
    let sinks = SinksConfig {
        redis: Some(RedisSinkConfig {
            url: redis_url.clone(),
        }),
        clickhouse: None,
    };
    let p = Projector::load_with_sinks(
        store.clone(),
        Source::Log {
            store: store.clone(),
        },
        &dir,
        &sinks,
    )
    .expect("loading");
    p.setup().await.expect("setup");
    let one = p.one("bench_redis", None).expect("bench projection");
    let sink_s = common::timed_rebuild(&p, &one, n).await;

    // The same hashes written directly, pipelined 1,000 commands per round trip.
    let client = redis::Client::open(redis_url.as_str()).expect("redis url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis");
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let o = orders::order(i);
            pipe.cmd("HSET")
                .arg(format!("{prefix}:raw:order:{}", o.id))
                .arg("customer_id")
                .arg(&o.customer)
                .arg("subtotal")
                .arg(o.subtotal)
                .arg("tax")
                .arg(o.tax)
                .arg("placed_at")
                .arg(o.placed_at())
                .ignore();
        }
        let () = pipe.query_async(&mut con).await.expect("pipelined HSET");
    }
    let raw_s = t.elapsed().as_secs_f64();

    // Both wrote the same hashes.
    let sample = format!("o-{:08}", n / 2);
    let ptr: String = redis::cmd("GET")
        .arg(format!("{prefix}:v1:build"))
        .query_async(&mut con)
        .await
        .expect("build");
    let a: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:v1.{ptr}:order:{sample}"))
        .query_async(&mut con)
        .await
        .expect("sink hash");
    let b: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(format!("{prefix}:raw:order:{sample}"))
        .query_async(&mut con)
        .await
        .expect("raw hash");
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(a),
        sorted(b),
        "the sink and the pipeline wrote the same hash"
    );

    let sink_eps = n as f64 / sink_s;
    let raw_eps = n as f64 / raw_s;
    println!(
        "| redis | {n} | {batch} | {sink_s:.2} | {sink_eps:.0} | {raw_s:.2} | {raw_eps:.0} | {:.2} |",
        sink_eps / raw_eps
    );
    // Leave Redis as found.
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(5000)
            .query_async(&mut con)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let _: i64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut con)
                .await
                .expect("unlink");
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
