//! Event contracts in the projector: every event is validated against its contract and brought to
//! the current version before a projection sees it, live and on replay alike, so projections
//! handle only the current shape. A payload that breaks its contract fails with reason
//! `contract_violation`, which the projection's failure policy stops on, skips or parks like any
//! other failure (and the dead letter keeps the violation as its detail).

use std::sync::Arc;

use async_trait::async_trait;
use strangler_contracts::{EventRef, Registry};

use crate::event::Event;
use crate::policy::Reason;
use crate::projection::{Applied, ApplyError, ManyApplied, Projection, Settings};
use crate::service::Projector;
use crate::store::ReadTx;

/// The registry and how events name their version.
pub struct ContractGate {
    /// Every contract.
    pub registry: Registry,
    /// The header that carries an event's version.
    pub version_header: String,
    /// Whether an event type without a contract is a violation.
    pub reject_uncovered: bool,
}

impl ContractGate {
    /// The event in its current version: `Ok(None)` when it needs no change (current already,
    /// uncovered, or not JSON, which the projection classifies itself).
    pub fn upcast(&self, event: &Event) -> Result<Option<Event>, String> {
        let Ok(payload) = &event.payload else {
            return Ok(None);
        };
        let ev = EventRef {
            aggregate: None,
            topic: Some(&event.record.topic),
            event_type: event.event_type.as_deref(),
            version: event.record.header_str(&self.version_header),
            payload,
        };
        match self.registry.check(&ev) {
            Ok(Some(c)) if c.from_version == c.to_version => Ok(None),
            Ok(Some(c)) => {
                let mut e = event.clone();
                e.payload = Ok(c.payload);
                Ok(Some(e))
            }
            Ok(None) if self.reject_uncovered => Err(format!(
                "contract violation: no contract covers event type `{}` (contracts.uncovered = \"reject\")",
                event.event_type.as_deref().unwrap_or("")
            )),
            Ok(None) => Ok(None),
            Err(v) => Err(v.to_string()),
        }
    }
}

/// A projection behind a contract gate.
pub struct Contracted {
    inner: Arc<dyn Projection>,
    gate: Arc<ContractGate>,
}

/// `p` behind `gate`, or `p` itself without one.
pub fn wrap(p: Arc<dyn Projection>, gate: Option<&Arc<ContractGate>>) -> Arc<dyn Projection> {
    match gate {
        Some(g) => Arc::new(Contracted {
            inner: p,
            gate: g.clone(),
        }),
        None => p,
    }
}

impl Projector {
    /// Validates and upcasts every event through `gate` before the projections apply it.
    pub fn with_contracts(mut self, gate: ContractGate) -> Projector {
        self.contracts = Some(Arc::new(gate));
        self
    }

    /// `p` as the runtime applies it: behind the contract gate when one is configured (for
    /// re-drives, which apply outside the runtime).
    pub fn contracted(&self, p: Arc<dyn Projection>) -> Arc<dyn Projection> {
        wrap(p, self.contracts.as_ref())
    }
}

#[async_trait]
impl Projection for Contracted {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn version(&self) -> u32 {
        self.inner.version()
    }
    fn topics(&self) -> &[String] {
        self.inner.topics()
    }
    fn tables(&self) -> &[String] {
        self.inner.tables()
    }
    fn settings(&self) -> &Settings {
        self.inner.settings()
    }
    async fn setup(&self, tx: &mut ReadTx) -> Result<(), sqlx::Error> {
        self.inner.setup(tx).await
    }
    /// Upcasts the whole batch and hands it to the projection's multi-event path; a violation
    /// fails the call, and the runtime's one-by-one retry isolates (and classifies) the event.
    async fn apply_many(
        &self,
        tx: &mut ReadTx,
        events: &[&Event],
    ) -> Result<ManyApplied, ApplyError> {
        let mut current = Vec::with_capacity(events.len());
        for e in events {
            current.push(self.gate.upcast(e).map_err(|detail| ApplyError {
                reason: Reason::ContractViolation,
                detail,
            })?);
        }
        let refs: Vec<&Event> = events
            .iter()
            .zip(&current)
            .map(|(e, c)| c.as_ref().unwrap_or(e))
            .collect();
        self.inner.apply_many(tx, &refs).await
    }

    async fn apply(&self, tx: &mut ReadTx, event: &Event) -> Result<Applied, ApplyError> {
        match self.gate.upcast(event) {
            Ok(None) => self.inner.apply(tx, event).await,
            Ok(Some(current)) => self.inner.apply(tx, &current).await,
            Err(detail) => {
                tracing::warn!(projection = self.inner.name(), topic = %event.record.topic, offset = event.record.offset, %detail, "event breaks its contract");
                Err(ApplyError {
                    reason: Reason::ContractViolation,
                    detail,
                })
            }
        }
    }
}
