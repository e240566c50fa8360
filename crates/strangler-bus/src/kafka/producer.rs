//! Publishing to Kafka: an idempotent `FutureProducer`, pipelined per batch.
//!
//! [`KafkaPublisher::enqueue`] hands a whole batch to librdkafka in order and returns at once with
//! a [`PendingDelivery`]; awaiting it waits for every delivery report. The relay keeps several
//! batches pending to fill librdkafka's pipeline; [`Publisher::publish`] does both steps for
//! callers that want one call per batch.

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer, PurgeConfig};
use strangler_core::config::KafkaConfig;
use strangler_core::event::Position;

use crate::{Error, OutgoingRecord, Publisher, Result};

/// Publishes to a Kafka-protocol broker with an idempotent producer (`enable.idempotence=true`,
/// `acks=all`), so librdkafka's own retries never duplicate or reorder a record.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: FutureProducer,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher").finish_non_exhaustive()
    }
}

/// The delivery reports of one enqueued batch, in the batch's order.
#[must_use = "a batch counts as published only once its delivery reports are awaited"]
pub struct PendingDelivery {
    reports: Vec<DeliveryFuture>,
}

impl KafkaPublisher {
    /// The producer settings strangler insists on; `config.properties` may add to them but not
    /// turn idempotence or `acks=all` off.
    pub fn client_config(config: &KafkaConfig) -> ClientConfig {
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &config.brokers)
            // Enough batching to reach tens of thousands of records a second, little latency.
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            // A record not acknowledged within 30 s fails its delivery report (librdkafka's
            // default is 300 s), so a publisher notices a broker that is away, backs off and
            // sends again, and does not hold a shutdown for minutes.
            .set("message.timeout.ms", "30000");
        for (k, v) in &config.properties {
            cc.set(k, v);
        }
        cc.set("enable.idempotence", "true").set("acks", "all");
        cc
    }

    /// Creates the producer. Connecting happens in the background; an unreachable broker shows
    /// up as failed delivery reports, not here.
    pub fn new(config: &KafkaConfig) -> Result<KafkaPublisher> {
        Ok(KafkaPublisher {
            producer: Self::client_config(config).create()?,
        })
    }

    /// Wraps an existing producer (it must be idempotent for the guarantees above to hold).
    pub fn from_producer(producer: FutureProducer) -> KafkaPublisher {
        KafkaPublisher { producer }
    }

    /// Hands every record of `batch` to librdkafka, in order, waiting only while its local queue
    /// is full. Records with equal keys land in one partition in this order.
    pub async fn enqueue(&self, batch: &[OutgoingRecord]) -> Result<PendingDelivery> {
        let mut reports = Vec::with_capacity(batch.len());
        for rec in batch {
            loop {
                let mut headers = OwnedHeaders::new_with_capacity(rec.headers.len());
                for h in &rec.headers {
                    headers = headers.insert(KafkaHeader {
                        key: &h.name,
                        value: Some(&h.value),
                    });
                }
                let mut fr: FutureRecord<'_, [u8], [u8]> =
                    FutureRecord::to(&rec.topic).headers(headers);
                if let Some(k) = &rec.key {
                    fr = fr.key(k.as_slice());
                }
                if let Some(v) = &rec.value {
                    fr = fr.payload(v.as_slice());
                }
                if let Some(ts) = rec.timestamp_ms {
                    fr = fr.timestamp(ts);
                }
                match self.producer.send_result(fr) {
                    Ok(report) => {
                        reports.push(report);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => return Err(classify(e)),
                }
            }
        }
        Ok(PendingDelivery { reports })
    }

    /// A fatal producer error (the idempotent producer can no longer guarantee order), if any.
    /// The producer must then be dropped and created again.
    pub fn fatal_error(&self) -> Option<String> {
        self.producer
            .client()
            .fatal_error()
            .map(|(code, msg)| format!("{code}: {msg}"))
    }

    /// Records handed to librdkafka and not yet reported.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Drops every record not yet acknowledged, queued or in flight: their delivery reports
    /// fail at once. For a publisher that is giving up at shutdown; it may be delivered or not.
    pub fn purge(&self) {
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
    }

    /// Waits up to `timeout` for every enqueued record's delivery report.
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.producer.flush(timeout).map_err(classify)
    }
}

impl PendingDelivery {
    /// Records in the batch.
    pub fn len(&self) -> usize {
        self.reports.len()
    }

    /// Whether the batch was empty.
    pub fn is_empty(&self) -> bool {
        self.reports.is_empty()
    }

    /// Waits for every delivery report and returns each record's position, in batch order. The
    /// first failure wins; later records may still have been delivered (at-least-once).
    pub async fn wait(self) -> Result<Vec<Position>> {
        let mut positions = Vec::with_capacity(self.reports.len());
        let mut first_err = None;
        for report in self.reports {
            match report.await {
                Ok(Ok(d)) => positions.push(Position {
                    partition: d.partition,
                    offset: d.offset,
                }),
                Ok(Err((e, _))) => {
                    first_err.get_or_insert(classify(e));
                }
                Err(_canceled) => {
                    first_err.get_or_insert(Error::Unavailable(
                        "the producer was dropped before the delivery report".into(),
                    ));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(positions),
        }
    }
}

#[async_trait]
impl Publisher for KafkaPublisher {
    async fn publish(&self, batch: Vec<OutgoingRecord>) -> Result<Vec<Position>> {
        self.enqueue(&batch).await?.wait().await
    }
}

/// Splits Kafka errors into "retry later" and "this record will never be accepted".
fn classify(e: KafkaError) -> Error {
    use RDKafkaErrorCode as C;
    let code = match &e {
        KafkaError::MessageProduction(c) => Some(*c),
        _ => e.rdkafka_error_code(),
    };
    match code {
        Some(
            C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::TopicAuthorizationFailed
            | C::InvalidTopic
            | C::InvalidRecord
            | C::UnknownTopic,
        ) => Error::Rejected(e.to_string()),
        _ => Error::Unavailable(e.to_string()),
    }
}
