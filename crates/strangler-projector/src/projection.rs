//! The `Projection` trait, and the projection defined by a file of SQL.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use crate::definition::{PolicyConfig, ProjectionDef};
use crate::event::{Event, ParamSource, Value};
use crate::policy::Reason;
use crate::sql::{self, Dialect, Prepared};
use crate::store::ReadTx;

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
}

struct Compiled {
    pg: Prepared,
    lite: Prepared,
    sources: HashMap<String, ParamSource>,
}

/// A projection defined by a file: DDL plus one SQL statement per handler.
pub struct SqlProjection {
    def: ProjectionDef,
    settings: Settings,
    handlers: HashMap<String, Vec<Compiled>>,
}

impl SqlProjection {
    /// Compiles a validated definition.
    pub fn new(def: ProjectionDef) -> SqlProjection {
        let mut handlers: HashMap<String, Vec<Compiled>> = HashMap::new();
        for h in &def.handlers {
            let sources = sql::param_names(&h.sql)
                .into_iter()
                .map(|name| {
                    let src = h
                        .params
                        .get(&name)
                        .and_then(|s| ParamSource::parse(s))
                        .unwrap_or_else(|| ParamSource::Pointer(format!("/{name}")));
                    (name, src)
                })
                .collect();
            handlers
                .entry(h.event_type.clone())
                .or_default()
                .push(Compiled {
                    pg: sql::prepare(&h.sql, Dialect::Postgres, def.version),
                    lite: sql::prepare(&h.sql, Dialect::Sqlite, def.version),
                    sources,
                });
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
        }
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
        let bad = |detail: String| ApplyError {
            reason: Reason::BadPayload,
            detail,
        };
        let Some(ty) = event.event_type.as_deref() else {
            return Err(bad("no `type` header".into()));
        };
        let Some(handlers) = self.handlers.get(ty) else {
            if self.def.ignore_event_types.iter().any(|t| t == ty) {
                return Ok(Applied::Ignored);
            }
            return Err(ApplyError {
                reason: Reason::UnknownEventType,
                detail: format!("no handler for event type `{ty}`"),
            });
        };
        let mut rows = 0;
        for h in handlers {
            let prepared = match tx.dialect() {
                Dialect::Postgres => &h.pg,
                Dialect::Sqlite => &h.lite,
            };
            let mut values: Vec<Value> = Vec::with_capacity(prepared.params.len());
            for name in &prepared.params {
                let src = &h.sources[name];
                values.push(src.value(event).map_err(bad)?);
            }
            rows += tx
                .execute(&prepared.sql, &values)
                .await
                .map_err(ApplyError::sql)?;
        }
        Ok(Applied::Rows(rows))
    }
}
