//! Relay throughput: a PostgreSQL outbox of N rows with 1 KB payloads relayed to a broker, beside
//! the same records sent straight to the same broker by a bare idempotent rdkafka producer (the
//! ceiling). Prints events/s for both, their ratio, and the process RSS as the relay progresses.
//!
//! ```text
//! cargo run --release -p strangler-outbox --example bench_relay -- \
//!     postgres://postgres@127.0.0.1/bench 127.0.0.1:9092 1000000
//! ```
//! `deploy/bench-relay.sh` starts the services and runs it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use sqlx::Connection;
use strangler_bus::{Header, KafkaPublisher, OutgoingRecord};
use strangler_core::config::{KafkaConfig, OutboxConfig};
use strangler_outbox::{Relay, RelayOptions, Sink};
use strangler_test_support::cpu;
use tokio_util::sync::CancellationToken;

const PAYLOAD_BYTES: usize = 1024;
const PARTITIONS: i32 = 4;
const AGGREGATES: usize = 10_000;

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds spent by this process, the broker (`BENCH_BROKER_PID`) and PostgreSQL.
#[derive(Clone, Copy)]
struct Cpu {
    me: f64,
    broker: f64,
    postgres: f64,
}

impl Cpu {
    fn now() -> Cpu {
        Cpu {
            me: cpu::process_secs("self", false),
            broker: std::env::var("BENCH_BROKER_PID").map_or(0.0, |p| cpu::process_secs(&p, false)),
            postgres: cpu::postgres_secs(),
        }
    }

    fn since(self, before: Cpu, events: usize) -> String {
        let per = |s: f64| s * 1e6 / events as f64;
        format!(
            "CPU µs/event: this process {:.1}, broker {:.1}, postgres {:.1}",
            per(self.me - before.me),
            per(self.broker - before.broker),
            per(self.postgres - before.postgres)
        )
    }
}

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

/// Deletes a phase's topic once it is measured: tansu's memory storage otherwise keeps every
/// record of the run, and later phases ran slower on a fuller broker.
async fn delete_topic(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    if let Err(e) = admin.delete_topics(&[topic], &AdminOptions::new()).await {
        eprintln!("deleting {topic}: {e} (later phases run on a fuller broker)");
    }
}

fn payload(n: usize) -> String {
    let head = format!(r#"{{"n": {n}, "pad": ""#);
    let pad = PAYLOAD_BYTES.saturating_sub(head.len() + 2);
    format!("{head}{}\"}}", "x".repeat(pad))
}

/// The bare producer: the same records, straight from memory, pipelined the same way (whole
/// batches enqueued, reports awaited with at most `max_in_flight` outstanding).
async fn bare(bootstrap: &str, topic: &str, n: usize, batch: usize, max_in_flight: usize) -> f64 {
    let publisher = KafkaPublisher::new(&KafkaConfig {
        brokers: bootstrap.into(),
        properties: BTreeMap::new(),
    })
    .expect("producer");
    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    let mut in_flight = 0usize;
    let mut sent = 0usize;
    while sent < n {
        let size = batch.min(n - sent);
        let records: Vec<OutgoingRecord> = (sent..sent + size)
            .map(|i| OutgoingRecord {
                topic: topic.into(),
                key: Some(format!("{}", i % AGGREGATES).into_bytes()),
                value: Some(payload(i).into_bytes()),
                headers: vec![
                    Header {
                        name: "id".into(),
                        value: uuid::Uuid::new_v4().to_string().into_bytes(),
                    },
                    Header {
                        name: "type".into(),
                        value: b"Changed".to_vec(),
                    },
                ],
                timestamp_ms: None,
            })
            .collect();
        pending.push_back((size, publisher.enqueue(&records).await.expect("enqueue")));
        in_flight += size;
        sent += size;
        while in_flight >= max_in_flight {
            let (size, p) = pending.pop_front().expect("pending");
            p.wait().await.expect("delivery");
            in_flight -= size;
        }
    }
    for (_, p) in pending {
        p.wait().await.expect("delivery");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Creates the outbox (the DDL of migrations/outbox, its payload column of type `payload_type`
/// when given) and fills it with `n` rows.
async fn fill_outbox(url: &str, n: usize, payload_type: Option<&str>, aggregate_type: &str) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("legacy db");
    let ddl = include_str!("../../../migrations/outbox/postgres.sql");
    sqlx::query("DROP TABLE IF EXISTS outbox")
        .execute(&mut conn)
        .await
        .expect("dropping the old outbox");
    sqlx::raw_sql(ddl).execute(&mut conn).await.expect("DDL");
    if let Some(ty) = payload_type {
        sqlx::query(&format!(
            "ALTER TABLE outbox ALTER COLUMN payload TYPE {ty} USING payload::text::{ty}"
        ))
        .execute(&mut conn)
        .await
        .expect("payload type");
    }
    sqlx::query("TRUNCATE outbox")
        .execute(&mut conn)
        .await
        .unwrap();
    let chunk = 50_000;
    let mut done = 0;
    while done < n {
        let size = chunk.min(n - done);
        // One transaction per 50,000 rows, each row a separate event of one of 10,000 aggregates.
        sqlx::query(
            "INSERT INTO outbox (id, aggregatetype, aggregateid, type, payload) \
             SELECT gen_random_uuid(), $5, (g % $3)::text, 'Changed', \
                    jsonb_build_object('n', g, 'pad', repeat('x', $4)) \
             FROM generate_series($1::bigint, $2::bigint) g",
        )
        .bind(done as i64)
        .bind((done + size - 1) as i64)
        .bind(AGGREGATES as i64)
        .bind((PAYLOAD_BYTES - 30) as i32)
        .bind(aggregate_type)
        .execute(&mut conn)
        .await
        .expect("filling the outbox");
        done += size;
    }
    sqlx::query("VACUUM ANALYZE outbox")
        .execute(&mut conn)
        .await
        .unwrap();
}

/// One relay run's setup: split or single reads, and the payload column's type.
struct Variant {
    name: String,
    split: bool,
    payload_type: Option<String>,
}

/// `BENCH_VARIANTS`: comma-separated `READS[/TYPE]`, READS `split` or `single`, TYPE a payload
/// column type (`jsonb`, the DDL's, when absent). Default `split`. The older `BENCH_SINGLE_READ=1`
/// adds `single`, and `BENCH_PAYLOAD_TYPE` sets the type of every variant without one.
fn variants() -> Vec<Variant> {
    let mut spec = std::env::var("BENCH_VARIANTS").unwrap_or_else(|_| "split".into());
    if std::env::var("BENCH_SINGLE_READ").is_ok_and(|v| v == "1") {
        spec.push_str(",single");
    }
    let default_type = std::env::var("BENCH_PAYLOAD_TYPE").ok();
    spec.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let (reads, ty) = match v.split_once('/') {
                Some((r, t)) => (r, Some(t.to_string())),
                None => (v, default_type.clone()),
            };
            let split = match reads {
                "split" => true,
                "single" => false,
                other => panic!("BENCH_VARIANTS: reads must be `split` or `single`, not `{other}`"),
            };
            let name = format!(
                "{} read{}, {}",
                reads,
                if split { "s" } else { "" },
                ty.as_deref().unwrap_or("jsonb")
            );
            Variant {
                name,
                split,
                payload_type: ty,
            }
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/strangler_bench".into());
    let bootstrap = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9092".into());
    let n: usize = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let cfg = OutboxConfig {
        batch_size: std::env::var("BENCH_BATCH")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2_000),
        max_in_flight: std::env::var("BENCH_IN_FLIGHT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20_000),
        ..OutboxConfig::default()
    };
    println!(
        "rows: {n}, payload: {PAYLOAD_BYTES} B, partitions: {PARTITIONS}, batch_size: {}, max_in_flight: {}",
        cfg.batch_size, cfg.max_in_flight
    );

    let variants = variants();

    let bare_topic = format!("bench.bare.{}", std::process::id());
    create_topic(&bootstrap, &bare_topic).await;
    let rss_before = rss_mb();
    let cpu_before = Cpu::now();
    let bare_rate = bare(
        &bootstrap,
        &bare_topic,
        n,
        cfg.batch_size as usize,
        cfg.max_in_flight as usize,
    )
    .await;
    println!(
        "bare producer: {bare_rate:.0} events/s (RSS {rss_before:.0} -> {:.0} MB); {}",
        rss_mb(),
        Cpu::now().since(cpu_before, n)
    );
    delete_topic(&bootstrap, &bare_topic).await;

    // The relay variants, each on a freshly filled outbox.
    let mut relay_rates = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        // Each variant publishes to a topic of its own (its rows' aggregate type), deleted after.
        let aggregate_type = format!("bench{i}");
        let topic = format!("outbox.event.{aggregate_type}");
        create_topic(&bootstrap, &topic).await;
        let started = Instant::now();
        fill_outbox(&url, n, v.payload_type.as_deref(), &aggregate_type).await;
        println!(
            "filled the outbox ({}) in {:.1}s",
            v.name,
            started.elapsed().as_secs_f64()
        );
        let rate = relay_once(&url, &bootstrap, cfg.clone(), v.split, n).await;
        println!("relay ({}) / bare: {:.2}", v.name, rate / bare_rate);
        relay_rates.push((v.name.clone(), rate));
        delete_topic(&bootstrap, &topic).await;
    }

    // The bare producer again, to bracket the relay runs against drift in the machine's load.
    let again_topic = format!("bench.bare2.{}", std::process::id());
    create_topic(&bootstrap, &again_topic).await;
    let cpu_before = Cpu::now();
    let bare_again = bare(
        &bootstrap,
        &again_topic,
        n,
        cfg.batch_size as usize,
        cfg.max_in_flight as usize,
    )
    .await;
    println!(
        "bare producer again: {bare_again:.0} events/s; {}",
        Cpu::now().since(cpu_before, n)
    );
    let bare_mean = (bare_rate + bare_again) / 2.0;
    for (name, rate) in relay_rates {
        println!(
            "relay ({name}) / mean of both bare runs: {:.2}",
            rate / bare_mean
        );
    }
}

/// One relay run to the end of the outbox; prints its rate, CPU and RSS, returns events/s.
async fn relay_once(url: &str, bootstrap: &str, cfg: OutboxConfig, split: bool, n: usize) -> f64 {
    let sink = Sink::Kafka(
        KafkaPublisher::new(&KafkaConfig {
            brokers: bootstrap.to_string(),
            properties: BTreeMap::new(),
        })
        .expect("producer"),
    );
    let relay = Relay::new(
        url.to_string(),
        cfg,
        sink,
        RelayOptions {
            once: true,
            pg_split_reads: split,
            ..RelayOptions::default()
        },
    );
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(rss_mb());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            samples
        })
    };
    let cpu_before = Cpu::now();
    let started = Instant::now();
    let report = relay.run(&CancellationToken::new()).await.expect("relay");
    let secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let samples = sampler.await.unwrap();
    let relay_rate = report.published as f64 / secs;
    let q = |f: f64| {
        samples
            .get(((samples.len() as f64 - 1.0) * f) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "relay (split reads: {split}): {} events in {secs:.1}s = {relay_rate:.0} events/s",
        report.published
    );
    println!("relay {}", Cpu::now().since(cpu_before, n));
    println!(
        "relay RSS (MB) at 0/25/50/75/100% of the run: {:.0} / {:.0} / {:.0} / {:.0} / {:.0}; max {:.0}",
        q(0.0),
        q(0.25),
        q(0.5),
        q(0.75),
        q(1.0),
        samples.iter().copied().fold(0.0, f64::max)
    );
    relay_rate
}
