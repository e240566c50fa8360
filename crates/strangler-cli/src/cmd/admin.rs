//! `strangler admin`: the admin API and dashboard on their own, without a proxy in this process
//! (the proxy serves them too when `[admin]` is configured).

use std::process::ExitCode;

use anyhow::Context;
use strangler_store::{Store, redact_url};
use strangler_telemetry::Shutdown;

use crate::cli::{AdminArgs, GlobalArgs};

pub async fn run(global: &GlobalArgs, args: &AdminArgs) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    if config.admin.is_none() {
        anyhow::bail!(
            "the configuration has no [admin] section: add listen and [[admin.tokens]] (name, token, role)"
        );
    }
    let shutdown = Shutdown::install(&config.telemetry);
    let store = Store::connect(&config.store.url).await.with_context(|| {
        format!(
            "connecting to the store at {}",
            redact_url(&config.store.url)
        )
    })?;
    if config.store.migrate_on_start {
        store.migrate().await.context("migrating the store")?;
    }
    let (_, task) = strangler_admin::service::start_admin(
        &config,
        store.clone(),
        None,
        args.listen.as_deref(),
        shutdown.token.clone(),
    )
    .await?
    .context("the configuration has no [admin] section")?;
    let _ = shutdown.drain(task).await;
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
