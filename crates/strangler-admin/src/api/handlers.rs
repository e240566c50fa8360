//! The API's handlers. Each authorizes first, before reading a body, so a request without a
//! token is refused with 401 whatever else is wrong with it.

use std::future::Future;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strangler_core::Mode;
use strangler_core::config::AdminRole;
use strangler_proxy::cutover::{self, SetRequest};

use super::{AdminState, ApiError, Principal};
use crate::report;
use crate::store::Status;
use crate::triage;

type ApiResult<T> = Result<Json<T>, ApiError>;

fn read(s: &AdminState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    s.tokens.authorize(headers, AdminRole::Viewer)
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let text = if bytes.is_empty() {
        &b"{}"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(text).map_err(|e| {
        ApiError::BadRequest(format!("the request body is not the expected JSON: {e}"))
    })
}

/// Authorizes an operator, runs the change, and audits the outcome (refusals too).
async fn change<T, F, Fut>(
    s: &AdminState,
    headers: &HeaderMap,
    action: &str,
    target: &str,
    bytes: &Bytes,
    f: F,
) -> ApiResult<T>
where
    T: Serialize,
    F: FnOnce(Principal, Value) -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let now = || Utc::now().timestamp_millis();
    let principal = match s.tokens.authorize(headers, AdminRole::Operator) {
        Ok(p) => p,
        Err(e @ ApiError::Forbidden { .. }) => {
            if let ApiError::Forbidden { name, role, .. } = &e {
                let _ = s
                    .mismatches
                    .audit(
                        now(),
                        name,
                        role.as_str(),
                        action,
                        target,
                        "denied",
                        &json!({"error": e.message()}),
                    )
                    .await;
            }
            return Err(e);
        }
        Err(e) => return Err(e),
    };
    let request: Value = body(bytes)?;
    let out = f(principal.clone(), request.clone()).await;
    let (outcome, detail) = match &out {
        Ok(_) => ("ok", json!({ "request": request })),
        Err(e) => (
            e.outcome(),
            json!({ "request": request, "error": e.message() }),
        ),
    };
    if let Err(e) = s
        .mismatches
        .audit(
            now(),
            &principal.name,
            principal.role.as_str(),
            action,
            target,
            outcome,
            &detail,
        )
        .await
    {
        tracing::error!(error = %e, action, target, "writing the admin audit trail failed");
        return Err(ApiError::Internal);
    }
    tracing::info!(actor = %principal.name, action, target, outcome, "admin change");
    out.map(Json)
}

pub async fn whoami(State(s): State<AdminState>, headers: HeaderMap) -> ApiResult<Value> {
    let p = read(&s, &headers)?;
    Ok(Json(json!({ "name": p.name, "role": p.role.as_str() })))
}

/// One capability on the dashboard's front page.
#[derive(Debug, Serialize)]
pub struct CapabilityRow {
    capability: String,
    class: String,
    mode: String,
    killed: bool,
    all_killed: bool,
    compared: i64,
    mismatches: i64,
    mismatch_rate: f64,
    mismatch_upper95: f64,
    gate_passed: bool,
    open_fingerprints: usize,
    lag_ms: Option<u64>,
    lagging: Option<bool>,
    updated_at: Option<chrono::DateTime<Utc>>,
    updated_by: Option<String>,
}

pub async fn capabilities(
    State(s): State<AdminState>,
    headers: HeaderMap,
) -> ApiResult<Vec<CapabilityRow>> {
    read(&s, &headers)?;
    let views = cutover::show(s.mismatches.store(), &s.config)
        .await
        .map_err(crate::Error::from)?;
    let now = Utc::now().timestamp_millis();
    let mut out = Vec::new();
    for v in views {
        let fps = s.mismatches.fingerprints(&v.capability, now).await?;
        let live = s
            .proxy
            .as_ref()
            .and_then(|p| p.capability_status(&v.capability));
        let compared = v.totals.matches + v.totals.mismatches;
        let rate = if compared == 0 {
            0.0
        } else {
            v.totals.mismatches as f64 / compared as f64
        };
        let upper = strangler_proxy::gate::wilson_upper(
            u64::try_from(v.totals.mismatches).unwrap_or(0),
            u64::try_from(compared).unwrap_or(0),
            strangler_proxy::gate::Z95,
        );
        out.push(CapabilityRow {
            class: serde_json::to_value(v.class)
                .ok()
                .and_then(|c| c.as_str().map(str::to_owned))
                .unwrap_or_default(),
            mode: v.mode.to_string(),
            killed: v.killed,
            all_killed: v.all_killed,
            compared,
            mismatches: v.totals.mismatches,
            mismatch_rate: rate,
            mismatch_upper95: upper,
            gate_passed: v.gate.passed,
            open_fingerprints: fps.iter().filter(|f| f.status == Status::Open).count(),
            lag_ms: live.as_ref().map(|l| l.lag_ms),
            lagging: live.as_ref().map(|l| l.lagging),
            updated_at: v.updated_at,
            updated_by: v.updated_by,
            capability: v.capability,
        });
    }
    Ok(Json(out))
}

async fn build_report(s: &AdminState, capability: &str) -> Result<report::Report, ApiError> {
    let lag = s
        .proxy
        .as_ref()
        .and_then(|p| p.capability_status(capability))
        .map(|l| l.lag_ms);
    Ok(report::build(&s.mismatches, &s.config, capability, Utc::now(), lag).await?)
}

pub async fn report(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(capability): Path<String>,
) -> ApiResult<report::Report> {
    read(&s, &headers)?;
    Ok(Json(build_report(&s, &capability).await?))
}

pub async fn report_html(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(capability): Path<String>,
) -> Result<Response, ApiError> {
    read(&s, &headers)?;
    let r = build_report(&s, &capability).await?;
    Ok(Html(report::html::render(&[r])).into_response())
}

pub async fn fingerprints(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(capability): Path<String>,
) -> ApiResult<Vec<crate::store::FingerprintRow>> {
    read(&s, &headers)?;
    known(&s, &capability)?;
    Ok(Json(
        s.mismatches
            .fingerprints(&capability, Utc::now().timestamp_millis())
            .await?,
    ))
}

fn known(s: &AdminState, capability: &str) -> Result<(), ApiError> {
    s.config
        .capability(capability)
        .map(|_| ())
        .ok_or_else(|| crate::Error::UnknownCapability(capability.to_owned()).into())
}

pub async fn fingerprint(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((capability, fp)): Path<(String, String)>,
) -> ApiResult<Value> {
    read(&s, &headers)?;
    known(&s, &capability)?;
    let row = s
        .mismatches
        .fingerprint(&capability, &fp, Utc::now().timestamp_millis())
        .await?;
    let exemplars: Vec<report::ExemplarDiff> = s
        .mismatches
        .exemplars(&capability, &fp)
        .await?
        .iter()
        .map(report::render_exemplar)
        .collect();
    Ok(Json(json!({ "fingerprint": row, "exemplars": exemplars })))
}

#[derive(Deserialize)]
pub struct Limit {
    limit: Option<i64>,
}

pub async fn history(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(capability): Path<String>,
    Query(q): Query<Limit>,
) -> ApiResult<Vec<strangler_store::cutover::AuditEntry>> {
    read(&s, &headers)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    Ok(Json(
        cutover::history(s.mismatches.store(), &s.config, &capability, limit)
            .await
            .map_err(crate::Error::from)?,
    ))
}

pub async fn audit(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<Limit>,
) -> ApiResult<Vec<crate::store::AuditRow>> {
    read(&s, &headers)?;
    Ok(Json(
        s.mismatches
            .audit_trail(q.limit.unwrap_or(100).clamp(1, 1000))
            .await?,
    ))
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn reason(v: &Value) -> Result<String, ApiError> {
    let r = text(v, "reason");
    if r.is_empty() {
        return Err(ApiError::BadRequest(
            "give a `reason`; it is recorded in the audit trail".into(),
        ));
    }
    Ok(r)
}

pub async fn set_mode(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(capability): Path<String>,
    bytes: Bytes,
) -> ApiResult<cutover::SetOutcome> {
    let target = capability.clone();
    let st = s.clone();
    change(
        &s,
        &headers,
        "set_mode",
        &target,
        &bytes,
        move |p, req| async move {
            let s = st;
            let mode_text = text(&req, "mode");
            let to: Mode = mode_text.parse().map_err(|e| {
                ApiError::BadRequest(format!(
                    "`mode` must be legacy, shadow, canary:<percent>, new or retired: {e}"
                ))
            })?;
            let out = cutover::set(
                s.mismatches.store(),
                &s.config,
                &SetRequest {
                    capability,
                    to,
                    actor: p.name.clone(),
                    reason: reason(&req)?,
                    force: req.get("force").and_then(Value::as_bool).unwrap_or(false),
                },
            )
            .await
            .map_err(crate::Error::from)?;
            if let Some(proxy) = &s.proxy {
                let _ = proxy.refresh_modes().await;
            }
            Ok(out)
        },
    )
    .await
}

async fn kill_switch(
    s: &AdminState,
    capability: Option<String>,
    p: Principal,
    req: Value,
) -> Result<Value, ApiError> {
    let killed = req
        .get("killed")
        .and_then(Value::as_bool)
        .ok_or_else(|| ApiError::BadRequest("give `killed`: true or false".into()))?;
    let state = cutover::kill(
        s.mismatches.store(),
        &s.config,
        capability.as_deref(),
        killed,
        &p.name,
        &reason(&req)?,
    )
    .await
    .map_err(crate::Error::from)?;
    if let Some(proxy) = &s.proxy {
        let _ = proxy.refresh_modes().await;
    }
    Ok(serde_json::to_value(state).unwrap_or_default())
}

pub async fn kill(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path(capability): Path<String>,
    bytes: Bytes,
) -> ApiResult<Value> {
    let target = capability.clone();
    change(&s, &headers, "kill", &target, &bytes, |p, req| {
        kill_switch(&s, Some(capability), p, req)
    })
    .await
}

pub async fn kill_all(
    State(s): State<AdminState>,
    headers: HeaderMap,
    bytes: Bytes,
) -> ApiResult<Value> {
    change(&s, &headers, "kill", "*", &bytes, |p, req| {
        kill_switch(&s, None, p, req)
    })
    .await
}

pub async fn acknowledge(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((capability, fp)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<triage::Outcome> {
    let target = format!("{capability}/{fp}");
    let st = s.clone();
    change(
        &s,
        &headers,
        "acknowledge",
        &target,
        &bytes,
        move |p, req| async move {
            let s = st;
            known(&s, &capability)?;
            Ok(triage::acknowledge(
                &s.mismatches,
                &capability,
                &fp,
                &p.name,
                &text(&req, "note"),
            )
            .await?)
        },
    )
    .await
}

pub async fn expect(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((capability, fp)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<triage::Outcome> {
    let target = format!("{capability}/{fp}");
    let st = s.clone();
    change(
        &s,
        &headers,
        "expect",
        &target,
        &bytes,
        move |p, req| async move {
            let s = st;
            known(&s, &capability)?;
            let until = text(&req, "until");
            if until.is_empty() {
                return Err(ApiError::BadRequest("give `until` as YYYY-MM-DD".into()));
            }
            Ok(triage::expect(
                &s.mismatches,
                &capability,
                &fp,
                &until,
                &p.name,
                &text(&req, "note"),
            )
            .await?)
        },
    )
    .await
}

pub async fn fixed(
    State(s): State<AdminState>,
    headers: HeaderMap,
    Path((capability, fp)): Path<(String, String)>,
    bytes: Bytes,
) -> ApiResult<triage::Outcome> {
    let target = format!("{capability}/{fp}");
    let st = s.clone();
    change(
        &s,
        &headers,
        "fixed",
        &target,
        &bytes,
        move |p, req| async move {
            let s = st;
            known(&s, &capability)?;
            Ok(triage::fixed(
                &s.mismatches,
                &s.config,
                &capability,
                &fp,
                &p.name,
                &text(&req, "note"),
            )
            .await?)
        },
    )
    .await
}
