//! The sample legacy orders system and the migration story `strangler demo` tells with it.
//!
//! [`legacy`] is a small but realistic legacy application: a writer that places, ships and
//! cancels orders and writes outbox events in the same transaction, and an HTTP read API with the
//! quirks real legacy APIs have (naive timestamps, money as strings, a request id, list order by
//! recency, legacy field names and status words).

pub mod legacy;
pub mod story;
