//! Change capture from PostgreSQL logical decoding (`strangler relay --source wal`) on a real
//! server with wal_level = logical (the harness starts one when the shared server is not).

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rand::Rng;
use strangler_bus::debezium::{ChangeOp, Format, decode};
use strangler_test_support::logical_pg::logical_pg_database;
use strangler_test_support::pg_database;
use tokio_util::sync::CancellationToken;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_then_streaming_under_concurrent_writes_rebuilds_the_table_exactly() {
    let legacy = logical_pg_database().await;
    let pool = sqlx::PgPool::connect(&legacy.url).await.unwrap();
    sqlx::query(DDL).execute(&pool).await.unwrap();
    let ids = 3_000;
    seed(&pool, 0, ids).await;
    let store_db = pg_database().await;
    let store = store(&store_db.url).await;

    // Small chunks so that the snapshot runs while the writers do.
    let wal = wal_config(&format!(
        "slot = \"{}\"\nsnapshot_chunk_size = 50\npoll_interval_ms = 20\n",
        legacy.name()
    ));
    let token = CancellationToken::new();
    let task = {
        let cap = capture(&legacy.url, wal.clone(), &store, false);
        let token = token.clone();
        tokio::spawn(async move { cap.run(&token).await })
    };
    wait_for_slot(&pool, legacy.name()).await;
    let writers: Vec<_> = (0..3)
        .map(|w| tokio::spawn(churn(pool.clone(), ids, 400, w, 3)))
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    // Stop mid-stream, then catch up with a second run from the confirmed position.
    token.cancel();
    let first = task.await.unwrap().unwrap();
    let second = capture(&legacy.url, wal, &store, true)
        .run(&CancellationToken::new())
        .await
        .unwrap();

    let records = log_records(&store).await;
    let rebuilt = replay(&records, "app.public.items");
    let actual = table_image(&legacy.url).await;
    assert_eq!(rebuilt.len(), actual.len(), "row count");
    for (k, row) in &actual {
        assert_eq!(rebuilt.get(k), Some(row), "row {k}");
    }
    let reads = records
        .iter()
        .filter(|r| {
            decode(r)
                .ok()
                .and_then(|d| d.change)
                .is_some_and(|c| c.op == ChangeOp::Read)
        })
        .count() as u64;
    assert_eq!(
        reads,
        first.snapshot_rows + second.snapshot_rows,
        "every snapshot read was published once"
    );
    assert!(reads > 0, "the snapshot ran");
    assert!(
        reads <= ids as u64,
        "each row is read at most once: no duplicate window ({reads} reads of {ids} rows)"
    );
    // Types as Debezium writes them with schemas disabled.
    let any = actual.values().find(|r| !r["at"].is_null()).unwrap();
    assert!(any["id"].is_i64() && any["flag"].is_boolean() && any["price"].is_string());
    assert!(any["at"].as_str().unwrap().ends_with('Z') && any["day"].is_i64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_stream_loses_no_change_and_redeliveries_share_their_event_id() {
    let legacy = logical_pg_database().await;
    let pool = sqlx::PgPool::connect(&legacy.url).await.unwrap();
    sqlx::query(DDL).execute(&pool).await.unwrap();
    let store_db = pg_database().await;
    let store = store(&store_db.url).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &legacy.url,
        &store_db.url,
        &format!(
            "slot = \"{}\"\nbatch_size = 50\npoll_interval_ms = 20\n",
            legacy.name()
        ),
    );
    let log = dir.path().join("relay.log");
    let mut relay = spawn(support::relay(&config, &log, false));
    // Write only once the slot exists, so that every insert is a streamed change.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while sqlx::query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1")
        .bind(legacy.name())
        .fetch_optional(&pool)
        .await
        .unwrap()
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the relay did not create its slot: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let total: i64 = 2_000;
    let writer = {
        let pool = pool.clone();
        tokio::spawn(async move {
            for id in 0..total {
                sqlx::query("INSERT INTO items (id, qty) VALUES ($1, 1)")
                    .bind(id)
                    .execute(&pool)
                    .await
                    .unwrap();
                if id % 3 == 0 {
                    sqlx::query("UPDATE items SET qty = 2 WHERE id = $1")
                        .bind(id)
                        .execute(&pool)
                        .await
                        .unwrap();
                }
            }
        })
    };
    for _ in 0..4 {
        let pause = rand::thread_rng().gen_range(300..900);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        relay.kill().expect("SIGKILL");
        relay.wait().unwrap();
        relay = spawn(support::relay(&config, &log, false));
    }
    writer.await.unwrap();
    relay.kill().expect("SIGKILL");
    relay.wait().unwrap();
    let status = support::relay(&config, &log, true).status().unwrap();
    assert!(
        status.success(),
        "the draining run failed: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    let records = log_records(&store).await;
    let mut ids_by_change: HashMap<(String, &'static str), HashSet<uuid::Uuid>> = HashMap::new();
    for r in &records {
        let d = decode(r).unwrap();
        if d.format != Format::Change {
            continue;
        }
        let op = match d.change.as_ref().unwrap().op {
            ChangeOp::Create => "c",
            ChangeOp::Update => "u",
            ChangeOp::Read => continue, // rows the snapshot saw first
            other => panic!("unexpected {other:?}"),
        };
        ids_by_change
            .entry((d.aggregate_id.unwrap(), op))
            .or_default()
            .insert(d.event_id);
    }
    for id in 0..total {
        let k = id.to_string();
        assert!(
            ids_by_change.contains_key(&(k.clone(), "c")),
            "insert of {id} lost"
        );
        if id % 3 == 0 {
            assert!(ids_by_change.contains_key(&(k, "u")), "update of {id} lost");
        }
    }
    assert_eq!(
        ids_by_change.len() as i64,
        total + (total + 2) / 3,
        "nothing else was captured"
    );
    for (change, ids) in &ids_by_change {
        assert_eq!(
            ids.len(),
            1,
            "redeliveries of {change:?} carry one event id"
        );
    }
    let rebuilt = replay(&records, "app.public.items");
    assert_eq!(rebuilt, table_image(&legacy.url).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logical_messages_become_outbox_events_and_an_idle_slot_moves_with_heartbeats() {
    let legacy = logical_pg_database().await;
    let pool = sqlx::PgPool::connect(&legacy.url).await.unwrap();
    sqlx::query(DDL).execute(&pool).await.unwrap();
    sqlx::query("CREATE TABLE other (id int PRIMARY KEY)")
        .execute(&pool)
        .await
        .unwrap();
    let store_db = pg_database().await;
    let store = store(&store_db.url).await;
    let wal = wal_config(&format!(
        "slot = \"{}\"\nsnapshot = \"never\"\nheartbeat_interval_ms = 100\npoll_interval_ms = 20\n",
        legacy.name()
    ));
    capture(&legacy.url, wal.clone(), &store, true)
        .run(&CancellationToken::new())
        .await
        .unwrap();

    // An event without an outbox table, in the same transaction as the row change.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO items (id, qty) VALUES (7, 70)")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("SELECT pg_logical_emit_message(true, 'outbox', $1)")
        .bind(r#"{"id":"4d47e190-0402-4048-bc2c-89dd54343cdc","aggregatetype":"order","aggregateid":"o-7","type":"OrderPlaced","payload":{"total":12}}"#)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let token = CancellationToken::new();
    let task = {
        let cap = capture(&legacy.url, wal.clone(), &store, false);
        let token = token.clone();
        tokio::spawn(async move { cap.run(&token).await })
    };
    let confirmed = || async {
        let l: String = sqlx::query_scalar(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(legacy.name())
        .fetch_one(&pool)
        .await
        .unwrap();
        l
    };
    let lsn_ge = |a: &str, b: &str| {
        let p = |s: &str| strangler_cdc::pgoutput::parse_lsn(s).unwrap();
        p(a) >= p(b)
    };
    // WAL that the slot does not capture: an idle slot must still move past it.
    for i in 0..200 {
        sqlx::query("INSERT INTO other VALUES ($1)")
            .bind(i)
            .execute(&pool)
            .await
            .unwrap();
    }
    let target: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !lsn_ge(&confirmed().await, &target) {
        if task.is_finished() {
            panic!("capture ended early: {:?}", task.await.unwrap());
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the idle slot stayed at {} below {target}",
            confirmed().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    token.cancel();
    task.await.unwrap().unwrap();

    let records = log_records(&store).await;
    let by_topic: BTreeMap<&str, usize> = records.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.topic.as_str()).or_default() += 1;
        m
    });
    assert_eq!(
        by_topic,
        BTreeMap::from([("app.public.items", 1), ("outbox.event.order", 1)])
    );
    let event = records
        .iter()
        .find(|r| r.topic == "outbox.event.order")
        .unwrap();
    // The projector's decoder reads it like an outbox row, and the row change beside it.
    let e = strangler_projector::event::decode(event.clone());
    assert_eq!(
        e.id.as_deref(),
        Some("4d47e190-0402-4048-bc2c-89dd54343cdc")
    );
    assert_eq!(e.event_type.as_deref(), Some("OrderPlaced"));
    assert_eq!(e.key.as_deref(), Some("o-7"));
    assert_eq!(e.payload.unwrap()["total"], 12);
    let row = records
        .iter()
        .find(|r| r.topic == "app.public.items")
        .unwrap();
    let e = strangler_projector::event::decode(row.clone());
    assert_eq!(e.event_type.as_deref(), Some("items.c"));
    assert_eq!(e.key.as_deref(), Some("7"));
    assert_eq!(e.payload.unwrap().pointer("/after/qty"), Some(&70.into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_logical_wal_is_refused_with_the_fix() {
    let shared = pg_database().await;
    let pool = sqlx::PgPool::connect(&shared.url).await.unwrap();
    let level: String = sqlx::query_scalar("SELECT current_setting('wal_level')")
        .fetch_one(&pool)
        .await
        .unwrap();
    let err = match level.as_str() {
        "logical" => strangler_cdc::Error::WalLevel("replica".into()),
        _ => {
            sqlx::query(DDL).execute(&pool).await.unwrap();
            let store_db = pg_database().await;
            let store = store(&store_db.url).await;
            capture(&shared.url, wal_config(""), &store, true)
                .run(&CancellationToken::new())
                .await
                .unwrap_err()
        }
    };
    let msg = err.to_string();
    assert!(
        msg.contains("wal_level = logical") && msg.contains("ALTER SYSTEM SET wal_level"),
        "{msg}"
    );
    assert!(
        !err.is_transient(),
        "a configuration problem is not retried"
    );
}

/// The snapshot's watermark window on a real slot, with a writer forced between the chunk's
/// select and its high watermark: the stale reads must be dropped, or replay resurrects a
/// deleted row and rolls back an update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_the_chunk_select_and_the_high_watermark_wins_over_the_read() {
    use strangler_cdc::pg;
    use strangler_cdc::stream::{Chunk, Decoder, DecoderConfig, Output};

    let legacy = logical_pg_database().await;
    let pool = sqlx::PgPool::connect(&legacy.url).await.unwrap();
    sqlx::query(DDL).execute(&pool).await.unwrap();
    seed(&pool, 0, 10).await;
    let wal = wal_config(&format!("slot = \"{}\"\n", legacy.name()));
    let mut conn = pg::connect(&legacy.url).await.unwrap();
    let t = pg::describe(&mut conn, "public", "items", "app")
        .await
        .unwrap();
    pg::ensure_publication(&mut conn, &wal, std::slice::from_ref(&t))
        .await
        .unwrap();
    pg::ensure_slot(&mut conn, &wal.slot).await.unwrap();
    let mut decoder = Decoder::new(
        DecoderConfig {
            topic_prefix: "app".into(),
            db: legacy.name().into(),
            slot: wal.slot.clone(),
            tombstones: true,
            message_prefix: "outbox".into(),
            outbox: Default::default(),
        },
        vec![t.clone()],
    );

    pg::emit_watermark(&mut conn, &decoder.watermark("low", "c1"))
        .await
        .unwrap();
    let rows = pg::chunk(&mut conn, &t, None, 100).await.unwrap();
    sqlx::query("UPDATE items SET qty = 999 WHERE id = 3")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM items WHERE id = 4")
        .execute(&pool)
        .await
        .unwrap();
    pg::emit_watermark(&mut conn, &decoder.watermark("high", "c1"))
        .await
        .unwrap();
    let chunk = Chunk::new("c1".into(), t, rows, 100);
    decoder.chunk = Some(chunk.clone());

    // The test server commits asynchronously: read until the flush has caught up.
    let mut out = Output::default();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while out.completed.is_none() && std::time::Instant::now() < deadline {
        out = Output::default();
        for (lsn, data) in pg::peek(&mut conn, &wal.slot, &wal.publication, 1000)
            .await
            .unwrap()
        {
            decoder.feed(lsn, &data, 0, &mut out).unwrap();
        }
        if out.completed.is_none() {
            decoder.chunk = Some(chunk.clone());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        out.completed.is_some(),
        "the high watermark closed the chunk: {:?}",
        out.records.iter().map(|(_, o)| *o).collect::<Vec<_>>()
    );
    let records: Vec<strangler_bus::Record> = out
        .records
        .iter()
        .enumerate()
        .map(|(i, (r, _))| strangler_bus::Record {
            topic: r.topic.clone(),
            partition: 0,
            offset: i as i64,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
            timestamp_ms: r.timestamp_ms,
        })
        .collect();
    let ops: Vec<&str> = out.records.iter().map(|(_, op)| *op).collect();
    assert_eq!(
        ops.iter().filter(|o| **o == "r").count(),
        8,
        "10 rows read, 2 changed inside the window: {ops:?}"
    );
    assert_eq!(
        replay(&records, "app.public.items"),
        table_image(&legacy.url).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_source_wal_without_a_wal_section_says_what_to_add() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        "[legacy]\nurl = \"postgres://postgres@127.0.0.1:5432/postgres\"\n[bus]\nkind = \"log\"\n\
         [store]\nurl = \"sqlite://STORE?mode=rwc\"\n"
            .replace("STORE", &dir.path().join("s.db").display().to_string()),
    )
    .unwrap();
    let out = std::process::Command::new(strangler_bin())
        .args([
            "--config",
            config.to_str().unwrap(),
            "relay",
            "--source",
            "wal",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_ne!(out.status.code(), Some(69), "no longer `not built yet`");
    assert!(
        stderr.contains("[wal]") && stderr.contains("tables"),
        "{stderr}"
    );
}
