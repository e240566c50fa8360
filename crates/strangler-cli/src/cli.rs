//! Command-line interface: every subcommand and its documented flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// strangler: move a legacy system's read paths to new read models one capability at a time.
///
/// Relay outbox events to Kafka or the built-in log, project them into read models, shadow the
/// legacy read API and compare answers, and cut capabilities over on measured evidence.
#[derive(Debug, Parser)]
#[command(
    name = "strangler",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file. Without one, the embedded defaults apply (SQLite and the built-in log
    /// under ./.strangler).
    #[arg(long, short = 'c', global = true, env = "STRANGLER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format: human or json (overrides telemetry.log_format).
    #[arg(long, global = true, env = "STRANGLER_LOG_FORMAT", value_parser = ["human", "json"])]
    pub log_format: Option<String>,
    /// Do not apply strangler's migrations when a service starts.
    #[arg(long, global = true, env = "STRANGLER_NO_MIGRATE")]
    pub no_migrate: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Relay outbox rows (or captured changes) from the legacy database to the bus.
    Relay(RelayArgs),
    /// Run, replay, rebuild and promote projections.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Serve the read API over the projections.
    Serve(ServeArgs),
    /// Run the shadow proxy in front of the legacy read API.
    Proxy(ProxyArgs),
    /// Show and change the serving mode of capabilities.
    #[command(subcommand)]
    Cutover(CutoverCommand),
    /// Print the shadow comparison report of a capability.
    Report(ReportArgs),
    /// Serve the admin API and dashboard without a proxy (reads and changes the store).
    Admin(AdminArgs),
    /// Compare legacy tables with a projection and optionally repair the drift.
    Reconcile(ReconcileArgs),
    /// Event contracts: list them, check compatibility between versions, verify real events.
    #[command(subcommand)]
    Contracts(crate::cmd::contracts::ContractsCommand),
    /// Run the whole migration story on the embedded default (SQLite, built-in log).
    Demo(DemoArgs),
    /// Apply strangler's migrations to the store and the read store.
    Migrate,
    /// Validate the configuration file and print every problem found.
    CheckConfig,
    /// Print shell completions.
    Completions {
        /// Shell to generate completions for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Where changes come from: the outbox table, or PostgreSQL's write-ahead log.
    #[arg(long, default_value = "outbox", value_parser = ["outbox", "wal"])]
    pub source: String,
    /// Stop once the outbox is drained instead of polling forever.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Consume events and apply them to the read models until SIGTERM.
    Run {
        /// Projections to run: `name` (every defined version) or `name@version` (default: all).
        names: Vec<String>,
    },
    /// Re-apply events from an offset or a time.
    #[command(disable_version_flag = true)]
    Replay {
        /// The projection.
        name: String,
        /// Which version (default: the highest defined).
        #[arg(long)]
        version: Option<u32>,
        /// First offset to apply again (per partition).
        #[arg(
            long,
            conflicts_with = "from_time",
            required_unless_present = "from_time"
        )]
        from_offset: Option<i64>,
        /// First event time to apply again (RFC 3339).
        #[arg(long)]
        from_time: Option<String>,
        /// Report what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-apply only the events of some keys (aggregate ids): reset their rows with the
    /// projection's `[replay] reset_key` statements, then apply their events in order.
    #[command(disable_version_flag = true)]
    ReplayKeys {
        /// The projection.
        name: String,
        /// Which version (default: the highest defined).
        #[arg(long)]
        version: Option<u32>,
        /// A key to replay (repeat for several).
        #[arg(
            long = "key",
            value_name = "KEY",
            required_unless_present = "keys_file"
        )]
        keys: Vec<String>,
        /// A file of keys, one per line.
        #[arg(long, value_name = "FILE")]
        keys_file: Option<PathBuf>,
        /// Report what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Truncate a projection's tables and replay it from the beginning.
    #[command(disable_version_flag = true)]
    Rebuild {
        /// The projection.
        name: String,
        /// Which version (default: the highest defined).
        #[arg(long)]
        version: Option<u32>,
        /// Report what would change without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Switch readers to a caught-up version of a projection.
    #[command(disable_version_flag = true)]
    Promote {
        /// The projection.
        name: String,
        /// The version to serve.
        #[arg(long)]
        version: u32,
        /// Promote even when the version is behind the one serving now.
        #[arg(long)]
        force: bool,
    },
    /// Drop an old version's tables, checkpoints, dedup keys and dead letters.
    #[command(disable_version_flag = true)]
    Retire {
        /// The projection.
        name: String,
        /// The version to drop (not the one being served).
        #[arg(long)]
        version: u32,
    },
    /// Show each projection's offsets, lag and freshness.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List, show and re-drive events a projection skipped or parked.
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List open (parked and skipped) dead letters of a projection.
    List {
        /// The projection.
        name: String,
        /// Include re-driven ones.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter with its event.
    Show {
        /// The dead letter's id (from `list`).
        id: i64,
    },
    /// Apply dead letters again, oldest first, each exactly once; parked keys resume.
    #[command(disable_version_flag = true)]
    Redrive {
        /// The projection.
        name: String,
        /// Which version (default: the highest defined).
        #[arg(long)]
        version: Option<u32>,
        /// Only this dead letter (default: every open one).
        #[arg(long)]
        id: Option<i64>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (overrides serve.listen).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Listen address (overrides proxy.listen).
    #[arg(long)]
    pub listen: Option<String>,
    /// Serving threads, each with its own upstream connection pool (default: one per core);
    /// 0 serves on the process's shared runtime instead.
    #[arg(long, env = "STRANGLER_PROXY_THREADS")]
    pub threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum CutoverCommand {
    /// Show every capability's mode.
    Show {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move a capability to a mode: legacy, shadow, canary:N, new, retired.
    Set {
        /// The capability.
        capability: String,
        /// The target mode.
        mode: String,
        /// Why (recorded in the audit trail).
        #[arg(long, default_value = "")]
        reason: String,
        /// Override a failing promotion gate (recorded).
        #[arg(long)]
        force: bool,
        /// Who is making the change (recorded); defaults to $USER.
        #[arg(long, env = "USER")]
        actor: Option<String>,
    },
    /// Show the audit trail of a capability.
    History {
        /// The capability.
        capability: String,
    },
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Listen address (overrides admin.listen).
    #[arg(long)]
    pub listen: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The capability (default: all).
    pub capability: Option<String>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "markdown", "html"])]
    pub format: String,
    /// Write to this file instead of standard output.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 no drift (rows in flight are not drift), 1 drift found, 2 error."
)]
pub struct ReconcileArgs {
    /// The `[[reconcile]]` or `[[reconcile_aggregate]]` entry to run.
    pub name: String,
    /// Replay the events of drifted keys, then check them again.
    #[arg(long)]
    pub repair: bool,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = ["table", "json", "markdown"])]
    pub format: String,
    /// The projection's watermark (RFC 3339): legacy rows changed after it are in flight, not
    /// drift. Overrides `watermark_query` and the projector's checkpoints.
    #[arg(long, env = "STRANGLER_RECONCILE_WATERMARK")]
    pub watermark: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run the legacy, control and read stores on this PostgreSQL database instead of SQLite, in
    /// schemas strangler_demo_{legacy,control,read} (dropped and created again on each run).
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Run the bus on these Kafka brokers (host:port,...) instead of the built-in log; each run
    /// creates a topic of its own.
    #[arg(long, value_name = "BROKERS")]
    pub kafka: Option<String>,
    /// Leave the stack and the dashboard running after the story ends.
    #[arg(long)]
    pub keep_running: bool,
    /// Folder for the demo's databases, configuration and report (emptied first).
    #[arg(long, default_value = ".strangler/demo")]
    pub dir: PathBuf,
    /// Hide progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Legacy writes in each of the story's main phases (fewer run a shorter story; at least
    /// 400, so that with no mismatch the gate's 95% bound falls under the 1% budget).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(400..=100_000))]
    pub writes_per_phase: u64,
}
