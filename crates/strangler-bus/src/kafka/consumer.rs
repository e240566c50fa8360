//! Consuming Kafka: a `BaseConsumer` in a consumer group (or with an explicit assignment for
//! replays), auto commit and auto offset store off. On assignment each partition starts at the
//! offset its [`StartOffsets`] gives (a projector's checkpoint in the read store); the group
//! offset is committed only after the read store's transaction, for tooling.
//!
//! The rebalance callback runs inside `poll`, which this consumer calls on a blocking thread, so
//! the callback may block on the async checkpoint claim. A rebalance makes the next `poll` return
//! [`Error::Revoked`] so the caller drops its in-flight batch; records fetched after the new
//! assignment are kept and returned by the poll after that.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use strangler_core::event::Position;

use crate::{Consumer, Error, Header, Record, Result, StartOffsets};

const META_TIMEOUT: Duration = Duration::from_secs(10);
/// librdkafka's default `session.timeout.ms`.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(45);
/// Slack after the session timeout before the one settling check (a few heartbeats).
const SETTLE_SLACK: Duration = Duration::from_secs(3);
/// Bound on the settling check's metadata look-up (it runs on the poll path).
const SETTLE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct State {
    assignment: Vec<(String, i32)>,
    /// Bumped on every assignment change.
    epoch: u64,
}

/// Rebalance handling: claims partitions through `StartOffsets` and assigns them at those offsets.
pub struct Ctx {
    starts: Arc<dyn StartOffsets>,
    handle: tokio::runtime::Handle,
    state: Arc<Mutex<State>>,
}

impl ClientContext for Ctx {}

impl ConsumerContext for Ctx {
    fn rebalance(
        &self,
        base: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assigned = TopicPartitionList::new();
                let mut names = Vec::new();
                for e in tpl.elements() {
                    let (topic, partition) = (e.topic().to_string(), e.partition());
                    let start = self
                        .handle
                        .block_on(self.starts.start_offset(&topic, partition));
                    let offset = match start {
                        Ok(Some(o)) => Offset::Offset(o),
                        Ok(None) => Offset::Beginning,
                        Err(e) => {
                            // Without a claim the runtime cannot commit this partition (it is
                            // fenced), so reading from the group's offset is safe.
                            tracing::error!(topic, partition, error = %e, "claiming a partition failed");
                            Offset::Stored
                        }
                    };
                    let _ = assigned.add_partition_offset(&topic, partition, offset);
                    names.push((topic, partition));
                }
                if let Err(e) = base.assign(&assigned) {
                    tracing::error!(error = %e, "assigning partitions failed");
                }
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.assignment = names;
                s.epoch += 1;
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if let Err(e) = base.unassign() {
                    tracing::error!(error = %e, "unassigning partitions failed");
                }
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                s.assignment.clear();
                s.epoch += 1;
            }
            other => tracing::error!(error = ?other, "rebalance error"),
        }
    }
}

/// A Kafka consumer for one projection.
pub struct KafkaConsumer {
    inner: Arc<BaseConsumer<Ctx>>,
    state: Arc<Mutex<State>>,
    seen_epoch: u64,
    pending: Vec<Record>,
    /// For a group member: the one check, a session timeout after joining, that it was not
    /// left holding only part of its topics (see [`KafkaConsumer::settle`]).
    settle: Option<Settle>,
}

struct Settle {
    topics: Vec<String>,
    at: Instant,
}

fn client_config(
    brokers: &str,
    group: &str,
    properties: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

impl KafkaConsumer {
    /// Joins consumer group `group` on `topics`; partitions start where `starts` says.
    /// Must be called inside a tokio runtime.
    pub fn subscribe(
        brokers: &str,
        group: &str,
        properties: &BTreeMap<String, String>,
        topics: &[String],
        starts: Arc<dyn StartOffsets>,
    ) -> Result<KafkaConsumer> {
        let mut c = Self::create(brokers, group, properties, starts)?;
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        c.inner.subscribe(&names)?;
        let session = properties
            .get("session.timeout.ms")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_SESSION_TIMEOUT, Duration::from_millis);
        c.settle = Some(Settle {
            topics: topics.to_vec(),
            at: Instant::now() + session + SETTLE_SLACK,
        });
        Ok(c)
    }

    /// Reads exactly these partitions from these offsets (replay), outside group balancing;
    /// each partition is still claimed through `starts` first.
    pub async fn assign(
        brokers: &str,
        group: &str,
        properties: &BTreeMap<String, String>,
        partitions: &[(String, i32, i64)],
        starts: Arc<dyn StartOffsets>,
    ) -> Result<KafkaConsumer> {
        let c = Self::create(brokers, group, properties, starts.clone())?;
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, offset) in partitions {
            starts.start_offset(topic, *partition).await?;
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
        }
        c.inner.assign(&tpl)?;
        {
            let mut s = c.state.lock().unwrap_or_else(|e| e.into_inner());
            s.assignment = partitions.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
        }
        Ok(c)
    }

    fn create(
        brokers: &str,
        group: &str,
        properties: &BTreeMap<String, String>,
        starts: Arc<dyn StartOffsets>,
    ) -> Result<KafkaConsumer> {
        let state = Arc::new(Mutex::new(State::default()));
        let ctx = Ctx {
            starts,
            handle: tokio::runtime::Handle::current(),
            state: state.clone(),
        };
        let inner: BaseConsumer<Ctx> =
            client_config(brokers, group, properties).create_with_context(ctx)?;
        Ok(KafkaConsumer {
            inner: Arc::new(inner),
            state,
            seen_epoch: 0,
            pending: Vec::new(),
            settle: None,
        })
    }

    /// The first offset at or after `ms` per partition (its end when none is).
    pub async fn offsets_for_time(
        &self,
        partitions: &[(String, i32)],
        ms: i64,
    ) -> Result<Vec<(String, i32, i64)>> {
        let inner = self.inner.clone();
        let parts = partitions.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for (t, p) in &parts {
                tpl.add_partition_offset(t, *p, Offset::Offset(ms))?;
            }
            let found = inner.offsets_for_times(tpl, META_TIMEOUT)?;
            let mut out = Vec::new();
            for e in found.elements() {
                let o = match e.offset() {
                    Offset::Offset(o) => o,
                    _ => {
                        inner
                            .fetch_watermarks(e.topic(), e.partition(), META_TIMEOUT)?
                            .1
                    }
                };
                out.push((e.topic().to_string(), e.partition(), o));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("offset lookup task failed: {e}")))?
    }

    /// Partitions of `topics` with their end offsets, from broker metadata.
    pub async fn partitions(&self, topics: &[String]) -> Result<Vec<(String, i32, i64)>> {
        let inner = self.inner.clone();
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for t in &topics {
                let md = inner.fetch_metadata(Some(t), META_TIMEOUT)?;
                for mt in md.topics() {
                    for p in mt.partitions() {
                        let (_, high) = inner.fetch_watermarks(t, p.id(), META_TIMEOUT)?;
                        out.push((t.clone(), p.id(), high));
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("metadata task failed: {e}")))?
    }
}

impl KafkaConsumer {
    /// Once per consumer, a session timeout (plus a few heartbeats) after it subscribed: if it
    /// holds only part of its topics' partitions, it leaves the group and joins again.
    ///
    /// A consumer that starts after a predecessor was SIGKILLed joins a group that still lists
    /// the dead member until its session times out. Kafka's coordinator holds the join until
    /// that member is evicted; tansu 0.6's answers at once with the dead member in the member
    /// list, so the leader assigns it partitions, and after evicting it tansu answers the
    /// survivor's rejoin (same generation) with the stale assignment it stored: the dead
    /// member's partitions stay unconsumed for good (docs/RELIABILITY.md, finding 2). By the
    /// time of this check every member dead before the consumer started has been evicted by
    /// any coordinator, so a fresh LeaveGroup and JoinGroup yields an assignment among live
    /// members only. On a correct coordinator the cost is at most one extra rebalance per
    /// consumer start, and only when the consumer shares its topics with live peers.
    async fn settle(&mut self) -> Result<()> {
        match &self.settle {
            Some(s) if Instant::now() >= s.at => {}
            _ => return Ok(()),
        }
        let Some(mut s) = self.settle.take() else {
            return Ok(());
        };
        let held = self.assignment().len();
        let inner = self.inner.clone();
        let topics = s.topics.clone();
        let total = tokio::task::spawn_blocking(move || -> KafkaResult<usize> {
            let mut total = 0;
            for t in &topics {
                let md = inner.fetch_metadata(Some(t), SETTLE_LOOKUP_TIMEOUT)?;
                total += md
                    .topics()
                    .iter()
                    .map(|mt| mt.partitions().len())
                    .sum::<usize>();
            }
            Ok(total)
        })
        .await;
        let total = match total {
            Ok(Ok(total)) => total,
            Ok(Err(e)) => {
                // The broker is away: look again a little later.
                tracing::debug!(error = %e, "kafka consumer: partition count unavailable; settling check postponed");
                s.at = Instant::now() + SETTLE_SLACK;
                self.settle = Some(s);
                return Ok(());
            }
            Err(e) => return Err(Error::Unavailable(format!("settling task failed: {e}"))),
        };
        if held >= total {
            return Ok(());
        }
        tracing::warn!(
            held,
            partitions = total,
            "kafka consumer: holding only part of the partitions a session timeout after joining; leaving the group and joining again"
        );
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            inner.unsubscribe();
            let names: Vec<&str> = s.topics.iter().map(String::as_str).collect();
            inner.subscribe(&names)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("rejoin task failed: {e}")))??;
        Ok(())
    }
}

fn to_record(m: &rdkafka::message::BorrowedMessage<'_>) -> Record {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    name: h.key.to_string(),
                    value: h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers,
        timestamp_ms: m.timestamp().to_millis(),
    }
}

/// Errors no retry will cure: the broker refuses this client.
fn refused(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        code,
        C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
    )
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll(&mut self, max_records: usize, max_wait: Duration) -> Result<Vec<Record>> {
        if !self.pending.is_empty() {
            return Ok(std::mem::take(&mut self.pending));
        }
        self.settle().await?;
        let inner = self.inner.clone();
        let state = self.state.clone();
        let seen = self.seen_epoch;
        let (records, epoch) = tokio::task::spawn_blocking(move || {
            let epoch_now = || state.lock().unwrap_or_else(|e| e.into_inner()).epoch;
            let deadline = Instant::now() + max_wait;
            let mut out = Vec::new();
            let mut epoch = seen;
            while out.len() < max_records {
                let wait = if out.is_empty() {
                    deadline.saturating_duration_since(Instant::now())
                } else {
                    Duration::ZERO
                };
                let msg = inner.poll(wait);
                let e = epoch_now();
                if e != epoch {
                    // Records fetched before the rebalance belong to the old assignment.
                    out.clear();
                    epoch = e;
                }
                match msg {
                    Some(Ok(m)) => out.push(to_record(&m)),
                    Some(Err(KafkaError::PartitionEOF(_))) => {}
                    // librdkafka reports broker outages (all brokers down, transport failures,
                    // a coordinator moving) through poll and recovers by itself: the consumer
                    // waits for the broker instead of failing the projector. Only fatal errors
                    // end the poll.
                    Some(Err(KafkaError::MessageConsumption(code))) if !refused(code) => {
                        tracing::warn!(error = %code, "kafka consumer: transient broker error; librdkafka retries");
                    }
                    Some(Err(e)) => return Err(Error::Kafka(e)),
                    None if out.is_empty() && Instant::now() < deadline => {}
                    None => break,
                }
            }
            Ok((out, epoch))
        })
        .await
        .map_err(|e| Error::Unavailable(format!("poll task failed: {e}")))??;
        if epoch != self.seen_epoch {
            self.seen_epoch = epoch;
            self.pending = records;
            return Err(Error::Revoked("the group rebalanced".into()));
        }
        Ok(records)
    }

    async fn seek(&mut self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        let inner = self.inner.clone();
        let topic = topic.to_string();
        tokio::task::spawn_blocking(move || {
            inner.seek(&topic, partition, Offset::Offset(offset), META_TIMEOUT)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("seek task failed: {e}")))??;
        Ok(())
    }

    fn assignment(&self) -> Vec<(String, i32)> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .assignment
            .clone()
    }

    async fn end_offsets(&self) -> Result<Vec<(String, i32, i64)>> {
        let inner = self.inner.clone();
        let parts = self.assignment();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            for (t, p) in parts {
                let (_, high) = inner.fetch_watermarks(&t, p, META_TIMEOUT)?;
                out.push((t, p, high));
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Unavailable(format!("watermark task failed: {e}")))?
    }

    async fn mark_applied(&mut self, topic: &str, position: Position) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, position.partition, Offset::Offset(position.offset))?;
        self.inner.commit(&tpl, CommitMode::Async)?;
        Ok(())
    }
}
