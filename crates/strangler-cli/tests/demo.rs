//! `strangler demo` tells the whole story on the embedded default, and its end state holds.

use std::process::Command;

#[test]
fn demo_finds_the_drift_fixes_it_by_replay_and_cuts_over() {
    let dir = tempfile::tempdir().unwrap();
    let demo_dir = dir.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args(["demo", "--quiet", "--dir"])
        .arg(&demo_dir)
        .env_remove("STRANGLER_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // The drift was found on `total`, the gate refused, and the fix brought mismatches to zero.
    assert!(stdout.contains("drift on /total"), "{stdout}");
    assert!(stdout.contains("promotion to canary refused"), "{stdout}");
    assert!(
        stdout.contains("0 mismatches after the fix: true"),
        "{stdout}"
    );

    // The capability ends in `new`, as the control store says through the CLI.
    let config = demo_dir.join("strangler.toml");
    let show = Command::new(env!("CARGO_BIN_EXE_strangler"))
        .args(["cutover", "show", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let views: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let cap = views
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["capability"] == "order-summary")
        .unwrap();
    assert_eq!(cap["mode"]["mode"], "new", "{cap}");

    // The report is there, with the drift it found and the clean phase after the fix.
    let html = std::fs::read_to_string(demo_dir.join("report.html")).unwrap();
    assert!(
        html.contains("<code>/total</code>"),
        "report lacks the drift on /total"
    );
    let data_start = html.find("id=\"report-data\">").unwrap() + "id=\"report-data\">".len();
    let data_end = html[data_start..].find("</script>").unwrap() + data_start;
    let data: serde_json::Value =
        serde_json::from_str(&html[data_start..data_end].replace("<\\/", "</")).unwrap();
    assert!(data["drift"]["mismatches"].as_u64().unwrap() > 0);
    assert_eq!(data["fixed"]["mismatches"], 0);
    assert!(
        data["fixed"]["matches"].as_u64().unwrap() >= 200,
        "the gate's minimum sample was met"
    );
    assert_eq!(data["final_mode"]["mode"], "new");
    assert!(data["served_new_in_new_mode"].as_u64().unwrap() > 0);
}
