//! `[bus]`: where the relay publishes and the projectors consume.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Validator;

/// The event bus: Kafka (or any Kafka-protocol broker), or the built-in log in the store.
#[derive(Debug, Clone, Deserialize)]
pub struct BusConfig {
    /// `log` (the default: a table in the store, for one machine) or `kafka`.
    #[serde(default)]
    pub kind: BusKind,
    /// Kafka settings; required when `kind = "kafka"`.
    #[serde(default)]
    pub kafka: Option<KafkaConfig>,
    /// Partitions of each built-in log topic; an aggregate always maps to the same partition.
    #[serde(default = "default_log_partitions")]
    pub log_partitions: u32,
}

/// Which bus carries events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    /// The built-in log: a table in strangler's store.
    #[default]
    Log,
    /// Apache Kafka, Redpanda, or another Kafka-protocol broker.
    Kafka,
}

/// Connection to a Kafka-protocol broker.
#[derive(Debug, Clone, Deserialize)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Extra librdkafka properties (for example `security.protocol`), passed through unchanged.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// Four partitions: enough for two projector instances to share work on the embedded default.
fn default_log_partitions() -> u32 {
    4
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            kind: BusKind::Log,
            kafka: None,
            log_partitions: default_log_partitions(),
        }
    }
}

impl BusConfig {
    pub(super) fn validate(&self, v: &mut Validator) {
        v.at_least("bus.log_partitions", u64::from(self.log_partitions), 1);
        match (&self.kind, &self.kafka) {
            (BusKind::Kafka, None) => v.problem(
                "bus.kind",
                "`kind = \"kafka\"` needs a `[bus.kafka]` table",
                "add [bus.kafka] with brokers = \"host:9092\", or set kind = \"log\"",
            ),
            (_, Some(k)) => {
                for (i, b) in k.brokers.split(',').enumerate() {
                    let b = b.trim();
                    let ok = b.rsplit_once(':').is_some_and(|(host, port)| {
                        !host.is_empty() && port.parse::<u16>().is_ok()
                    });
                    if !ok {
                        v.problem(
                            "bus.kafka.brokers",
                            format!("broker {} `{b}` is not host:port", i + 1),
                            "write brokers as a comma-separated list of host:port, for example kafka-1:9092,kafka-2:9092",
                        );
                    }
                }
            }
            _ => {}
        }
    }
}
