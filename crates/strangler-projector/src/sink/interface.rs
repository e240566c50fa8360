//! The sink interface the runtime drives.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::SinkKind;
use crate::checkpoint::Claims;
use crate::definition::RouteDef;
use crate::event::Event;
use crate::projection::{ApplyError, ManyApplied};
use crate::replay::{From, PlanPart};

/// Which physical target of a version a run writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// The version's live target (what `promote` points readers at).
    Live,
    /// A fresh target a rebuild fills beside the live one; [`Sink::switch`] makes it live.
    Fresh(String),
}

/// How a run writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Apply events at or after the sink's position; skip older ones (already applied).
    Live,
    /// Re-drive dead letters: apply an event below the sink's position unless its id was applied.
    Redrive,
    /// `--dry-run`: render and count, write nothing.
    DryRun,
}

/// What one run of one projection version is bound to.
#[derive(Clone)]
pub struct Binding {
    /// The version.
    pub version: u32,
    /// Which target it writes.
    pub build: Build,
    /// How it writes.
    pub mode: Mode,
    /// The read store's claim generations; a sink refuses writes from a generation older than one
    /// it has seen for the partition (a fenced consumer cannot write after a replay claimed it).
    pub claims: Arc<Claims>,
}

/// A sink's own next offset for one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkPosition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset the sink has not applied.
    pub next_offset: i64,
}

/// What a read API lookup found.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRead {
    /// The version whose target answered (readers follow the sink's own pointer).
    pub version: u32,
    /// The value, `None` when absent.
    pub value: Option<serde_json::Value>,
}

/// Failures of a sink outside one event's effect.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink cannot be reached or answered with an error not about the data.
    #[error("{sink} is unavailable: {detail}")]
    Unavailable {
        /// Which sink (kind and target).
        sink: String,
        /// What went wrong.
        detail: String,
    },
    /// A newer claim owns the partition in the sink.
    #[error("{sink} refused a write from a fenced consumer: {detail}")]
    Fenced {
        /// Which sink.
        sink: String,
        /// The partition and generations.
        detail: String,
    },
    /// The operation does not fit the sink or its state.
    #[error("{sink}: {detail}")]
    Refused {
        /// Which sink.
        sink: String,
        /// Why.
        detail: String,
    },
}

/// A projection's sink, other than the SQL read store.
///
/// Exactly-once contract: [`Sink::apply`] writes the events' effects together with the sink's own
/// next offset per partition, atomically (one script, one insert with a deduplication token, ...),
/// and skips events whose offset is below that position or whose id the sink already applied at
/// another position. The runtime calls it inside the read store's batch transaction and commits
/// the checkpoint after it returns: a crash between the two replays the batch, which the sink then
/// skips.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The kind.
    fn kind(&self) -> SinkKind;
    /// Kind and target for messages, for example `redis 127.0.0.1:6379/0 prefix orders`.
    fn describe(&self) -> String;
    /// Checks the sink is reachable and creates what version `version` needs (tables, ...).
    async fn setup(&self, version: u32) -> Result<(), SinkError>;
    /// Applies `events` (per-key order kept) per the binding. Renders every event first: the
    /// first event that cannot be rendered fails the call before anything is written (the
    /// runtime then applies one by one to isolate it). An unreachable sink fails with
    /// [`crate::policy::Reason::SinkUnavailable`], which aborts the batch instead of
    /// dead-lettering.
    async fn apply(&self, binding: &Binding, events: &[&Event]) -> Result<ManyApplied, ApplyError>;
    /// The sink's own next offset per partition of `build`.
    async fn positions(&self, version: u32, build: &Build) -> Result<Vec<SinkPosition>, SinkError>;
    /// Prepares a replay of `version` from `parts` (moves the sink's positions back and forgets
    /// the ids applied from there on) or, for [`From::Rebuild`], creates an empty fresh target
    /// and returns it. `claims` holds the replay's new generations: they fence older writers in
    /// the sink from now on.
    async fn reset(
        &self,
        version: u32,
        parts: &[PlanPart],
        from: From,
        claims: &Claims,
    ) -> Result<Build, SinkError>;
    /// Makes a rebuilt target the version's live one, atomically for readers, and drops the
    /// previous one.
    async fn switch(&self, version: u32, build: &Build) -> Result<(), SinkError>;
    /// Points readers at `version`, atomically.
    async fn promote(&self, version: u32) -> Result<(), SinkError>;
    /// Drops everything of `version`.
    async fn retire(&self, version: u32) -> Result<(), SinkError>;
    /// Forgets applied event ids recorded before `older_than_ms`; returns how many.
    async fn prune(&self, _version: u32, _older_than_ms: i64) -> Result<u64, SinkError> {
        Ok(0)
    }
    /// Answers a read API route over the version readers are pointed at (`default_version`
    /// when nothing was promoted); `params` are the path captures and query parameters.
    async fn read(
        &self,
        route: &RouteDef,
        default_version: u32,
        params: &HashMap<String, String>,
    ) -> Result<SinkRead, SinkError>;
}
