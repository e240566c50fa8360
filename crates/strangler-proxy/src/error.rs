//! Errors of the proxy: [`Error`] for setting up and changing cutover state, [`ProxyError`] for
//! what a client may see (short bodies, never internals).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use strangler_core::Mode;

use crate::gate::GateReport;

/// What can go wrong building the proxy or changing a capability's mode.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration has no `[proxy]` section.
    #[error("the configuration has no [proxy] section: add legacy_url and new_url under [proxy]")]
    NoProxySection,
    /// An upstream URL cannot be used.
    #[error("upstream URL `{url}` cannot be used: {reason}")]
    BadUpstream {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// The TLS client for `https://` upstreams could not be set up.
    #[error("setting up TLS to the upstreams: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// The mirror lane's thread could not start.
    #[error("starting the mirror thread: {reason}")]
    MirrorLane {
        /// Why.
        reason: String,
    },
    /// A serving thread or its runtime could not start.
    #[error("starting a serving thread: {reason}")]
    ServeThread {
        /// Why.
        reason: String,
    },
    /// A capability's rules file failed to load.
    #[error("loading the comparison rules of capability `{capability}`: {message}")]
    Rules {
        /// The capability.
        capability: String,
        /// The rule errors, rendered.
        message: String,
    },
    /// No capability has this name.
    #[error("no capability is named `{0}` in the configuration")]
    UnknownCapability(String),
    /// An authoritative capability may never be served by the new path.
    #[error(
        "capability `{capability}` is authoritative and is never served from the new path; `{to}` is refused even with --force"
    )]
    Authoritative {
        /// The capability.
        capability: String,
        /// The refused mode.
        to: Mode,
    },
    /// The step skips stages of the cutover state machine.
    #[error(
        "capability `{capability}` cannot move from {from} to {to} in one step (legacy -> shadow -> canary -> new -> retired); pass --force to override"
    )]
    Step {
        /// The capability.
        capability: String,
        /// Its mode now.
        from: Mode,
        /// The refused mode.
        to: Mode,
    },
    /// The promotion gate did not pass.
    #[error(
        "promotion of `{capability}` to {to} refused by its gate: {}; pass --force to override (recorded)",
        report.failures()
    )]
    GateFailed {
        /// The capability.
        capability: String,
        /// The refused mode.
        to: Mode,
        /// The evaluation.
        report: Box<GateReport>,
    },
    /// Another writer changed the mode at the same moment.
    #[error("capability `{0}` was changed concurrently; read it again and retry")]
    Conflict(String),
    /// The control-plane store failed.
    #[error(transparent)]
    Store(#[from] strangler_store::Error),
    /// Binding or serving the listener failed.
    #[error("serving the proxy: {0}")]
    Io(#[from] std::io::Error),
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a client can be told when the proxy cannot answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The upstream could not be reached or broke the connection.
    #[error("upstream unavailable")]
    Upstream,
    /// The upstream did not answer within `proxy.upstream_timeout_ms`.
    #[error("upstream timed out")]
    Timeout,
}

impl ProxyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::Upstream => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// The body the client gets: the message, one line of plain text.
    pub fn body(&self) -> String {
        format!("{self}\n")
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        (self.status(), self.body()).into_response()
    }
}
