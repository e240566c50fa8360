//! SIGKILL the real `strangler project run` at random moments, ten times, while one order stream
//! (with relay duplicates) is projected into every sink at once: afterwards each sink equals the
//! legacy truth and a clean rebuild of itself.
//!
//! Adding a sink: implement [`Probe`] for it and push it in [`probes`].

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rand::Rng;

use super::probe::{Probe, RedisProbe, SqlProbe, drop_prefix, projector};
use super::support::{
    BusKind, Env, StoreKind, count, order_events, start_project_run, wait_caught_up,
};

/// Every sink the kill test projects into.
fn probes(redis: &RedisProbe) -> Vec<&dyn Probe> {
    vec![&SqlProbe, redis]
}

/// Events applied by the slowest projection (sum of its checkpoints).
async fn applied(env: &Env, names: &[String]) -> i64 {
    let cps = strangler_projector::checkpoint::list(&env.read, None)
        .await
        .unwrap();
    names
        .iter()
        .map(|n| {
            cps.iter()
                .filter(|c| &c.projection == n)
                .map(|c| c.next_offset)
                .sum::<i64>()
        })
        .min()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ten_times_every_sink_equals_a_clean_run() {
    let env = Env::new(StoreKind::Postgres, BusKind::Log).await;
    let redis = RedisProbe::new("orders_cache");
    let probes = probes(&redis);
    let mut names = Vec::new();
    let mut config_lines = String::new();
    for p in &probes {
        env.write_projection(&format!("{}.toml", p.projection()), &p.file(1));
        names.push(p.projection().to_string());
        config_lines.push_str(&p.config());
    }
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{}\"\n\n[projections]\ndir = \"{}\"\nread_store_url = \"{}\"\n\n{config_lines}\n[bus]\nkind = \"log\"\nlog_partitions = 4\n\n[telemetry]\nshutdown_grace_ms = 10000\n",
            env.control_url,
            env.dir.path().display(),
            env.read_url
        ),
    )
    .unwrap();

    let total = count("STRANGLER_SINK_EVENTS_KILL", 30_000);
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
        let before = progress.last().map_or(0, |p| p.0);
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while applied(&env, &names).await <= before {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("strangler project run exited early: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the projector made no progress in 90 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..150))).await;
        child.kill().expect("SIGKILL");
        child.wait().expect("reaping");
        let applied = applied(&env, &names).await;
        let on_bus = ((round + 1) * (per_round + 50)) as i64;
        progress.push((applied, on_bus));
    }
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
    let p = projector(&env).await;
    let ends = env.ends(&p).await;
    let which: Vec<(String, u32)> = names.iter().map(|n| (n.clone(), 1)).collect();
    wait_caught_up(&env.read, &which, &ends, Duration::from_secs(240), || false).await;
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM drains and exits cleanly: {exit:?}");

    for (probe, name) in probes.iter().zip(&names) {
        assert_eq!(
            probe.drift(&env.read, &truth).await,
            Vec::<String>::new(),
            "{name} equals the legacy truth"
        );
        let live = probe.snapshot(&env.read).await;
        assert!(!live.is_empty(), "{name} holds something");
        super::support::rebuild(&p, name).await;
        assert_eq!(
            probe.snapshot(&env.read).await,
            live,
            "{name} equals a clean run"
        );
    }
    drop_prefix(&redis.prefix).await;
}
