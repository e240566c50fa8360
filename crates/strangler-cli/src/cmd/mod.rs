//! One module per subcommand; this one dispatches.

mod admin;
mod check_config;
pub mod contracts;
mod cutover;
mod demo;
mod migrate;
mod project;
mod proxy;
mod reconcile;
mod relay;
mod report;
mod serve;

use std::fmt;
use std::process::ExitCode;

use clap::CommandFactory;

use crate::cli::{Cli, Command};

/// A subcommand whose capability has not landed yet: a clear message and a distinct exit code,
/// never a fake success.
#[derive(Debug)]
pub struct NotBuilt {
    /// The subcommand.
    pub command: &'static str,
    /// The issue that tracks it.
    pub issue: u32,
}

impl NotBuilt {
    /// Exit status for "not built yet" (EX_UNAVAILABLE from sysexits.h).
    pub const EXIT_CODE: u8 = 69;
}

impl fmt::Display for NotBuilt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "strangler {}: not built yet (tracked in issue #{}); nothing was done",
            self.command, self.issue
        )
    }
}

impl std::error::Error for NotBuilt {}

// Every subcommand has landed; kept for the next one that ships before its implementation.
#[allow(dead_code)]
fn not_built(command: &'static str, issue: u32) -> anyhow::Result<ExitCode> {
    Err(NotBuilt { command, issue }.into())
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig => check_config::run(&cli.global),
        Command::Migrate => migrate::run(&cli.global).await,
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "strangler",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Relay(args) => relay::run(&cli.global, &args).await,
        Command::Project(cmd) => project::run(&cli.global, &cmd).await,
        Command::Serve(args) => serve::run(&cli.global, &args).await,
        Command::Proxy(args) => proxy::run(&cli.global, &args).await,
        Command::Cutover(cmd) => cutover::run(&cli.global, &cmd).await,
        Command::Report(args) => report::run(&cli.global, &args).await,
        Command::Admin(args) => admin::run(&cli.global, &args).await,
        Command::Reconcile(args) => reconcile::run(&cli.global, &args).await,
        Command::Contracts(cmd) => contracts::run(&cli.global, &cmd).await,
        Command::Demo(args) => demo::run(&cli.global, &args).await,
    }
}
