//! A projection bound to its sink for one run: the runtime applies it like any projection, and
//! its handlers' effects go to the sink instead of the read store's transaction.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Binding, Sink};
use crate::event::Event;
use crate::projection::{Applied, ApplyError, ManyApplied, Projection, Settings};
use crate::store::ReadTx;

/// `inner`'s definition with `sink` as the target of its effects, per `binding`.
pub struct Bound {
    inner: Arc<dyn Projection>,
    sink: Arc<dyn Sink>,
    binding: Binding,
}

impl Bound {
    /// Binds `inner` to `sink`.
    pub fn new(inner: Arc<dyn Projection>, sink: Arc<dyn Sink>, binding: Binding) -> Bound {
        Bound {
            inner,
            sink,
            binding,
        }
    }

    /// `inner` bound to `sink` when it has one, else `inner` itself (a SQL projection).
    pub fn wrap(
        inner: Arc<dyn Projection>,
        sink: Option<Arc<dyn Sink>>,
        binding: Binding,
    ) -> Arc<dyn Projection> {
        match sink {
            Some(sink) => Arc::new(Bound::new(inner, sink, binding)),
            None => inner,
        }
    }
}

#[async_trait]
impl Projection for Bound {
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
    async fn setup(&self, _tx: &mut ReadTx) -> Result<(), sqlx::Error> {
        // The sink's target is created by `Sink::setup` ([`crate::Projector::setup`]).
        Ok(())
    }
    async fn apply(&self, _tx: &mut ReadTx, event: &Event) -> Result<Applied, ApplyError> {
        let m = self.sink.apply(&self.binding, &[event]).await?;
        Ok(if m.ignored > 0 {
            Applied::Ignored
        } else {
            Applied::Rows(m.rows)
        })
    }
    async fn apply_many(
        &self,
        _tx: &mut ReadTx,
        events: &[&Event],
    ) -> Result<ManyApplied, ApplyError> {
        self.sink.apply(&self.binding, events).await
    }
}
