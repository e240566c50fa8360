//! `strangler report`: the cutover-readiness report of one capability (or all), as a terminal
//! table, JSON, Markdown or a self-contained HTML file.

use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use strangler_admin::report;
use strangler_store::{Store, redact_url};

use crate::cli::{GlobalArgs, ReportArgs};

pub async fn run(global: &GlobalArgs, args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    if let Some(name) = &args.capability
        && config.capability(name).is_none()
    {
        let known: Vec<&str> = config
            .capabilities
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        anyhow::bail!(
            "no capability is named `{name}`; configured: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let store = Store::connect(&config.store.url).await.with_context(|| {
        format!(
            "connecting to the store at {}",
            redact_url(&config.store.url)
        )
    })?;
    if config.store.migrate_on_start {
        store.migrate().await.context("migrating the store")?;
    }
    let mismatches = strangler_admin::service::mismatch_store(&config, store.clone());
    let now = Utc::now();
    let reports = match &args.capability {
        Some(name) => vec![report::build(&mismatches, &config, name, now, None).await?],
        None => report::build_all(&mismatches, &config, now).await?,
    };
    store.close().await;
    let text = match args.format.as_str() {
        "json" => {
            let value = match (&args.capability, reports.as_slice()) {
                (Some(_), [one]) => serde_json::to_value(one)?,
                _ => serde_json::to_value(&reports)?,
            };
            serde_json::to_string_pretty(&value)? + "\n"
        }
        "markdown" => report::markdown::render(&reports),
        "html" => report::html::render(&reports),
        _ => report::text::render(&reports),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text)
            .with_context(|| format!("writing the report to {}", path.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}
