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
                // Worked out from the old payload.
                e.prepared = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use strangler_bus::{Header, Record};

    fn gate(reject_uncovered: bool) -> ContractGate {
        let v1 = json!({"type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}});
        let v2 = json!({"type": "object", "required": ["total", "channel"],
            "properties": {"total": {"type": "number"}, "channel": {"type": "string"}},
            "x-strangler": {"upcast": [{"add": "/channel", "default": "web"}]}});
        let file = |v: u32| std::path::PathBuf::from(format!("order/Placed.v{v}.json"));
        let registry = Registry::build(
            vec![
                ("order".into(), "Placed".into(), 1, file(1), v1),
                ("order".into(), "Placed".into(), 2, file(2), v2),
            ],
            Vec::new(),
        )
        .unwrap();
        ContractGate {
            registry,
            version_header: "schema_version".into(),
            reject_uncovered,
        }
    }

    fn event(ty: &str, payload: serde_json::Value, version: Option<&str>) -> Event {
        let mut headers = vec![
            Header {
                name: "id".into(),
                value: b"0190f3a2-7d1e-7c3a-9b1e-2a8f4d5c6b7a".to_vec(),
            },
            Header {
                name: "type".into(),
                value: ty.as_bytes().to_vec(),
            },
        ];
        if let Some(v) = version {
            headers.push(Header {
                name: "schema_version".into(),
                value: v.as_bytes().to_vec(),
            });
        }
        crate::event::decode(Record {
            topic: "outbox.event.order".into(),
            partition: 0,
            offset: 0,
            key: Some(b"o-1".to_vec()),
            value: Some(payload.to_string().into_bytes()),
            headers,
            timestamp_ms: None,
        })
    }

    #[test]
    fn the_gate_upcasts_passes_current_events_and_applies_the_uncovered_policy() {
        let g = gate(false);
        let up = g
            .upcast(&event("Placed", json!({"total": 1}), None))
            .unwrap();
        assert_eq!(
            up.unwrap().payload.unwrap(),
            json!({"total": 1, "channel": "web"})
        );
        assert!(
            g.upcast(&event(
                "Placed",
                json!({"total": 1, "channel": "app"}),
                None
            ))
            .unwrap()
            .is_none()
        );
        let err = g
            .upcast(&event("Placed", json!({"total": 1}), Some("2")))
            .unwrap_err();
        assert!(err.contains("does not match v2"), "{err}");
        assert!(
            g.upcast(&event("Noted", json!({}), None))
                .unwrap()
                .is_none()
        );
        let g = gate(true);
        let err = g.upcast(&event("Noted", json!({}), None)).unwrap_err();
        assert!(
            err.contains("no contract covers event type `Noted`"),
            "{err}"
        );
    }
}
