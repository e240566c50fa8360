//! The admin HTTP API and the web dashboard, on a listener of their own.
//!
//! Every `/api/v1` endpoint needs a bearer token from `[admin] tokens`: reads need `viewer`,
//! changes (cutover modes, kill switches, triage) need `operator`. No token or an unknown one
//! gives 401, a viewer asking for a change 403; every change, and every refused change, is
//! written to the admin audit trail (cutover changes also to the cutover audit, with the token's
//! name as actor). The dashboard's page and assets are compiled into the binary and carry no
//! data: the page asks for a token and calls the same API.

mod auth;
mod dashboard;
mod handlers;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use strangler_core::Config;
use strangler_core::config::AdminRole;
use strangler_proxy::Proxy;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{Principal, Tokens};

use crate::error::Error;
use crate::store::MismatchStore;

/// What the handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The mismatch store (and, through it, the control-plane store).
    pub mismatches: MismatchStore,
    /// The proxy running in this process, for live lag and in-flight figures.
    pub proxy: Option<Arc<Proxy>>,
    /// Bearer tokens.
    pub tokens: Tokens,
}

/// Every API endpoint: method, path (with `{capability}` and `{fingerprint}`) and the role it needs.
pub const ENDPOINTS: &[(&str, &str, AdminRole)] = &[
    ("GET", "/api/v1/whoami", AdminRole::Viewer),
    ("GET", "/api/v1/capabilities", AdminRole::Viewer),
    (
        "GET",
        "/api/v1/capabilities/{capability}/report",
        AdminRole::Viewer,
    ),
    (
        "GET",
        "/api/v1/capabilities/{capability}/report.html",
        AdminRole::Viewer,
    ),
    (
        "GET",
        "/api/v1/capabilities/{capability}/fingerprints",
        AdminRole::Viewer,
    ),
    (
        "GET",
        "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}",
        AdminRole::Viewer,
    ),
    (
        "GET",
        "/api/v1/capabilities/{capability}/history",
        AdminRole::Viewer,
    ),
    ("GET", "/api/v1/audit", AdminRole::Viewer),
    (
        "POST",
        "/api/v1/capabilities/{capability}/mode",
        AdminRole::Operator,
    ),
    (
        "POST",
        "/api/v1/capabilities/{capability}/kill",
        AdminRole::Operator,
    ),
    ("POST", "/api/v1/kill", AdminRole::Operator),
    (
        "POST",
        "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}/acknowledge",
        AdminRole::Operator,
    ),
    (
        "POST",
        "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}/expect",
        AdminRole::Operator,
    ),
    (
        "POST",
        "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}/fixed",
        AdminRole::Operator,
    ),
];

/// The router: API under `/api/v1`, the dashboard at `/`.
pub fn app(state: AdminState) -> Router {
    use handlers::*;
    Router::new()
        .route("/", get(dashboard::page))
        .route("/assets/dashboard.js", get(dashboard::script))
        .route("/assets/style.css", get(dashboard::style))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/capabilities", get(capabilities))
        .route("/api/v1/capabilities/{capability}/report", get(report))
        .route(
            "/api/v1/capabilities/{capability}/report.html",
            get(report_html),
        )
        .route(
            "/api/v1/capabilities/{capability}/fingerprints",
            get(fingerprints),
        )
        .route(
            "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}",
            get(fingerprint),
        )
        .route("/api/v1/capabilities/{capability}/history", get(history))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/capabilities/{capability}/mode", post(set_mode))
        .route("/api/v1/capabilities/{capability}/kill", post(kill))
        .route("/api/v1/kill", post(kill_all))
        .route(
            "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}/acknowledge",
            post(acknowledge),
        )
        .route(
            "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}/expect",
            post(expect),
        )
        .route(
            "/api/v1/capabilities/{capability}/fingerprints/{fingerprint}/fixed",
            post(fixed),
        )
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Nothing the admin listener sends may be cached by a browser or a proxy in between.
async fn no_store(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

/// Serves the admin API on `listener` until `cancel`.
pub async fn serve(
    state: AdminState,
    listener: TcpListener,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

/// What a client is told when a request fails; internals never leak.
#[derive(Debug)]
pub enum ApiError {
    /// No usable token.
    Unauthorized(&'static str),
    /// The token's role is too low.
    Forbidden {
        /// The token's name.
        name: String,
        /// Its role.
        role: AdminRole,
        /// The role needed.
        needed: AdminRole,
    },
    /// Something the caller can fix.
    BadRequest(String),
    /// No such capability or fingerprint.
    NotFound(String),
    /// Refused: a gate, a step, a conflict, a replay that still differs.
    Conflict(String, serde_json::Value),
    /// The store failed.
    Internal,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use strangler_proxy::Error as P;
        match e {
            Error::UnknownCapability(_) | Error::UnknownFingerprint { .. } => {
                ApiError::NotFound(e.to_string())
            }
            Error::Cutover(P::UnknownCapability(_)) => ApiError::NotFound(e.to_string()),
            Error::BadRequest(m) => ApiError::BadRequest(m),
            Error::NotFixed {
                ref differences, ..
            } => {
                let d = json!({ "differences": differences });
                ApiError::Conflict(e.to_string(), d)
            }
            Error::Cutover(P::GateFailed { ref report, .. }) => {
                let d = json!({ "gate": report });
                ApiError::Conflict(e.to_string(), d)
            }
            Error::Cutover(P::Authoritative { .. } | P::Step { .. } | P::Conflict(_)) => {
                ApiError::Conflict(e.to_string(), json!({}))
            }
            other => {
                tracing::error!(error = %other, "admin API request failed");
                ApiError::Internal
            }
        }
    }
}

impl ApiError {
    /// The outcome word of the audit trail.
    pub fn outcome(&self) -> &'static str {
        match self {
            ApiError::Forbidden { .. } => "denied",
            _ => "failed",
        }
    }

    /// The message a client sees.
    pub fn message(&self) -> String {
        match self {
            ApiError::Unauthorized(m) => format!("authentication required: {m}"),
            ApiError::Forbidden { name, role, needed } => format!(
                "token `{name}` has role {}, and this needs {}",
                role.as_str(),
                needed.as_str()
            ),
            ApiError::BadRequest(m) | ApiError::NotFound(m) | ApiError::Conflict(m, _) => m.clone(),
            ApiError::Internal => "internal error; see the server's log".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(..) => StatusCode::CONFLICT,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut body = json!({ "error": self.message() });
        if let ApiError::Conflict(_, detail) = &self
            && let (Some(b), Some(d)) = (body.as_object_mut(), detail.as_object())
        {
            b.extend(d.clone());
        }
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"strangler-admin\""),
            );
        }
        resp
    }
}
