//! The relay's metrics, recorded in one place through the `metrics` facade.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `strangler_outbox_rows_read_total` | counter | rows read from the outbox |
//! | `strangler_outbox_rows_published_total` | counter | rows acknowledged by the bus and deleted/marked |
//! | `strangler_outbox_rows_failed_total` | counter | rows whose publishing failed (retried) |
//! | `strangler_outbox_rows_dead_lettered_total` | counter | rows moved to the dead-letter table |
//! | `strangler_outbox_oldest_unpublished_age_seconds` | gauge | age of the oldest row read but not yet acknowledged (its timestamp column when configured, else when the relay read it); 0 when caught up |
//! | `strangler_outbox_batch_latency_seconds` | histogram | from reading a batch to its rows being deleted/marked |
//! | `strangler_outbox_leader` | gauge | 1 while this relay holds the lease |

use std::time::Duration;

pub(crate) fn rows_read(n: usize) {
    metrics::counter!("strangler_outbox_rows_read_total").increment(n as u64);
}

pub(crate) fn rows_published(n: usize) {
    metrics::counter!("strangler_outbox_rows_published_total").increment(n as u64);
}

pub(crate) fn rows_failed(n: usize) {
    metrics::counter!("strangler_outbox_rows_failed_total").increment(n as u64);
}

pub(crate) fn rows_dead_lettered(n: usize) {
    metrics::counter!("strangler_outbox_rows_dead_lettered_total").increment(n as u64);
}

pub(crate) fn oldest_unpublished_age(age: Duration) {
    metrics::gauge!("strangler_outbox_oldest_unpublished_age_seconds").set(age.as_secs_f64());
}

pub(crate) fn batch_latency(d: Duration) {
    metrics::histogram!("strangler_outbox_batch_latency_seconds").record(d.as_secs_f64());
}

pub(crate) fn leader(is_leader: bool) {
    metrics::gauge!("strangler_outbox_leader").set(if is_leader { 1.0 } else { 0.0 });
}
