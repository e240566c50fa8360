//! The `Projection` trait, and the projection defined by a file of SQL.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::batch::{ArrayType, BatchForm, classify, schedule};
use crate::definition::{PolicyConfig, ProjectionDef};
use crate::event::{Event, ParamSource, Value};
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
    /// How long event ids are remembered for deduplication.
    pub dedup_retention: Duration,
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
    values: Vec<Value>,
}

/// A projection defined by a file: DDL plus one SQL statement per handler.
pub struct SqlProjection {
    def: ProjectionDef,
    settings: Settings,
    /// Statements per event type, as indices into `statements`.
    handlers: HashMap<String, Vec<usize>>,
    statements: Vec<Compiled>,
}

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
            stall_after: Duration::from_secs(def.stall_after_secs),
        };
        SqlProjection {
            def,
            settings,
            handlers,
            statements,
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

    async fn apply(&self, tx: &mut ReadTx, event: &Event) -> Result<Applied, ApplyError> {
        let Some(statements) = self.statements_of(event)? else {
            return Ok(Applied::Ignored);
        };
        let mut rows = 0;
        for &s in statements {
            let values = self.statements[s].values(event)?;
            rows += self.run_one(tx, s, &values).await?;
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
            let Some(statements) = self.statements_of(e)? else {
                out.ignored += 1;
                continue;
            };
            out.applied += 1;
            for &s in statements {
                units.push(Unit {
                    key: e.key.as_deref(),
                    statement: s,
                    values: self.statements[s].values(e)?,
                });
            }
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
