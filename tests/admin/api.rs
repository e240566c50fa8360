//! The admin API: every endpoint refuses without a token (401) and with the wrong role (403),
//! refused and accepted changes are audited, and triage works against the real upstreams.

use std::sync::atomic::Ordering;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use strangler_admin::api::{ENDPOINTS, app};
use strangler_core::config::AdminRole;
use strangler_test_support::sqlite_file;
use tower::ServiceExt;

use super::fixture::{OPERATOR, Run, VIEWER, shadow_run};

async fn call(
    run: &Run,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let resp = app(run.admin_state())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn a_fingerprint(run: &Run, kind_path: &str) -> String {
    let (s, fps) = call(
        run,
        "GET",
        "/api/v1/capabilities/orders/fingerprints",
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    fps.as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == kind_path)
        .unwrap_or_else(|| panic!("no fingerprint at {kind_path}: {fps}"))["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_endpoint_refuses_without_a_token_and_with_the_wrong_role() {
    let run = shadow_run(sqlite_file(), 12).await;
    let fp = a_fingerprint(&run, "/total").await;
    let change = json!({"mode": "shadow", "reason": "test", "killed": false, "until": "2099-01-01", "note": "n"});
    let mut denied = 0;
    for (method, template, role) in ENDPOINTS {
        let path = template
            .replace("{capability}", "orders")
            .replace("{fingerprint}", &fp);
        let body = (*method == "POST").then(|| change.clone());
        let (s, b) = call(&run, method, &path, None, body.clone()).await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a token: {b}"
        );
        let (s, _) = call(
            &run,
            method,
            &path,
            Some("not-a-configured-token-at-all"),
            body.clone(),
        )
        .await;
        assert_eq!(
            s,
            StatusCode::UNAUTHORIZED,
            "{method} {path} with an unknown token"
        );
        match role {
            AdminRole::Operator => {
                let (s, b) = call(&run, method, &path, Some(VIEWER), body.clone()).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{method} {path} as a viewer: {b}");
                assert!(
                    b["error"].as_str().unwrap().contains("needs operator"),
                    "{b}"
                );
                denied += 1;
            }
            AdminRole::Viewer => {
                let (s, b) = call(&run, method, &path, Some(VIEWER), None).await;
                assert_eq!(s, StatusCode::OK, "{method} {path} as a viewer: {b}");
            }
        }
    }
    // Every refused change is in the audit trail, under the viewer's name.
    let (_, audit) = call(&run, "GET", "/api/v1/audit?limit=1000", Some(VIEWER), None).await;
    let refused = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "denied" && a["actor"] == "vera")
        .count();
    assert_eq!(refused, denied);
    // Nothing changed: the mode is still shadow, set by the test before.
    let (_, caps) = call(&run, "GET", "/api/v1/capabilities", Some(VIEWER), None).await;
    assert_eq!(caps[0]["mode"], "shadow");
    assert_eq!(caps[0]["updated_by"], "test");
}

#[tokio::test]
async fn operators_change_modes_and_triage_and_every_change_is_audited() {
    let run = shadow_run(sqlite_file(), 12).await;
    let total = a_fingerprint(&run, "/total").await;
    let email = a_fingerprint(&run, "/customer/email").await;

    // A promotion needs a reason, and the gate's verdict decides (no --force).
    let (s, b) = call(
        &run,
        "POST",
        "/api/v1/capabilities/orders/mode",
        Some(OPERATOR),
        Some(json!({"mode": "canary:10"})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, b) = call(
        &run,
        "POST",
        "/api/v1/capabilities/orders/mode",
        Some(OPERATOR),
        Some(json!({"mode": "canary:10", "reason": "evidence is good"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["state"]["updated_by"], "otto");
    let (_, history) = call(
        &run,
        "GET",
        "/api/v1/capabilities/orders/history",
        Some(VIEWER),
        None,
    )
    .await;
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["to_mode"].as_str(), last["actor"].as_str()),
        (Some("canary:10"), Some("otto"))
    );

    // Acknowledge, expect until a date (a rule is proposed), and a fix that is not real yet.
    let (s, b) = call(
        &run,
        "POST",
        &format!("/api/v1/capabilities/orders/fingerprints/{email}/acknowledge"),
        Some(OPERATOR),
        Some(json!({"note": "ticket 12"})),
    )
    .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("acknowledged")),
        "{b}"
    );
    let (s, b) = call(
        &run,
        "POST",
        &format!("/api/v1/capabilities/orders/fingerprints/{email}/expect"),
        Some(OPERATOR),
        Some(json!({"until": "1999-01-01"})),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "a date in the past is refused: {b}"
    );
    let (s, b) = call(
        &run,
        "POST",
        &format!("/api/v1/capabilities/orders/fingerprints/{email}/expect"),
        Some(OPERATOR),
        Some(json!({"until": "2099-12-31", "note": "case folding ships in May"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let rule = b["proposed_rule"].as_str().unwrap();
    assert!(
        rule.contains("paths = [\"/customer/email\"]") && rule.contains("expires = \"2099-12-31\""),
        "{rule}"
    );
    let (s, b) = call(
        &run,
        "POST",
        &format!("/api/v1/capabilities/orders/fingerprints/{total}/fixed"),
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "the new path still differs: {b}");
    assert!(
        b["differences"].as_array().is_some_and(|d| !d.is_empty()),
        "{b}"
    );
    // The new path is fixed: re-sending the stored request now shows the difference gone.
    run.secrets.fixed.store(true, Ordering::SeqCst);
    let (s, b) = call(
        &run,
        "POST",
        &format!("/api/v1/capabilities/orders/fingerprints/{total}/fixed"),
        Some(OPERATOR),
        Some(json!({"note": "deployed"})),
    )
    .await;
    assert_eq!(
        (s, b["status"].as_str()),
        (StatusCode::OK, Some("fixed")),
        "{b}"
    );
    let (_, fp) = call(
        &run,
        "GET",
        &format!("/api/v1/capabilities/orders/fingerprints/{total}"),
        Some(VIEWER),
        None,
    )
    .await;
    assert_eq!(fp["fingerprint"]["status"], "fixed");
    assert_eq!(fp["fingerprint"]["status_by"], "otto");

    let (_, audit) = call(&run, "GET", "/api/v1/audit", Some(VIEWER), None).await;
    let actions: Vec<(String, String)> = audit
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_owned(),
                a["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("set_mode", "failed"),
        ("set_mode", "ok"),
        ("acknowledge", "ok"),
        ("expect", "failed"),
        ("expect", "ok"),
        ("fixed", "failed"),
        ("fixed", "ok"),
    ]
    .iter()
    .map(|(a, o)| (a.to_string(), o.to_string()))
    .collect();
    assert_eq!(actions, expected);
}
