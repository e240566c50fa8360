//! The `Projection` trait, and the projection defined by a file of SQL.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::batch::{ArrayType, BatchForm, classify, schedule};
use crate::definition::{DedupMode, PolicyConfig, ProjectionDef};
use crate::event::{Event, ParamSource, Preparation, Value};
use crate::policy::Reason;
use crate::sql::{self, Dialect, Prepared};
use crate::store::{Array, ReadTx};

/// Why one event could not be applied.
#[derive(Debug, Clone)]
pub struct ApplyError {
    /// Classified reason.
    pub reason: Reason,
    /// The underlying message (kept in the dead letter, never shown to API clients).
    pub detail: String,
}

impl ApplyError {
    fn sql(e: sqlx::Error) -> ApplyError {
        ApplyError {
            reason: Reason::of_sql(&e),
            detail: e.to_string(),
        }
    }
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The handlers ran and touched this many rows.
    Rows(u64),
    /// The event type is listed in `ignore_event_types`.
    Ignored,
}

/// What applying several events did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ManyApplied {
    /// Events whose handlers ran.
    pub applied: u64,
    /// Events of an ignored type.
    pub ignored: u64,
    /// Rows the handlers touched.
    pub rows: u64,
}

/// Runtime knobs every projection carries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The failure policy and retry budget.
    pub policy: PolicyConfig,
    /// Most events per transaction.
    pub batch_max_events: usize,
    /// Longest a batch waits to fill.
    pub batch_max_wait: Duration,
    /// How long event ids are remembered for deduplication (in the read store's table).
    pub dedup_retention: Duration,
    /// `[dedup] mode = "window"`: how many offsets before an event its partition is searched for
    /// its id, in memory, instead of recording every id in the read store.
    pub dedup_window: Option<i64>,
    /// Lag that does not move for this long while events wait is unhealthy.
    pub stall_after: Duration,
}

/// A read model built from events. File-defined projections are [`SqlProjection`]s; a projection
/// that needs code implements this trait and runs on the same runtime (batches, checkpoints,
/// dedup, policies, replay, versions).
#[async_trait]
pub trait Projection: Send + Sync {
    /// The projection's name.
    fn name(&self) -> &str;
    /// Its version; tables are `<table>_v<version>`.
    fn version(&self) -> u32;
    /// Topics consumed.
    fn topics(&self) -> &[String];
    /// Logical table names owned (rebuild empties them, retire drops them).
    fn tables(&self) -> &[String];
    /// Batch, policy and freshness settings.
    fn settings(&self) -> &Settings;
    /// Creates the tables if they do not exist.
    async fn setup(&self, tx: &mut ReadTx) -> Result<(), sqlx::Error>;

    /// Works out what applying `event` needs that does not depend on the read store (a file
    /// projection: its statements' parameter values). The runtime calls it for the next batch
    /// while the current one applies, on a blocking thread, and stores the result in
    /// [`Event::prepared`]; `apply` and `apply_many` must have the same effect whether or not an
    /// event was prepared. The default works out nothing.
    fn prepare(&self, _event: &Event) -> Option<Preparation> {
        None
    }
    /// Applies one event inside `tx`. Must be deterministic: the same events in the same order
    /// give the same rows, which is what makes rebuilds equal live runs.
    async fn apply(&self, tx: &mut ReadTx, event: &Event) -> Result<Applied, ApplyError>;

    /// Applies several events inside `tx`, keeping each key's order (events of different keys
    /// may apply in another order). The first failure fails the whole call; the runtime then
    /// rolls back and applies the events one by one with [`Projection::apply`], so the failing
    /// one is isolated. The default applies one by one; file-defined projections run many events
    /// per statement.
    async fn apply_many(
        &self,
        tx: &mut ReadTx,
        events: &[&Event],
    ) -> Result<ManyApplied, ApplyError> {
        let mut out = ManyApplied::default();
        for e in events {
            match self.apply(tx, e).await? {
                Applied::Rows(n) => {
                    out.applied += 1;
                    out.rows += n;
                }
                Applied::Ignored => out.ignored += 1,
            }
        }
        Ok(out)
    }
}

struct Compiled {
    pg: Prepared,
    lite: Prepared,
    sources: HashMap<String, ParamSource>,
    /// Distinct parameter names; a unit's values are in this order.
    names: Vec<String>,
    /// For each placeholder of `pg`/`lite`, the index in `names`.
    pg_order: Vec<usize>,
    lite_order: Vec<usize>,
    /// The multi-row form on PostgreSQL, when the statement has one.
    batch: Option<BatchForm>,
    /// For each array of `batch`, the index in `names`.
    batch_order: Vec<usize>,
}

impl Compiled {
    fn values(&self, event: &Event) -> Result<Vec<Value>, ApplyError> {
        self.names
            .iter()
            .map(|n| {
                self.sources[n].value(event).map_err(|detail| ApplyError {
                    reason: Reason::BadPayload,
                    detail,
                })
            })
            .collect()
    }

    fn prepared(&self, dialect: Dialect) -> (&Prepared, &[usize]) {
        match dialect {
            Dialect::Postgres => (&self.pg, &self.pg_order),
            Dialect::Sqlite => (&self.lite, &self.lite_order),
        }
    }
}

/// One handler statement to run for one event.
struct Unit<'a> {
    key: Option<&'a str>,
    statement: usize,
    values: Cow<'a, [Value]>,
}

/// The statements an event runs, each with its values; `None` for an ignored event type.
type Bindings = Option<Vec<(usize, Vec<Value>)>>;

/// An event's bindings worked out by [`SqlProjection::prepare`], with the projection that made
/// them (another projection's, or another version's, are not used).
struct PreparedBindings {
    by: u64,
    bindings: Result<Bindings, ApplyError>,
}

/// A projection defined by a file: DDL plus one SQL statement per handler.
pub struct SqlProjection {
    def: ProjectionDef,
    settings: Settings,
    /// Statements per event type, as indices into `statements`.
    handlers: HashMap<String, Vec<usize>>,
    statements: Vec<Compiled>,
    /// Tells this projection's preparations from any other's (each `new` takes the next number).
    instance: u64,
}

static INSTANCES: AtomicU64 = AtomicU64::new(0);

impl SqlProjection {
    /// Compiles a validated definition.
    pub fn new(def: ProjectionDef) -> SqlProjection {
        let mut handlers: HashMap<String, Vec<usize>> = HashMap::new();
        let mut statements = Vec::new();
        for h in &def.handlers {
            let names = sql::param_names(&h.sql);
            let sources: HashMap<String, ParamSource> = names
                .iter()
                .map(|name| {
                    let src = h
                        .params
                        .get(name)
                        .and_then(|s| ParamSource::parse(s))
                        .unwrap_or_else(|| ParamSource::Pointer(format!("/{name}")));
                    (name.clone(), src)
                })
                .collect();
            let order = |p: &Prepared| -> Vec<usize> {
                p.params
                    .iter()
                    .map(|n| names.iter().position(|x| x == n).unwrap_or(0))
                    .collect()
            };
            let pg = sql::prepare(&h.sql, Dialect::Postgres, def.version);
            let lite = sql::prepare(&h.sql, Dialect::Sqlite, def.version);
            let batch = classify(&h.sql, &sources, def.version);
            let batch_order = batch.as_ref().map_or_else(Vec::new, |b| {
                b.names
                    .iter()
                    .map(|n| names.iter().position(|x| x == n).unwrap_or(0))
                    .collect()
            });
            statements.push(Compiled {
                pg_order: order(&pg),
                lite_order: order(&lite),
                pg,
                lite,
                sources,
                names,
                batch,
                batch_order,
            });
            handlers
                .entry(h.event_type.clone())
                .or_default()
                .push(statements.len() - 1);
        }
        let settings = Settings {
            policy: def.policy.clone(),
            batch_max_events: def.batch.max_events,
            batch_max_wait: Duration::from_millis(def.batch.max_wait_ms),
            dedup_retention: Duration::from_secs(def.dedup_retention_hours * 3600),
            dedup_window: (def.dedup.mode == DedupMode::Window)
                .then(|| i64::try_from(def.dedup.window).unwrap_or(i64::MAX)),
            stall_after: Duration::from_secs(def.stall_after_secs),
        };
        SqlProjection {
            def,
            settings,
            handlers,
            statements,
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// How many handler statements run many events per statement on PostgreSQL, of all.
    pub fn batched_statements(&self) -> (usize, usize) {
        let n = self.statements.iter().filter(|s| s.batch.is_some()).count();
        (n, self.statements.len())
    }

    /// The statements an event runs: `Ok(None)` for an ignored type.
    fn statements_of(&self, event: &Event) -> Result<Option<&[usize]>, ApplyError> {
        let Some(ty) = event.event_type.as_deref() else {
            return Err(ApplyError {
                reason: Reason::BadPayload,
                detail: "no `type` header".into(),
            });
        };
        match self.handlers.get(ty) {
            Some(h) => Ok(Some(h)),
            None if self.def.ignore_event_types.iter().any(|t| t == ty) => Ok(None),
            None => Err(ApplyError {
                reason: Reason::UnknownEventType,
                detail: format!("no handler for event type `{ty}`"),
            }),
        }
    }

    /// The statements `event` runs and their values.
    fn bind(&self, event: &Event) -> Result<Bindings, ApplyError> {
        let Some(statements) = self.statements_of(event)? else {
            return Ok(None);
        };
        statements
            .iter()
            .map(|&s| Ok((s, self.statements[s].values(event)?)))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// The statements `event` runs and their values: as this projection prepared them, or worked
    /// out now when it did not.
    fn bindings<'e>(&self, event: &'e Event) -> Result<Cow<'e, Bindings>, ApplyError> {
        let prepared = event
            .prepared
            .as_ref()
            .and_then(|p| p.0.downcast_ref::<PreparedBindings>())
            .filter(|p| p.by == self.instance);
        Ok(match prepared {
            Some(p) => Cow::Borrowed(p.bindings.as_ref().map_err(Clone::clone)?),
            None => Cow::Owned(self.bind(event)?),
        })
    }

    /// Runs one statement for one unit's values.
    async fn run_one(
        &self,
        tx: &mut ReadTx,
        statement: usize,
        values: &[Value],
    ) -> Result<u64, ApplyError> {
        let (prepared, order) = self.statements[statement].prepared(tx.dialect());
        let bound: Vec<Value> = order.iter().map(|&i| values[i].clone()).collect();
        tx.execute(&prepared.sql, &bound)
            .await
            .map_err(ApplyError::sql)
    }

    /// Runs one statement for several units as one multi-row statement, when its form and the
    /// values' types allow; `None` when it cannot.
    async fn run_many(
        &self,
        tx: &mut ReadTx,
        statement: usize,
        units: &[&Unit<'_>],
    ) -> Option<Result<u64, ApplyError>> {
        let c = &self.statements[statement];
        let form = c.batch.as_ref()?;
        let mut types = Vec::with_capacity(c.batch_order.len());
        let mut arrays = Vec::with_capacity(c.batch_order.len());
        for &i in &c.batch_order {
            let ty = ArrayType::of(units.iter().map(|u| &u.values[i]))?;
            types.push(ty);
            arrays.push(Array::collect(ty, units.iter().map(|u| &u.values[i])));
        }
        let sql = form.render(&types);
        Some(
            tx.execute_arrays(&sql, arrays)
                .await
                .map_err(ApplyError::sql),
        )
    }

    /// The definition it was built from.
    pub fn definition(&self) -> &ProjectionDef {
        &self.def
    }
}

#[async_trait]
impl Projection for SqlProjection {
    fn name(&self) -> &str {
        &self.def.name
    }
    fn version(&self) -> u32 {
        self.def.version
    }
    fn topics(&self) -> &[String] {
        &self.def.topics
    }
    fn tables(&self) -> &[String] {
        &self.def.tables
    }
    fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn setup(&self, tx: &mut ReadTx) -> Result<(), sqlx::Error> {
        let specific = match tx.dialect() {
            Dialect::Postgres => &self.def.setup.postgres,
            Dialect::Sqlite => &self.def.setup.sqlite,
        };
        for ddl in [&self.def.setup.all, specific].into_iter().flatten() {
            tx.execute_script(&sql::render_tables(ddl, self.def.version))
                .await?;
        }
        Ok(())
    }

    fn prepare(&self, event: &Event) -> Option<Preparation> {
        Some(Preparation(Arc::new(PreparedBindings {
            by: self.instance,
            bindings: self.bind(event),
        })))
    }

    async fn apply(&self, tx: &mut ReadTx, event: &Event) -> Result<Applied, ApplyError> {
        let bindings = self.bindings(event)?;
        let Some(statements) = bindings.as_ref() else {
            return Ok(Applied::Ignored);
        };
        let mut rows = 0;
        for (s, values) in statements {
            rows += self.run_one(tx, *s, values).await?;
        }
        Ok(Applied::Rows(rows))
    }

    async fn apply_many(
        &self,
        tx: &mut ReadTx,
        events: &[&Event],
    ) -> Result<ManyApplied, ApplyError> {
        let mut out = ManyApplied::default();
        let mut units: Vec<Unit<'_>> = Vec::with_capacity(events.len());
        for e in events {
            let key = e.key.as_deref();
            match self.bindings(e)? {
                Cow::Borrowed(None) | Cow::Owned(None) => {
                    out.ignored += 1;
                    continue;
                }
                Cow::Borrowed(Some(b)) => units.extend(b.iter().map(|(statement, values)| Unit {
                    key,
                    statement: *statement,
                    values: Cow::Borrowed(values),
                })),
                Cow::Owned(Some(b)) => {
                    units.extend(b.into_iter().map(|(statement, values)| Unit {
                        key,
                        statement,
                        values: Cow::Owned(values),
                    }))
                }
            }
            out.applied += 1;
        }
        if tx.dialect() == Dialect::Sqlite {
            // In-process: a statement per unit costs no network round trip.
            for u in &units {
                out.rows += self.run_one(tx, u.statement, &u.values).await?;
            }
            return Ok(out);
        }
        let order: Vec<(Option<&str>, usize)> =
            units.iter().map(|u| (u.key, u.statement)).collect();
        for step in schedule(&order) {
            let members: Vec<&Unit<'_>> = step.units.iter().map(|&i| &units[i]).collect();
            if members.len() > 1
                && let Some(r) = self.run_many(tx, step.statement, &members).await
            {
                out.rows += r?;
                continue;
            }
            for u in members {
                out.rows += self.run_one(tx, u.statement, &u.values).await?;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use strangler_bus::Record;
    use strangler_test_support::{pg_database, sqlite_file};

    use super::*;
    use crate::definition::parse;
    use strangler_store::Store;

    /// A projection writing `total = <pointer>` per `OrderPlaced`; versions keep their tables
    /// apart.
    fn projection(version: u32, pointer: &str) -> SqlProjection {
        let text = format!(
            r#"name = "totals"
version = {version}
topics = ["order"]
tables = ["totals"]

[setup]
all = "CREATE TABLE IF NOT EXISTS {{{{totals}}}} (id TEXT PRIMARY KEY, total BIGINT, at TEXT)"

[[handler]]
event_type = "OrderPlaced"
sql = "INSERT INTO {{{{totals}}}} (id, total, at) VALUES (:id, :total, :at)"
params = {{ id = "key", total = "{pointer}", at = "event_time" }}
"#
        );
        SqlProjection::new(parse(&text, std::path::Path::new("totals.toml")).expect("valid"))
    }

    fn event(offset: i64, ty: &str, payload: &str) -> Event {
        crate::event::decode(Record {
            topic: "order".into(),
            partition: 0,
            offset,
            key: Some(format!("o-{offset}").into_bytes()),
            value: Some(payload.as_bytes().to_vec()),
            headers: vec![
                strangler_bus::Header {
                    name: "id".into(),
                    value: format!("0190a6f4-1c2b-7d3e-8f40-5a6b7c8d9e{offset:02}").into_bytes(),
                },
                strangler_bus::Header {
                    name: "type".into(),
                    value: ty.as_bytes().to_vec(),
                },
            ],
            timestamp_ms: Some(1_700_000_000_000 + offset),
        })
    }

    async fn rows(store: &Store, table: &str) -> Vec<(String, Option<i64>, Option<String>)> {
        let sql = format!("SELECT id, total, at FROM {table} ORDER BY id");
        crate::store::on_pool!(store, p => sqlx::query_as(&sql).fetch_all(p).await)
            .expect("reading rows")
    }

    /// Events prepared ahead apply as events worked out at apply time do, a preparation made by
    /// another projection (here: one reading another field) is not used, and a bad payload
    /// found while preparing fails the apply as it would have failed it unprepared.
    async fn preparation_changes_nothing_but_when(url: &str) {
        let store = Store::connect(url).await.expect("connecting");
        let (v1, v2) = (projection(1, "/total"), projection(2, "/subtotal"));
        let payload = r#"{"total": 12, "subtotal": 10}"#;
        let events: Vec<Event> = (0..4).map(|i| event(i, "OrderPlaced", payload)).collect();
        // v1's preparations on every event; v1 applies two of them, v2 all four.
        let prepared: Vec<Event> = events
            .iter()
            .cloned()
            .map(|mut e| {
                e.prepared = v1.prepare(&e);
                e
            })
            .collect();
        let mut tx = ReadTx::begin(&store).await.expect("begin");
        v1.setup(&mut tx).await.expect("setup v1");
        v2.setup(&mut tx).await.expect("setup v2");
        let first: Vec<&Event> = prepared[..2].iter().collect();
        let many = v1.apply_many(&mut tx, &first).await.expect("v1 prepared");
        assert_eq!((many.applied, many.rows), (2, 2));
        assert_eq!(
            v1.apply(&mut tx, &events[2]).await.expect("v1 unprepared"),
            Applied::Rows(1)
        );
        assert_eq!(
            v1.apply(&mut tx, &prepared[3]).await.expect("v1 prepared"),
            Applied::Rows(1)
        );
        let all: Vec<&Event> = prepared.iter().collect();
        v2.apply_many(&mut tx, &all)
            .await
            .expect("v2 over v1's preparations");
        let broken = event(9, "OrderPlaced", "not json");
        let mut prepared_broken = broken.clone();
        prepared_broken.prepared = v1.prepare(&broken);
        for e in [&broken, &prepared_broken] {
            let err = v1.apply(&mut tx, e).await.expect_err("bad payload");
            assert_eq!(err.reason, Reason::BadPayload);
        }
        tx.commit().await.expect("commit");

        let at = |i: i64| Some(format!("2023-11-14T22:13:20.{i:03}Z"));
        let expected = |total: i64| -> Vec<(String, Option<i64>, Option<String>)> {
            (0..4)
                .map(|i| (format!("o-{i}"), Some(total), at(i)))
                .collect()
        };
        assert_eq!(rows(&store, "totals_v1").await, expected(12));
        assert_eq!(rows(&store, "totals_v2").await, expected(10));
    }

    #[tokio::test]
    async fn preparation_on_postgres() {
        let db = pg_database().await;
        preparation_changes_nothing_but_when(&db.url).await;
    }

    #[tokio::test]
    async fn preparation_on_sqlite() {
        let db = sqlite_file();
        preparation_changes_nothing_but_when(&db.url).await;
    }
}
