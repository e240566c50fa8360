//! Where the relay publishes: Kafka (pipelined batches) or the built-in log (one batch at a time).

use std::time::Duration;

use strangler_bus::{KafkaPublisher, LogPublisher, OutgoingRecord, Publisher};
use strangler_core::event::Position;
use tokio::task::JoinHandle;
use tracing::Instrument;

type BusResult = Result<Vec<Position>, strangler_bus::Error>;

/// The bus the relay publishes to.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Kafka: several batches in flight, delivery reports awaited in order.
    Kafka(KafkaPublisher),
    /// The built-in log: each batch is one transaction in the store, committed before the next
    /// batch is handed over, so offsets follow the outbox order.
    Log(LogPublisher),
}

/// A batch handed to the bus whose acknowledgement may still be outstanding.
pub(crate) enum Pending {
    Kafka(JoinHandle<BusResult>),
    Done(BusResult),
}

impl Sink {
    /// Batches handed to the bus and not yet completed in the outbox, at most. The log commits
    /// each batch as it is handed over; two let one be completed while the next is published.
    pub(crate) fn max_batches(&self) -> usize {
        match self {
            Sink::Kafka(_) => usize::MAX,
            Sink::Log(_) => 2,
        }
    }

    /// Hands `records` to the bus in order. Kafka returns once they are enqueued; the log once
    /// they are committed.
    pub(crate) async fn start(&self, records: Vec<OutgoingRecord>) -> Pending {
        match self {
            Sink::Kafka(k) => match k.enqueue(&records).await {
                Ok(pending) => {
                    let span = tracing::debug_span!("delivery_reports", records = records.len());
                    Pending::Kafka(tokio::spawn(pending.wait().instrument(span)))
                }
                Err(e) => Pending::Done(Err(e)),
            },
            Sink::Log(l) => Pending::Done(l.publish(records).await),
        }
    }

    /// A fatal producer error, if the producer can no longer be used.
    pub(crate) fn fatal_error(&self) -> Option<String> {
        match self {
            Sink::Kafka(k) => k.fatal_error(),
            Sink::Log(_) => None,
        }
    }

    /// Gives up every record handed to the bus and not yet acknowledged (Kafka: purged from
    /// librdkafka's queues, their reports fail). Their rows stay in the outbox.
    pub(crate) fn abandon(&self) {
        if let Sink::Kafka(k) = self {
            k.purge();
        }
    }

    /// Waits for outstanding deliveries (Kafka) up to `timeout`.
    pub fn flush(&self, timeout: Duration) {
        if let Sink::Kafka(k) = self
            && let Err(e) = k.flush(timeout)
        {
            tracing::warn!(error = %e, "some deliveries were still outstanding at shutdown");
        }
    }
}

impl Pending {
    pub(crate) fn is_ready(&self) -> bool {
        match self {
            Pending::Kafka(h) => h.is_finished(),
            Pending::Done(_) => true,
        }
    }

    pub(crate) async fn wait(self) -> BusResult {
        match self {
            Pending::Kafka(h) => h.await.unwrap_or_else(|e| {
                Err(strangler_bus::Error::Unavailable(format!(
                    "delivery report task failed: {e}"
                )))
            }),
            Pending::Done(r) => r,
        }
    }
}
