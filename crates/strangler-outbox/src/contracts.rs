//! Event contracts in the relay: each outbox payload is checked against its contract before it is
//! published; a violation is logged and published (`warn`), dead-lettered with the violation as
//! the reason (`dead-letter`), or stops the relay (`stop`), per `contracts.relay`.

use std::sync::Arc;

use strangler_contracts::{EventRef, Registry};
use strangler_core::config::RelayContractPolicy;

use crate::relay::Relay;
use crate::{OutboxRow, RowOutcome};

/// The registry and what the relay does with a violation.
pub struct RelayContracts {
    /// Every contract.
    pub registry: Registry,
    /// The header (outbox column in `additional_headers`) that carries the version.
    pub version_header: String,
    /// What a violation does.
    pub policy: RelayContractPolicy,
    /// Whether an event type without a contract is a violation.
    pub reject_uncovered: bool,
}

impl RelayContracts {
    /// Why the row's payload breaks its contract, if it does.
    pub fn violation(&self, row: &OutboxRow) -> Option<String> {
        let payload: serde_json::Value = serde_json::from_str(row.payload.as_deref()?).ok()?;
        let version = row
            .headers
            .iter()
            .find(|(name, _)| *name == self.version_header)
            .and_then(|(_, v)| v.as_deref());
        let ev = EventRef {
            aggregate: row.aggregate_type.as_deref(),
            topic: None,
            event_type: row.event_type.as_deref(),
            version,
            payload: &payload,
        };
        match self.registry.check(&ev) {
            Ok(Some(_)) => None,
            Ok(None) if self.reject_uncovered => Some(format!(
                "contract violation: no contract covers event type `{}` (contracts.uncovered = \"reject\")",
                row.event_type.as_deref().unwrap_or("")
            )),
            Ok(None) => None,
            Err(v) => Some(v.to_string()),
        }
    }
}

impl Relay {
    /// Checks every payload against `contracts` before publishing it.
    pub fn with_contracts(mut self, contracts: RelayContracts) -> Relay {
        self.contracts = Some(Arc::new(contracts));
        self
    }
}

/// Applies the contract policy to a row about to be published: the outcome to go on with, and
/// whether the relay must stop at it.
pub(crate) fn screen(
    contracts: Option<&RelayContracts>,
    table: &str,
    row: &OutboxRow,
    outcome: RowOutcome,
) -> (RowOutcome, bool) {
    let Some(c) = contracts.filter(|c| c.policy != RelayContractPolicy::Off) else {
        return (outcome, false);
    };
    if !matches!(outcome, RowOutcome::Publish(_)) {
        return (outcome, false);
    }
    let Some(reason) = c.violation(row) else {
        return (outcome, false);
    };
    let policy = match c.policy {
        RelayContractPolicy::Warn => "warn",
        RelayContractPolicy::DeadLetter => "dead-letter",
        _ => "stop",
    };
    metrics::counter!("strangler_relay_contract_violations_total", "policy" => policy).increment(1);
    match c.policy {
        RelayContractPolicy::Warn => {
            tracing::warn!(outbox = table, seq = row.seq, id = row.id.as_deref().unwrap_or("?"), %reason, "publishing an event that breaks its contract (contracts.relay = \"warn\")");
            (outcome, false)
        }
        RelayContractPolicy::Stop => (RowOutcome::Bad(reason), true),
        _ => (RowOutcome::Bad(reason), false),
    }
}
