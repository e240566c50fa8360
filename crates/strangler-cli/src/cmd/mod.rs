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

/// An error and its causes on one line, each said once: drivers often repeat their source's text
/// in their own message (sqlx: "error returned from database: X", then X), which `{:#}` would
/// print again for every level.
pub(crate) fn error_text(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

#[cfg(test)]
mod error_text_tests {
    #[test]
    fn a_cause_repeated_in_its_parents_message_is_said_once() {
        let err = anyhow::anyhow!("aggregate functions are not allowed")
            .context("error returned from database: aggregate functions are not allowed")
            .context("running legacy_query");
        assert_eq!(
            super::error_text(&err),
            "running legacy_query: error returned from database: aggregate functions are not allowed"
        );
    }
}
