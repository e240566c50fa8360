//! `strangler report` (the real binary) on the store of a shadow run: JSON, HTML, Markdown and
//! the terminal table show the figures the admin API's JSON report shows; a wrong capability
//! name is a clear error.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use strangler_test_support::sqlite_file;
use tokio_util::sync::CancellationToken;

use super::fixture::{VIEWER, shadow_run};
use super::ui::{expected_figures, get, html_figures};

pub(crate) use crate::harness::strangler_bin;

fn report(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(strangler_bin())
        .arg("--config")
        .arg(config)
        .arg("report")
        .args(args)
        .output()
        .expect("running strangler report");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn strangler_report_formats_agree_with_the_api() {
    let run = shadow_run(sqlite_file(), 24).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strangler.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nurl = \"{}\"\n\n{}",
            run.store_url, run.config_text
        ),
    )
    .unwrap();

    let cancel = CancellationToken::new();
    let addr = run.serve_admin(cancel.clone()).await;
    let api: Value =
        serde_json::from_str(&get(addr, "/api/v1/capabilities/orders/report", VIEWER).await)
            .unwrap();
    let expected = expected_figures(&api);

    let (ok, json, err) = report(&config, &["orders", "--format", "json"]);
    assert!(ok, "{err}");
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(expected_figures(&json), expected);
    assert_eq!(json["top_paths"], api["top_paths"]);

    let html_file = dir.path().join("orders.html");
    let (ok, _, err) = report(
        &config,
        &[
            "orders",
            "--format",
            "html",
            "-o",
            html_file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        html_figures(&std::fs::read_to_string(&html_file).unwrap()),
        expected
    );
    // Kept for a person to look at (target/tmp/report.html).
    let _ = std::fs::copy(
        &html_file,
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("report.html"),
    );

    let (ok, md, err) = report(&config, &["--format", "markdown"]);
    assert!(ok, "{err}");
    assert!(
        md.contains(&format!(
            "| Mismatch rate | {} |",
            expected["mismatch_rate"]
        )),
        "{md}"
    );
    assert!(
        md.contains("```diff") && md.contains("/customer/email"),
        "{md}"
    );

    let (ok, table, err) = report(&config, &["orders"]);
    assert!(ok, "{err}");
    assert!(
        table.contains("Mismatch rate") && table.contains(&expected["mismatch_rate"]),
        "{table}"
    );
    assert!(
        !table.contains(&run.secrets.run),
        "no raw secret in the terminal report either"
    );

    let (ok, _, err) = report(&config, &["nope"]);
    assert!(!ok);
    assert!(
        err.contains("no capability is named `nope`") && err.contains("orders"),
        "{err}"
    );
    cancel.cancel();
}
