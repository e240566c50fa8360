//! The `strangler` binary as a user runs it.

use std::process::Command;

fn strangler() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strangler"))
}

#[test]
fn check_config_names_every_mistake_with_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("shadow-rules")).unwrap();
    let config = dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        r#"[store]
url = "sqlite://state.db"
retention_dayz = 7

[proxy]
legacy_url = "http//legacy:8080"
new_url = "http://127.0.0.1:8081"

[[capability]]
name = "order-summary"
routes = ["GET /orders/{id}"]
rules = "shadow-rules/missing.toml"
"#,
    )
    .unwrap();
    let out = strangler()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("3 problems"), "{stderr}");
    let file = config.display().to_string();
    for (line, key) in [
        (3, "store.retention_dayz"),
        (6, "proxy.legacy_url"),
        (12, "capability[0].rules"),
    ] {
        let located = format!("{file}:{line}:1: `{key}`");
        assert!(
            stderr.contains(&located),
            "expected `{located}` in:\n{stderr}"
        );
    }
    assert!(stderr.contains("unknown key"), "{stderr}");
    assert!(stderr.contains("not a valid URL"), "{stderr}");
    assert!(stderr.contains("missing.toml` does not exist"), "{stderr}");
}

#[test]
fn check_config_accepts_a_valid_file_and_interpolates_env() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strangler.toml");
    std::fs::write(&config, "[store]\nurl = \"${STRANGLER_TEST_STORE_URL}\"\n").unwrap();
    let out = strangler()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .env(
            "STRANGLER_TEST_STORE_URL",
            "postgres://u:secret@db/strangler",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(
        !stdout.contains("secret"),
        "passwords must not be printed: {stdout}"
    );

    let out = strangler()
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .env_remove("STRANGLER_TEST_STORE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("environment variable `STRANGLER_TEST_STORE_URL` is not set"),
        "{stderr}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let out = strangler()
        .args(["check-config", "--config", "/nonexistent/strangler.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/strangler.toml"));
}

#[test]
fn migrate_creates_the_embedded_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = strangler()
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("STRANGLER_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join(".strangler/control.db").is_file());
    assert!(dir.path().join(".strangler/read.db").is_file());
}

#[test]
fn every_subcommand_documents_itself() {
    for sub in [
        "relay",
        "project",
        "serve",
        "proxy",
        "cutover",
        "report",
        "reconcile",
        "demo",
        "migrate",
        "check-config",
        "completions",
    ] {
        let out = strangler().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage"),
            "{sub} --help has no usage"
        );
    }
}
