//! The `OrderPlaced` events of the row benchmarks (`bench_projector`, `bench_sinks`), which
//! include this file with `#[path]`: order `i`'s fields are a function of `i`, so the projector's
//! rows and the baseline's can be compared one for one.

use crate::common::Event;

/// Event times start here, one millisecond apart.
const T0: i64 = 1_780_000_000_000;

/// Order `i` as placed.
pub struct Order {
    pub id: String,
    pub customer: String,
    pub subtotal: i64,
    pub tax: i64,
    pub at_ms: i64,
}

/// The `i`th order: 997 customers, subtotals of 1,000-9,999 cents, tax a fifth of it.
pub fn order(i: usize) -> Order {
    let subtotal = 1000 + (i as i64 * 37) % 9000;
    Order {
        id: format!("o-{i:08}"),
        customer: format!("c-{}", i % 997),
        subtotal,
        tax: subtotal / 5,
        at_ms: T0 + i as i64,
    }
}

impl Order {
    /// As the benchmarks publish it: keyed by order id, the rest in the payload.
    pub fn event(&self) -> Event {
        Event {
            key: self.id.clone(),
            payload: serde_json::json!({
                "customer_id": self.customer, "subtotal": self.subtotal, "tax": self.tax
            }),
            at_ms: Some(self.at_ms),
        }
    }

    /// The event time as the projections store it (RFC 3339, milliseconds, UTC).
    pub fn placed_at(&self) -> String {
        chrono::DateTime::<chrono::Utc>::from_timestamp_millis(self.at_ms)
            .expect("time")
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}
