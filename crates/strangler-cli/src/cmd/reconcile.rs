//! `strangler reconcile <name>`: compare legacy tables with a projection and report the drift.
//!
//! Exit codes, for cron and CI: 0 no drift (rows in flight are not drift), 1 drift found,
//! 2 the check could not run (configuration, connection, query or repair error).

use std::process::ExitCode;

use anyhow::Context;
use strangler_reconcile::{
    EXIT_DRIFT, EXIT_ERROR, EXIT_OK, Progress, Reconciler, RepairOutcome, Repairer, Report,
    repair_and_recheck,
};

use strangler_core::Config;
use strangler_core::config::ReconcileAggregateConfig;

use crate::cli::{GlobalArgs, ReconcileArgs};

pub async fn run(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    match check(global, args).await {
        Ok(drift) => Ok(ExitCode::from(if drift { EXIT_DRIFT } else { EXIT_OK })),
        Err(err) => {
            eprintln!("error: {}", super::error_text(&err));
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

/// Runs the check; true when drift remains.
async fn check(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<bool> {
    let config = crate::context::init(global)?;
    if let Some(aggregate) = config
        .reconcile_aggregate
        .iter()
        .find(|a| a.name == args.name)
    {
        return check_aggregate(&config, aggregate, args).await;
    }
    let reconciler = Reconciler::connect(&config, &args.name, args.watermark.as_deref())
        .await
        .with_context(|| format!("setting up reconciliation `{}`", args.name))?;
    let report = reconciler
        .reconcile(&Progress::stderr())
        .await
        .with_context(|| format!("reconciling `{}`", args.name))?;
    print(&report, &args.format);
    if args.repair && report.has_drift() {
        let projection = config
            .reconcile
            .iter()
            .find(|r| r.name == args.name)
            .and_then(|r| r.projection_name.clone())
            .unwrap_or_else(|| args.name.clone());
        let projector = crate::cmd::project::projector(&config).await?;
        let one = projector.one(&projection, None).with_context(|| {
            format!(
                "--repair replays through projection `{projection}` (set projection_name in \
                 [[reconcile]] when it is named differently)"
            )
        })?;
        let repairer = ProjectorRepairer {
            projector,
            one,
            cancel: tokio_util::sync::CancellationToken::new(),
        };
        eprintln!(
            "repairing {} drifted keys through {projection}...",
            report.drifted_keys.len()
        );
        let repaired = repair_and_recheck(&reconciler, &report, &repairer)
            .await
            .with_context(|| format!("repairing `{}`", args.name))?;
        eprintln!(
            "replayed {} events of {} keys; re-check of those keys:",
            repaired.outcome.events, repaired.outcome.keys
        );
        print(&repaired.recheck, &args.format);
        return Ok(repaired.recheck.has_drift());
    }
    Ok(report.has_drift())
}

/// Checks a projection kept as groups (a ClickHouse aggregate) against the legacy `GROUP BY`.
async fn check_aggregate(
    config: &Config,
    check: &ReconcileAggregateConfig,
    args: &ReconcileArgs,
) -> anyhow::Result<bool> {
    let name = &check.name;
    if args.repair {
        anyhow::bail!(
            "`{name}` is an aggregate check: its groups have no keys to replay. Rebuild the \
             projection (`strangler project rebuild {}`), then run the check again",
            check.projection
        );
    }
    if args.watermark.is_some() {
        anyhow::bail!(
            "--watermark applies to [[reconcile]] row checks; `{name}` is an aggregate check"
        );
    }
    let dir = config.resolve(&config.projections.dir);
    let defs = strangler_projector::definition::load_dir(&dir)
        .with_context(|| format!("loading projections from {}", dir.display()))?;
    let highest = defs
        .iter()
        .filter(|(_, d)| d.name == check.projection)
        .map(|(_, d)| d.version)
        .max();
    let Some(highest) = highest else {
        anyhow::bail!(
            "reconcile_aggregate `{name}`: no projection named `{}` in {}; set projection to a \
             projection file's name",
            check.projection,
            dir.display()
        );
    };
    let sinks = strangler_projector::sink::Sinks::build(&defs, &config.projections.sinks)
        .with_context(|| format!("loading projections from {}", dir.display()))?;
    let version = check.version.unwrap_or(highest);
    let Some(sink) = sinks.clickhouse(&check.projection, version) else {
        anyhow::bail!(
            "reconcile_aggregate `{name}`: projection `{}` v{version} does not keep a ClickHouse \
             aggregate (its [sink] is another kind, or the version is not defined); aggregate \
             checks read ClickHouse tables with shape = \"aggregate\"",
            check.projection
        );
    };
    let measures = strangler_clickhouse::reconcile::measure_names(sink.spec());
    let group_columns = strangler_clickhouse::reconcile::group_columns(sink.spec());
    if measures.is_empty() {
        anyhow::bail!(
            "reconcile_aggregate `{name}`: projection `{}` keeps an append table; only shape = \
             \"aggregate\" tables can be checked against a GROUP BY",
            check.projection
        );
    }
    let legacy_url = check
        .legacy_url
        .clone()
        .or_else(|| config.legacy.as_ref().map(|l| l.url.clone()))
        .with_context(|| {
            format!("reconcile_aggregate `{name}`: no legacy database: set legacy_url here or [legacy] url")
        })?;
    let (legacy, ours) = tokio::join!(
        strangler_reconcile::aggregate::legacy_groups(
            name,
            &legacy_url,
            &check.legacy_query,
            group_columns,
            measures.len(),
        ),
        sink.groups(check.version),
    );
    let legacy = strangler_clickhouse::reconcile::groups(
        legacy.with_context(|| format!("reading the legacy side of `{name}`"))?,
    );
    let ours = ours.with_context(|| format!("reading the aggregate of `{}`", check.projection))?;
    let report =
        strangler_clickhouse::reconcile::compare(&measures, &legacy, &ours, check.tolerance);
    const SHOWN: usize = 20;
    match args.format.as_str() {
        "json" => println!("{}", report.to_json(name)),
        "markdown" => print!("{}", report.to_markdown(name, SHOWN)),
        _ => print!("{}", report.to_table(name, SHOWN)),
    }
    Ok(!report.clean())
}

/// Repairs by replaying the drifted keys' events through the projection (per-key replay).
struct ProjectorRepairer {
    projector: strangler_projector::Projector,
    one: std::sync::Arc<strangler_projector::SqlProjection>,
    cancel: tokio_util::sync::CancellationToken,
}

impl Repairer for ProjectorRepairer {
    async fn repair(&self, keys: &[String]) -> strangler_reconcile::Result<RepairOutcome> {
        let stats = crate::cmd::project::replay_keys_with(
            &self.projector,
            &self.one,
            keys,
            false,
            &self.cancel,
        )
        .await
        .map_err(|e| strangler_reconcile::Error::Repair(format!("{e:#}")))?;
        Ok(RepairOutcome {
            keys: stats.keys,
            events: stats.applied,
        })
    }
}

fn print(report: &Report, format: &str) {
    match format {
        "json" => println!("{}", report.to_json()),
        "markdown" => print!("{}", report.to_markdown()),
        _ => print!("{}", report.to_table()),
    }
}
