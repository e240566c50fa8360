//! Deduplication by a window of offsets (`[dedup] mode = "window"`), the alternative to recording
//! every applied id in the read store ([`crate::dedup`]).
//!
//! An event is a duplicate when a record with the same id was consumed in the same partition
//! within `window` offsets before it. That is a function of the bus alone, so a rebuild, a replay
//! and a live run that restarted ten times drop the same events. The relay's redeliveries keep
//! their key, hence their partition, and a relay can only redeliver what it published without
//! marking, at most its `outbox.max_in_flight` events, so a window of that many offsets (times the
//! share of other producers in the partition) catches every one of them.
//!
//! Nothing is written per event: the ids live in memory, per claimed partition, and the consumer
//! starts `window` offsets before the checkpoint so they are read back from the bus when a
//! partition is claimed (the "warm-up": those records are not applied, only remembered). The
//! checkpoint, committed with the rows as always, says what was consumed; the window follows the
//! commits ([`Window::record`]), so a rolled-back attempt leaves no trace in it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::checkpoint::{Claim, Claims, Progress};
use crate::event::Event;

/// Where a consumer starts reading for a claim that applies from `start`: `lead` offsets earlier
/// (the window, or 0 without one), never before the first offset.
pub fn read_back_from(start: i64, lead: i64) -> i64 {
    start.saturating_sub(lead).max(0)
}

/// An event id as remembered: a uuid in 16 bytes, any other id as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Uuid(u128),
    Text(Box<str>),
}

fn key_of(e: &Event) -> Option<Key> {
    let id = e.id.as_deref()?;
    Some(match crate::dedup::parse_hyphenated(id) {
        Some(u) => Key::Uuid(u.as_u128()),
        None => Key::Text(id.into()),
    })
}

/// A map keyed by event ids. foldhash: ids are hashed about three times per event on the batch's
/// path, and SipHash's cost showed there; foldhash is seeded per process, which keeps crafted ids
/// from colliding on purpose.
type IdMap<V> = HashMap<Key, V, foldhash::fast::RandomState>;

/// One claimed partition's recent ids.
#[derive(Debug, Default)]
struct Part {
    /// The claim the ids were gathered under; another claim starts over.
    claim: Option<Claim>,
    /// Each id's latest offset. Ids that fell out of the window are ignored by [`Part::holds`]
    /// and swept out when the map holds twice the window.
    last: IdMap<i64>,
}

impl Part {
    fn push(&mut self, offset: i64, key: Key, size: i64) {
        self.last.insert(key, offset);
        if self.last.len() as i64 > size.saturating_mul(2) {
            let from = offset.saturating_sub(size);
            self.last.retain(|_, o| *o >= from);
        }
    }

    /// Whether `key` was consumed at or after `from`.
    fn holds(&self, key: &Key, from: i64) -> bool {
        self.last.get(key).is_some_and(|&o| o >= from)
    }
}

/// The recent ids of every partition a runner consumes.
#[derive(Debug)]
pub struct Window {
    size: i64,
    parts: Mutex<HashMap<String, HashMap<i32, Part>>>,
}

impl Window {
    /// A window of `size` offsets per partition.
    pub fn new(size: i64) -> Self {
        Window {
            size: size.max(1),
            parts: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, HashMap<i32, Part>>> {
        self.parts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the warm-up records out of `batch`: those before their claim's start were applied
    /// under an earlier claim, and only their ids are wanted. A partition claimed again since its
    /// ids were gathered (a rebalance, a replay) starts over.
    pub fn warm(&self, claims: &Claims, batch: Vec<Event>) -> Vec<Event> {
        let mut parts = self.lock();
        let mut keep = Vec::with_capacity(batch.len());
        let mut run: Option<(String, i32, Option<i64>)> = None;
        for e in batch {
            let (topic, partition) = (&e.record.topic, e.record.partition);
            let same = matches!(&run, Some((t, p, _)) if t == topic && *p == partition);
            if !same {
                let claim = claims.claim(topic, partition);
                let part = parts
                    .entry(topic.clone())
                    .or_default()
                    .entry(partition)
                    .or_default();
                if part.claim != claim {
                    *part = Part {
                        claim,
                        ..Part::default()
                    };
                }
                run = Some((topic.clone(), partition, claim.and_then(|c| c.start)));
            }
            let start = run.as_ref().and_then(|(_, _, s)| *s);
            if start.is_some_and(|s| e.record.offset < s) {
                if let Some(k) = key_of(&e) {
                    let part = parts
                        .get_mut(topic)
                        .and_then(|m| m.get_mut(&partition))
                        .expect("made above");
                    part.push(e.record.offset, k, self.size);
                }
            } else {
                keep.push(e);
            }
        }
        keep
    }

    /// Per event, whether it is new: no record with its id was consumed in its partition within
    /// the window before it, neither in a committed batch nor earlier in `events`. Events without
    /// an id are always new.
    pub fn admit(&self, events: &[Event]) -> Vec<bool> {
        let parts = self.lock();
        // Per partition of the batch: its committed ids, and the ids met so far in `events`.
        let mut runs: Vec<(&str, i32, Option<&Part>, IdMap<i64>)> = Vec::new();
        let mut at = usize::MAX;
        events
            .iter()
            .map(|e| {
                let Some(key) = key_of(e) else { return true };
                let (topic, partition, offset) =
                    (e.record.topic.as_str(), e.record.partition, e.record.offset);
                if runs
                    .get(at)
                    .is_none_or(|r| r.1 != partition || r.0 != topic)
                {
                    at = runs
                        .iter()
                        .position(|r| r.1 == partition && r.0 == topic)
                        .unwrap_or_else(|| {
                            let part = parts.get(topic).and_then(|m| m.get(&partition));
                            runs.push((topic, partition, part, IdMap::default()));
                            runs.len() - 1
                        });
                }
                let (_, _, committed, seen) = &mut runs[at];
                let from = offset.saturating_sub(self.size);
                let known = committed.is_some_and(|p| p.holds(&key, from));
                let earlier = seen.insert(key, offset);
                !known && earlier.is_none_or(|o| o < from)
            })
            .collect()
    }

    /// Remembers the ids of the events a commit consumed: each partition's events below the
    /// next offset the commit recorded for it.
    pub fn record(&self, events: &[Event], progress: &[Progress]) {
        let mut parts = self.lock();
        for run in events.chunk_by(|a, b| {
            a.record.partition == b.record.partition && a.record.topic == b.record.topic
        }) {
            let (topic, partition) = (&run[0].record.topic, run[0].record.partition);
            let Some(next) = progress
                .iter()
                .find(|p| p.partition == partition && p.topic == *topic)
                .map(|p| p.next_offset)
            else {
                continue;
            };
            let by_partition = match parts.get_mut(topic.as_str()) {
                Some(m) => m,
                None => parts.entry(topic.clone()).or_default(),
            };
            let part = by_partition.entry(partition).or_default();
            for e in run.iter().filter(|e| e.record.offset < next) {
                if let Some(k) = key_of(e) {
                    part.push(e.record.offset, k, self.size);
                }
            }
        }
    }

    /// Ids remembered, over all partitions, counting those out of the window not yet swept.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .flat_map(|m| m.values())
            .map(|p| p.last.len())
            .sum()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strangler_bus::Record;

    fn ev(partition: i32, offset: i64, id: Option<&str>) -> Event {
        let record = Record {
            topic: "order".into(),
            partition,
            offset,
            key: Some(b"k".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: id
                .map(|id| {
                    vec![strangler_bus::Header {
                        name: "id".into(),
                        value: id.as_bytes().to_vec(),
                    }]
                })
                .unwrap_or_default(),
            timestamp_ms: None,
        };
        crate::event::decode(record)
    }

    fn done(partition: i32, next_offset: i64) -> Progress {
        Progress {
            topic: "order".into(),
            partition,
            next_offset,
            last_event_time_ms: None,
            events: 0,
        }
    }

    const A: &str = "0190a0b0-0000-7000-8000-000000000001";
    const B: &str = "0190a0b0-0000-7000-8000-000000000002";

    #[test]
    fn a_repeat_within_the_window_of_its_partition_is_a_duplicate() {
        let w = Window::new(10);
        let first = [ev(0, 0, Some(A)), ev(0, 1, Some(B)), ev(0, 2, Some(A))];
        assert_eq!(w.admit(&first), [true, true, false]);
        w.record(&first, &[done(0, 3)]);
        // Later batches: within 10 offsets of offset 2 (A's latest) it is a duplicate; from
        // offset 13 on it is new again. Another partition never sees partition 0's ids.
        assert_eq!(w.admit(&[ev(0, 12, Some(A))]), [false]);
        assert_eq!(w.admit(&[ev(0, 13, Some(A))]), [true]);
        assert_eq!(w.admit(&[ev(1, 5, Some(A))]), [true]);
        assert_eq!(w.admit(&[ev(0, 20, None), ev(0, 21, None)]), [true, true]);
    }

    #[test]
    fn only_what_a_commit_consumed_is_remembered() {
        let w = Window::new(100);
        let batch = [ev(0, 0, Some(A)), ev(0, 1, Some(B))];
        // The attempt stopped after offset 0: B was not consumed, so it applies when read again.
        w.record(&batch, &[done(0, 1)]);
        assert_eq!(
            w.admit(&[ev(0, 1, Some(B)), ev(0, 2, Some(A))]),
            [true, false]
        );
        // An attempt that rolled back records nothing.
        let w = Window::new(100);
        assert_eq!(w.admit(&batch), [true, true]);
        assert_eq!(w.admit(&batch), [true, true]);
        assert!(w.is_empty());
    }

    #[test]
    fn memory_stays_within_twice_the_window() {
        let w = Window::new(5);
        for o in 0..1_000 {
            let id = format!("id-{o}");
            let e = [ev(0, o, Some(&id))];
            w.record(&e, &[done(0, o + 1)]);
            assert!(w.len() <= 10, "{} ids held at offset {o}", w.len());
        }
        // Swept or not, an id out of the window is new again.
        assert_eq!(w.admit(&[ev(0, 1_000, Some("id-994"))]), [true]);
        assert_eq!(w.admit(&[ev(0, 1_000, Some("id-995"))]), [false]);
    }

    #[test]
    fn warm_up_records_are_remembered_not_applied_and_a_new_claim_starts_over() {
        let w = Window::new(100);
        let claims = Claims::default();
        let claim = |generation, start| Claim {
            generation,
            start: Some(start),
        };
        claims.set("order", 0, claim(1, 2));
        let kept = w.warm(
            &claims,
            vec![ev(0, 0, Some(A)), ev(0, 1, Some(B)), ev(0, 2, Some(A))],
        );
        assert_eq!(
            kept.iter().map(|e| e.record.offset).collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(w.admit(&kept), [false], "A was consumed at offset 0");
        // Claimed again (a rebalance) from offset 1: offset 0 is read back again, B is not.
        claims.set("order", 0, claim(2, 1));
        let kept = w.warm(&claims, vec![ev(0, 0, Some(B)), ev(0, 1, Some(A))]);
        assert_eq!(w.admit(&kept), [true], "the old claim's ids are gone");
        assert_eq!(w.len(), 1);
    }
}
