//! Sink definitions, and the Redis write script against the real Redis at 127.0.0.1:6379
//! (`STRANGLER_TEST_REDIS_URL` overrides), each test under its own prefix.

use std::path::Path;
use std::sync::Arc;

use strangler_bus::{Header, Record};

use super::redis::RedisSink;
use super::{Binding, Build, Mode, Sink};
use crate::checkpoint::Claims;
use crate::definition::parse;
use crate::event::Event;
use crate::policy::Reason;

fn redis_url() -> String {
    std::env::var("STRANGLER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

fn def(prefix: &str) -> String {
    format!(
        r#"name = "cache"
topics = ["order"]

[sink]
kind = "redis"
prefix = "{prefix}"

[[handler]]
event_type = "OrderPlaced"
op = "hset"
key = "order:{{key}}"
fields = {{ status = "=placed", total = "/total", note = "/note" }}

[[handler]]
event_type = "OrderPlaced"
op = "sadd"
key = "customer:{{/customer}}:orders"
member = "key"

[[handler]]
event_type = "OrderCancelled"
op = "del"
key = "order:{{key}}"

[[handler]]
event_type = "Snapshot"
op = "set"
key = "snap:{{key}}"
fields = {{ total = "/total", items = "/items" }}
ttl_secs = 60
"#
    )
}

fn event(offset: i64, id: &str, ty: &str, key: &str, payload: serde_json::Value) -> Event {
    Event {
        record: Record {
            topic: "order".into(),
            partition: 0,
            offset,
            key: Some(key.as_bytes().to_vec()),
            value: Some(payload.to_string().into_bytes()),
            headers: vec![Header {
                name: "id".into(),
                value: id.as_bytes().to_vec(),
            }],
            timestamp_ms: Some(1_700_000_000_000 + offset),
        },
        id: Some(id.into()),
        event_type: Some(ty.into()),
        key: Some(key.into()),
        payload: Ok(payload),
        prepared: None,
    }
}

/// A claim of `generation` with no start recorded.
fn generation(generation: i64) -> crate::checkpoint::Claim {
    crate::checkpoint::Claim {
        generation,
        start: None,
    }
}

fn binding(claims: Arc<Claims>, mode: Mode) -> Binding {
    Binding {
        version: 1,
        build: Build::Live,
        mode,
        claims,
    }
}

async fn con() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379")
}

async fn hget(prefix: &str, key: &str, field: &str) -> Option<String> {
    redis::cmd("HGET")
        .arg(format!("{prefix}:v1.0:{key}"))
        .arg(field)
        .query_async(&mut con().await)
        .await
        .unwrap()
}

async fn drop_prefix(prefix: &str) {
    let mut c = con().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut c)
            .await
            .unwrap();
    }
}

fn unique(tag: &str) -> String {
    format!(
        "unit:{tag}:{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

#[test]
fn a_redis_definition_parses_and_its_mistakes_are_reported_with_fixes() {
    let d = parse(&def("shop:orders"), Path::new("cache.toml")).expect("valid");
    assert_eq!(d.sink.kind, super::SinkKind::Redis);
    assert_eq!(d.handlers.len(), 4);

    let bad = r#"name = "cache"
topics = ["order"]
tables = ["orders"]

[sink]
kind = "redis"

[[handler]]
event_type = "OrderPlaced"
op = "insert"
key = "order:{key"
fields = { total = "nonsense" }
sql = "UPDATE x SET y = 1"

[[route]]
path = "/cache/{id}"
sql = "SELECT 1"
"#;
    let problems = parse(bad, Path::new("bad.toml")).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "tables",
        "sink.prefix",
        "handler[0].op",
        "handler[0].key",
        "handler[0].sql",
        "handler[0].fields.total",
        "route[0].key",
    ] {
        assert!(keys.contains(&want), "{want} not reported: {problems:#?}");
    }
    assert!(problems.iter().all(|p| !p.fix.is_empty()));

    // A SQL projection may not carry sink-only keys.
    let sql = r#"name = "orders"
topics = ["order"]
tables = ["orders"]
[setup]
all = "CREATE TABLE {{orders}} (id TEXT)"
[[handler]]
event_type = "OrderPlaced"
sql = "INSERT INTO {{orders}} (id) VALUES (:id)"
op = "hset"
"#;
    let problems = parse(sql, Path::new("sql.toml")).unwrap_err();
    assert_eq!(problems[0].key, "handler[0].op", "{problems:#?}");
}

#[tokio::test]
async fn a_batch_applied_twice_writes_once_and_a_stale_generation_is_fenced() {
    let prefix = unique("twice");
    let d = parse(&def(&prefix), Path::new("cache.toml")).unwrap();
    let sink = RedisSink::new(&d, &redis_url()).unwrap();
    sink.setup(1).await.unwrap();
    let claims = Arc::new(Claims::default());
    claims.set("order", 0, generation(2));
    let events = [
        event(
            0,
            "e0",
            "OrderPlaced",
            "o-1",
            serde_json::json!({"total": 10, "customer": "c1"}),
        ),
        event(
            1,
            "e1",
            "OrderPlaced",
            "o-2",
            serde_json::json!({"total": 20, "customer": "c1", "note": "x"}),
        ),
        event(2, "e2", "OrderCancelled", "o-2", serde_json::json!({})),
        event(
            3,
            "e3",
            "Snapshot",
            "o-1",
            serde_json::json!({"total": 10, "items": [1, 2]}),
        ),
    ];
    let refs: Vec<&Event> = events.iter().collect();
    let b = binding(claims.clone(), Mode::Live);
    let first = sink.apply(&b, &refs).await.unwrap();
    assert_eq!(first.applied, 4);
    assert_eq!(
        hget(&prefix, "order:o-1", "total").await.as_deref(),
        Some("10")
    );
    assert_eq!(
        hget(&prefix, "order:o-1", "status").await.as_deref(),
        Some("placed")
    );
    assert_eq!(hget(&prefix, "order:o-2", "total").await, None, "deleted");
    let snap: String = redis::cmd("GET")
        .arg(format!("{prefix}:v1.0:snap:o-1"))
        .query_async(&mut con().await)
        .await
        .unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&snap).unwrap(),
        serde_json::json!({"items": [1, 2], "total": 10})
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg(format!("{prefix}:v1.0:snap:o-1"))
        .query_async(&mut con().await)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "expiry set: {ttl}");

    // The same batch again (a crash before the checkpoint committed): nothing changes, even the
    // deleted key stays deleted.
    sink.apply(&b, &refs).await.unwrap();
    assert_eq!(hget(&prefix, "order:o-2", "total").await, None);
    let positions = sink.positions(1, &Build::Live).await.unwrap();
    assert_eq!(positions[0].next_offset, 4);

    // A relay duplicate (same id, later offset) is skipped.
    let dup = event(
        4,
        "e1",
        "OrderPlaced",
        "o-2",
        serde_json::json!({"total": 99, "customer": "c1"}),
    );
    sink.apply(&b, &[&dup]).await.unwrap();
    assert_eq!(hget(&prefix, "order:o-2", "total").await, None);

    // A writer with an older claim generation is refused as unavailable (the batch is dropped).
    let stale = Arc::new(Claims::default());
    stale.set("order", 0, generation(1));
    let late = event(
        5,
        "e5",
        "OrderPlaced",
        "o-3",
        serde_json::json!({"total": 5, "customer": "c2"}),
    );
    let err = sink
        .apply(&binding(stale, Mode::Live), &[&late])
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::SinkUnavailable, "{err:?}");
    assert!(err.detail.contains("FENCED"), "{}", err.detail);
    assert_eq!(hget(&prefix, "order:o-3", "total").await, None);

    // A re-driven dead letter below the position applies once.
    let parked = event(
        1,
        "e1-fixed",
        "OrderPlaced",
        "o-9",
        serde_json::json!({"total": 7, "customer": "c3"}),
    );
    let r = binding(Arc::new(Claims::default()), Mode::Redrive);
    sink.apply(&r, &[&parked]).await.unwrap();
    assert_eq!(
        hget(&prefix, "order:o-9", "total").await.as_deref(),
        Some("7")
    );
    drop_prefix(&prefix).await;
}

#[tokio::test]
async fn a_key_of_another_type_fails_the_event_before_anything_is_written() {
    let prefix = unique("type");
    let d = parse(&def(&prefix), Path::new("cache.toml")).unwrap();
    let sink = RedisSink::new(&d, &redis_url()).unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}:v1.0:order:o-1"))
        .arg("a string")
        .query_async(&mut con().await)
        .await
        .unwrap();
    let e = event(
        0,
        "e0",
        "OrderPlaced",
        "o-1",
        serde_json::json!({"total": 1, "customer": "c9"}),
    );
    let err = sink
        .apply(&binding(Arc::new(Claims::default()), Mode::Live), &[&e])
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::SinkError, "{err:?}");
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}:v1.0:customer:c9:orders"))
        .query_async(&mut con().await)
        .await
        .unwrap();
    assert!(members.is_empty(), "no op of the event was applied");
    let unknown = event(1, "e1", "Nope", "o-1", serde_json::json!({}));
    let err = sink
        .apply(
            &binding(Arc::new(Claims::default()), Mode::Live),
            &[&unknown],
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason, Reason::UnknownEventType);
    drop_prefix(&prefix).await;
}
