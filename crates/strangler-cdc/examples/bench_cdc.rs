//! Change-capture benchmark (`deploy/bench-cdc.sh`): N single-row updates, each its own
//! transaction, captured from a logical replication slot and published as Debezium change events
//! to a Kafka-protocol broker; beside it, in the same run and to the same broker, the outbox relay
//! carrying N outbox rows of the same size. Prints both rates and their ratio.
//!
//! Usage: bench_cdc <bootstrap> [N]; `STRANGLER_BENCH_PG_LOGICAL` names a server with
//! wal_level = logical (else the test harness starts one); `BENCH_BATCH` sets both batch sizes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sqlx::Connection;
use strangler_bus::KafkaPublisher;
use strangler_cdc::{Capture, CaptureOptions};
use strangler_core::config::{Config, KafkaConfig, OutboxConfig};
use strangler_outbox::{Relay, RelayOptions, Sink};
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;
const ROWS: i64 = 10_000;

async fn create_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    admin
        .create_topics(
            [&NewTopic::new(
                topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("creating topic");
}

fn publisher(bootstrap: &str) -> KafkaPublisher {
    KafkaPublisher::new(&KafkaConfig {
        brokers: bootstrap.into(),
        properties: BTreeMap::new(),
    })
    .expect("producer")
}

async fn database(admin: &str, name: &str) -> String {
    let mut c = sqlx::PgConnection::connect(admin).await.expect("admin");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
    let mut u = url::Url::parse(admin).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bootstrap = args.get(1).cloned().unwrap_or("127.0.0.1:9092".into());
    let n: i64 = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let batch: u32 = std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    let admin = match std::env::var("STRANGLER_BENCH_PG_LOGICAL") {
        Ok(url) => url,
        Err(_) => {
            tokio::task::spawn_blocking(strangler_test_support::logical_pg::logical_admin_url)
                .await
                .expect("starting a logical PostgreSQL")
        }
    };
    let tag = std::process::id();
    println!("updates: {n}, rows: {ROWS}, batch: {batch}, partitions: {PARTITIONS}");

    // Change capture.
    let slot = format!("bench_{tag}");
    let cdc_url = database(&admin, &slot).await;
    let mut conn = sqlx::PgConnection::connect(&cdc_url).await.unwrap();
    sqlx::raw_sql(&format!(
        "CREATE TABLE items (id bigint PRIMARY KEY, qty bigint NOT NULL, note text NOT NULL); \
         INSERT INTO items SELECT g, 0, repeat('x', 100) FROM generate_series(0, {}) g",
        ROWS - 1
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let wal = Config::parse(
        &format!(
            "[wal]\ntables = [\"public.items\"]\nslot = \"{slot}\"\ntopic_prefix = \"bench{tag}\"\n\
             snapshot = \"never\"\nbatch_size = {batch}\n"
        ),
        Path::new("bench.toml"),
    )
    .unwrap()
    .wal
    .unwrap();
    create_topic(&bootstrap, &format!("bench{tag}.public.items")).await;
    let capture = |once| {
        Capture::new(
            cdc_url.clone(),
            wal.clone(),
            OutboxConfig::default(),
            Arc::new(publisher(&bootstrap)),
            CaptureOptions { once },
        )
    };
    capture(true).run(&CancellationToken::new()).await.unwrap(); // creates the slot
    let started = Instant::now();
    sqlx::raw_sql(&format!(
        "DO $$ BEGIN FOR i IN 1..{n} LOOP \
         UPDATE items SET qty = qty + 1 WHERE id = i % {ROWS}; COMMIT; END LOOP; END $$"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    println!(
        "{n} single-row update transactions written in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let report = capture(true).run(&CancellationToken::new()).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    let cdc_rate = report.published as f64 / secs;
    println!(
        "cdc: {} change events in {secs:.1}s = {cdc_rate:.0} changes/s",
        report.published
    );
    assert_eq!(report.published, n as u64, "every update captured once");

    // The outbox relay, same size of record, same broker.
    let outbox_url = database(&admin, &format!("bench_outbox_{tag}")).await;
    let mut conn = sqlx::PgConnection::connect(&outbox_url).await.unwrap();
    sqlx::raw_sql(include_str!("../../../migrations/outbox/postgres.sql"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut done = 0;
    while done < n {
        let size = (n - done).min(50_000);
        sqlx::query(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) \
             SELECT gen_random_uuid(), $3, (g % $4)::text, 'Changed', \
                    jsonb_build_object('id', g % $4, 'qty', g, 'note', repeat('x', 100)) \
             FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(done)
        .bind(done + size - 1)
        .bind(format!("bench{tag}"))
        .bind(ROWS)
        .execute(&mut conn)
        .await
        .unwrap();
        done += size;
    }
    create_topic(&bootstrap, &format!("outbox.event.bench{tag}")).await;
    let relay = Relay::new(
        outbox_url,
        OutboxConfig {
            batch_size: batch,
            ..OutboxConfig::default()
        },
        Sink::Kafka(publisher(&bootstrap)),
        RelayOptions {
            once: true,
            ..RelayOptions::default()
        },
    );
    let started = Instant::now();
    let report = relay.run(&CancellationToken::new()).await.expect("relay");
    let secs = started.elapsed().as_secs_f64();
    let relay_rate = report.published as f64 / secs;
    println!(
        "outbox relay: {} events in {secs:.1}s = {relay_rate:.0} events/s",
        report.published
    );
    println!("cdc / outbox relay: {:.2}", cdc_rate / relay_rate);

    let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
    let _ = sqlx::query("SELECT pg_drop_replication_slot($1)")
        .bind(&slot)
        .execute(&mut c)
        .await;
}
