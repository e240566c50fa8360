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

use crate::cli::{GlobalArgs, ReconcileArgs};

pub async fn run(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<ExitCode> {
    match check(global, args).await {
        Ok(drift) => Ok(ExitCode::from(if drift { EXIT_DRIFT } else { EXIT_OK })),
        Err(err) => {
            eprintln!("error: {err:#}");
            Ok(ExitCode::from(EXIT_ERROR))
        }
    }
}

/// Runs the check; true when drift remains.
async fn check(global: &GlobalArgs, args: &ReconcileArgs) -> anyhow::Result<bool> {
    let config = crate::context::init(global)?;
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
