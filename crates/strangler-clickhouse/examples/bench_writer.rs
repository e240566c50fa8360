//! Writer benchmark (the ClickHouse part of `deploy/bench-sinks.sh` runs the full runtime; this
//! one isolates the client): EVENTS order rows written through [`Writer`] in batches of BATCH
//! (one `JSONEachRow` insert per batch with the events' positions, the high-water filter, and the
//! offsets row stored after each batch, as the sink does), beside one bulk
//! `INSERT ... FORMAT JSONEachRow` of the same rows in the same run.
//!
//! Usage: bench_writer CLICKHOUSE_URL EVENTS [BATCH] [append|aggregate]
//! (CLICKHOUSE_URL names an empty database, for example `http://127.0.0.1:8123/bench`.)

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{Map, json};
use strangler_clickhouse::offsets::{self, Stored};
use strangler_clickhouse::{
    AggFn, Client, Column, Measure, Position, Row, TableKind, TableSpec, Writer,
};

const REGIONS: [&str; 5] = ["eu-west", "eu-north", "us-east", "us-west", "ap-south"];

fn row(i: usize) -> Row {
    let mut values = Map::new();
    values.insert(
        "day".into(),
        json!(format!("2026-11-{:02}", 1 + (i / 7919) % 28)),
    );
    values.insert("region".into(), json!(REGIONS[i % REGIONS.len()]));
    values.insert("order_id".into(), json!(format!("o-{i:08}")));
    values.insert("total_cents".into(), json!(1000 + (i as i64 * 37) % 9000));
    Row {
        position: Position {
            topic: "orders".into(),
            partition: (i % 4) as i32,
            offset: (i / 4) as i64,
        },
        seq: 0,
        values,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: bench_writer CLICKHOUSE_URL EVENTS [BATCH] [append|aggregate]";
    let client = Client::connect(args.get(1).expect(usage)).expect("URL");
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let shape = args.get(4).map(String::as_str).unwrap_or("append");
    let col = |n: &str, t: &str| Column {
        name: n.into(),
        ty: t.into(),
    };
    let columns = vec![
        col("day", "Date"),
        col("region", "String"),
        col("order_id", "String"),
        col("total_cents", "Int64"),
    ];
    let kind = match shape {
        "append" => TableKind::Append {
            order_by: vec!["region".into(), "day".into()],
        },
        "aggregate" => TableKind::Aggregate {
            group_by: vec!["day".into(), "region".into()],
            measures: vec![Measure {
                name: "total_cents".into(),
                func: AggFn::Sum,
                column: Some("total_cents".into()),
            }],
        },
        _ => panic!("{usage}"),
    };
    let spec = TableSpec {
        name: "orders".into(),
        columns,
        kind,
    };
    offsets::ensure_table(&client).await.expect("offsets table");
    let rows: Vec<(String, Row)> = (0..n).map(|i| ("orders".to_string(), row(i))).collect();

    let t = Instant::now();
    let mut w = Writer::open(client.clone(), &[(spec.clone(), "orders_v1".into())])
        .await
        .expect("opening");
    for chunk in rows.chunks(batch) {
        w.write(chunk).await.expect("writing");
        let mut next = BTreeMap::new();
        for (_, r) in chunk {
            next.insert(
                (r.position.topic.clone(), r.position.partition),
                Stored {
                    next_offset: r.position.offset + 1,
                    generation: 1,
                },
            );
        }
        offsets::store(&client, "orders_v1", &next)
            .await
            .expect("offsets");
    }
    let writer_s = t.elapsed().as_secs_f64();
    // A replay of everything inserts nothing.
    let mut again = Writer::open(client.clone(), &[(spec.clone(), "orders_v1".into())])
        .await
        .expect("reopening");
    let s = again.write(&rows).await.expect("replaying");
    assert_eq!(s.inserted, 0, "a replay inserts nothing");

    let facts = spec.layout("orders_v1").facts;
    let db = client.database().to_string();
    client
        .execute(&format!("CREATE TABLE `{db}`.bulk AS `{db}`.`{facts}`"))
        .await
        .expect("bulk table");
    let t = Instant::now();
    let mut body = Vec::with_capacity(n * 128);
    for (_, r) in &rows {
        let mut line = r.values.clone();
        line.insert("_topic".into(), json!(r.position.topic));
        line.insert("_partition".into(), json!(r.position.partition));
        line.insert("_offset".into(), json!(r.position.offset));
        line.insert("_seq".into(), json!(r.seq));
        serde_json::to_writer(&mut body, &line).expect("JSON");
        body.push(b'\n');
    }
    client
        .insert(
            &format!("INSERT INTO `{db}`.bulk FORMAT JSONEachRow"),
            body.into(),
        )
        .await
        .expect("bulk insert");
    let bulk_s = t.elapsed().as_secs_f64();
    #[derive(serde::Deserialize)]
    struct C {
        a: u64,
        b: u64,
    }
    let c: Vec<C> = client
        .query(&format!(
            "SELECT (SELECT count() FROM `{db}`.`{facts}`) AS a, (SELECT count() FROM `{db}`.bulk) AS b"
        ))
        .await
        .expect("counting");
    assert_eq!((c[0].a as usize, c[0].b as usize), (n, n));
    let wr = n as f64 / writer_s;
    let br = n as f64 / bulk_s;
    println!(
        "| {n} | {batch} | {shape} | {writer_s:.2} | {wr:.0} | {bulk_s:.2} | {br:.0} | {:.2} |",
        wr / br
    );
}
