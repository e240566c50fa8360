//! `strangler project`: run, replay, rebuild, promote, retire, status and dead letters.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use strangler_core::Config;
use strangler_core::config::BusKind;
use strangler_projector::replay::From;
use strangler_projector::{Projection, Projector, Source, dead_letter, freshness, version};
use strangler_store::{Store, redact_url};
use strangler_telemetry::Shutdown;

use crate::cli::{DeadLettersCommand, GlobalArgs, ProjectCommand};

async fn connect(url: &str, migrate: bool, what: &str) -> anyhow::Result<Store> {
    let store = Store::connect(url)
        .await
        .with_context(|| format!("connecting to the {what} at {}", redact_url(url)))?;
    if migrate {
        store
            .migrate()
            .await
            .with_context(|| format!("migrating the {what}"))?;
    }
    Ok(store)
}

async fn source(config: &Config) -> anyhow::Result<Source> {
    Ok(match config.bus.kind {
        BusKind::Kafka => Source::Kafka {
            config: config
                .bus
                .kafka
                .clone()
                .context("bus.kind = \"kafka\" needs a [bus.kafka] table")?,
            group_prefix: config.projections.group_prefix.clone(),
        },
        BusKind::Log => Source::Log {
            store: connect(
                &config.store.url,
                config.store.migrate_on_start,
                "control store (built-in log)",
            )
            .await?,
        },
    })
}

/// Loads projections, the read store and the bus as the configuration says.
pub async fn projector(config: &Config) -> anyhow::Result<Projector> {
    let read = connect(
        &config.projections.read_store_url,
        config.store.migrate_on_start,
        "read store",
    )
    .await?;
    let source = source(config).await?;
    let dir = config.resolve(&config.projections.dir);
    let mut p = Projector::load_with_sinks(read, source, &dir, &config.projections.sinks)
        .with_context(|| format!("loading projections from {}", dir.display()))?;
    if let Some(gate) = super::contracts::projector_gate(config)? {
        p = p.with_contracts(gate);
    }
    p.setup().await.context("creating projection tables")?;
    Ok(p)
}

pub async fn run(global: &GlobalArgs, cmd: &ProjectCommand) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    match cmd {
        ProjectCommand::Run { names } => run_projections(&config, names).await,
        ProjectCommand::Replay {
            name,
            version,
            from_offset,
            from_time,
            dry_run,
        } => {
            let from = match (from_offset, from_time) {
                (Some(n), _) => From::Offset(*n),
                (None, Some(t)) => From::TimeMs(
                    chrono::DateTime::parse_from_rfc3339(t)
                        .with_context(|| {
                            format!("--from-time `{t}` is not RFC 3339, e.g. 2026-01-31T12:00:00Z")
                        })?
                        .timestamp_millis(),
                ),
                (None, None) => anyhow::bail!("give --from-offset N or --from-time T"),
            };
            replay(&config, name, *version, from, *dry_run).await
        }
        ProjectCommand::Rebuild {
            name,
            version,
            dry_run,
        } => replay(&config, name, *version, From::Rebuild, *dry_run).await,
        ProjectCommand::ReplayKeys {
            name,
            version,
            keys,
            keys_file,
            dry_run,
        } => {
            let mut keys = keys.clone();
            if let Some(file) = keys_file {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("reading --keys-file {}", file.display()))?;
                keys.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
            if keys.is_empty() {
                anyhow::bail!(
                    "no keys to replay: give --key KEY or a --keys-file with one key a line"
                );
            }
            replay_keys(&config, name, *version, &keys, *dry_run).await
        }
        ProjectCommand::Promote {
            name,
            version: v,
            force,
        } => {
            let p = projector(&config).await?;
            p.promote(name, *v, *force)
                .await
                .with_context(|| format!("promoting {name} to v{v}"))?;
            println!("{name}: readers now see v{v}");
            Ok(ExitCode::SUCCESS)
        }
        ProjectCommand::Retire { name, version: v } => {
            let p = projector(&config).await?;
            let one = p.one(name, Some(*v))?;
            p.retire(&one)
                .await
                .with_context(|| format!("retiring {name} v{v}"))?;
            println!("{name} v{v}: tables, checkpoints, dedup keys and dead letters dropped");
            Ok(ExitCode::SUCCESS)
        }
        ProjectCommand::Status { json } => status(&config, *json).await,
        ProjectCommand::DeadLetters(cmd) => dead_letters(&config, cmd).await,
    }
}

async fn run_projections(config: &Config, names: &[String]) -> anyhow::Result<ExitCode> {
    strangler_telemetry::install_metrics();
    let shutdown = Shutdown::install(&config.telemetry);
    if let Some(addr) = &config.telemetry.metrics_listen {
        let addr = addr.parse().context("parsing telemetry.metrics_listen")?;
        tokio::spawn(tracing::Instrument::instrument(
            strangler_telemetry::serve_metrics(addr, shutdown.token.clone()),
            tracing::info_span!("metrics"),
        ));
    }
    let p = projector(config).await?;
    match shutdown.drain(p.run(names, shutdown.token.clone())).await {
        Some(r) => {
            r.context("running projections")?;
            Ok(ExitCode::SUCCESS)
        }
        None => anyhow::bail!("projections did not finish their batches within the grace period"),
    }
}

async fn replay(
    config: &Config,
    name: &str,
    version: Option<u32>,
    from: From,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::install(&config.telemetry);
    let p = projector(config).await?;
    let one = p.one(name, version)?;
    let plan = p.plan(&one, from).await.context("planning the replay")?;
    let total = plan.events();
    eprintln!(
        "{} {name} v{}: {total} events over {} partitions{}",
        if from == From::Rebuild {
            "rebuilding"
        } else {
            "replaying"
        },
        one.version(),
        plan.parts.len(),
        if dry_run {
            " (dry run: nothing will be written)"
        } else {
            ""
        }
    );
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let bar2 = bar.clone();
    let mut on_batch = move |b: &strangler_projector::apply::BatchStats| {
        bar2.inc(b.applied + b.duplicates + b.ignored + b.dead_lettered);
    };
    let stats = p
        .replay(&one, &plan, from, dry_run, &shutdown.token, &mut on_batch)
        .await
        .with_context(|| format!("replaying {name}"))?;
    bar.finish_and_clear();
    let verb = if dry_run { "would apply" } else { "applied" };
    println!(
        "{name} v{}: {verb} {} events touching {} rows ({} duplicates, {} dead-lettered, {} ignored)",
        one.version(),
        stats.applied,
        stats.rows,
        stats.duplicates,
        stats.dead_lettered,
        stats.ignored
    );
    Ok(ExitCode::SUCCESS)
}

async fn replay_keys(
    config: &Config,
    name: &str,
    version: Option<u32>,
    keys: &[String],
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::install(&config.telemetry);
    let p = projector(config).await?;
    let one = p.one(name, version)?;
    let stats = replay_keys_with(&p, &one, keys, dry_run, &shutdown.token).await?;
    let verb = if dry_run { "would apply" } else { "applied" };
    println!(
        "{name} v{}: {} keys ({} with events); {verb} {} events touching {} rows after resetting {} rows; scanned {} records",
        one.version(),
        stats.keys,
        stats.keys_with_events,
        stats.applied,
        stats.rows,
        stats.reset_rows,
        stats.scanned
    );
    if !stats.keys_without_events.is_empty() {
        println!(
            "keys with no event on the bus (reset only): {}",
            stats.keys_without_events.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Replays `keys` of one projection version with a scan progress bar on stderr.
pub async fn replay_keys_with(
    p: &Projector,
    one: &Arc<strangler_projector::SqlProjection>,
    keys: &[String],
    dry_run: bool,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<strangler_projector::keys::KeyReplayStats> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("scanning {bar:40} {pos}/{len} records  eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let bar2 = bar.clone();
    let mut on_scan = move |read: u64, total: u64| {
        bar2.set_length(total);
        bar2.set_position(read);
    };
    let stats = p
        .replay_keys(one, keys, dry_run, cancel, &mut on_scan)
        .await
        .with_context(|| format!("replaying {} keys of {}", keys.len(), one.name()))?;
    bar.finish_and_clear();
    Ok(stats)
}

async fn status(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let read = connect(
        &config.projections.read_store_url,
        config.store.migrate_on_start,
        "read store",
    )
    .await?;
    let dir = config.resolve(&config.projections.dir);
    let defs = strangler_projector::definition::load_dir(&dir).unwrap_or_default();
    let mut rows = Vec::new();
    let stall = |name: &str| {
        defs.iter()
            .find(|(_, d)| d.name == name)
            .map_or(60, |(_, d)| d.stall_after_secs)
    };
    for r in freshness::status(&read, None, std::time::Duration::from_secs(60)).await? {
        let limit = std::time::Duration::from_secs(stall(&r.projection));
        let idle = r
            .applied_at_ms
            .map_or(i64::MAX, |t| chrono::Utc::now().timestamp_millis() - t);
        let healthy = r.lag_events == 0 || idle <= limit.as_millis() as i64;
        rows.push(freshness::PartitionFreshness { healthy, ..r });
    }
    let mut serving = std::collections::BTreeMap::new();
    for r in &rows {
        if !serving.contains_key(&r.projection) {
            serving.insert(
                r.projection.clone(),
                version::serving(&read, &r.projection).await?,
            );
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "partitions": rows, "serving": serving })
            )?
        );
    } else {
        println!(
            "{:<24} {:>3} {:<20} {:>4} {:>12} {:>10} {:>10} {:<25} HEALTH",
            "PROJECTION", "V", "TOPIC", "PART", "NEXT", "LAG", "LAG_MS", "LAST_EVENT"
        );
        for r in &rows {
            let last = r
                .last_event_time_ms
                .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
                .map_or("-".to_string(), |t| {
                    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                });
            let served = serving.get(&r.projection).copied().flatten() == Some(r.version);
            println!(
                "{:<24} {:>3} {:<20} {:>4} {:>12} {:>10} {:>10} {:<25} {}{}",
                r.projection,
                r.version,
                r.topic,
                r.partition,
                r.next_offset,
                r.lag_events,
                r.lag_ms,
                last,
                if r.healthy { "ok" } else { "STALLED" },
                if served { " (serving)" } else { "" }
            );
        }
    }
    Ok(if rows.iter().all(|r| r.healthy) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

async fn dead_letters(config: &Config, cmd: &DeadLettersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DeadLettersCommand::List { name, all, json } => {
            let read = connect(
                &config.projections.read_store_url,
                config.store.migrate_on_start,
                "read store",
            )
            .await?;
            let list = dead_letter::list(&read, name, *all).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                println!(
                    "{:>6} {:>3} {:<10} {:<22} {:<20} {:<24} {:<16} DETAIL",
                    "ID", "V", "STATUS", "REASON", "KEY", "TYPE", "AT"
                );
                for d in &list {
                    println!(
                        "{:>6} {:>3} {:<10} {:<22} {:<20} {:<24} {:<16} {}",
                        d.id,
                        d.version,
                        d.status,
                        d.reason,
                        d.key.as_deref().unwrap_or("-"),
                        d.event_type.as_deref().unwrap_or("-"),
                        format!("{}/{}@{}", d.topic, d.partition, d.offset),
                        d.detail.lines().next().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DeadLettersCommand::Show { id } => {
            let read = connect(
                &config.projections.read_store_url,
                config.store.migrate_on_start,
                "read store",
            )
            .await?;
            let d = dead_letter::show(&read, *id)
                .await?
                .with_context(|| format!("no dead letter with id {id}"))?;
            println!("{}", serde_json::to_string_pretty(&d)?);
            Ok(ExitCode::SUCCESS)
        }
        DeadLettersCommand::Redrive { name, version, id } => {
            let p = projector(config).await?;
            let one: Arc<strangler_projector::SqlProjection> = p.one(name, *version)?;
            let one = p.redrivable(one);
            let r = dead_letter::redrive(&p.store, one.as_ref(), *id).await?;
            println!(
                "{name} v{}: {} re-driven and applied, {} failed again (still open)",
                one.version(),
                r.applied,
                r.failed
            );
            Ok(if r.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}
