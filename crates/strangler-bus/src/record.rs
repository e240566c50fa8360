//! Records as the bus carries them: Kafka's shape, on both buses.

use serde::{Deserialize, Serialize};

/// A record header: a name and its bytes (Debezium's outbox headers are UTF-8 text).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Header name, for example `id` or `type`.
    pub name: String,
    /// Header value.
    pub value: Vec<u8>,
}

/// A record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// Destination topic.
    pub topic: String,
    /// Record key; records with equal keys go to one partition, in order.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Event time in milliseconds since the epoch, when known.
    pub timestamp_ms: Option<i64>,
}

/// A consumed record with its coordinates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Topic it was read from.
    pub topic: String,
    /// Partition within the topic.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
    /// Record key.
    pub key: Option<Vec<u8>>,
    /// Record value; `None` is a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<Header>,
    /// Record timestamp in milliseconds since the epoch, when the bus recorded one.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    /// The first header with this name, as UTF-8 text.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name == name)
            .and_then(|h| std::str::from_utf8(&h.value).ok())
    }
}

/// The partition the built-in log uses for a key: FNV-1a of the key modulo the partition count,
/// so an aggregate always lands in one partition. Kafka uses its own partitioner (murmur2).
pub fn log_partition_for(key: Option<&[u8]>, partitions: u32) -> i32 {
    let Some(key) = key else { return 0 };
    let mut h: u32 = 0x811c_9dc5;
    for b in key {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % partitions.max(1)) as i32
}
