//! Loading the configuration the way every subcommand needs it.

use std::path::Path;

use anyhow::Context;
use strangler_core::Config;
use strangler_core::config::LogFormat;

use crate::cli::GlobalArgs;

/// Loads the configuration named by `--config`, or the embedded defaults when none is given.
pub fn load_config(global: &GlobalArgs) -> anyhow::Result<Config> {
    let mut config = match &global.config {
        Some(path) => Config::load(path).map_err(anyhow::Error::new)?,
        None if Path::new("strangler.toml").is_file() => {
            Config::load(Path::new("strangler.toml")).map_err(anyhow::Error::new)?
        }
        None => Config::default(),
    };
    if let Some(fmt) = &global.log_format {
        config.telemetry.log_format = if fmt == "json" {
            LogFormat::Json
        } else {
            LogFormat::Human
        };
    }
    if global.no_migrate {
        config.store.migrate_on_start = false;
    }
    Ok(config)
}

/// Loads the configuration and starts logging as it says.
pub fn init(global: &GlobalArgs) -> anyhow::Result<Config> {
    let config = load_config(global).context("loading configuration")?;
    strangler_telemetry::init_logging(config.telemetry.log_format, &config.telemetry.log_filter);
    Ok(config)
}
