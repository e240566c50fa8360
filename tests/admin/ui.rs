//! The HTML report and the dashboard (in headless Chromium) show the same figures as the JSON
//! report for the same data; a cutover action on the dashboard goes through its confirmation
//! and lands in the audit trail. Screenshots of the dashboard with the run's data are written
//! to `$CARGO_TARGET_TMPDIR` (and to `$STRANGLER_SCREENSHOT_DIR` when set, e.g. `docs`).

use std::collections::BTreeMap;

use serde_json::Value;
use strangler_test_support::sqlite_file;
use tokio_util::sync::CancellationToken;

use super::fixture::{OPERATOR, VIEWER, shadow_run};
use super::webdriver::Browser;

/// The figures of a JSON report, formatted independently of the code under test.
pub fn expected_figures(r: &Value) -> BTreeMap<String, String> {
    let count = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_i64)
            .unwrap_or_else(|| panic!("{p} in {r}"))
            .to_string()
    };
    let rate = |p: &str| {
        format!(
            "{:.2}%",
            r.pointer(p).and_then(Value::as_f64).unwrap() * 100.0
        )
    };
    let open = r["fingerprints"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["status"] == "open")
        .count();
    let mut m = BTreeMap::new();
    for k in [
        "total",
        "compared",
        "matches",
        "mismatches",
        "stale",
        "errors",
        "skipped",
    ] {
        m.insert(k.to_owned(), count(&format!("/traffic/{k}")));
    }
    for k in [
        "mismatch_rate",
        "mismatch_upper95",
        "mismatch_lower95",
        "error_rate",
    ] {
        m.insert(k.to_owned(), rate(&format!("/rates/{k}")));
    }
    m.insert(
        "p99_delta_ms".into(),
        r["latency"]["p99_delta_ms"]
            .as_f64()
            .map_or("n/a".into(), |v| format!("{v:.1} ms")),
    );
    m.insert("open_fingerprints".into(), open.to_string());
    m.insert(
        "gate".into(),
        if r["gate"]["passed"].as_bool().unwrap() {
            "pass"
        } else {
            "fail"
        }
        .into(),
    );
    m
}

/// `data-figure` elements of an HTML document: key to shown text.
pub fn html_figures(html: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for part in html.split("data-figure=\"").skip(1) {
        let key = &part[..part.find('"').unwrap()];
        let after = &part[part.find('>').unwrap() + 1..];
        let text = &after[..after.find('<').unwrap()];
        m.insert(key.to_owned(), text.replace("&amp;", "&"));
    }
    m
}

pub async fn get(addr: std::net::SocketAddr, path: &str, token: &str) -> String {
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::get(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Default::default())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn save(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(dir.join(name), png).unwrap();
    if let Ok(out) = std::env::var("STRANGLER_SCREENSHOT_DIR") {
        let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(out);
        std::fs::write(out.join(name), png).unwrap();
    }
}

/// Traffic per hour and freshness come from backend-specific SQL: check them on each.
fn assert_hourly_and_fresh(json: &Value, compared: i64) {
    let hourly = json["hourly"].as_array().unwrap();
    assert_eq!(
        hourly
            .iter()
            .map(|h| h["compared"].as_i64().unwrap())
            .sum::<i64>(),
        compared,
        "{hourly:?}"
    );
    assert!(
        hourly
            .iter()
            .all(|h| h["hour"].as_str().unwrap().ends_with(":00:00Z")),
        "{hourly:?}"
    );
    let age = json["freshness"]["age_s"]
        .as_f64()
        .expect("a last comparison time");
    assert!((0.0..120.0).contains(&age), "the run just happened: {age}");
    assert!(json["freshness"]["last_mismatch_at"].is_string());
}

#[tokio::test]
async fn postgres_reports_agree_too() {
    let run = shadow_run(strangler_test_support::pg_database().await, 15).await;
    let cancel = CancellationToken::new();
    let addr = run.serve_admin(cancel.clone()).await;
    let json: Value =
        serde_json::from_str(&get(addr, "/api/v1/capabilities/orders/report", VIEWER).await)
            .unwrap();
    assert_eq!(
        (
            json["traffic"]["compared"].as_i64(),
            json["traffic"]["mismatches"].as_i64()
        ),
        (Some(15), Some(5))
    );
    assert_hourly_and_fresh(&json, 15);
    let html = get(addr, "/api/v1/capabilities/orders/report.html", VIEWER).await;
    assert_eq!(html_figures(&html), expected_figures(&json));
    cancel.cancel();
}

const FIGURES_JS: &str = "const m = {}; document.querySelectorAll('[data-figure]').forEach(e => m[e.dataset.figure] = e.textContent); return m;";

#[tokio::test]
async fn html_report_and_dashboard_show_the_json_reports_figures() {
    let run = shadow_run(sqlite_file(), 30).await;
    let cancel = CancellationToken::new();
    let addr = run.serve_admin(cancel.clone()).await;

    let json: Value =
        serde_json::from_str(&get(addr, "/api/v1/capabilities/orders/report", VIEWER).await)
            .unwrap();
    let expected = expected_figures(&json);
    assert_eq!(json["traffic"]["compared"], 30, "{json}");
    assert_eq!(
        json["traffic"]["mismatches"], 10,
        "ids divisible by 3 differ"
    );
    assert_eq!(expected["mismatch_rate"], "33.33%");
    // Each mismatching exchange shows three fingerprints; the report renders it once.
    let exemplars = json["exemplars"].as_array().unwrap();
    assert_eq!(exemplars.len(), 1, "{exemplars:?}");
    assert_eq!(exemplars[0]["also"].as_array().unwrap().len(), 2);
    assert_hourly_and_fresh(&json, 30);
    // The rule that ignores legacy's request id forgave one difference in every comparison.
    let rules = json["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        (rules[0]["rule"].as_str(), rules[0]["forgiven"].as_i64()),
        (Some("legacy-request-id"), Some(30))
    );

    let html = get(addr, "/api/v1/capabilities/orders/report.html", VIEWER).await;
    assert_eq!(html_figures(&html), expected, "HTML report against JSON");
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "the HTML report is self-contained"
    );
    assert!(
        html.contains("/customer/email") && html.contains("class=\"replace\""),
        "exemplar diff rendered"
    );
    assert!(
        html.contains(
            "<td>legacy-request-id</td><td class=\"num\">30</td><td class=\"num\">30</td>"
        ),
        "rules and what they hide in the HTML report"
    );

    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{addr}/#token={OPERATOR}"))
        .await;
    browser
        .wait_for(
            "return document.body.dataset.loaded === '#/'",
            "the capability list",
        )
        .await;
    let row = browser
        .eval("return document.querySelector('#capabilities tr[data-capability=orders]').innerText")
        .await;
    assert!(
        row.as_str().unwrap().contains("33.33%") && row.as_str().unwrap().contains("shadow"),
        "{row}"
    );

    browser.goto(&format!("http://{addr}/#/cap/orders")).await;
    browser
        .wait_for(
            "return document.body.dataset.loaded === '#/cap/orders'",
            "the capability page",
        )
        .await;
    let shown: BTreeMap<String, String> =
        serde_json::from_value(browser.eval(FIGURES_JS).await).unwrap();
    assert_eq!(shown, expected, "dashboard against JSON");
    save("dashboard.png", &browser.screenshot().await);

    // Drill into the e-mail fingerprint: side by side, redacted.
    browser.click("#fingerprints tr[data-fingerprint]").await;
    browser
        .wait_for(
            "return (document.body.dataset.loaded || '').includes('/fp/')",
            "a fingerprint page",
        )
        .await;
    let diff = browser
        .eval("return document.querySelector('table.diff').innerText")
        .await;
    let diff = diff.as_str().unwrap();
    assert!(
        diff.contains("hmac:") && !diff.contains(&run.secrets.run),
        "{diff}"
    );
    save("dashboard-fingerprint.png", &browser.screenshot().await);

    // A cutover action asks for confirmation first, then is applied and audited.
    browser.goto(&format!("http://{addr}/#/cap/orders")).await;
    browser
        .wait_for(
            "return document.body.dataset.loaded === '#/cap/orders'",
            "the capability page",
        )
        .await;
    browser
        .eval("document.getElementById('mode-reason').value = 'dashboard e2e'; return true")
        .await;
    browser.click("button.danger").await;
    browser
        .wait_for(
            "return !document.getElementById('confirm').hidden",
            "the confirmation",
        )
        .await;
    let views = strangler_proxy::cutover::show(&run.store, &run.config)
        .await
        .unwrap();
    assert!(!views[0].killed, "nothing happens before the confirmation");
    browser.click("#confirm-yes").await;
    browser
        .wait_for(
            "return (document.getElementById('flash') || {}).textContent === 'Done.'",
            "the action",
        )
        .await;
    let views = strangler_proxy::cutover::show(&run.store, &run.config)
        .await
        .unwrap();
    assert!(views[0].killed);
    let audit = get(addr, "/api/v1/audit", VIEWER).await;
    assert!(
        audit.contains("\"actor\":\"otto\"") && audit.contains("\"action\":\"kill\""),
        "{audit}"
    );
    cancel.cancel();
}
