//! A set of projections over one read store and one bus: setup, run, replay, promote, retire.
//! The CLI calls these; they hold everything but argument parsing.

use std::path::Path;
use std::sync::Arc;

use strangler_store::Store;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::apply::BatchStats;
use crate::checkpoint::{self, CheckpointStarts, Claims};
use crate::definition;
use crate::projection::{Projection, SqlProjection};
use crate::replay::{self, From, Plan};
use crate::runtime::{RunStats, Runner, Until};
use crate::source::Source;
use crate::store::ReadTx;
use crate::{Error, Result};

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
    /// Loads every projection file in `dir`.
    pub fn load(store: Store, source: Source, dir: &Path) -> Result<Projector> {
        let projections = definition::load_dir(dir)?
            .into_iter()
            .map(|(_, def)| Arc::new(SqlProjection::new(def)))
            .collect();
        Ok(Projector {
            store,
            source,
            projections,
            owner: owner_id(),
            contracts: None,
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

    /// Creates every projection's tables.
    pub async fn setup(&self) -> Result<()> {
        for p in &self.projections {
            let mut tx = ReadTx::begin(&self.store).await?;
            p.setup(&mut tx).await?;
            tx.commit().await?;
        }
        Ok(())
    }

    fn runner(&self, p: &Arc<SqlProjection>) -> (Runner, Arc<dyn strangler_bus::StartOffsets>) {
        let claims = Arc::new(Claims::default());
        let starts = Arc::new(CheckpointStarts {
            store: self.store.clone(),
            projection: p.name().to_string(),
            version: p.version(),
            owner: self.owner.clone(),
            claims: claims.clone(),
        });
        let projection = crate::contracts::wrap(p.clone(), self.contracts.as_ref());
        (
            Runner {
                store: self.store.clone(),
                projection,
                claims,
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
        let (runner, _) = self.runner(p);
        let until = Until::CaughtUp {
            starts: plan.starts(),
            ends: plan.ends(),
        };
        let mut tx = ReadTx::begin(&self.store).await?;
        replay::reset(&mut tx, p.as_ref(), plan, from).await?;
        // Claim inside the reset's transaction: it fences a running consumer of this version, and
        // a dry run (whose reset is never committed) needs no claim visible outside.
        for part in &plan.parts {
            checkpoint::claim_in(
                &mut tx,
                p.name(),
                p.version(),
                &part.topic,
                part.partition,
                &self.owner,
                &runner.claims,
            )
            .await?;
        }
        let tx = if dry_run {
            Some(tx)
        } else {
            tx.commit().await?;
            None
        };
        let mut consumer = self.source.assign(p.as_ref(), plan).await?;
        runner
            .run(consumer.as_mut(), until, tx, cancel, on_batch)
            .await
    }
}
