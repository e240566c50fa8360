//! A feed of judged comparisons for observers in the same process (the demo's ledger; later the
//! mismatch store). A broadcast channel: a slow observer loses the oldest observations and is
//! told how many (`RecvError::Lagged`); it never slows a mirror task or the client.

use std::sync::Arc;

use strangler_diff::Comparison;
use tokio::sync::broadcast;

/// Observations kept for a slow receiver before the oldest are dropped.
pub const FEED_CAPACITY: usize = 4096;

/// One judged mirror copy.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The capability.
    pub capability: Arc<str>,
    /// Method and path of the request, for example `GET /orders/o-1`.
    pub request: String,
    /// The comparison, with the final verdict (after a lag re-ask, if one happened).
    pub comparison: Comparison,
}

pub(crate) fn channel() -> broadcast::Sender<Arc<Observation>> {
    broadcast::channel(FEED_CAPACITY).0
}
