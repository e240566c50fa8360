//! `strangler cutover show|set|history`: the serving mode of each capability, through the same
//! API the admin HTTP API uses.

use std::process::ExitCode;

use anyhow::Context;
use strangler_core::Mode;
use strangler_proxy::cutover::{self, SetRequest};
use strangler_store::{Store, redact_url};

use crate::cli::{CutoverCommand, GlobalArgs};

/// Mode words that work the kill switch instead of changing the mode.
const KILL: &str = "kill";
const UNKILL: &str = "unkill";

pub async fn run(global: &GlobalArgs, cmd: &CutoverCommand) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    let store = Store::connect(&config.store.url).await.with_context(|| {
        format!(
            "connecting to the store at {}",
            redact_url(&config.store.url)
        )
    })?;
    if config.store.migrate_on_start {
        store.migrate().await.context("migrating the store")?;
    }
    let result = match cmd {
        CutoverCommand::Show { json } => show(&store, &config, *json).await,
        CutoverCommand::Set {
            capability,
            mode,
            reason,
            force,
            actor,
        } => {
            let actor = actor.clone().unwrap_or_else(|| "unknown".into());
            set(&store, &config, capability, mode, reason, *force, &actor).await
        }
        CutoverCommand::History { capability } => history(&store, &config, capability).await,
    };
    store.close().await;
    result
}

async fn show(
    store: &Store,
    config: &strangler_core::Config,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let views = cutover::show(store, config)
        .await
        .context("reading cutover state")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&views)?);
        return Ok(ExitCode::SUCCESS);
    }
    if views.first().is_some_and(|v| v.all_killed) {
        println!("GLOBAL KILL SWITCH ON: every capability is served by legacy\n");
    }
    println!(
        "{:<24} {:<16} {:<11} {:<7} {:>9} {:>9} {:>11}  {:<5} CHANGED",
        "CAPABILITY", "CLASS", "MODE", "KILLED", "COMPARED", "MISMATCH", "UPPER95", "GATE",
    );
    for v in views {
        let class = serde_json::to_value(v.class)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let upper = v
            .gate
            .checks
            .iter()
            .find(|c| c.name == "mismatch_rate_upper95")
            .and_then(|c| c.observed)
            .map_or("-".into(), |u| format!("{:.4}", u));
        let changed = match (&v.updated_at, &v.updated_by) {
            (Some(at), Some(by)) => format!("{} by {by}", at.format("%Y-%m-%d %H:%M:%S")),
            _ => "never".into(),
        };
        println!(
            "{:<24} {:<16} {:<11} {:<7} {:>9} {:>9} {:>11}  {:<5} {}",
            v.capability,
            class,
            v.mode.to_string(),
            if v.killed { "yes" } else { "no" },
            v.gate.evidence.compared,
            v.gate.evidence.mismatches,
            upper,
            if v.gate.passed { "pass" } else { "fail" },
            changed
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn set(
    store: &Store,
    config: &strangler_core::Config,
    capability: &str,
    mode: &str,
    reason: &str,
    force: bool,
    actor: &str,
) -> anyhow::Result<ExitCode> {
    let word = mode.trim().to_ascii_lowercase();
    if word == KILL || word == UNKILL {
        let target = (capability != "all").then_some(capability);
        let state = cutover::kill(store, config, target, word == KILL, actor, reason).await?;
        println!(
            "{}: kill switch {}",
            if target.is_some() {
                capability
            } else {
                "all capabilities"
            },
            if state.killed {
                "ON (served by legacy)"
            } else {
                "off"
            }
        );
        return Ok(ExitCode::SUCCESS);
    }
    let to: Mode = mode
        .parse()
        .with_context(|| format!("`{mode}` is not a mode (or `kill` / `unkill`)"))?;
    let outcome = cutover::set(
        store,
        config,
        &SetRequest {
            capability: capability.to_owned(),
            to,
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            force,
        },
    )
    .await?;
    println!(
        "{capability}: {} -> {} (version {}){}",
        outcome.from,
        outcome.state.mode,
        outcome.state.version,
        match &outcome.gate {
            Some(g) if g.passed => " gate passed".to_owned(),
            Some(g) => format!(" FORCED past a failing gate: {}", g.failures()),
            None => String::new(),
        }
    );
    Ok(ExitCode::SUCCESS)
}

async fn history(
    store: &Store,
    config: &strangler_core::Config,
    capability: &str,
) -> anyhow::Result<ExitCode> {
    // `all` names the global kill switch, stored as `*`.
    let name = if capability == "all" {
        strangler_store::cutover::ALL
    } else {
        capability
    };
    let entries = cutover::history(store, config, name, 1_000).await?;
    if entries.is_empty() {
        println!("{capability}: no changes recorded");
    }
    for e in entries {
        let gate = e
            .gate
            .as_ref()
            .and_then(|g| g.get("passed"))
            .and_then(|p| p.as_bool())
            .map_or("", |p| if p { " gate=pass" } else { " gate=fail" });
        println!(
            "{}  {} -> {}  by {}{}{}  {}",
            e.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            e.from_mode.as_deref().unwrap_or("(none)"),
            e.to_mode,
            e.actor,
            if e.forced { " FORCED" } else { "" },
            gate,
            e.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}
