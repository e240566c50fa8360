//! Contract tests against captured events: read real records from the bus (from the beginning,
//! across versions), check that each one validates and upcasts, and report the failures by event
//! id and failing rule (`strangler contracts verify --sample N`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Serialize;
use strangler_bus::debezium::{self, Format};
use strangler_bus::{Consumer, Record, StartOffsets};

use crate::registry::{EventRef, Registry};

/// Start offsets for a sample: nothing is claimed; the caller assigns explicit offsets.
pub struct NoClaim;

#[async_trait::async_trait]
impl StartOffsets for NoClaim {
    async fn start_offset(&self, _: &str, _: i32) -> strangler_bus::Result<Option<i64>> {
        Ok(None)
    }
}

/// What checking one record found.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordOutcome {
    /// It matches its contract (after upcasting from `from_version`).
    Passed {
        /// `aggregate/EventType`.
        contract: String,
        /// Its version.
        from_version: u32,
        /// The current version.
        to_version: u32,
    },
    /// No contract covers its event type.
    Uncovered {
        /// The event type, if any.
        event_type: Option<String>,
    },
    /// A tombstone: nothing to check.
    Tombstone,
    /// It breaks its contract, or does not decode.
    Failed(Failure),
}

/// One record that failed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    /// The event id (outbox `id`, or the id derived for change events), when it decodes.
    pub event_id: Option<String>,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Event type.
    pub event_type: Option<String>,
    /// The failing rule (`OrderPlaced.v2.json#/required`, `upcast:...`, `decode`).
    pub rule: String,
    /// The whole message.
    pub message: String,
}

/// Checks one record as it sits on the bus: decodes it (every Debezium format the projector
/// reads), then checks its payload against the registry. `version_header` names the header that
/// carries the event's version.
pub fn check_record(registry: &Registry, record: &Record, version_header: &str) -> RecordOutcome {
    let fail =
        |event_id: Option<String>, event_type: Option<String>, rule: String, message: String| {
            RecordOutcome::Failed(Failure {
                event_id,
                topic: record.topic.clone(),
                partition: record.partition,
                offset: record.offset,
                event_type,
                rule,
                message,
            })
        };
    let d = match debezium::decode(record) {
        Ok(d) => d,
        Err(e) => {
            return fail(
                record.header_str("id").map(str::to_string),
                record.header_str("type").map(str::to_string),
                "decode".into(),
                e.to_string(),
            );
        }
    };
    if d.format == Format::Tombstone {
        return RecordOutcome::Tombstone;
    }
    let ev = EventRef {
        aggregate: d.aggregate_type.as_deref(),
        topic: Some(&record.topic),
        event_type: d.event_type.as_deref(),
        version: record.header_str(version_header),
        payload: &d.payload,
    };
    match registry.check(&ev) {
        Ok(Some(c)) => RecordOutcome::Passed {
            contract: c.contract,
            from_version: c.from_version,
            to_version: c.to_version,
        },
        Ok(None) => RecordOutcome::Uncovered {
            event_type: d.event_type,
        },
        Err(v) => fail(
            Some(d.event_id.to_string()),
            d.event_type,
            v.rule(),
            v.to_string(),
        ),
    }
}

/// The verdict over a sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Records read.
    pub read: u64,
    /// Records that matched their contract.
    pub passed: u64,
    /// Of those, how many needed upcasting.
    pub upcast: u64,
    /// Records no contract covers, by event type.
    pub uncovered: BTreeMap<String, u64>,
    /// Tombstones seen.
    pub tombstones: u64,
    /// Records per contract and version they were written in.
    pub versions: BTreeMap<String, BTreeMap<u32, u64>>,
    /// Every failure, in read order.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Adds one record's outcome.
    pub fn add(&mut self, outcome: RecordOutcome) {
        self.read += 1;
        match outcome {
            RecordOutcome::Passed {
                contract,
                from_version,
                to_version,
            } => {
                self.passed += 1;
                if from_version != to_version {
                    self.upcast += 1;
                }
                *self
                    .versions
                    .entry(contract)
                    .or_default()
                    .entry(from_version)
                    .or_default() += 1;
            }
            RecordOutcome::Uncovered { event_type } => {
                *self
                    .uncovered
                    .entry(event_type.unwrap_or_else(|| "(no type)".into()))
                    .or_default() += 1;
            }
            RecordOutcome::Tombstone => self.tombstones += 1,
            RecordOutcome::Failed(f) => self.failures.push(f),
        }
    }

    /// Whether the sample passed: no failures, and (when `strict`) no uncovered event types.
    pub fn ok(&self, strict: bool) -> bool {
        self.failures.is_empty() && (!strict || self.uncovered.is_empty())
    }
}

/// Reads up to `limit` records from `consumer` (already assigned from the beginning), checking
/// each, until the sample is full or a poll comes back empty once every partition in `ends` is
/// read to its end. Reading goes on past `ends` while records keep coming: some brokers report
/// ends that lag (tansu answers ListOffsets with 1).
pub async fn sample(
    consumer: &mut dyn Consumer,
    ends: &HashMap<(String, i32), i64>,
    limit: u64,
    registry: &Registry,
    version_header: &str,
) -> Result<Report, strangler_bus::Error> {
    let mut report = Report::default();
    let mut next: HashMap<(String, i32), i64> = HashMap::new();
    let done = |next: &HashMap<(String, i32), i64>| {
        ends.iter()
            .all(|(k, end)| next.get(k).copied().unwrap_or(0) >= *end)
    };
    let mut idle_polls = 0;
    while report.read < limit {
        let want = (limit - report.read).min(500) as usize;
        let records = consumer.poll(want, Duration::from_millis(500)).await?;
        if records.is_empty() {
            // Ends never delivered (records deleted by retention) must not hang the check.
            idle_polls += 1;
            if done(&next) || idle_polls >= 20 {
                break;
            }
            continue;
        }
        idle_polls = 0;
        for r in records {
            next.insert((r.topic.clone(), r.partition), r.offset + 1);
            report.add(check_record(registry, &r, version_header));
            if report.read >= limit {
                break;
            }
        }
    }
    Ok(report)
}
