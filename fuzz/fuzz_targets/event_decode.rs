//! Arbitrary bytes as a bus record (key, value, id/type headers): decoding must never panic, and
//! a decoded event must carry the record's key and a stable id.
//!
//! The decoder is compiled from strangler-bus's own source (`debezium.rs`, `record.rs`) rather
//! than through the crate, whose rdkafka and sqlx dependencies would add minutes of
//! sanitizer-instrumented C and Rust builds to every CI run of this fuzz stage.
#![no_main]

#[path = "../../crates/strangler-bus/src/debezium.rs"]
#[allow(dead_code)]
mod debezium;
#[path = "../../crates/strangler-bus/src/record.rs"]
#[allow(dead_code)]
mod record;

pub use record::{Header, Record};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // Layout: [key length, header length, flags] key headers value.
    let (klen, hlen, flags) = (usize::from(data[0]), usize::from(data[1]), data[2]);
    let rest = &data[3..];
    let klen = klen.min(rest.len());
    let (key, rest) = rest.split_at(klen);
    let hlen = hlen.min(rest.len());
    let (header, value) = rest.split_at(hlen);
    let mut headers = Vec::new();
    if flags & 1 != 0 {
        headers.push(Header {
            name: "id".into(),
            value: header.to_vec(),
        });
    }
    if flags & 2 != 0 {
        headers.push(Header {
            name: "type".into(),
            value: b"OrderPlaced".to_vec(),
        });
    }
    let record = Record {
        topic: "outbox.event.order".into(),
        partition: 0,
        offset: i64::from(flags),
        key: (flags & 4 == 0).then(|| key.to_vec()),
        value: (flags & 8 == 0).then(|| value.to_vec()),
        headers,
        timestamp_ms: (flags & 16 != 0).then_some(1_700_000_000_000),
    };
    let first = debezium::decode(&record);
    let again = debezium::decode(&record);
    match (first, again) {
        (Ok(a), Ok(b)) => {
            assert_eq!(
                a, b,
                "an event (its id included) is a function of the record"
            );
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        (a, b) => panic!("decoding the same record twice disagreed: {a:?} / {b:?}"),
    }
});
