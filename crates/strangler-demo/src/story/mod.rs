//! The migration story `strangler demo` tells, step by step, on the embedded default.
//!
//! 1. Start the legacy orders system, the relay, a projector, the read API and the proxy.
//! 2. Shadow the order-summary capability while the projection is right: no drift.
//! 3. Deploy a projection bug (total = subtotal, tax dropped): the shadow report shows drift on
//!    `/total` and the promotion gate refuses.
//! 4. Fix the SQL, replay from where the bug began, open a new evidence window: mismatches fall
//!    to zero and the gate passes.
//! 5. Move the capability to canary, then to new, and write the HTML report.

mod backend;
mod files;
mod ledger;
mod report;
mod stack;
mod traffic;

pub use backend::{PG_SCHEMAS, check_brokers, check_postgres_url};
pub use ledger::Ledger;
pub use report::Summary;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use strangler_core::{Config, Mode};
use strangler_projector::replay::From as ReplayFrom;
use strangler_proxy::cutover::{self, SetRequest};
use strangler_store::Store;
use tokio_util::sync::CancellationToken;

use crate::legacy::{LegacyDb, read_api};

/// A demo step that failed, with what the demo was doing.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A step failed.
    #[error("{step}")]
    Step {
        /// What the demo was doing.
        step: &'static str,
        /// Why it failed.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The story did not turn out as it must (a check the demo makes on itself).
    #[error("{0}")]
    Story(String),
}

impl DemoError {
    fn msg(s: impl Into<String>) -> DemoError {
        DemoError::Story(s.into())
    }
}

/// Attaches the step being performed to an error.
trait Step<T> {
    fn step(self, step: &'static str) -> Result<T, DemoError>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>>> Step<T> for Result<T, E> {
    fn step(self, step: &'static str) -> Result<T, DemoError> {
        self.map_err(|e| DemoError::Step {
            step,
            source: e.into(),
        })
    }
}

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Folder for the databases, the configuration and the report (emptied first).
    pub dir: PathBuf,
    /// Legacy writes per phase.
    pub writes_per_phase: u64,
    /// Client reads per legacy write.
    pub reads_per_write: u64,
    /// Hide progress bars (tests, CI).
    pub quiet: bool,
    /// Seed of the workload, so a run can be repeated.
    pub seed: u64,
    /// Run the stores on this PostgreSQL database (in schemas the demo creates) instead of
    /// SQLite files.
    pub postgres: Option<String>,
    /// Run the bus on these Kafka brokers (a topic of the run's own) instead of the built-in log.
    pub kafka: Option<String>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            dir: PathBuf::from(".strangler/demo"),
            writes_per_phase: 600,
            reads_per_write: 2,
            quiet: false,
            seed: 42,
            postgres: None,
            kafka: None,
        }
    }
}

/// The running stack, for `--keep-running`.
pub struct Running {
    /// Where clients connect.
    pub proxy_url: String,
    /// The legacy read API.
    pub legacy_url: String,
    /// The new read API.
    pub new_url: String,
    /// The configuration file the demo wrote; `strangler --config` it to explore.
    pub config_file: PathBuf,
    /// The configuration as loaded.
    pub config: Config,
    /// The running proxy (for the admin API and dashboard).
    pub proxy: std::sync::Arc<strangler_proxy::Proxy>,
    /// The control store.
    pub control: Store,
    /// The operator token the configuration's `[admin]` section holds.
    pub admin_token: String,
    /// Cancels everything.
    pub cancel: CancellationToken,
}

const CAPABILITY: &str = "order-summary";

fn say(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "{text}");
}

/// Runs the whole story; returns its summary and the still-running stack (cancel it to stop).
pub async fn run(opts: &DemoOptions, out: &mut dyn Write) -> Result<(Summary, Running), DemoError> {
    if let Some(url) = &opts.postgres {
        check_postgres_url(url)?;
    }
    if let Some(brokers) = &opts.kafka {
        check_brokers(brokers)?;
    }
    let dir = prepare_dir(&opts.dir)?;
    let cancel = CancellationToken::new();
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let wired = backend::wire(&dir, opts.postgres.as_deref(), opts.kafka.as_deref()).await?;

    // The legacy system: its database and read API.
    let legacy = LegacyDb::open(wired.legacy_pool().await?)
        .await
        .step("creating the legacy schema and outbox")?;
    let (legacy_l, legacy_addr) = stack::listener().await?;
    stack::serve("legacy", legacy_l, read_api(legacy.clone()), cancel.clone());

    // strangler's configuration, written where the user can read it.
    let (new_l, new_addr) = stack::listener().await?;
    let (proxy_l, proxy_addr) = stack::listener().await?;
    std::fs::create_dir_all(dir.join("shadow-rules")).step("creating the rules folder")?;
    std::fs::write(dir.join("shadow-rules/orders.toml"), files::RULES)
        .step("writing the rules file")?;
    std::fs::create_dir_all(dir.join("projections")).step("creating the projections folder")?;
    let projection_file = dir.join("projections/order_summary.toml");
    std::fs::write(
        &projection_file,
        files::projection(files::TotalSql::Correct, &wired.topic),
    )
    .step("writing the projection")?;
    let config_file = dir.join("strangler.toml");
    // A fresh secret per run for the admin API `--keep-running` opens on loopback.
    let admin_token = uuid::Uuid::new_v4().simple().to_string();
    let legacy_url = format!("http://{legacy_addr}");
    let new_url = format!("http://{new_addr}");
    std::fs::write(
        &config_file,
        files::config(
            &files::Wiring {
                legacy_url: &wired.legacy_url,
                control_url: &wired.control_url,
                read_url: &wired.read_url,
                outbox_table: &wired.outbox_table,
                dead_letter_table: &wired.dead_letter_table,
                topic_template: &wired.topic_template,
                kafka: wired.kafka.as_deref(),
                group_prefix: &wired.group_prefix,
            },
            &legacy_url,
            &new_url,
            &proxy_addr.to_string(),
            &admin_token,
        ),
    )
    .step("writing the configuration")?;
    let config = Config::load(&config_file).step("loading the demo configuration")?;

    let control = Store::connect(&config.store.url)
        .await
        .step("opening the control store")?;
    control
        .migrate()
        .await
        .step("migrating the control store")?;
    let read = Store::connect(&config.projections.read_store_url)
        .await
        .step("opening the read store")?;
    read.migrate().await.step("migrating the read store")?;

    say(
        out,
        "strangler demo: migrating the order-summary read path of a legacy orders system",
    );
    say(out, &format!("  folder    {}", dir.display()));
    for line in wired.describe() {
        say(out, &line);
    }
    say(
        out,
        &format!("  legacy   {legacy_url}   new read API {new_url}   proxy http://{proxy_addr}"),
    );

    stack::relay(&config, control.clone(), cancel.clone())?;
    let projection_dir = dir.join("projections");
    let projector_cancel = cancel.child_token();
    let projector =
        stack::projector(&config, read.clone(), control.clone(), &projection_dir).await?;
    let projector_task = stack::run_projector(projector.clone(), projector_cancel.clone());
    stack::serve(
        "read-api",
        new_l,
        stack::read_api_router(&projector),
        cancel.clone(),
    );
    let (proxy, _) = stack::proxy(&config, control.clone(), proxy_l, cancel.clone())?;
    let ledger = Ledger::follow(&proxy, CAPABILITY);
    let proxy_url = format!("http://{proxy_addr}");
    let driver = traffic::Driver {
        proxy: &proxy,
        db: &legacy,
        proxy_url: &proxy_url,
        reads_per_write: opts.reads_per_write,
        quiet: opts.quiet,
    };

    let set = |to: Mode, reason: &str, force: bool| SetRequest {
        capability: CAPABILITY.into(),
        to,
        actor: "demo".into(),
        reason: reason.into(),
        force,
    };

    let live = stack::wait_live(&legacy, &new_url, &mut rng).await?;
    say(
        out,
        &format!(
            "  pipeline  live: an order reached the read API {} ms after it was placed",
            live.as_millis()
        ),
    );

    // Step 1: shadow while the projection is right.
    say(
        out,
        "\n1. Shadow mode: clients get legacy answers; each read is mirrored and compared.",
    );
    cutover::set(
        &control,
        &config,
        &set(Mode::Shadow, "start comparing", false),
    )
    .await
    .step("switching to shadow")?;
    wait_for_mode(&proxy, Mode::Shadow).await?;
    let s1 = traffic::phase(&driver, "baseline", &mut rng, opts.writes_per_phase / 2).await?;
    let baseline = ledger.snapshot();
    say(
        out,
        &format!(
            "   {} writes, {} reads: {}",
            s1.writes,
            s1.reads,
            baseline.one_line()
        ),
    );
    if baseline.mismatches > 0 {
        say(out, &baseline.top_paths(out_width()));
    }

    // Step 2: the bug ships.
    say(
        out,
        "\n2. A projection change ships with a bug: total = subtotal (tax dropped).",
    );
    let bug_started_ms = chrono::Utc::now().timestamp_millis();
    stop(projector_cancel, projector_task).await;
    std::fs::write(
        &projection_file,
        files::projection(files::TotalSql::TaxDropped, &wired.topic),
    )
    .step("deploying the buggy projection")?;
    let projector_cancel = cancel.child_token();
    let projector =
        stack::projector(&config, read.clone(), control.clone(), &projection_dir).await?;
    let projector_task = stack::run_projector(projector.clone(), projector_cancel.clone());
    stack::wait_live(&legacy, &new_url, &mut rng).await?;
    ledger.reset();
    let s2 = traffic::phase(&driver, "with bug", &mut rng, opts.writes_per_phase).await?;
    let drift = ledger.snapshot();
    say(
        out,
        &format!(
            "   {} writes, {} reads: {}",
            s2.writes,
            s2.reads,
            drift.one_line()
        ),
    );
    say(out, &drift.top_paths(out_width()));
    let refused = cutover::set(
        &control,
        &config,
        &set(Mode::Canary(10), "try canary with the bug", false),
    )
    .await;
    match &refused {
        Err(e) => say(out, &format!("   promotion to canary refused: {e}")),
        Ok(_) => {
            return Err(DemoError::msg(
                "the gate let a drifting capability into canary",
            ));
        }
    }

    // Step 3: fix and replay from where the bug began.
    say(
        out,
        "\n3. Fix the SQL and replay from the offsets where the bug began.",
    );
    stop(projector_cancel, projector_task).await;
    std::fs::write(
        &projection_file,
        files::projection(files::TotalSql::Correct, &wired.topic),
    )
    .step("deploying the fixed projection")?;
    let projector =
        stack::projector(&config, read.clone(), control.clone(), &projection_dir).await?;
    let p = projector
        .one("order_summary", None)
        .step("finding the projection")?;
    let from = ReplayFrom::TimeMs(bug_started_ms);
    let plan = projector.plan(&p, from).await.step("planning the replay")?;
    let starts: Vec<String> = plan
        .parts
        .iter()
        .map(|part| format!("p{}@{}", part.partition, part.start))
        .collect();
    say(
        out,
        &format!(
            "   replaying {} events from {}",
            plan.events(),
            starts.join(" ")
        ),
    );
    let stats = projector
        .replay(&p, &plan, from, false, &cancel, &mut |_| {})
        .await
        .step("replaying")?;
    say(out, &format!("   replay applied {} events", stats.applied));
    let projector_cancel = cancel.child_token();
    stack::run_projector(projector.clone(), projector_cancel.clone());
    stack::wait_live(&legacy, &new_url, &mut rng).await?;
    quiesce(&proxy).await?;
    cutover::set(
        &control,
        &config,
        &set(
            Mode::Shadow,
            "projection fixed and replayed: new evidence window",
            false,
        ),
    )
    .await
    .step("opening a new evidence window")?;
    ledger.reset();
    let s3 = traffic::phase(&driver, "after fix", &mut rng, opts.writes_per_phase).await?;
    let fixed = ledger.snapshot();
    say(
        out,
        &format!(
            "   {} writes, {} reads: {}",
            s3.writes,
            s3.reads,
            fixed.one_line()
        ),
    );
    if fixed.mismatches > 0 {
        say(out, &fixed.top_paths(out_width()));
    }
    // The gate reads the stored counts: let the last copies be judged and flushed first.
    quiesce(&proxy).await?;
    let (_, gate) = cutover::evaluate(
        &control,
        config.capability(CAPABILITY).expect("demo capability"),
        chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
    )
    .await
    .step("evaluating the gate")?;
    let views = cutover::show(&control, &config)
        .await
        .step("reading the gate")?;
    let view = views
        .into_iter()
        .find(|v| v.capability == CAPABILITY)
        .ok_or_else(|| DemoError::msg("capability missing"))?;
    let _ = gate;
    say(
        out,
        &format!(
            "   gate: {}",
            if view.gate.passed {
                "passes".to_string()
            } else {
                format!("fails ({})", view.gate.failures())
            }
        ),
    );

    // Step 4: canary, then new.
    say(out, "\n4. Cut over: canary 25%, then new.");
    cutover::set(
        &control,
        &config,
        &set(Mode::Canary(25), "gate passed after the fix", false),
    )
    .await
    .step("moving to canary")?;
    wait_for_mode(&proxy, Mode::Canary(25)).await?;
    ledger.reset();
    // As long as the fix phase: promotion to new needs the same evidence from the canary.
    let s4 = traffic::phase(&driver, "canary 25%", &mut rng, opts.writes_per_phase).await?;
    let canary = ledger.snapshot();
    say(
        out,
        &format!(
            "   {} reads, {} served by the new path: {}",
            s4.reads,
            s4.served_new,
            canary.one_line()
        ),
    );
    cutover::set(&control, &config, &set(Mode::New, "canary clean", false))
        .await
        .step("moving to new")?;
    wait_for_mode(&proxy, Mode::New).await?;
    let s5 = traffic::phase(&driver, "new", &mut rng, opts.writes_per_phase / 3).await?;
    say(
        out,
        &format!(
            "   {} reads, {} served by the new path",
            s5.reads, s5.served_new
        ),
    );

    let history = cutover::history(&control, &config, CAPABILITY, 50)
        .await
        .step("reading the audit trail")?;
    let summary = Summary {
        capability: CAPABILITY.into(),
        baseline,
        drift,
        fixed,
        canary,
        final_mode: Mode::New,
        gate_after_fix: view.gate,
        replayed_events: stats.applied,
        history,
        served_new_in_new_mode: s5.served_new,
        reads_in_new_mode: s5.reads,
    };
    let report_file = dir.join("report.html");
    std::fs::write(&report_file, report::html(&summary)).step("writing the HTML report")?;
    say(
        out,
        &format!("\n5. Report written to {}", report_file.display()),
    );
    Ok((
        summary,
        Running {
            proxy_url,
            legacy_url,
            new_url,
            config_file,
            config: config.clone(),
            proxy: proxy.clone(),
            control: control.clone(),
            admin_token,
            cancel,
        },
    ))
}

/// Stops a projector and waits for it to leave (a Kafka consumer leaves its group), so the next
/// one starts from the committed checkpoints without a rebalance wait.
async fn stop(cancel: CancellationToken, task: tokio::task::JoinHandle<()>) {
    cancel.cancel();
    if tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .is_err()
    {
        tracing::warn!("the demo projector did not stop within 30 s");
    }
}

fn out_width() -> usize {
    100
}

/// Lets the mirror copies still in flight (a lag re-ask waits `settle_ms`; longer on a loaded
/// machine) finish and their verdicts reach the store: before a new evidence window opens, so
/// copies of requests made before the fix are not counted as evidence after it, and before the
/// gate reads the store, so it sees every copy of the phase. Verdicts are stored in one-second
/// windows: wait for the next one to begin.
async fn quiesce(proxy: &strangler_proxy::Proxy) -> Result<(), DemoError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while proxy
        .capability_status(CAPABILITY)
        .is_some_and(|s| s.mirror_in_flight > 0)
    {
        if tokio::time::Instant::now() > deadline {
            return Err(DemoError::msg(
                "mirror copies still in flight after 60 s; is the new read API hung?",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy
        .flush_stats()
        .await
        .step("storing the verdicts of the last copies")?;
    let into_second = chrono::Utc::now().timestamp_subsec_millis();
    tokio::time::sleep(Duration::from_millis(u64::from(
        1_050 - into_second.min(999),
    )))
    .await;
    Ok(())
}

async fn wait_for_mode(proxy: &strangler_proxy::Proxy, mode: Mode) -> Result<(), DemoError> {
    for _ in 0..50 {
        if proxy
            .capability_status(CAPABILITY)
            .is_some_and(|s| s.mode == mode)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(DemoError::msg(format!(
        "the proxy did not pick up mode {mode} within 2.5 s"
    )))
}

fn prepare_dir(dir: &Path) -> Result<PathBuf, DemoError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).step("emptying the demo folder")?;
    }
    std::fs::create_dir_all(dir).step("creating the demo folder")?;
    dir.canonicalize().step("resolving the demo folder")
}
