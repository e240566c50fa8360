//! The client, writer, offsets and rebuild against a real ClickHouse server (a fresh database per
//! test, see `strangler_test_support::clickhouse`).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, json};
use strangler_clickhouse::{
    AggFn, Client, Column, Error, Measure, Position, Row, TableKind, TableSpec, Writer, offsets,
    rebuild,
};
use strangler_test_support::clickhouse::clickhouse_database;

fn revenue() -> TableSpec {
    let col = |name: &str, ty: &str| Column {
        name: name.into(),
        ty: ty.into(),
    };
    TableSpec {
        name: "revenue".into(),
        columns: vec![
            col("day", "Date"),
            col("region", "String"),
            col("amount_cents", "Int64"),
        ],
        kind: TableKind::Aggregate {
            group_by: vec!["day".into(), "region".into()],
            measures: vec![
                Measure {
                    name: "revenue_cents".into(),
                    func: AggFn::Sum,
                    column: Some("amount_cents".into()),
                },
                Measure {
                    name: "orders".into(),
                    func: AggFn::Count,
                    column: None,
                },
            ],
        },
    }
}

fn row(partition: i32, offset: i64, day: &str, region: &str, cents: i64) -> (String, Row) {
    let mut values = Map::new();
    values.insert("day".into(), json!(day));
    values.insert("region".into(), json!(region));
    values.insert("amount_cents".into(), json!(cents));
    (
        "revenue".into(),
        Row {
            position: Position {
                topic: "orders".into(),
                partition,
                offset,
            },
            seq: 0,
            values,
        },
    )
}

#[derive(Debug, Deserialize, PartialEq)]
struct Revenue {
    day: String,
    region: String,
    revenue_cents: i64,
    orders: u64,
}

async fn aggregate(client: &Client, view: &str) -> Vec<Revenue> {
    client
        .query(&format!(
            "SELECT toString(day) AS day, region, revenue_cents, orders FROM `{}`.`{view}` ORDER BY day, region",
            client.database()
        ))
        .await
        .unwrap()
}

async fn physical_rows(client: &Client, table: &str) -> u64 {
    #[derive(Deserialize)]
    struct N {
        n: u64,
    }
    let r: Vec<N> = client
        .query(&format!(
            "SELECT count() AS n FROM `{}`.`{table}`",
            client.database()
        ))
        .await
        .unwrap();
    r[0].n
}

#[tokio::test]
async fn rows_written_again_after_a_restart_are_not_stored_twice() {
    let db = clickhouse_database();
    let client = Client::connect(&db.url).unwrap();
    let tables = [(revenue(), "revenue_v1".to_string())];
    let batch = vec![
        row(0, 0, "2026-11-01", "eu", 1000),
        row(0, 1, "2026-11-01", "eu", 250),
        row(1, 0, "2026-11-01", "us", 700),
        row(0, 2, "2026-11-02", "eu", 300),
    ];
    let mut w = Writer::open(client.clone(), &tables).await.unwrap();
    let s = w.write(&batch).await.unwrap();
    assert_eq!((s.inserted, s.skipped, s.inserts), (4, 0, 1));

    // A new writer (the restarted projector) reads the high-water marks from the table and drops
    // the rows it already has, keeping the new one.
    let mut again = batch.clone();
    again.push(row(1, 1, "2026-11-02", "us", 50));
    let mut w = Writer::open(client.clone(), &tables).await.unwrap();
    let s = w.write(&again).await.unwrap();
    assert_eq!((s.inserted, s.skipped), (1, 4));
    assert_eq!(physical_rows(&client, "revenue_v1_facts").await, 5);
    assert_eq!(
        aggregate(&client, "revenue_v1").await,
        vec![
            Revenue {
                day: "2026-11-01".into(),
                region: "eu".into(),
                revenue_cents: 1250,
                orders: 2
            },
            Revenue {
                day: "2026-11-01".into(),
                region: "us".into(),
                revenue_cents: 700,
                orders: 1
            },
            Revenue {
                day: "2026-11-02".into(),
                region: "eu".into(),
                revenue_cents: 300,
                orders: 1
            },
            Revenue {
                day: "2026-11-02".into(),
                region: "us".into(),
                revenue_cents: 50,
                orders: 1
            },
        ]
    );
}

#[tokio::test]
async fn duplicates_that_reach_the_table_are_not_counted_by_the_aggregate() {
    // Bypass the writer's high-water filter (two writers that both think they are first): the
    // ReplacingMergeTree key on the position and the view's FINAL keep the aggregate right.
    let db = clickhouse_database();
    let client = Client::connect(&db.url).unwrap();
    let tables = [(revenue(), "revenue_v1".to_string())];
    let batch = vec![row(0, 0, "2026-11-01", "eu", 1000)];
    let mut a = Writer::open(client.clone(), &tables).await.unwrap();
    let mut b = Writer::open(client.clone(), &tables).await.unwrap();
    a.write(&batch).await.unwrap();
    b.write(&batch).await.unwrap();
    assert_eq!(physical_rows(&client, "revenue_v1_facts").await, 2);
    let agg = aggregate(&client, "revenue_v1").await;
    assert_eq!((agg[0].revenue_cents, agg[0].orders), (1000, 1));
}

#[tokio::test]
async fn a_redrive_inserts_only_positions_not_stored() {
    let db = clickhouse_database();
    let client = Client::connect(&db.url).unwrap();
    let tables = [(revenue(), "revenue_v1".to_string())];
    let mut w = Writer::open(client.clone(), &tables).await.unwrap();
    // Offset 1 was dead-lettered; 0 and 2 applied.
    w.write(&[
        row(0, 0, "2026-11-01", "eu", 10),
        row(0, 2, "2026-11-01", "eu", 30),
    ])
    .await
    .unwrap();
    let redrive = [
        row(0, 1, "2026-11-01", "eu", 20),
        row(0, 2, "2026-11-01", "eu", 30),
    ];
    // The high-water filter would drop offset 1 (below 2); the redrive path inserts it once.
    let s = w.write_missing(&redrive).await.unwrap();
    assert_eq!((s.inserted, s.skipped), (1, 1));
    let s = w.write_missing(&redrive).await.unwrap();
    assert_eq!((s.inserted, s.skipped), (0, 2));
    assert_eq!(physical_rows(&client, "revenue_v1_facts").await, 3);
    assert_eq!(aggregate(&client, "revenue_v1").await[0].revenue_cents, 60);
}

#[tokio::test]
async fn offsets_live_in_clickhouse_and_the_latest_store_wins() {
    let db = clickhouse_database();
    let client = Client::connect(&db.url).unwrap();
    offsets::ensure_table(&client).await.unwrap();
    assert!(offsets::load(&client, "orders@1").await.unwrap().is_empty());
    let mut next = BTreeMap::new();
    let at = |next_offset, generation| offsets::Stored {
        next_offset,
        generation,
    };
    next.insert(("orders".to_string(), 0), at(10, 1));
    next.insert(("orders".to_string(), 1), at(7, 1));
    offsets::store(&client, "orders@1", &next).await.unwrap();
    next.insert(("orders".to_string(), 0), at(3, 2)); // a replay moved it back
    offsets::store(&client, "orders@1", &next).await.unwrap();
    let loaded = offsets::load(&client, "orders@1").await.unwrap();
    assert_eq!(loaded, next);
    assert!(offsets::load(&client, "orders@2").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_rebuild_writes_new_tables_and_swaps_them_in() {
    let db = clickhouse_database();
    let client = Client::connect(&db.url).unwrap();
    let spec = revenue();
    let mut live = Writer::open(client.clone(), &[(spec.clone(), "revenue_v1".into())])
        .await
        .unwrap();
    // The live table has drifted: a wrong amount.
    live.write(&[row(0, 0, "2026-11-01", "eu", 999)])
        .await
        .unwrap();

    rebuild::reset(&client, &spec, "revenue_v1").await.unwrap();
    let mut rebuilt = Writer::open(
        client.clone(),
        &[(spec.clone(), rebuild::rebuild_base("revenue_v1"))],
    )
    .await
    .unwrap();
    rebuilt
        .write(&[
            row(0, 0, "2026-11-01", "eu", 1000),
            row(0, 1, "2026-11-01", "eu", 5),
        ])
        .await
        .unwrap();
    // Readers still see the live table until the swap.
    assert_eq!(aggregate(&client, "revenue_v1").await[0].revenue_cents, 999);
    rebuild::swap(&client, &spec, "revenue_v1").await.unwrap();
    let after = aggregate(&client, "revenue_v1").await;
    assert_eq!((after[0].revenue_cents, after[0].orders), (1005, 2));
    // Nothing of the rebuild or the old table is left behind.
    #[derive(Deserialize)]
    struct T {
        name: String,
    }
    let names: Vec<T> = client
        .query(&format!(
            "SELECT name FROM system.tables WHERE database = '{}' ORDER BY name",
            client.database()
        ))
        .await
        .unwrap();
    let names: Vec<String> = names.into_iter().map(|t| t.name).collect();
    assert_eq!(names, vec!["revenue_v1", "revenue_v1_facts"]);
}

#[tokio::test]
async fn server_errors_carry_clickhouse_s_own_message() {
    let db = clickhouse_database();
    let client = Client::connect(&db.url).unwrap();
    let err = client
        .execute("SELECT nope FROM missing")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Server { code: Some(60), .. }),
        "{text}"
    );
    assert!(
        text.contains("missing") && text.contains("doesn't exist") && text.contains("SELECT nope"),
        "{text}"
    );

    let down = Client::connect("http://127.0.0.1:1/x").unwrap();
    let err = down.ping().await.unwrap_err();
    assert!(err.retryable());
    assert!(
        err.to_string().contains("127.0.0.1:1 is not reachable"),
        "{err}"
    );

    // A row naming a column the table lacks is refused before anything is sent.
    let mut w = Writer::open(client.clone(), &[(revenue(), "revenue_v1".into())])
        .await
        .unwrap();
    let (t, mut r) = row(0, 0, "2026-11-01", "eu", 1);
    r.values.insert("city".into(), json!("Oslo"));
    let err = w.write(&[(t, r)]).await.unwrap_err().to_string();
    assert!(err.contains("column city is not in the table"), "{err}");
}
