//! `strangler check-config`: the same validation services run at start, printed in full.

use std::process::ExitCode;

use strangler_core::ConfigError;

use crate::cli::GlobalArgs;
use crate::context::load_config;

pub fn run(global: &GlobalArgs) -> anyhow::Result<ExitCode> {
    match load_config(global) {
        Ok(config) => {
            let file = config
                .source
                .as_ref()
                .map_or("(embedded defaults)".to_string(), |p| {
                    p.display().to_string()
                });
            println!("{file}: configuration is valid");
            println!(
                "  store:        {}",
                strangler_store::redact_url(&config.store.url)
            );
            println!("  bus:          {:?}", config.bus.kind);
            println!(
                "  read store:   {}",
                strangler_store::redact_url(&config.projections.read_store_url)
            );
            println!("  capabilities: {}", config.capabilities.len());
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => match err.downcast_ref::<ConfigError>() {
            Some(cfg) => {
                eprintln!("{cfg}");
                Ok(ExitCode::from(1))
            }
            None => Err(err),
        },
    }
}
