//! The demo's story on PostgreSQL (three schemas it creates) and a Kafka-protocol broker (a topic
//! it creates with the admin API), through the real binary, with the default traffic profile
//! (the gate needs it: a third of the answers are stale behind Kafka).

use std::process::Command;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use sqlx::Connection;
use strangler_test_support::{broker, pg_database};

use super::strangler_bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_whole_story_on_postgres_and_kafka() {
    let db = pg_database().await;
    let broker = broker();
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let mut cmd = Command::new(strangler_bin());
    cmd.args(["demo", "--quiet", "--writes-per-phase", "600", "--dir"])
        .arg(&demo_dir)
        .args(["--postgres", &db.url, "--kafka", &broker.bootstrap])
        .env_remove("STRANGLER_CONFIG");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("drift on /total"), "{stdout}");
    assert!(stdout.contains("promotion to canary refused"), "{stdout}");
    assert!(
        stdout.contains("0 mismatches after the fix: true"),
        "{stdout}"
    );
    assert!(stdout.contains("capability now `new`"), "{stdout}");

    // It really ran on PostgreSQL: the legacy orders, the outbox drained by the relay, the
    // projection caught up with every order, and the capability in `new` in the control store.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let orders = count("SELECT count(*) FROM strangler_demo_legacy.orders")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(orders > 1000, "legacy orders: {orders}");
    // The story stops its stack as soon as it ends, so the last few events may still be on
    // their way; everything before them was projected.
    let projected = count("SELECT count(*) FROM strangler_demo_read.orders_v1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        projected <= orders && projected * 100 >= orders * 95,
        "the read model holds {projected} of {orders} legacy orders"
    );
    let wrong_totals = count(
        "SELECT count(*) FROM strangler_demo_read.orders_v1 r \
         JOIN strangler_demo_legacy.orders l ON l.id = r.id \
         WHERE abs(r.total * 100 - (l.subtotal_cents + l.tax_cents)) > 0.5",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        wrong_totals, 0,
        "the replay repaired every total the bug wrote"
    );
    let mode: String = sqlx::query_scalar(
        "SELECT mode FROM strangler_demo_control.strangler_cutover WHERE capability = 'order-summary'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(mode, "new");

    // ...and on Kafka: the topic the demo created holds one event per legacy write.
    let config = std::fs::read_to_string(demo_dir.join("strangler.toml")).unwrap();
    assert!(config.contains("kind = \"kafka\""), "{config}");
    let template = config
        .lines()
        .find_map(|l| l.strip_prefix("topic_template = "))
        .unwrap()
        .trim_matches('"');
    let topic = template.replace("{aggregatetype}", "order");
    let events = topic_size(&broker.bootstrap, &topic);
    let writes = count("SELECT count(*) FROM strangler_demo_legacy.orders")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        + count("SELECT count(*) FROM strangler_demo_legacy.orders WHERE status <> 'open'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let unpublished = count("SELECT count(*) FROM strangler_demo_legacy.outbox")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(
        events <= writes && events + unpublished >= writes,
        "{writes} legacy writes: {events} events on {topic}, {unpublished} still in the outbox"
    );

    // The report tells the same story.
    let html = std::fs::read_to_string(demo_dir.join("report.html")).unwrap();
    assert!(html.contains("<code>/total</code>"));
}

/// Events in all partitions of `topic`, read from the beginning to the end.
fn topic_size(bootstrap: &str, topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            strangler_test_support::unique_name("demo-count"),
        )
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    let meta = c
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = meta.topics()[0].partitions().len();
    assert_eq!(partitions, 4, "the demo creates 4 partitions");
    c.subscribe(&[topic]).unwrap();
    let mut at_end = std::collections::HashSet::new();
    let mut events = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while at_end.len() < partitions {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} took over 60 s"
        );
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(_)) => events += 1,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    events
}
