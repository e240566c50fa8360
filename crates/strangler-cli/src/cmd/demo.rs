//! `strangler demo`: the whole migration story on the embedded default, or on PostgreSQL and
//! Kafka with `--postgres` and `--kafka`.

use std::process::ExitCode;

use anyhow::Context;
use strangler_demo::story::{self, DemoOptions};

use crate::cli::{DemoArgs, GlobalArgs};

pub async fn run(global: &GlobalArgs, args: &DemoArgs) -> anyhow::Result<ExitCode> {
    // The demo narrates on stdout; logs stay quiet unless asked for.
    let format = if global.log_format.as_deref() == Some("json") {
        strangler_core::config::LogFormat::Json
    } else {
        strangler_core::config::LogFormat::Human
    };
    // librdkafka warns that the consumer's fetch setting means nothing to a producer.
    strangler_telemetry::init_logging(format, "warn,librdkafka=error");
    let opts = DemoOptions {
        dir: args.dir.clone(),
        quiet: args.quiet,
        writes_per_phase: args.writes_per_phase,
        postgres: args.postgres.clone(),
        kafka: args.kafka.clone(),
        ..DemoOptions::default()
    };
    let started = std::time::Instant::now();
    let mut out = std::io::stdout();
    let (summary, running) = story::run(&opts, &mut out)
        .await
        .context("running the demo")?;
    println!(
        "\nDone in {:.0?}: drift on {} found ({} mismatches), fixed by replay, 0 mismatches after the fix: {}; \
         capability now `{}`.",
        started.elapsed(),
        summary
            .drift
            .paths
            .first()
            .map_or("(nothing)", |p| p.path.as_str()),
        summary.drift.mismatches,
        summary.fixed.mismatches == 0,
        summary.final_mode
    );
    if args.keep_running {
        println!("\nThe stack keeps running (Ctrl-C to stop):");
        println!("  proxy       {}/orders/<id>", running.proxy_url);
        println!("  legacy API  {}", running.legacy_url);
        println!("  read API    {}", running.new_url);
        // The dashboard and admin API (strangler-admin) over the demo's proxy and control store,
        // recording new comparisons into the mismatch store while you explore.
        let cancel = running.cancel.clone();
        strangler_admin::service::start_recorder(
            &running.config,
            running.control.clone(),
            &running.proxy,
            cancel.clone(),
        )
        .context("starting the mismatch store")?;
        if let Some((addr, _)) = strangler_admin::service::start_admin(
            &running.config,
            running.control.clone(),
            Some(running.proxy.clone()),
            Some("127.0.0.1:0"),
            cancel,
        )
        .await
        .context("starting the admin API and dashboard")?
        {
            println!(
                "  dashboard   http://{addr}/   (operator token {})",
                running.admin_token
            );
        }
        println!(
            "  explore     strangler --config {} cutover show",
            running.config_file.display()
        );
        strangler_telemetry::shutdown_signal(running.cancel.clone()).await;
    }
    running.cancel.cancel();
    Ok(ExitCode::SUCCESS)
}
