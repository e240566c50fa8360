//! `strangler migrate`: apply strangler's migrations to the store and the read store.

use std::process::ExitCode;

use anyhow::Context;
use strangler_store::{Store, redact_url};

use crate::cli::GlobalArgs;

pub async fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    let mut urls = vec![config.store.url.clone()];
    if config.projections.read_store_url != config.store.url {
        urls.push(config.projections.read_store_url.clone());
    }
    for url in urls {
        let store = Store::connect(&url).await?;
        store
            .migrate()
            .await
            .with_context(|| format!("migrating {}", redact_url(&url)))?;
        println!("migrated {} ({})", redact_url(&url), store.kind());
        store.close().await;
    }
    Ok(ExitCode::SUCCESS)
}
