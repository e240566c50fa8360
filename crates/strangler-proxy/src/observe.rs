//! A feed of judged comparisons for observers in the same process (the demo's ledger, the
//! mismatch store in `strangler-admin`). A broadcast channel: a slow observer loses the oldest
//! observations and is told how many (`RecvError::Lagged`); it never slows a mirror task or the
//! client.
//!
//! Observations carry the request and both answers as they were, unredacted: an observer that
//! stores anything must redact first (`strangler_admin::privacy`). Bodies are `Bytes`, so a copy
//! costs reference counts, and nothing is built unless someone subscribed.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
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
    /// The comparison, with the final verdict. After a lag re-ask that found the answers still
    /// different, it is the re-asked pair's comparison (its differences are the drift; the first
    /// pair's may be lag); after one that found them equal, the first pair's, marked `stale`.
    pub comparison: Comparison,
    /// The request and the two answers `comparison` judged; present for `mismatch` and `stale`
    /// verdicts, the ones that need exemplars.
    pub exchange: Option<Arc<Exchange>>,
}

/// The request and the two answers behind an observation.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Method.
    pub method: Method,
    /// Path and query as the client sent them.
    pub path_and_query: String,
    /// The client's request headers.
    pub request_headers: HeaderMap,
    /// The client's request body.
    pub request_body: Bytes,
    /// Legacy's answer (the reference).
    pub legacy: Answer,
    /// The new path's answer (the candidate).
    pub candidate: Answer,
}

/// One side's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

pub(crate) fn channel() -> broadcast::Sender<Arc<Observation>> {
    broadcast::channel(FEED_CAPACITY).0
}
