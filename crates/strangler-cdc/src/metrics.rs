//! Change capture's metrics, recorded in one place through the `metrics` facade.
//!
//! | name | kind | meaning |
//! |---|---|---|
//! | `strangler_cdc_events_total{op}` | counter | change events acknowledged by the bus, by op (`c`, `u`, `d`, `r`, `t`, `m`, `outbox`, `tombstone`) |
//! | `strangler_cdc_confirmed_lsn` | gauge | the slot's confirmed position (LSN as a number) |
//! | `strangler_cdc_retained_wal_bytes` | gauge | WAL the slot keeps on the server, from its restart position to the current one |
//! | `strangler_cdc_bad_messages_total` | counter | outbox messages that could not be routed (dead-lettered) |
//! | `strangler_cdc_errors_total` | counter | sessions ended by a database or bus error (retried) |
//! | `strangler_cdc_snapshot_chunks_total` | counter | snapshot chunks delivered |

pub(crate) fn events(op: &'static str, n: u64) {
    metrics::counter!("strangler_cdc_events_total", "op" => op).increment(n);
}

pub(crate) fn confirmed(lsn: u64) {
    metrics::gauge!("strangler_cdc_confirmed_lsn").set(lsn as f64);
}

pub(crate) fn retained_wal(bytes: i64) {
    metrics::gauge!("strangler_cdc_retained_wal_bytes").set(bytes as f64);
}

pub(crate) fn bad_message() {
    metrics::counter!("strangler_cdc_bad_messages_total").increment(1);
}

pub(crate) fn error() {
    metrics::counter!("strangler_cdc_errors_total").increment(1);
}

pub(crate) fn snapshot_chunk() {
    metrics::counter!("strangler_cdc_snapshot_chunks_total").increment(1);
}
