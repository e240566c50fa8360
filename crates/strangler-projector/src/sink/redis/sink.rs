//! [`RedisSink`]: the [`Sink`] over one Redis and one key prefix.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;
use tokio::sync::OnceCell;

use super::render::{Renderer, WireEvent};
use crate::checkpoint::Claims;
use crate::definition::{ProjectionDef, RouteDef, RouteResult};
use crate::event::Event;
use crate::policy::Reason;
use crate::projection::{ApplyError, ManyApplied};
use crate::replay::{From, PlanPart};
use crate::sink::template::Template;
use crate::sink::{Binding, Build, Mode, Sink, SinkError, SinkKind, SinkPosition, SinkRead};
use crate::store::now_ms;

static WRITE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("write.lua")));
static RESET: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("reset.lua")));
static SWITCH: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("switch.lua")));
static READ: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("read.lua")));
static PROMOTE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("promote.lua")));
static PRUNE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("prune.lua")));

/// One projection version set's Redis target.
pub struct RedisSink {
    client: redis::Client,
    con: OnceCell<ConnectionManager>,
    prefix: String,
    label: String,
    renderer: Renderer,
}

#[derive(Serialize)]
struct WriteArgs<'a> {
    prefix: &'a str,
    version: u32,
    build: &'a str,
    mode: &'static str,
    now: i64,
    #[serde(rename = "gen")]
    generations: BTreeMap<String, i64>,
    events: Vec<WireEvent>,
}

#[derive(Serialize)]
struct ResetPart {
    p: String,
    start: i64,
}

#[derive(Serialize)]
struct ResetArgs<'a> {
    prefix: &'a str,
    version: u32,
    rebuild: bool,
    #[serde(rename = "gen")]
    generations: BTreeMap<String, i64>,
    parts: Vec<ResetPart>,
}

impl RedisSink {
    /// The sink of a validated definition, writing to `url`. Connects on first use.
    pub fn new(def: &ProjectionDef, url: &str) -> Result<RedisSink, String> {
        let client = redis::Client::open(url)
            .map_err(|e| format!("`{}` is not a Redis URL: {e}", redact(url)))?;
        let prefix = def.sink.prefix.clone().unwrap_or_else(|| def.name.clone());
        Ok(RedisSink {
            label: format!("redis {} prefix {prefix}", redact(url)),
            client,
            con: OnceCell::new(),
            prefix,
            renderer: Renderer::new(def),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn con(&self) -> Result<ConnectionManager, SinkError> {
        let con = self
            .con
            .get_or_try_init(|| async {
                // Scripts of a 2,000-event batch take longer than the client's 500 ms default.
                let config = ConnectionManagerConfig::new()
                    .set_response_timeout(Some(Duration::from_secs(30)))
                    .set_connection_timeout(Some(Duration::from_secs(5)))
                    .set_number_of_retries(3);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(con.clone())
    }

    fn unavailable(&self, e: &redis::RedisError) -> SinkError {
        SinkError::Unavailable {
            sink: self.label.clone(),
            detail: e.to_string(),
        }
    }

    /// The namespace (`<prefix>:v<version>.<build>:`) of a build; `Live` reads the live build.
    async fn namespace(&self, version: u32, build: &Build) -> Result<String, SinkError> {
        let b = match build {
            Build::Fresh(b) => b.clone(),
            Build::Live => {
                let mut con = self.con().await?;
                let b: Option<String> = redis::cmd("GET")
                    .arg(format!("{}:v{version}:build", self.prefix))
                    .query_async(&mut con)
                    .await
                    .map_err(|e| self.unavailable(&e))?;
                b.unwrap_or_else(|| "0".into())
            }
        };
        Ok(format!("{}:v{version}.{b}:", self.prefix))
    }

    /// Deletes every key matching `pattern` (SCAN + UNLINK in pages).
    async fn drop_matching(&self, pattern: &str) -> Result<u64, SinkError> {
        let mut con = self.con().await?;
        let mut cursor: u64 = 0;
        let mut dropped = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .map_err(|e| self.unavailable(&e))?;
            if !keys.is_empty() {
                dropped += keys.len() as u64;
                let _: i64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut con)
                    .await
                    .map_err(|e| self.unavailable(&e))?;
            }
            if next == 0 {
                return Ok(dropped);
            }
            cursor = next;
        }
    }
}

/// `redis://user:secret@host` without the secret, for messages.
fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((head, tail)) => match head.rsplit_once(':') {
            Some((user, _)) if !user.ends_with('/') => format!("{user}:***@{tail}"),
            _ => format!("***@{tail}"),
        },
        None => url.to_string(),
    }
}

fn generations(claims: &Claims, events: &[&Event]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in events {
        let r = &e.record;
        let part = format!("{}/{}", r.topic, r.partition);
        if !out.contains_key(&part)
            && let Some(g) = claims.generation(&r.topic, r.partition)
        {
            out.insert(part, g);
        }
    }
    out
}

#[async_trait]
impl Sink for RedisSink {
    fn kind(&self) -> SinkKind {
        SinkKind::Redis
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn setup(&self, _version: u32) -> Result<(), SinkError> {
        let mut con = self.con().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut con)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(())
    }

    async fn apply(&self, binding: &Binding, events: &[&Event]) -> Result<ManyApplied, ApplyError> {
        let mut out = ManyApplied::default();
        let mut wire = Vec::with_capacity(events.len());
        for e in events {
            match self.renderer.render(e)? {
                Some(w) => {
                    out.rows += w.ops.len() as u64;
                    wire.push(w);
                }
                None => out.ignored += 1,
            }
        }
        out.applied = wire.len() as u64;
        if binding.mode == Mode::DryRun || wire.is_empty() {
            return Ok(out);
        }
        let args = WriteArgs {
            prefix: &self.prefix,
            version: binding.version,
            build: match &binding.build {
                Build::Live => "",
                Build::Fresh(b) => b,
            },
            mode: match binding.mode {
                Mode::Redrive => "redrive",
                _ => "live",
            },
            now: now_ms(),
            generations: if binding.mode == Mode::Redrive {
                BTreeMap::new()
            } else {
                generations(&binding.claims, events)
            },
            events: wire,
        };
        let json = serde_json::to_string(&args).map_err(|e| ApplyError {
            reason: Reason::SinkError,
            detail: e.to_string(),
        })?;
        let unavailable = |detail: String| ApplyError {
            reason: Reason::SinkUnavailable,
            detail,
        };
        let mut con = self.con().await.map_err(|e| unavailable(e.to_string()))?;
        let r: Result<(u64, u64), redis::RedisError> = WRITE.arg(json).invoke_async(&mut con).await;
        match r {
            Ok((applied, skipped)) => {
                if skipped > 0 {
                    tracing::debug!(sink = %self.label, applied, skipped, "events already in Redis skipped");
                }
                Ok(out)
            }
            Err(e) if e.to_string().contains("WRONGTYPE") => Err(ApplyError {
                reason: Reason::SinkError,
                detail: format!("{}: {e}", self.label),
            }),
            // Fenced, unreachable, timed out: not about the event; the batch is abandoned.
            Err(e) => Err(unavailable(format!("{}: {e}", self.label))),
        }
    }

    async fn positions(&self, version: u32, build: &Build) -> Result<Vec<SinkPosition>, SinkError> {
        let ns = self.namespace(version, build).await?;
        let mut con = self.con().await?;
        let all: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(format!("{ns}__pos"))
            .query_async(&mut con)
            .await
            .map_err(|e| self.unavailable(&e))?;
        let mut out: Vec<SinkPosition> = all
            .into_iter()
            .filter_map(|(part, next_offset)| {
                let (topic, p) = part.rsplit_once('/')?;
                Some(SinkPosition {
                    topic: topic.to_string(),
                    partition: p.parse().ok()?,
                    next_offset,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    async fn reset(
        &self,
        version: u32,
        parts: &[PlanPart],
        from: From,
        claims: &Claims,
    ) -> Result<Build, SinkError> {
        let generations = parts
            .iter()
            .filter_map(|p| {
                let g = claims.generation(&p.topic, p.partition)?;
                Some((format!("{}/{}", p.topic, p.partition), g))
            })
            .collect();
        let args = ResetArgs {
            prefix: &self.prefix,
            version,
            rebuild: from == From::Rebuild,
            generations,
            parts: parts
                .iter()
                .map(|p| ResetPart {
                    p: format!("{}/{}", p.topic, p.partition),
                    start: p.start,
                })
                .collect(),
        };
        let json = serde_json::to_string(&args).map_err(|e| SinkError::Refused {
            sink: self.label.clone(),
            detail: e.to_string(),
        })?;
        let mut con = self.con().await?;
        let build: String = RESET
            .arg(json)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(if from == From::Rebuild {
            Build::Fresh(build)
        } else {
            Build::Live
        })
    }

    async fn switch(&self, version: u32, build: &Build) -> Result<(), SinkError> {
        let Build::Fresh(b) = build else {
            return Ok(());
        };
        let mut con = self.con().await?;
        let old: String = SWITCH
            .arg(&self.prefix)
            .arg(version)
            .arg(b)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.unavailable(&e))?;
        // Every other build of this version is unreachable now: the old live one and any
        // rebuild that was interrupted before its switch.
        let mut cursor: u64 = 0;
        let keep = format!("{}:v{version}.{b}:", self.prefix);
        let mut dropped = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{}:v{version}.*", self.prefix))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut con)
                .await
                .map_err(|e| self.unavailable(&e))?;
            let stale: Vec<&String> = keys.iter().filter(|k| !k.starts_with(&keep)).collect();
            if !stale.is_empty() {
                dropped += stale.len() as u64;
                let _: i64 = redis::cmd("UNLINK")
                    .arg(&stale)
                    .query_async(&mut con)
                    .await
                    .map_err(|e| self.unavailable(&e))?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        tracing::info!(sink = %self.label, version, build = %b, old_build = %old, dropped, "rebuilt build is live");
        Ok(())
    }

    async fn promote(&self, version: u32) -> Result<(), SinkError> {
        let mut con = self.con().await?;
        let ns: String = PROMOTE
            .arg(&self.prefix)
            .arg(version)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.unavailable(&e))?;
        tracing::info!(sink = %self.label, version, namespace = %ns, "readers switched");
        Ok(())
    }

    async fn retire(&self, version: u32) -> Result<(), SinkError> {
        let mut con = self.con().await?;
        let ptr: Option<String> = redis::cmd("GET")
            .arg(format!("{}:ptr", self.prefix))
            .query_async(&mut con)
            .await
            .map_err(|e| self.unavailable(&e))?;
        if ptr
            .as_deref()
            .is_some_and(|p| p.starts_with(&format!("v{version}.")))
        {
            return Err(SinkError::Refused {
                sink: self.label.clone(),
                detail: format!("readers are pointed at v{version}; promote another version first"),
            });
        }
        let a = self
            .drop_matching(&format!("{}:v{version}.*", self.prefix))
            .await?;
        let b = self
            .drop_matching(&format!("{}:v{version}:*", self.prefix))
            .await?;
        tracing::info!(sink = %self.label, version, keys = a + b, "retired");
        Ok(())
    }

    async fn prune(&self, version: u32, older_than_ms: i64) -> Result<u64, SinkError> {
        let ns = self.namespace(version, &Build::Live).await?;
        let mut con = self.con().await?;
        let mut total = 0;
        loop {
            let n: u64 = PRUNE
                .arg(&ns)
                .arg(older_than_ms)
                .invoke_async(&mut con)
                .await
                .map_err(|e| self.unavailable(&e))?;
            total += n;
            if n < 5000 {
                return Ok(total);
            }
        }
    }

    async fn read(
        &self,
        route: &RouteDef,
        default_version: u32,
        params: &HashMap<String, String>,
    ) -> Result<SinkRead, SinkError> {
        let refused = |detail: String| SinkError::Refused {
            sink: self.label.clone(),
            detail,
        };
        let template = route
            .key
            .as_deref()
            .ok_or_else(|| refused(format!("route {} has no key", route.path)))?;
        let key = Template::parse(template)
            .map_err(refused)?
            .fill(|slot| params.get(slot).cloned())
            .map_err(refused)?;
        let mut con = self.con().await?;
        let v: redis::Value = READ
            .arg(&self.prefix)
            .arg(default_version)
            .arg(key)
            .invoke_async(&mut con)
            .await
            .map_err(|e| self.unavailable(&e))?;
        let parts = match v {
            redis::Value::Array(parts) => parts,
            other => return Err(refused(format!("unexpected answer {other:?}"))),
        };
        let text = |v: &redis::Value| -> Option<String> { redis::from_redis_value_ref(v).ok() };
        let ns = parts.first().and_then(text).unwrap_or_default();
        let version = ns
            .strip_prefix('v')
            .and_then(|s| s.split('.').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_version);
        let ty = parts.get(1).and_then(text).unwrap_or_default();
        let value = match (ty.as_str(), parts.get(2)) {
            ("hash", Some(v)) => {
                let pairs: Vec<String> =
                    redis::from_redis_value_ref(v).map_err(|e| refused(e.to_string()))?;
                let mut obj = serde_json::Map::new();
                for kv in pairs.chunks(2) {
                    if let [k, v] = kv {
                        obj.insert(k.clone(), serde_json::Value::String(v.clone()));
                    }
                }
                Some(serde_json::Value::Object(obj))
            }
            ("string", Some(v)) => {
                let s = text(v).unwrap_or_default();
                Some(serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)))
            }
            ("set", Some(v)) => {
                let mut members: Vec<String> =
                    redis::from_redis_value_ref(v).map_err(|e| refused(e.to_string()))?;
                members.sort();
                Some(serde_json::Value::Array(
                    members.into_iter().map(serde_json::Value::String).collect(),
                ))
            }
            _ => None,
        };
        // A `many` route over an absent set is an empty list, as a SQL `many` route would be.
        let value = match (value, route.result) {
            (None, RouteResult::Many) => Some(serde_json::Value::Array(Vec::new())),
            (v, _) => v,
        };
        Ok(SinkRead { version, value })
    }
}
