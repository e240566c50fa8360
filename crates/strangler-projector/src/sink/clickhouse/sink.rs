//! [`ClickHouseSink`]: the [`Sink`] over one ClickHouse database and one logical table, through
//! `strangler-clickhouse` (HTTP interface, `JSONEachRow` batches).
//!
//! ClickHouse cannot commit the offset in the same transaction as the rows, so the exactly-once
//! effect is kept by the rows themselves: every row carries its event's position (`_topic`,
//! `_partition`, `_offset`, `_seq`); a write drops rows at or below the table's stored high-water
//! position (read from the table when the sink opens it, advanced by each insert); the table is a
//! `ReplacingMergeTree` keyed on that position, and aggregates read it `FINAL`. The sink's offsets
//! (and the claim generation that fences older writers) are stored in ClickHouse after the rows
//! (`_strangler_offsets`); the runtime's checkpoint in the read store commits after that. A crash
//! anywhere in between replays the batch, whose rows are then dropped as already stored.
//!
//! Physical names: the version's live table is `<table>_v<version>` (an aggregate: facts
//! `<table>_v<version>_facts` and the grouped view `<table>_v<version>`); a rebuild fills
//! `<table>_v<version>__rebuild` and `RENAME TABLE` swaps it in; readers query the view
//! `<table>`, which `promote` points at a version (again by `RENAME TABLE`).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde_json::{Map, Value as Json};
use strangler_clickhouse::offsets::{self, Stored};
use strangler_clickhouse::rows::{date_of, datetime_of};
use strangler_clickhouse::sql::{literal, qualified};
use strangler_clickhouse::{
    AggFn, Client, Column, Endpoint, Measure, Position, Row, TableKind, TableSpec, Writer, rebuild,
};
use tokio::sync::Mutex;

use crate::checkpoint::Claims;
use crate::definition::{ProjectionDef, RouteDef, RouteResult};
use crate::event::{Event, ParamSource};
use crate::policy::Reason;
use crate::projection::{ApplyError, ManyApplied};
use crate::replay::{From, PlanPart};
use crate::sink::template::json_of;
use crate::sink::{
    Binding, Build, ClickHouseShape, Mode, Sink, SinkError, SinkKind, SinkOp, SinkPosition,
    SinkRead,
};

/// The name a rebuild's build carries in [`Build::Fresh`].
const REBUILD: &str = "rebuild";

/// How a column's value is shaped before it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// `Date`: an RFC 3339 timestamp or date becomes `YYYY-MM-DD`.
    Date,
    /// `DateTime`: an RFC 3339 UTC timestamp becomes `YYYY-MM-DD hh:mm:ss`.
    DateTime,
    /// As the JSON value is.
    Plain,
}

struct Insert {
    fields: Vec<(String, ParamSource, Shape, bool)>,
}

/// One projection version set's ClickHouse target.
pub struct ClickHouseSink {
    client: Client,
    spec: TableSpec,
    label: String,
    handlers: HashMap<String, Vec<Insert>>,
    ignored: Vec<String>,
    /// One writer per physical table; the lock serializes writes to a table so its high-water
    /// mark stays true (the runtime applies one batch of a projection at a time anyway).
    writers: Mutex<HashMap<String, Writer>>,
}

fn shape_of(ty: &str) -> Shape {
    let inner = ty
        .strip_prefix("Nullable(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(ty);
    match inner {
        "Date" => Shape::Date,
        "DateTime" => Shape::DateTime,
        _ => Shape::Plain,
    }
}

impl ClickHouseSink {
    /// The sink of a validated definition, writing to `database` on the server at `url`.
    /// Connects on first use. Every problem with the table's shape is listed in the error.
    pub fn new(
        def: &ProjectionDef,
        url: &str,
        database: &str,
        user: Option<String>,
        password: Option<String>,
    ) -> Result<ClickHouseSink, String> {
        let endpoint = Endpoint::parse(url)
            .and_then(|e| e.with_database(database))
            .map_err(|e| e.to_string())?
            .with_credentials(user, password);
        let s = &def.sink;
        let table = s.table.clone().unwrap_or_else(|| def.name.clone());
        let columns: Vec<Column> = s
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                ty: c.ty.clone(),
            })
            .collect();
        let kind = match s.shape.unwrap_or(ClickHouseShape::Append) {
            ClickHouseShape::Append => TableKind::Append {
                order_by: s.order_by.clone(),
            },
            ClickHouseShape::Aggregate => TableKind::Aggregate {
                group_by: s.order_by.clone(),
                measures: s
                    .sum
                    .iter()
                    .map(|c| Measure {
                        name: c.clone(),
                        func: AggFn::Sum,
                        column: Some(c.clone()),
                    })
                    .chain(s.count.iter().map(|c| Measure {
                        name: c.clone(),
                        func: AggFn::Count,
                        column: None,
                    }))
                    .collect(),
            },
        };
        let spec = TableSpec {
            name: table.clone(),
            columns,
            kind,
        };
        let mut problems = spec.validate().err().unwrap_or_default();
        let types: HashMap<&str, &str> = spec
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.ty.as_str()))
            .collect();
        let mut handlers: HashMap<String, Vec<Insert>> = HashMap::new();
        for h in &def.handlers {
            if h.op != Some(SinkOp::Insert) {
                continue;
            }
            let mut fields = Vec::new();
            for (column, source) in &h.fields {
                let Some(ty) = types.get(column.as_str()) else {
                    problems.push(format!(
                        "handler {}: field {column} is not a column of table {table}",
                        h.event_type
                    ));
                    continue;
                };
                let Some(src) = ParamSource::parse(source) else {
                    problems.push(format!(
                        "handler {}: field {column} has an unknown source {source:?}",
                        h.event_type
                    ));
                    continue;
                };
                fields.push((
                    column.clone(),
                    src,
                    shape_of(ty),
                    ty.starts_with("Nullable("),
                ));
            }
            handlers
                .entry(h.event_type.clone())
                .or_default()
                .push(Insert { fields });
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(ClickHouseSink {
            label: format!(
                "clickhouse {}/{} table {table}",
                endpoint.host_port(),
                endpoint.database()
            ),
            client: Client::new(endpoint),
            spec,
            handlers,
            ignored: def.ignore_event_types.clone(),
            writers: Mutex::new(HashMap::new()),
        })
    }

    /// The live physical base name of `version`.
    pub fn live_base(&self, version: u32) -> String {
        format!("{}_v{version}", self.spec.name)
    }

    fn base(&self, version: u32, build: &Build) -> String {
        match build {
            Build::Live => self.live_base(version),
            Build::Fresh(_) => rebuild::rebuild_base(&self.live_base(version)),
        }
    }

    /// The client (tests and the benchmark query through it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table's shape.
    pub fn spec(&self) -> &TableSpec {
        &self.spec
    }

    /// The groups of the aggregate readers see (`version` `None`: the view `promote` points at)
    /// or of one version's live table, for a check against the legacy `GROUP BY`.
    pub async fn groups(
        &self,
        version: Option<u32>,
    ) -> Result<strangler_clickhouse::reconcile::Groups, SinkError> {
        let view = match version {
            Some(v) => self.live_base(v),
            None => self.spec.name.clone(),
        };
        strangler_clickhouse::reconcile::fetch(&self.client, &self.spec, &view)
            .await
            .map_err(|e| SinkError::Unavailable {
                sink: self.label.clone(),
                detail: match version {
                    None => format!(
                        "reading the readers' view `{view}` (no version promoted yet? promote \
                         one, or set version): {e}"
                    ),
                    Some(_) => format!("reading `{view}`: {e}"),
                },
            })
    }

    fn unavailable(&self, e: &strangler_clickhouse::Error) -> SinkError {
        SinkError::Unavailable {
            sink: self.label.clone(),
            detail: e.to_string(),
        }
    }

    fn apply_error(&self, e: &strangler_clickhouse::Error) -> ApplyError {
        use strangler_clickhouse::Error as E;
        // The server refusing the data (a value that does not parse as its column's type) is the
        // event's problem; anything else is the sink's, and abandons the batch.
        let about_data = matches!(e, E::Row { .. })
            || matches!(e, E::Server { status, .. } if *status < 500 && !e.retryable());
        ApplyError {
            reason: if about_data {
                Reason::SinkError
            } else {
                Reason::SinkUnavailable
            },
            detail: format!("{}: {e}", self.label),
        }
    }

    /// Renders one event's rows; `Ok(None)` for an ignored type.
    fn render(&self, event: &Event) -> Result<Option<Vec<Row>>, ApplyError> {
        let bad = |detail: String| ApplyError {
            reason: Reason::BadPayload,
            detail,
        };
        let Some(ty) = event.event_type.as_deref() else {
            return Err(bad("no `type` header".into()));
        };
        let Some(inserts) = self.handlers.get(ty) else {
            if self.ignored.iter().any(|i| i == ty) {
                return Ok(None);
            }
            return Err(ApplyError {
                reason: Reason::UnknownEventType,
                detail: format!("no handler for event type `{ty}`"),
            });
        };
        let r = &event.record;
        let position = Position {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
        };
        let mut rows = Vec::with_capacity(inserts.len());
        for (seq, insert) in inserts.iter().enumerate() {
            let mut values = Map::new();
            for (column, src, shape, nullable) in &insert.fields {
                let v = column_value(src, event).map_err(&bad)?;
                let v = match (&v, shape) {
                    (Json::Null, _) if !nullable => {
                        return Err(bad(format!(
                            "column {column} would be null; its type is not Nullable"
                        )));
                    }
                    (Json::String(s), Shape::Date) => {
                        Json::String(date_of(s).ok_or_else(|| {
                            bad(format!(
                                "column {column}: {s:?} is not a date (YYYY-MM-DD...)"
                            ))
                        })?)
                    }
                    (Json::String(s), Shape::DateTime) => {
                        Json::String(datetime_of(s).ok_or_else(|| {
                            bad(format!(
                                "column {column}: {s:?} is not a UTC timestamp (RFC 3339)"
                            ))
                        })?)
                    }
                    _ => v,
                };
                values.insert(column.clone(), v);
            }
            rows.push(Row {
                position: position.clone(),
                seq: seq as u32,
                values,
            });
        }
        Ok(Some(rows))
    }

    /// Runs `f` with the writer of physical base `base`, opening it (and creating the tables)
    /// on first use.
    async fn with_writer<T>(
        &self,
        base: &str,
        f: impl AsyncFnOnce(&mut Writer) -> strangler_clickhouse::Result<T>,
    ) -> strangler_clickhouse::Result<T> {
        let mut writers = self.writers.lock().await;
        if !writers.contains_key(base) {
            let w = Writer::open(
                self.client.clone(),
                &[(self.spec.clone(), base.to_string())],
            )
            .await?;
            writers.insert(base.to_string(), w);
        }
        f(writers.get_mut(base).expect("inserted above")).await
    }

    /// Forgets cached writers (their high-water marks) after tables were swapped or dropped.
    async fn forget(&self, version: u32) {
        let live = self.live_base(version);
        let mut writers = self.writers.lock().await;
        writers.remove(&live);
        writers.remove(&rebuild::rebuild_base(&live));
    }

    /// The version readers are pointed at: the view `<table>` names `<table>_v<N>`.
    async fn pointed_version(&self) -> Result<Option<u32>, SinkError> {
        #[derive(serde::Deserialize)]
        struct Q {
            create_table_query: String,
        }
        let rows: Vec<Q> = self
            .client
            .query(&format!(
                "SELECT create_table_query FROM system.tables WHERE database = {} AND name = {}",
                literal(self.client.database()),
                literal(&self.spec.name)
            ))
            .await
            .map_err(|e| self.unavailable(&e))?;
        let marker = format!("`{}_v", self.spec.name);
        let plain = format!(".{}_v", self.spec.name);
        Ok(rows.first().and_then(|q| {
            let text = &q.create_table_query;
            let at = text
                .rfind(&marker)
                .map(|i| i + marker.len())
                .or_else(|| text.rfind(&plain).map(|i| i + plain.len()))?;
            let digits: String = text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        }))
    }

    async fn point_readers_at(&self, version: u32) -> Result<(), SinkError> {
        let db = self.client.database();
        let name = &self.spec.name;
        let next = format!("{name}__ptr_next");
        let old = format!("{name}__ptr_old");
        let target = self.live_base(version);
        let run = async |sql: String| self.client.execute(&sql).await;
        let steps = async {
            run(format!("DROP TABLE IF EXISTS {}", qualified(db, &next))).await?;
            run(format!("DROP TABLE IF EXISTS {}", qualified(db, &old))).await?;
            run(format!(
                "CREATE VIEW {} AS SELECT * FROM {}",
                qualified(db, &next),
                qualified(db, &target)
            ))
            .await?;
            let exists: Vec<Json> = self
                .client
                .query(&format!(
                    "SELECT name FROM system.tables WHERE database = {} AND name = {}",
                    literal(db),
                    literal(name)
                ))
                .await?;
            if exists.is_empty() {
                run(format!(
                    "RENAME TABLE {} TO {}",
                    qualified(db, &next),
                    qualified(db, name)
                ))
                .await?;
            } else {
                // One statement: readers see the old view or the new one, never neither.
                run(format!(
                    "RENAME TABLE {} TO {}, {} TO {}",
                    qualified(db, name),
                    qualified(db, &old),
                    qualified(db, &next),
                    qualified(db, name)
                ))
                .await?;
                run(format!("DROP TABLE IF EXISTS {}", qualified(db, &old))).await?;
            }
            Ok::<_, strangler_clickhouse::Error>(())
        };
        steps.await.map_err(|e| self.unavailable(&e))
    }
}

/// A column's value: a payload pointer keeps the payload's JSON as it is; other sources give
/// their bound value.
fn column_value(src: &ParamSource, event: &Event) -> Result<Json, String> {
    if let ParamSource::Pointer(p) = src {
        let payload = event.payload.as_ref().map_err(Clone::clone)?;
        return Ok(payload.pointer(p).cloned().unwrap_or(Json::Null));
    }
    Ok(json_of(&src.value(event)?))
}

#[async_trait]
impl Sink for ClickHouseSink {
    fn kind(&self) -> SinkKind {
        SinkKind::ClickHouse
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    async fn setup(&self, version: u32) -> Result<(), SinkError> {
        self.client.ping().await.map_err(|e| self.unavailable(&e))?;
        offsets::ensure_table(&self.client)
            .await
            .map_err(|e| self.unavailable(&e))?;
        self.with_writer(&self.live_base(version), async |_| Ok(()))
            .await
            .map_err(|e| self.unavailable(&e))?;
        if self.pointed_version().await?.is_none() {
            self.point_readers_at(version).await?;
        }
        Ok(())
    }

    async fn apply(&self, binding: &Binding, events: &[&Event]) -> Result<ManyApplied, ApplyError> {
        let mut out = ManyApplied::default();
        let mut rows: Vec<(String, Row)> = Vec::with_capacity(events.len());
        for e in events {
            match self.render(e)? {
                Some(r) => {
                    out.applied += 1;
                    out.rows += r.len() as u64;
                    rows.extend(r.into_iter().map(|r| (self.spec.name.clone(), r)));
                }
                None => out.ignored += 1,
            }
        }
        if binding.mode == Mode::DryRun {
            return Ok(out);
        }
        let base = self.base(binding.version, &binding.build);
        let key = |e: &&Event| (e.record.topic.clone(), e.record.partition);
        // Fencing: a writer whose claim generation is older than the one stored refuses to write.
        // ClickHouse has no compare-and-set, so this narrows the window rather than closing it;
        // a stale writer that slips through writes rows the position key makes duplicates of.
        let stored = offsets::load(&self.client, &base)
            .await
            .map_err(|e| self.apply_error(&e))?;
        let mut next: BTreeMap<(String, i32), Stored> = BTreeMap::new();
        for e in events {
            let k = key(e);
            let held = stored.get(&k).map_or(0, |s| s.generation);
            // A writer without a claim for the partition (a re-drive) neither checks nor moves it.
            let ours = binding
                .claims
                .generation(&e.record.topic, e.record.partition);
            if binding.mode != Mode::Redrive
                && let Some(ours) = ours
                && held > ours
            {
                return Err(ApplyError {
                    reason: Reason::SinkUnavailable,
                    detail: format!(
                        "{}: {}/{} is held by generation {held}, this writer has {ours}",
                        self.label, k.0, k.1
                    ),
                });
            }
            let at = next.entry(k.clone()).or_insert(Stored {
                next_offset: stored.get(&k).map_or(0, |s| s.next_offset),
                generation: ours.unwrap_or(held),
            });
            at.next_offset = at.next_offset.max(e.record.offset + 1);
        }
        let redrive = binding.mode == Mode::Redrive;
        let stats = self
            .with_writer(&base, async |w| {
                if redrive {
                    w.write_missing(&rows).await
                } else {
                    w.write(&rows).await
                }
            })
            .await
            .map_err(|e| self.apply_error(&e))?;
        if stats.skipped > 0 {
            tracing::debug!(sink = %self.label, inserted = stats.inserted, skipped = stats.skipped, "rows already in ClickHouse skipped");
        }
        if !redrive {
            offsets::store(&self.client, &base, &next)
                .await
                .map_err(|e| self.apply_error(&e))?;
        }
        Ok(out)
    }

    async fn positions(&self, version: u32, build: &Build) -> Result<Vec<SinkPosition>, SinkError> {
        let base = self.base(version, build);
        let stored = offsets::load(&self.client, &base)
            .await
            .map_err(|e| self.unavailable(&e))?;
        let facts = self.spec.layout(&base).facts;
        // Rows stored after the last offset (a crash between the two) count as applied.
        let high = strangler_clickhouse::writer::high_water(&self.client, &facts)
            .await
            .or_else(|e| match e.code() {
                Some(60) => Ok(Default::default()), // no table yet
                _ => Err(e),
            })
            .map_err(|e| self.unavailable(&e))?;
        let mut by: BTreeMap<(String, i32), i64> = stored
            .into_iter()
            .map(|(k, s)| (k, s.next_offset))
            .collect();
        for (k, (offset, _)) in high {
            let e = by.entry(k).or_insert(0);
            *e = (*e).max(offset + 1);
        }
        Ok(by
            .into_iter()
            .map(|((topic, partition), next_offset)| SinkPosition {
                topic,
                partition,
                next_offset,
            })
            .collect())
    }

    async fn reset(
        &self,
        version: u32,
        parts: &[PlanPart],
        from: From,
        claims: &Claims,
    ) -> Result<Build, SinkError> {
        let build = if from == From::Rebuild {
            let live = self.live_base(version);
            rebuild::reset(&self.client, &self.spec, &live)
                .await
                .map_err(|e| self.unavailable(&e))?;
            self.forget(version).await;
            Build::Fresh(REBUILD.into())
        } else {
            // A replay keeps the rows: the events from `start` on are consumed again and their
            // rows, already stored at the same positions, are skipped. Only the offsets move.
            Build::Live
        };
        let base = self.base(version, &build);
        self.with_writer(&base, async |_| Ok(()))
            .await
            .map_err(|e| self.unavailable(&e))?;
        let next: BTreeMap<(String, i32), Stored> = parts
            .iter()
            .map(|p| {
                let stored = Stored {
                    next_offset: p.start,
                    generation: claims.generation(&p.topic, p.partition).unwrap_or(0),
                };
                ((p.topic.clone(), p.partition), stored)
            })
            .collect();
        offsets::store(&self.client, &base, &next)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(build)
    }

    async fn switch(&self, version: u32, build: &Build) -> Result<(), SinkError> {
        let Build::Fresh(_) = build else {
            return Ok(());
        };
        let live = self.live_base(version);
        let fresh = rebuild::rebuild_base(&live);
        let fresh_offsets = offsets::load(&self.client, &fresh)
            .await
            .map_err(|e| self.unavailable(&e))?;
        // Tables first, offsets second: a crash between leaves the live offsets behind the live
        // rows, which only means rows are skipped again.
        rebuild::swap(&self.client, &self.spec, &live)
            .await
            .map_err(|e| self.unavailable(&e))?;
        self.forget(version).await;
        offsets::store(&self.client, &live, &fresh_offsets)
            .await
            .map_err(|e| self.unavailable(&e))?;
        tracing::info!(sink = %self.label, version, "rebuilt table is live");
        Ok(())
    }

    async fn promote(&self, version: u32) -> Result<(), SinkError> {
        self.point_readers_at(version).await?;
        tracing::info!(sink = %self.label, version, "readers switched");
        Ok(())
    }

    async fn retire(&self, version: u32) -> Result<(), SinkError> {
        if self.pointed_version().await? == Some(version) {
            return Err(SinkError::Refused {
                sink: self.label.clone(),
                detail: format!("readers are pointed at v{version}; promote another version first"),
            });
        }
        let live = self.live_base(version);
        let db = self.client.database();
        for base in [rebuild::rebuild_base(&live), live] {
            let layout = self.spec.layout(&base);
            for t in layout.view.iter().chain([&layout.facts]) {
                self.client
                    .execute(&format!("DROP TABLE IF EXISTS {}", qualified(db, t)))
                    .await
                    .map_err(|e| self.unavailable(&e))?;
            }
        }
        self.forget(version).await;
        tracing::info!(sink = %self.label, version, "retired");
        Ok(())
    }

    async fn read(
        &self,
        route: &RouteDef,
        default_version: u32,
        params: &HashMap<String, String>,
    ) -> Result<SinkRead, SinkError> {
        // The route's captures and query parameters that name columns filter the readers' view
        // (an aggregate by its group columns, an append table by any column).
        let version = self.pointed_version().await?.unwrap_or(default_version);
        let db = self.client.database();
        let target = self.spec.layout(&self.live_base(version));
        let from = target.view.as_ref().unwrap_or(&target.facts);
        let mut filters: Vec<String> = Vec::new();
        let mut names: Vec<&String> = params.keys().collect();
        names.sort();
        for name in names {
            if let Some(c) = self.spec.columns.iter().find(|c| &c.name == name) {
                filters.push(format!("`{}` = {}", c.name, literal(&params[name])));
            }
        }
        let filters = if filters.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", filters.join(" AND "))
        };
        let (select, order) = match &self.spec.kind {
            TableKind::Aggregate { group_by, .. } => (
                "*".to_string(),
                group_by
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            TableKind::Append { .. } => {
                let cols: Vec<String> = self
                    .spec
                    .columns
                    .iter()
                    .map(|c| format!("`{}`", c.name))
                    .collect();
                (cols.join(", "), "_partition, _offset, _seq".to_string())
            }
        };
        let fin = if target.view.is_some() { "" } else { " FINAL" };
        let limit = if route.result == RouteResult::One {
            " LIMIT 1"
        } else {
            ""
        };
        let rows: Vec<Json> = self
            .client
            .query(&format!(
                "SELECT {select} FROM {}{fin}{filters} ORDER BY {order}{limit}",
                qualified(db, from)
            ))
            .await
            .map_err(|e| self.unavailable(&e))?;
        let value = match route.result {
            RouteResult::One => rows.into_iter().next(),
            RouteResult::Many => Some(Json::Array(rows)),
        };
        Ok(SinkRead { version, value })
    }
}
