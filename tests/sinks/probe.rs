//! What the sink tests need to know of one sink: its projection file, its configuration lines,
//! and its whole state as comparable text.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use redis::AsyncCommands;
use strangler_core::config::{RedisSinkConfig, SinksConfig};
use strangler_projector::Projector;
use strangler_store::Store;

use super::support::{Env, Truth, drift, order_summary, rows, summary};

pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The Redis the tests use.
pub fn redis_url() -> String {
    std::env::var("STRANGLER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// The sinks' connections, as the configuration file of the tests names them.
pub fn sinks_config() -> SinksConfig {
    SinksConfig {
        redis: Some(RedisSinkConfig { url: redis_url() }),
        clickhouse: None,
    }
}

/// The projections in the test's folder, with their sinks, set up.
pub async fn projector(env: &Env) -> Projector {
    let p = Projector::load_with_sinks(
        env.read.clone(),
        env.source.clone(),
        env.dir.path(),
        &sinks_config(),
    )
    .expect("projections load");
    p.setup().await.expect("setup");
    p
}

/// One sink under test.
pub trait Probe: Send + Sync {
    /// The projection's name.
    fn projection(&self) -> &str;
    /// The projection file's text (`@TOPIC@` is replaced by the test's topic).
    fn file(&self, version: u32) -> String;
    /// Lines for the configuration file (`[projections.sinks.<kind>]` tables).
    fn config(&self) -> String;
    /// The whole state of what readers see, as sorted lines.
    fn snapshot<'a>(&'a self, read: &'a Store) -> Fut<'a, Vec<String>>;
    /// Differences from the legacy truth.
    fn drift<'a>(
        &'a self,
        read: &'a Store,
        truth: &'a BTreeMap<String, Truth>,
    ) -> Fut<'a, Vec<String>>;
}

/// The SQL read store, with the shipped example projection (`orders`).
pub struct SqlProbe;

impl Probe for SqlProbe {
    fn projection(&self) -> &str {
        "orders"
    }
    fn file(&self, version: u32) -> String {
        order_summary("orders", version, "stop")
    }
    fn config(&self) -> String {
        String::new()
    }
    fn snapshot<'a>(&'a self, read: &'a Store) -> Fut<'a, Vec<String>> {
        Box::pin(async move { rows(read, "orders_v1").await })
    }
    fn drift<'a>(
        &'a self,
        read: &'a Store,
        truth: &'a BTreeMap<String, Truth>,
    ) -> Fut<'a, Vec<String>> {
        Box::pin(async move { drift(truth, &summary(read, "orders_v1").await) })
    }
}

/// A Redis projection of the same orders: a hash per order, a set of order ids per customer.
pub struct RedisProbe {
    pub name: String,
    pub prefix: String,
}

impl RedisProbe {
    pub fn new(name: &str) -> RedisProbe {
        RedisProbe {
            name: name.into(),
            prefix: strangler_test_support::unique_name("t13").replace('-', ":"),
        }
    }
}

/// The Redis projection file of the order stream.
pub fn redis_orders(name: &str, version: u32, prefix: &str) -> String {
    format!(
        r#"name = "{name}"
version = {version}
topics = ["@TOPIC@"]

[sink]
kind = "redis"
prefix = "{prefix}"

[policy]
on_failure = "stop"

[[handler]]
event_type = "OrderPlaced"
op = "hset"
key = "order:{{key}}"
fields = {{ customer_id = "/customer_id", status = "=placed", subtotal = "/subtotal", tax = "/tax", items = "/items", placed_at = "event_time", version = "offset" }}

[[handler]]
event_type = "OrderPlaced"
op = "sadd"
key = "customer:{{/customer_id}}:orders"
member = "key"

[[handler]]
event_type = "OrderAmended"
op = "hset"
key = "order:{{key}}"
fields = {{ subtotal = "/subtotal", tax = "/tax", version = "offset" }}

[[handler]]
event_type = "OrderShipped"
op = "hset"
key = "order:{{key}}"
fields = {{ status = "=shipped", version = "offset" }}

[[route]]
path = "/cache/orders/{{id}}"
key = "order:{{id}}"

[[route]]
path = "/cache/customers/{{customer}}/orders"
key = "customer:{{customer}}:orders"
result = "many"
"#
    )
}

pub async fn connection() -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("connecting to Redis at 127.0.0.1:6379")
}

/// The namespace readers are pointed at (`<prefix>:v1.<build>:` when nothing was promoted).
pub async fn live_namespace(prefix: &str) -> String {
    let mut con = connection().await;
    let ptr: Option<String> = con.get(format!("{prefix}:ptr")).await.unwrap();
    let ns = match ptr {
        Some(p) => p,
        None => {
            let b: Option<String> = con.get(format!("{prefix}:v1:build")).await.unwrap();
            format!("v1.{}", b.unwrap_or_else(|| "0".into()))
        }
    };
    format!("{prefix}:{ns}:")
}

/// Every data key under `ns` (bookkeeping `__*` keys apart), with its content, sorted.
pub async fn dump(ns: &str) -> Vec<String> {
    let mut con = connection().await;
    let keys: Vec<String> = {
        let mut it = con.scan_match::<_, String>(format!("{ns}*")).await.unwrap();
        let mut keys = Vec::new();
        while let Some(k) = it.next_item().await {
            keys.push(k.unwrap());
        }
        keys
    };
    let mut out = Vec::new();
    for k in keys {
        let short = k.strip_prefix(ns).unwrap_or(&k).to_string();
        if short.starts_with("__") {
            continue;
        }
        let ty: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut con)
            .await
            .unwrap();
        let body = match ty.as_str() {
            "hash" => {
                let h: BTreeMap<String, String> = con.hgetall(&k).await.unwrap();
                h.iter()
                    .map(|(f, v)| format!("{f}={v}"))
                    .collect::<Vec<_>>()
                    .join("|")
            }
            "set" => {
                let mut m: Vec<String> = con.smembers(&k).await.unwrap();
                m.sort();
                m.join(",")
            }
            "string" => con.get(&k).await.unwrap(),
            other => format!("<{other}>"),
        };
        out.push(format!("{short} {body}"));
    }
    out.sort();
    out
}

/// Deletes every key of a prefix (the end of a test).
pub async fn drop_prefix(prefix: &str) {
    let mut con = connection().await;
    let keys: Vec<String> = {
        let mut it = con
            .scan_match::<_, String>(format!("{prefix}:*"))
            .await
            .unwrap();
        let mut keys = Vec::new();
        while let Some(k) = it.next_item().await {
            keys.push(k.unwrap());
        }
        keys
    };
    for chunk in keys.chunks(1000) {
        let _: i64 = con.del(chunk).await.unwrap();
    }
}

impl Probe for RedisProbe {
    fn projection(&self) -> &str {
        &self.name
    }
    fn file(&self, version: u32) -> String {
        redis_orders(&self.name, version, &self.prefix)
    }
    fn config(&self) -> String {
        format!("[projections.sinks.redis]\nurl = \"{}\"\n", redis_url())
    }
    fn snapshot<'a>(&'a self, _read: &'a Store) -> Fut<'a, Vec<String>> {
        Box::pin(async move { dump(&live_namespace(&self.prefix).await).await })
    }
    fn drift<'a>(
        &'a self,
        _read: &'a Store,
        truth: &'a BTreeMap<String, Truth>,
    ) -> Fut<'a, Vec<String>> {
        Box::pin(async move {
            let ns = live_namespace(&self.prefix).await;
            let mut con = connection().await;
            let mut out = Vec::new();
            for (id, t) in truth {
                let h: BTreeMap<String, String> =
                    con.hgetall(format!("{ns}order:{id}")).await.unwrap();
                let got = (
                    h.get("status").cloned().unwrap_or_default(),
                    h.get("subtotal")
                        .and_then(|s| s.parse::<i64>().ok())
                        .unwrap_or(-1),
                    h.get("tax")
                        .and_then(|s| s.parse::<i64>().ok())
                        .unwrap_or(-1),
                );
                let want = (t.status.clone(), t.subtotal, t.tax);
                if got != want {
                    out.push(format!("{id}: want {want:?}, got {got:?}"));
                }
            }
            out
        })
    }
}
