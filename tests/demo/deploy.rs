//! The recipes in `deploy/`: each example configuration validates as the service that mounts it
//! would load it, and the systemd units pass `systemd-analyze verify`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{repo, strangler_bin};

/// Runs `strangler check-config` on `config` with `env`; panics with its output unless valid.
fn check_config(config: &Path, env: &BTreeMap<String, String>) {
    let out = Command::new(strangler_bin())
        .arg("--config")
        .arg(config)
        .arg("check-config")
        .env_remove("STRANGLER_CONFIG")
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} does not validate:\n{}{}",
        config.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `KEY=value` lines of an env file.
fn env_file(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn every_example_configuration_validates() {
    let dir = repo().join("deploy/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            // The one secret without a default: a long random token, as the example asks.
            let env = BTreeMap::from([(
                "STRANGLER_ADMIN_TOKEN".to_string(),
                "0123456789abcdef0123456789abcdef".to_string(),
            )]);
            check_config(&path, &env);
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "deploy/examples holds the example configurations"
    );
}

/// Host paths the compose file bind-mounts under /etc/strangler in the strangler services.
fn compose_mounts(compose: &str) -> Vec<(String, String)> {
    compose
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- "))
        .filter_map(|m| {
            let mut parts = m.split(':');
            let host = parts.next()?;
            let inside = parts.next()?;
            inside
                .strip_prefix("/etc/strangler/")
                .map(|rel| (host.to_string(), rel.to_string()))
        })
        .collect()
}

#[test]
fn the_compose_configuration_validates_as_mounted_in_its_containers() {
    let compose_dir = repo().join("deploy/compose");
    let compose = std::fs::read_to_string(compose_dir.join("docker-compose.yml")).unwrap();
    for service in [
        "relay:",
        "projector:",
        "read-api:",
        "proxy:",
        "kafka:",
        "postgres:",
    ] {
        assert!(
            compose.contains(&format!("\n  {service}")),
            "docker-compose.yml defines {service}"
        );
    }
    assert!(
        compose.contains("KAFKA_PROCESS_ROLES: broker,controller"),
        "Kafka runs in KRaft mode"
    );
    // Rebuild /etc/strangler as the containers see it, from the compose file's own mounts.
    let etc = tempfile::tempdir().unwrap();
    let mounts = compose_mounts(&compose);
    assert!(
        mounts.iter().any(|(_, rel)| rel == "strangler.toml"),
        "the compose file mounts strangler.toml: {mounts:?}"
    );
    for (host, rel) in &mounts {
        let source: PathBuf = compose_dir.join(host);
        assert!(
            source.exists(),
            "mount source {} is missing",
            source.display()
        );
        std::os::unix::fs::symlink(source.canonicalize().unwrap(), etc.path().join(rel)).unwrap();
    }
    // The services read their secrets from .env, which .env.example documents.
    let env = env_file(&compose_dir.join(".env.example"));
    check_config(&etc.path().join("strangler.toml"), &env);

    // The topic the relay publishes to is the one the compose file creates.
    let config = std::fs::read_to_string(compose_dir.join("strangler.toml")).unwrap();
    let template = config
        .lines()
        .find_map(|l| l.strip_prefix("topic_template = "))
        .unwrap()
        .trim_matches('"');
    let topic = template.replace("{aggregatetype}", "order");
    assert!(
        compose.contains(&format!("\"--topic\", \"{topic}\"")),
        "compose creates topic {topic}"
    );
}

#[test]
fn the_systemd_units_verify() {
    let units = repo().join("deploy/systemd");
    let tmp = tempfile::tempdir().unwrap();
    let bin = strangler_bin();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // The units name the installed binary; point them at the one just built.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("/usr/local/bin/strangler", &bin.display().to_string());
        std::fs::write(tmp.path().join(&name), text).unwrap();
        names.push(name);
    }
    assert!(names.len() >= 5, "four services and a target: {names:?}");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(names.iter().map(|n| tmp.path().join(n)))
        .output()
        .expect("systemd-analyze is needed to verify deploy/systemd (apt-get install systemd)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        // Not a unit problem: the test machine has no `strangler` user or system bus.
        .filter(|l| !l.contains("Failed to connect to bus") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && problems.is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}
