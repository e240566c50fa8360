//! SIGKILL the real `strangler project run` at random moments, ten times, while events (with
//! relay duplicates) keep arriving: the read model equals the legacy truth and a clean rebuild.

use std::collections::BTreeMap;

use std::process::Command;
use std::time::Duration;

use rand::Rng;

use super::support::{
    BusKind, Env, StoreKind, count, drift, order_events, order_summary, rows, start_project_run,
    summary, wait_caught_up,
};
use crate::harness::strangler_bin;

async fn applied(env: &Env) -> i64 {
    strangler_projector::checkpoint::list(&env.read, None)
        .await
        .unwrap()
        .iter()
        .map(|c| c.next_offset)
        .sum()
}

/// The `/metrics` page of the running `strangler`.
async fn metrics_page(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("the metrics endpoint answers");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).await.unwrap();
    page
}

/// The sum of a metric's samples on a `/metrics` page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `dedup` is appended to the projection file (`[dedup] mode = "window"` reads the window's ids
/// back from the bus after every kill).
async fn sigkill_ten_times(store: StoreKind, dedup: &str) {
    let env = Env::new(store, BusKind::Log).await;
    env.write_projection(
        "orders.toml",
        &format!("{}{dedup}", order_summary("orders", 1, "stop")),
    );
    // The configuration lives apart from the projection folder, which holds projection files only.
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("strangler.toml");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{}\"\n\n[projections]\ndir = \"{}\"\nread_store_url = \"{}\"\n\n[bus]\nkind = \"log\"\nlog_partitions = 4\n\n[telemetry]\nshutdown_grace_ms = 10000\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n",
            env.control_url,
            env.dir.path().display(),
            env.read_url
        ),
    )
    .unwrap();

    let total = count("STRANGLER_PROJECTOR_EVENTS_KILL", 40_000);
    let per_round = total / 11;
    let mut truth = BTreeMap::new();
    let mut published = Vec::new();
    let mut rng = rand::thread_rng();
    let mut progress: Vec<(i64, i64)> = vec![(0, 0)];
    for round in 0..10 {
        let batch = order_events(per_round, 500, round * per_round, &mut truth);
        env.publish(&batch).await;
        // The relay delivers at least once: some events arrive again, later, at new offsets.
        let dups: Vec<_> = (0..50)
            .filter_map(|_| {
                published
                    .get(rng.gen_range(0..published.len().max(1)))
                    .cloned()
            })
            .collect();
        env.publish(&dups).await;
        published.extend(batch);
        let mut child = start_project_run(&config);
        // Wait until this run has applied something, then kill it at a random moment after.
        let before = progress.last().map_or(0, |p| p.0);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while applied(&env).await <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "the projector made no progress in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping");
        let applied = applied(&env).await;
        let on_bus = ((round + 1) * (per_round + 50)) as i64;
        progress.push((applied, on_bus));
    }
    // The kills must land mid-run: some progress, not caught up, more than once.
    let mid_run = progress
        .windows(2)
        .filter(|w| w[1].0 > w[0].0 && w[1].0 < w[1].1)
        .count();
    assert!(
        mid_run >= 3,
        "kills did not interrupt a running projector often enough: {progress:?}"
    );
    let last = order_events(total - 10 * per_round, 500, 10 * per_round, &mut truth);
    env.publish(&last).await;

    let mut child = start_project_run(&config);
    let p = env.projector().await;
    let ends = env.ends(&p).await;
    wait_caught_up(
        &env.read,
        &[("orders".into(), 1)],
        &ends,
        Duration::from_secs(180),
        || false,
    )
    .await;
    if !dedup.is_empty() {
        // The last run claimed every partition after the kills: it read the window's ids back.
        let page = metrics_page(metrics_port).await;
        assert!(
            metric(&page, "strangler_projection_dedup_window_read_back_total") > 0.0,
            "{page}"
        );
        assert!(
            metric(&page, "strangler_projection_dedup_window_ids") > 0.0,
            "{page}"
        );
    }
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM drains and exits cleanly: {exit:?}");

    // The CLI around the same state: status as JSON, a dry-run replay that writes nothing.
    let out = Command::new(strangler_bin())
        .arg("--config")
        .arg(&config)
        .args(["project", "status", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["partitions"].as_array().unwrap().len(), 4);
    let before = rows(&env.read, "orders_v1").await;
    let out = Command::new(strangler_bin())
        .arg("--config")
        .arg(&config)
        .args([
            "project",
            "replay",
            "orders",
            "--version",
            "1",
            "--from-offset",
            "0",
            "--dry-run",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("would apply"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        rows(&env.read, "orders_v1").await,
        before,
        "a dry run writes nothing"
    );

    assert_eq!(
        drift(&truth, &summary(&env.read, "orders_v1").await),
        Vec::<String>::new(),
        "equals the legacy truth"
    );
    let live = rows(&env.read, "orders_v1").await;
    super::support::rebuild(&p, "orders").await;
    assert_eq!(
        rows(&env.read, "orders_v1").await,
        live,
        "equals a clean run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_sqlite_log() {
    sigkill_ten_times(StoreKind::Sqlite, "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_postgres_log() {
    sigkill_ten_times(StoreKind::Postgres, "").await;
}

/// The redeliveries are of any earlier event, at most 40,000 offsets back: inside the default
/// window of 100,000.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_postgres_log_window() {
    sigkill_ten_times(StoreKind::Postgres, "\n[dedup]\nmode = \"window\"\n").await;
}
