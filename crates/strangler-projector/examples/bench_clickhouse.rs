//! ClickHouse sink benchmark (run by `deploy/bench-sinks.sh`): EVENTS `OrderPlaced` events in the
//! built-in log on PostgreSQL, applied by a ClickHouse projection (a rebuild through the runtime:
//! every event read from the log, rendered, inserted in `JSONEachRow` batches of BATCH events
//! with their positions, offsets stored in ClickHouse, checkpoints and dedup keys committed in
//! the read store), beside one bulk `INSERT ... FORMAT JSONEachRow` of the same rows over HTTP in
//! the same run (the ceiling).
//!
//! Usage: bench_clickhouse POSTGRES_URL CLICKHOUSE_URL EVENTS [BATCH] [append|aggregate]
//!
//! CLICKHOUSE_URL names an empty database, for example `http://127.0.0.1:8123/bench`.

mod common;

use std::time::Instant;

use strangler_clickhouse::Client;
use strangler_projector::{Projector, Source};
use strangler_store::Store;

const PROJECTION: &str = r#"
name = "bench_ch"
topics = ["bench_ch_orders"]

[sink]
kind = "clickhouse"
url = "@URL@"
database = "@DB@"
table = "orders"
shape = "@SHAPE@"
columns = [
  { name = "day", type = "Date" },
  { name = "region", type = "String" },
  { name = "order_id", type = "String" },
  { name = "total_cents", type = "Int64" },
]
order_by = @ORDER_BY@
sum = @SUM@

[batch]
max_events = @BATCH@
max_wait_ms = 50

[[handler]]
event_type = "OrderPlaced"
op = "insert"
fields = { day = "/placed_at", region = "/region", order_id = "key", total_cents = "/total_cents" }
"#;

const REGIONS: [&str; 5] = ["eu-west", "eu-north", "us-east", "us-west", "ap-south"];

fn event(i: usize) -> (String, &'static str, i64, String) {
    let day = 1 + (i / 7919) % 28;
    (
        format!("o-{i:08}"),
        REGIONS[i % REGIONS.len()],
        1000 + (i as i64 * 37) % 9000,
        format!("2026-11-{day:02}T10:{:02}:00Z", i % 60),
    )
}

/// (rows, sum of total_cents) of a table.
async fn count(ch: &Client, database: &str, table: &str) -> (u64, i64) {
    #[derive(serde::Deserialize)]
    struct C {
        n: u64,
        total: i64,
    }
    let c: Vec<C> = ch
        .query(&format!(
            "SELECT count() AS n, sum(total_cents) AS total FROM `{database}`.`{table}`"
        ))
        .await
        .expect("counting");
    (c[0].n, c[0].total)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: bench_clickhouse POSTGRES_URL CLICKHOUSE_URL EVENTS [BATCH] [append|aggregate]";
    let pg = args.get(1).expect(usage);
    let ch_url = args.get(2).expect(usage);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let shape = args.get(5).map(String::as_str).unwrap_or("append");
    assert!(matches!(shape, "append" | "aggregate"), "{usage}");

    let ch = Client::connect(ch_url).expect("ClickHouse URL");
    let database = ch.database().to_string();
    let server = ch_url
        .rsplit_once('/')
        .map(|(s, _)| s.to_string())
        .expect("URL with a database");
    let store = Store::connect(pg).await.expect("connecting");
    store.migrate().await.expect("migrating");

    common::publish(
        &store,
        "bench_ch_orders",
        n,
        |i| {
            let (order, region, total, at) = event(i);
            common::Event {
                key: order,
                payload: serde_json::json!({"region": region, "total_cents": total, "placed_at": at}),
                at_ms: None,
            }
        },
        common::seq_id,
    )
    .await;

    let (order_by, sum) = match shape {
        "append" => (r#"["region", "day"]"#, "[]"),
        _ => (r#"["day", "region"]"#, r#"["total_cents"]"#),
    };
    let dir = std::env::temp_dir().join(format!("strangler-bench-ch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("bench.toml"),
        PROJECTION
            .replace("@URL@", &server)
            .replace("@DB@", &database)
            .replace("@SHAPE@", shape)
            .replace("@ORDER_BY@", order_by)
            .replace("@SUM@", sum)
            .replace("@BATCH@", &batch.to_string()),
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
    let one = p.one("bench_ch", None).expect("bench projection");
    let sink_s = common::timed_rebuild(&p, &one, n).await;
    let facts = if shape == "append" {
        "orders_v1"
    } else {
        "orders_v1_facts"
    };
    let projected = count(&ch, &database, facts).await;
    assert_eq!(projected.0 as usize, n, "one row per event in ClickHouse");

    // The ceiling: the same rows (positions included) in one INSERT ... FORMAT JSONEachRow.
    ch.execute(&format!(
        "CREATE TABLE `{database}`.bulk AS `{database}`.`{facts}`"
    ))
    .await
    .expect("bulk table");
    let t = Instant::now();
    let mut body = Vec::with_capacity(n * 128);
    let mut offsets = [0i64; 4];
    // The built-in log spreads keys over 4 partitions; the bulk rows keep one offset counter per
    // partition so their positions are as unique as the projection's.
    for i in 0..n {
        let (order, region, total, at) = event(i);
        let part = (i % 4) as i32;
        let offset = offsets[part as usize];
        offsets[part as usize] += 1;
        let line = serde_json::json!({
            "day": &at[..10], "region": region, "order_id": order, "total_cents": total,
            "_topic": "bench_ch_orders", "_partition": part, "_offset": offset, "_seq": 0,
        });
        serde_json::to_writer(&mut body, &line).expect("JSON");
        body.push(b'\n');
    }
    ch.insert(
        &format!("INSERT INTO `{database}`.bulk FORMAT JSONEachRow"),
        body.into(),
    )
    .await
    .expect("bulk insert");
    let bulk_s = t.elapsed().as_secs_f64();
    let bulk = count(&ch, &database, "bulk").await;
    assert_eq!(
        bulk, projected,
        "the projection and the bulk insert hold the same rows"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let sr = n as f64 / sink_s;
    let br = n as f64 / bulk_s;
    println!(
        "| {n} | {batch} | {shape} | {sink_s:.2} | {sr:.0} | {bulk_s:.2} | {br:.0} | {:.2} |",
        sr / br
    );
}
