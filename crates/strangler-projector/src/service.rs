//! A set of projections over one read store and one bus: setup, run, replay, promote, retire.
//! The CLI calls these; they hold everything but argument parsing.

use std::path::Path;
use std::sync::Arc;

use strangler_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use strangler_core::config::SinksConfig;

use crate::apply::BatchStats;
use crate::checkpoint::{self, CheckpointStarts, Claim, Claims};
use crate::definition;
use crate::projection::{Projection, SqlProjection};
use crate::replay::{self, From, Plan};
use crate::runtime::{RunStats, Runner, Until};
use crate::sink::{Binding, Bound, Build, Mode, Sinks};
use crate::source::Source;
use crate::store::ReadTx;
use crate::window::Window;
use crate::{Error, Result, version};

/// Projections loaded from files, their read store and their bus.
#[derive(Clone)]
pub struct Projector {
    /// The read store (migrated).
    pub store: Store,
    /// The bus.
    pub source: Source,
    /// Every defined projection version.
    pub projections: Vec<Arc<SqlProjection>>,
    /// This process's owner id in checkpoint claims.
    pub owner: String,
    /// Event contracts every event passes before a projection applies it ([`crate::contracts`]).
    pub contracts: Option<Arc<crate::contracts::ContractGate>>,
    /// The sinks of projections that do not write the read store ([`crate::sink`]).
    pub sinks: Sinks,
}

/// A unique owner id for this process.
pub fn owner_id() -> String {
    format!(
        "pid{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

impl Projector {
    /// Loads every projection file in `dir`; non-SQL sinks need their URL in the file.
    pub fn load(store: Store, source: Source, dir: &Path) -> Result<Projector> {
        Projector::load_with_sinks(store, source, dir, &SinksConfig::default())
    }

    /// Loads every projection file in `dir`, with `[projections.sinks]` supplying the URLs of
    /// non-SQL sinks that the files leave out.
    pub fn load_with_sinks(
        store: Store,
        source: Source,
        dir: &Path,
        sinks: &SinksConfig,
    ) -> Result<Projector> {
        let defs = definition::load_dir(dir)?;
        let sinks = Sinks::build(&defs, sinks)?;
        let projections = defs
            .into_iter()
            .map(|(_, def)| Arc::new(SqlProjection::new(def)))
            .collect();
        Ok(Projector {
            store,
            source,
            projections,
            owner: owner_id(),
            contracts: None,
            sinks,
        })
    }

    /// Selects projections by `name` (every version) or `name@version`; all when `names` is empty.
    pub fn select(&self, names: &[String]) -> Result<Vec<Arc<SqlProjection>>> {
        if names.is_empty() {
            return Ok(self.projections.clone());
        }
        let mut out = Vec::new();
        for n in names {
            let (name, version) = match n.split_once('@') {
                Some((a, v)) => (a, v.trim_start_matches('v').parse::<u32>().ok()),
                None => (n.as_str(), None),
            };
            let found: Vec<_> = self
                .projections
                .iter()
                .filter(|p| p.name() == name && version.is_none_or(|v| p.version() == v))
                .cloned()
                .collect();
            if found.is_empty() {
                return Err(Error::UnknownProjection(n.clone()));
            }
            out.extend(found);
        }
        Ok(out)
    }

    /// One version of a projection: the given one, else the highest defined.
    pub fn one(&self, name: &str, version: Option<u32>) -> Result<Arc<SqlProjection>> {
        self.projections
            .iter()
            .filter(|p| p.name() == name && version.is_none_or(|v| p.version() == v))
            .max_by_key(|p| p.version())
            .cloned()
            .ok_or_else(|| Error::UnknownProjection(name.to_string()))
    }

    /// Versions defined for a projection.
    pub fn versions(&self, name: &str) -> Vec<u32> {
        self.projections
            .iter()
            .filter(|p| p.name() == name)
            .map(|p| p.version())
            .collect()
    }

    /// Creates every projection's tables, and checks every sink is reachable.
    pub async fn setup(&self) -> Result<()> {
        for p in &self.projections {
            let mut tx = ReadTx::begin(&self.store).await?;
            p.setup(&mut tx).await?;
            tx.commit().await?;
            if let Some(sink) = self.sinks.get(p.name(), p.version()) {
                sink.setup(p.version()).await?;
            }
        }
        Ok(())
    }

    /// `p` bound to its sink (if any) for re-driving dead letters, behind the contract gate: an
    /// event below the sink's position applies unless the sink already applied its id.
    pub fn redrivable(&self, p: Arc<SqlProjection>) -> Arc<dyn Projection> {
        let binding = Binding {
            version: p.version(),
            build: Build::Live,
            mode: Mode::Redrive,
            claims: Arc::new(Claims::default()),
        };
        let sink = self.sinks.get(p.name(), p.version());
        self.contracted(Bound::wrap(p, sink, binding))
    }

    /// Makes `version` of `name` the one readers see, in the read store and in its sink.
    pub async fn promote(&self, name: &str, v: u32, force: bool) -> Result<()> {
        version::promote(&self.store, name, v, &self.versions(name), force).await?;
        if let Some(sink) = self.sinks.get(name, v) {
            sink.promote(v).await?;
        }
        Ok(())
    }

    /// Drops an old version's tables and state, and its sink's target.
    pub async fn retire(&self, p: &Arc<SqlProjection>) -> Result<()> {
        version::retire(&self.store, p.as_ref()).await?;
        if let Some(sink) = self.sinks.get(p.name(), p.version()) {
            sink.retire(p.version()).await?;
        }
        Ok(())
    }

    fn runner(&self, p: &Arc<SqlProjection>) -> (Runner, Arc<dyn strangler_bus::StartOffsets>) {
        self.runner_with(p, Arc::new(Claims::default()), Build::Live, Mode::Live)
    }

    fn runner_with(
        &self,
        p: &Arc<SqlProjection>,
        claims: Arc<Claims>,
        build: Build,
        mode: Mode,
    ) -> (Runner, Arc<dyn strangler_bus::StartOffsets>) {
        let starts = Arc::new(CheckpointStarts {
            store: self.store.clone(),
            projection: p.name().to_string(),
            version: p.version(),
            owner: self.owner.clone(),
            claims: claims.clone(),
            lead: p.settings().dedup_window.unwrap_or(0),
        });
        let sink = self.sinks.get(p.name(), p.version());
        let binding = Binding {
            version: p.version(),
            build,
            mode,
            claims: claims.clone(),
        };
        let bound = Bound::wrap(p.clone(), sink.clone(), binding);
        let projection = crate::contracts::wrap(bound, self.contracts.as_ref());
        (
            Runner {
                store: self.store.clone(),
                projection,
                claims,
                sink,
                window: p.settings().dedup_window.map(Window::new),
            },
            starts,
        )
    }

    /// Runs the selected projections, one task each, until `cancel` fires. A projection that
    /// stops (policy `stop`, fenced, bus or store failure) is logged; the others go on. Returns
    /// the first error once all tasks have ended.
    pub async fn run(&self, names: &[String], cancel: CancellationToken) -> Result<()> {
        let selected = self.select(names)?;
        let mut tasks = tokio::task::JoinSet::new();
        for p in selected {
            let (runner, starts) = self.runner(&p);
            let mut consumer = self.source.subscribe(p.as_ref(), starts)?;
            let cancel = cancel.clone();
            let span = tracing::info_span!("projection", name = p.name(), version = p.version());
            tasks.spawn(
                async move {
                    tracing::info!("projection running");
                    let r = runner
                        .run(
                            consumer.as_mut(),
                            Until::Cancelled,
                            None,
                            &cancel,
                            &mut |_| {},
                        )
                        .await;
                    match &r {
                        Ok(s) => tracing::info!(applied = s.applied, "projection stopped cleanly"),
                        Err(e) => tracing::error!(error = %e, "projection stopped"),
                    }
                    r.map(|_| ())
                }
                .instrument(span),
            );
        }
        let mut first = None;
        while let Some(r) = tasks.join_next().await {
            let r = r
                .map_err(|e| Error::Refused(format!("projection task failed: {e}")))
                .and_then(|r| r);
            if let Err(e) = r
                && first.is_none()
            {
                first = Some(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// Plans a replay (or rebuild) of one projection version.
    pub async fn plan(&self, p: &SqlProjection, from: From) -> Result<Plan> {
        self.source.plan(&self.store, p, from).await
    }

    /// Replays (or rebuilds) one projection version per `plan` until caught up with the ends it
    /// records. With `dry_run`, everything (the reset included) runs in one transaction that is
    /// rolled back, and the stats say what would have changed.
    pub async fn replay(
        &self,
        p: &Arc<SqlProjection>,
        plan: &Plan,
        from: From,
        dry_run: bool,
        cancel: &CancellationToken,
        on_batch: &mut (dyn FnMut(&BatchStats) + Send),
    ) -> Result<RunStats> {
        let claims = Arc::new(Claims::default());
        let until = Until::CaughtUp {
            starts: plan.starts(),
            ends: plan.ends(),
        };
        let mut tx = ReadTx::begin(&self.store).await?;
        replay::reset(&mut tx, p.as_ref(), plan, from).await?;
        // Claim inside the reset's transaction: it fences a running consumer of this version, and
        // a dry run (whose reset is never committed) needs no claim visible outside.
        for part in &plan.parts {
            let generation = checkpoint::claim_in(
                &mut tx,
                p.name(),
                p.version(),
                &part.topic,
                part.partition,
                &self.owner,
            )
            .await?;
            let start = Some(part.start);
            claims.set(&part.topic, part.partition, Claim { generation, start });
        }
        // A sink is reset before the read store commits: a crash between the two leaves the
        // sink's position behind the checkpoint, and the events in between were applied before.
        let sink = self.sinks.get(p.name(), p.version());
        let build = match (&sink, dry_run) {
            (Some(s), false) => s.reset(p.version(), &plan.parts, from, &claims).await?,
            _ => Build::Live,
        };
        let tx = if dry_run {
            Some(tx)
        } else {
            tx.commit().await?;
            None
        };
        let mode = if dry_run { Mode::DryRun } else { Mode::Live };
        let (runner, _) = self.runner_with(p, claims, build.clone(), mode);
        let mut consumer = self.source.assign(p.as_ref(), plan).await?;
        let stats = runner
            .run(consumer.as_mut(), until, tx, cancel, on_batch)
            .await?;
        if let (Some(s), Build::Fresh(b)) = (&sink, &build) {
            if cancel.is_cancelled() {
                tracing::warn!(projection = p.name(), version = p.version(), build = %b, "rebuild interrupted; readers stay on the previous build");
            } else {
                s.switch(p.version(), &build).await?;
            }
        }
        Ok(stats)
    }
}
