//! `strangler contracts`: list the registry, check compatibility between versions (CI), and
//! verify real events from the bus against it. Also builds the registry the relay and the
//! projector use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use strangler_bus::{Consumer, KafkaConsumer, LogConsumer, StartOffsets};
use strangler_contracts::compat::{self, Change};
use strangler_contracts::schema_registry::{self, SubjectNaming};
use strangler_contracts::{Registry, verify};
use strangler_core::Config;
use strangler_core::config::{BusKind, UncoveredPolicy};
use strangler_store::Store;

use crate::cli::GlobalArgs;

/// Exit status when the registry cannot be read or the command cannot run.
const EXIT_ERROR: u8 = 2;

#[derive(Debug, Subcommand)]
pub enum ContractsCommand {
    /// List every event contract: versions, meaning, what it does not imply.
    List,
    /// Compare each event type's newest version with the one before and report breaking changes.
    #[command(
        after_help = "Exit codes: 0 compatible, 1 breaking changes (or warnings with --strict), 2 the registry is invalid or unreadable."
    )]
    Check(CheckArgs),
    /// Read real events from the bus (from the beginning) and check each validates and upcasts.
    #[command(
        after_help = "Exit codes: 0 every event passed, 1 some failed (or were uncovered with --strict), 2 error."
    )]
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Registry folder (default: contracts.dir, else ./contracts).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// A copy of the registry as last released (for example a checkout of main): versions it
    /// has are compared with their copies here, so an edited published version is caught.
    #[arg(long, value_name = "DIR")]
    pub against: Option<PathBuf>,
    /// Compare every pair of consecutive versions, not only the newest.
    #[arg(long)]
    pub all_versions: bool,
    /// Fail on warnings too (added enum values, contracts without a description).
    #[arg(long)]
    pub strict: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// How many events to read at most.
    #[arg(long, default_value_t = 1000)]
    pub sample: u64,
    /// Topics to read (repeat); default: the outbox topic of every aggregate in the registry.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Registry folder (default: contracts.dir, else ./contracts).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Fail when events of a type no contract covers are found.
    #[arg(long)]
    pub strict: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The registry a configuration names: `contracts.dir` plus `contracts.schema_registry`.
/// `None` when the configuration has no `[contracts]` section.
pub fn registry(config: &Config) -> anyhow::Result<Option<Registry>> {
    let Some(c) = &config.contracts else {
        return Ok(None);
    };
    let dir = config.resolve(&c.dir);
    let mut reg = if dir.is_dir() || c.schema_registry.is_none() {
        Registry::load_dir(&dir)
            .with_context(|| format!("loading event contracts from {}", dir.display()))?
    } else {
        Registry::default()
    };
    if let Some(sr) = &c.schema_registry {
        let naming = match sr.naming {
            strangler_core::config::SubjectNaming::Record => SubjectNaming::Record,
            strangler_core::config::SubjectNaming::TopicRecord => SubjectNaming::TopicRecord {
                topic_template: config.outbox.topic_template.clone(),
            },
        };
        let sdir = config.resolve(&sr.dir);
        let other = schema_registry::load(&sdir, &naming)
            .with_context(|| format!("loading schema registry subjects from {}", sdir.display()))?;
        reg = reg
            .merge(other)
            .context("merging schema registry subjects")?;
    }
    for (file, name) in reg.unregistered_code_steps() {
        tracing::warn!(file = %file.display(), step = %name, "code upcast step has no Rust function in this binary; events that need it will be contract violations");
    }
    Ok(Some(reg))
}

/// The projector's gate from the configuration, when `[contracts]` asks projectors to validate.
pub fn projector_gate(
    config: &Config,
) -> anyhow::Result<Option<strangler_projector::contracts::ContractGate>> {
    match (&config.contracts, registry(config)?) {
        (Some(c), Some(registry)) if c.projector => {
            Ok(Some(strangler_projector::contracts::ContractGate {
                registry,
                version_header: c.version_header.clone(),
                reject_uncovered: c.uncovered == UncoveredPolicy::Reject,
            }))
        }
        _ => Ok(None),
    }
}

/// The relay's contract check from the configuration.
pub fn relay_contracts(
    config: &Config,
) -> anyhow::Result<Option<strangler_outbox::contracts::RelayContracts>> {
    match (&config.contracts, registry(config)?) {
        (Some(c), Some(registry)) => Ok(Some(strangler_outbox::contracts::RelayContracts {
            registry,
            version_header: c.version_header.clone(),
            policy: c.relay,
            reject_uncovered: c.uncovered == UncoveredPolicy::Reject,
        })),
        _ => Ok(None),
    }
}

fn load_for_command(config: &Config, dir: Option<&Path>) -> Result<Registry, String> {
    match dir {
        Some(d) => Registry::load_dir(d).map_err(|e| e.to_string()),
        None if config.contracts.is_some() => registry(config)
            .map(|r| r.unwrap_or_default())
            .map_err(|e| format!("{e:#}")),
        None => {
            Registry::load_dir(&config.resolve(Path::new("contracts"))).map_err(|e| e.to_string())
        }
    }
}

pub async fn run(global: &GlobalArgs, cmd: &ContractsCommand) -> anyhow::Result<ExitCode> {
    let config = crate::context::init(global)?;
    match cmd {
        ContractsCommand::List => {
            let reg = match load_for_command(&config, None) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::from(EXIT_ERROR));
                }
            };
            list(&reg);
            Ok(ExitCode::SUCCESS)
        }
        ContractsCommand::Check(args) => Ok(check(&config, args)),
        ContractsCommand::Verify(args) => verify_cmd(&config, args).await,
    }
}

fn list(reg: &Registry) {
    for ec in reg.events() {
        let c = ec.current();
        let versions: Vec<String> = ec.versions.keys().map(|v| format!("v{v}")).collect();
        println!("{} ({})", ec.name(), versions.join(", "));
        if let Some(m) = &c.meta.means {
            println!("  means: {m}");
        }
        for n in &c.meta.does_not_imply {
            println!("  does not imply: {n}");
        }
        if !c.meta.event_types.is_empty() {
            println!("  also covers: {}", c.meta.event_types.join(", "));
        }
        for (model, mapping) in &c.meta.read_models {
            println!("  read model {model}: {mapping}");
        }
    }
}

struct PairReport {
    contract: String,
    from_version: u32,
    to_version: u32,
    /// "versions" (v(N-1) -> vN) or "edited" (the same version here and in --against).
    compared: &'static str,
    changes: Vec<Change>,
}

fn check(config: &Config, args: &CheckArgs) -> ExitCode {
    let reg = match load_for_command(config, args.dir.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let against = match &args.against {
        Some(d) => match Registry::load_dir(d) {
            Ok(r) => Some(r),
            Err(e) => {
                eprintln!("--against {}: {e}", d.display());
                return ExitCode::from(EXIT_ERROR);
            }
        },
        None => None,
    };
    let mut pairs = Vec::new();
    let mut lints = Vec::new();
    for ec in reg.events() {
        let versions: Vec<u32> = ec.versions.keys().copied().collect();
        let start = if args.all_versions {
            1
        } else {
            versions.len().saturating_sub(1).max(1)
        };
        for i in start..versions.len() {
            let (old, new) = (&ec.versions[&versions[i - 1]], &ec.versions[&versions[i]]);
            pairs.push(PairReport {
                contract: ec.name(),
                from_version: old.version,
                to_version: new.version,
                compared: "versions",
                changes: compat::compare(old, new),
            });
        }
        if let Some(prev) = against
            .as_ref()
            .and_then(|a| a.get(&ec.aggregate, &ec.event_type))
        {
            for (v, released) in &prev.versions {
                if let Some(now) = ec.versions.get(v)
                    && now.schema != released.schema
                {
                    pairs.push(PairReport {
                        contract: ec.name(),
                        from_version: *v,
                        to_version: *v,
                        compared: "edited",
                        changes: compat::compare(released, now),
                    });
                }
            }
        }
        let c = ec.current();
        if c.meta.means.is_none() {
            lints.push(format!(
                "{}: v{} has no description of what the event means",
                c.file.display(),
                c.version
            ));
        }
        if c.meta.does_not_imply.is_empty() {
            lints.push(format!(
                "{}: v{} says nothing about what the event does not imply (x-strangler.does_not_imply)",
                c.file.display(),
                c.version
            ));
        }
    }
    if let Some(a) = &against {
        for old in a.events() {
            if reg.get(&old.aggregate, &old.event_type).is_none() {
                pairs.push(PairReport {
                    contract: old.name(),
                    from_version: old.current().version,
                    to_version: old.current().version,
                    compared: "edited",
                    changes: vec![Change {
                        kind: compat::ChangeKind::RemovedField,
                        path: String::new(),
                        detail: "the whole event contract is gone from the registry".into(),
                        breaking: true,
                    }],
                });
            }
        }
    }
    let breaking: usize = pairs
        .iter()
        .map(|p| p.changes.iter().filter(|c| c.breaking).count())
        .sum();
    let warnings: usize = pairs
        .iter()
        .map(|p| p.changes.iter().filter(|c| !c.breaking).count())
        .sum::<usize>()
        + lints.len();
    if args.json {
        let out = serde_json::json!({
            "event_types": reg.events().count(),
            "pairs": pairs.iter().map(|p| serde_json::json!({
                "contract": p.contract,
                "from_version": p.from_version,
                "to_version": p.to_version,
                "compared": p.compared,
                "changes": p.changes,
            })).collect::<Vec<_>>(),
            "lints": lints,
            "breaking": breaking,
            "warnings": warnings,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        for p in &pairs {
            let what = if p.compared == "edited" {
                format!("{} v{} (edited since --against)", p.contract, p.to_version)
            } else {
                format!("{} v{} -> v{}", p.contract, p.from_version, p.to_version)
            };
            if p.changes.is_empty() {
                println!("{what}: compatible");
            } else {
                println!("{what}:");
                for c in &p.changes {
                    println!("  {c}");
                }
            }
        }
        for l in &lints {
            println!("warning: {l}");
        }
        println!(
            "{} event type(s), {} comparison(s): {breaking} breaking change(s), {warnings} warning(s)",
            reg.events().count(),
            pairs.len()
        );
    }
    if breaking > 0 || (args.strict && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn verify_cmd(config: &Config, args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let reg = match load_for_command(config, args.dir.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(EXIT_ERROR));
        }
    };
    let topics: Vec<String> = if args.topics.is_empty() {
        let mut t: Vec<String> = reg
            .events()
            .map(|e| {
                config
                    .outbox
                    .topic_template
                    .replace("{aggregatetype}", &e.aggregate)
            })
            .collect();
        t.dedup();
        t
    } else {
        args.topics.clone()
    };
    if topics.is_empty() {
        eprintln!("no topics to read: the registry is empty; name topics with --topic");
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let claim: Arc<dyn StartOffsets> = Arc::new(verify::NoClaim);
    let (mut consumer, ends): (Box<dyn Consumer>, HashMap<(String, i32), i64>) = match config
        .bus
        .kind
    {
        BusKind::Log => {
            let store = Store::connect(&config.store.url)
                .await
                .context("connecting to strangler's store for the built-in log")?;
            let mut parts = Vec::new();
            let mut ends = HashMap::new();
            for t in &topics {
                for (p, end) in strangler_bus::log::consumer::partitions(&store, t).await? {
                    parts.push((t.clone(), p, 0));
                    ends.insert((t.clone(), p), end);
                }
            }
            (
                Box::new(LogConsumer::assign(store, parts, claim).await?),
                ends,
            )
        }
        BusKind::Kafka => {
            let kafka = config
                .bus
                .kafka
                .as_ref()
                .context("bus.kind = \"kafka\" needs a [bus.kafka] table")?;
            let group = format!("{}.contracts-verify", config.projections.group_prefix);
            let probe = KafkaConsumer::assign(
                &kafka.brokers,
                &group,
                &kafka.properties,
                &[],
                claim.clone(),
            )
            .await?;
            let found = probe.partitions(&topics).await?;
            let parts: Vec<(String, i32, i64)> =
                found.iter().map(|(t, p, _)| (t.clone(), *p, 0)).collect();
            let ends = found.into_iter().map(|(t, p, e)| ((t, p), e)).collect();
            (
                Box::new(
                    KafkaConsumer::assign(&kafka.brokers, &group, &kafka.properties, &parts, claim)
                        .await?,
                ),
                ends,
            )
        }
    };
    let header = config
        .contracts
        .as_ref()
        .map_or("schema_version", |c| c.version_header.as_str());
    let report = verify::sample(consumer.as_mut(), &ends, args.sample, &reg, header)
        .await
        .context("reading events from the bus")?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        println!(
            "read {} event(s) from {}: {} passed ({} upcast), {} failed, {} tombstone(s)",
            report.read,
            topics.join(", "),
            report.passed,
            report.upcast,
            report.failures.len(),
            report.tombstones
        );
        for (contract, by) in &report.versions {
            let v: Vec<String> = by.iter().map(|(v, n)| format!("v{v}: {n}")).collect();
            println!("  {contract}: {}", v.join(", "));
        }
        for (ty, n) in &report.uncovered {
            println!("  no contract for {ty}: {n} event(s)");
        }
        for f in &report.failures {
            println!(
                "FAIL event {} ({}/{}@{}) rule {}: {}",
                f.event_id.as_deref().unwrap_or("?"),
                f.topic,
                f.partition,
                f.offset,
                f.rule,
                f.message
            );
        }
    }
    Ok(if report.ok(args.strict) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
