//! `[telemetry]`: logs and metrics.

use serde::Deserialize;

use super::Validator;

/// How services log and where they expose Prometheus metrics.
#[derive(Debug, Clone, Deserialize)]
pub struct TelemetryConfig {
    /// `human` for terminals, `json` for log shippers.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Default log filter in `tracing` syntax; `RUST_LOG` overrides it.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// Address for the Prometheus `/metrics` endpoint; absent means no endpoint.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// How long services drain in-flight work after SIGINT/SIGTERM before aborting.
    #[serde(default = "default_grace_ms")]
    pub shutdown_grace_ms: u64,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Coloured, one line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `info` for strangler's crates keeps a busy proxy's log readable.
fn default_log_filter() -> String {
    "info".into()
}

/// Ten seconds: long enough for a batch to commit, short enough for an orchestrator's kill timeout.
fn default_grace_ms() -> u64 {
    10_000
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_format: LogFormat::Human,
            log_filter: default_log_filter(),
            metrics_listen: None,
            shutdown_grace_ms: default_grace_ms(),
        }
    }
}

impl TelemetryConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        if let Some(addr) = &self.metrics_listen {
            v.listen_addr("telemetry.metrics_listen", addr);
        }
    }
}
