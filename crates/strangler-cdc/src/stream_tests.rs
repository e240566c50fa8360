//! The decoder on hand-made pgoutput messages: commit order, keys, tombstones, key changes,
//! outbox messages and the snapshot's watermark window.

use serde_json::Value;
use strangler_bus::debezium::decode;

use super::*;

const OID: u32 = 42;

fn table() -> TableInfo {
    TableInfo {
        oid: OID,
        schema: "public".into(),
        table: "items".into(),
        columns: vec![
            ("id".into(), 23, "integer".into()),
            ("qty".into(), 23, "integer".into()),
        ],
        key: vec!["id".into()],
        topic: "app.public.items".into(),
    }
}

fn decoder() -> Decoder {
    Decoder::new(
        DecoderConfig {
            topic_prefix: "app".into(),
            db: "legacy".into(),
            slot: "s1".into(),
            tombstones: true,
            message_prefix: "outbox".into(),
            outbox: OutboxConfig::default(),
        },
        vec![table()],
    )
}

fn tuple(cells: &[Option<&str>]) -> Vec<u8> {
    let mut b = (cells.len() as i16).to_be_bytes().to_vec();
    for c in cells {
        match c {
            None => b.push(b'n'),
            Some(t) => {
                b.push(b't');
                b.extend((t.len() as i32).to_be_bytes());
                b.extend(t.as_bytes());
            }
        }
    }
    b
}

fn relation() -> Vec<u8> {
    let mut m = vec![b'R'];
    m.extend(OID.to_be_bytes());
    m.extend(b"public\0items\0");
    m.push(b'd');
    m.extend(2i16.to_be_bytes());
    for (flag, name) in [(1u8, "id"), (0, "qty")] {
        m.push(flag);
        m.extend(name.as_bytes());
        m.push(0);
        m.extend(23u32.to_be_bytes());
        m.extend((-1i32).to_be_bytes());
    }
    m
}

fn begin(xid: u32) -> Vec<u8> {
    let mut m = vec![b'B'];
    m.extend(0u64.to_be_bytes());
    m.extend(1_000_000i64.to_be_bytes());
    m.extend(xid.to_be_bytes());
    m
}

fn commit(end: u64) -> Vec<u8> {
    let mut m = vec![b'C', 0];
    m.extend((end - 8).to_be_bytes());
    m.extend(end.to_be_bytes());
    m.extend(1_000_000i64.to_be_bytes());
    m
}

fn insert(id: &str, qty: &str) -> Vec<u8> {
    let mut m = vec![b'I'];
    m.extend(OID.to_be_bytes());
    m.push(b'N');
    m.extend(tuple(&[Some(id), Some(qty)]));
    m
}

fn update(old_id: Option<&str>, id: &str, qty: &str) -> Vec<u8> {
    let mut m = vec![b'U'];
    m.extend(OID.to_be_bytes());
    if let Some(o) = old_id {
        m.push(b'K');
        m.extend(tuple(&[Some(o), None]));
    }
    m.push(b'N');
    m.extend(tuple(&[Some(id), Some(qty)]));
    m
}

fn delete(id: &str) -> Vec<u8> {
    let mut m = vec![b'D'];
    m.extend(OID.to_be_bytes());
    m.push(b'K');
    m.extend(tuple(&[Some(id), None]));
    m
}

fn message(prefix: &str, content: &str) -> Vec<u8> {
    let mut m = vec![b'M', 1];
    m.extend(77u64.to_be_bytes());
    m.extend(prefix.as_bytes());
    m.push(0);
    m.extend((content.len() as i32).to_be_bytes());
    m.extend(content.as_bytes());
    m
}

fn run(d: &mut Decoder, msgs: &[Vec<u8>]) -> Output {
    let mut out = Output::default();
    for (i, m) in msgs.iter().enumerate() {
        d.feed(100 + i as u64, m, 5, &mut out).unwrap();
    }
    out
}

fn summary(out: &Output) -> Vec<String> {
    out.records
        .iter()
        .map(|(r, op)| {
            let key = r
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default();
            let after = r
                .value
                .as_deref()
                .map(|v| serde_json::from_slice::<Value>(v).unwrap()["after"]["qty"].clone())
                .unwrap_or(Value::Null);
            format!("{op} {key} {after}")
        })
        .collect()
}

#[test]
fn changes_come_out_in_order_with_keys_tombstones_and_a_safe_position() {
    let mut d = decoder();
    let out = run(
        &mut d,
        &[
            relation(),
            begin(7),
            insert("1", "10"),
            update(None, "1", "11"),
            update(Some("1"), "2", "12"),
            delete("2"),
            commit(500),
        ],
    );
    assert_eq!(
        summary(&out),
        [
            r#"c {"id":1} 10"#,
            r#"u {"id":1} 11"#,
            r#"d {"id":1} null"#,
            r#"tombstone {"id":1} null"#,
            r#"c {"id":2} 12"#,
            r#"d {"id":2} null"#,
            r#"tombstone {"id":2} null"#,
        ]
    );
    assert_eq!(out.safe_lsn, Some(500));
    let (first, _) = &out.records[0];
    let decoded = decode(&strangler_bus::Record {
        topic: first.topic.clone(),
        partition: 0,
        offset: 0,
        key: first.key.clone(),
        value: first.value.clone(),
        headers: vec![],
        timestamp_ms: first.timestamp_ms,
    })
    .unwrap();
    assert_eq!(decoded.change.unwrap().source["txId"], 7);
    assert_eq!(first.topic, "app.public.items");
}

#[test]
fn no_safe_position_inside_an_unfinished_transaction() {
    let mut d = decoder();
    let out = run(&mut d, &[relation(), begin(7), insert("1", "10")]);
    assert_eq!(out.safe_lsn, None);
}

#[test]
fn outbox_messages_are_routed_like_outbox_rows_and_bad_ones_dead_lettered() {
    let mut d = decoder();
    let good = r#"{"id":"4d47e190-0402-4048-bc2c-89dd54343cdc","aggregatetype":"order","aggregateid":"o-1","type":"OrderPlaced","payload":{"total":3}}"#;
    let out = run(
        &mut d,
        &[
            begin(9),
            message("outbox", good),
            message("outbox", r#"{"aggregatetype":"order"}"#),
            message("audit", "hello"),
            commit(900),
        ],
    );
    let (rec, op) = &out.records[0];
    assert_eq!(*op, "outbox");
    assert_eq!(rec.topic, "outbox.event.order");
    assert_eq!(rec.key.as_deref(), Some(&b"o-1"[..]));
    let ev = decode(&strangler_bus::Record {
        topic: rec.topic.clone(),
        partition: 0,
        offset: 0,
        key: rec.key.clone(),
        value: rec.value.clone(),
        headers: rec.headers.clone(),
        timestamp_ms: rec.timestamp_ms,
    })
    .unwrap();
    assert_eq!(ev.event_type.as_deref(), Some("OrderPlaced"));
    assert_eq!(ev.payload["total"], 3);
    assert_eq!(out.records[1].0.topic, "app.message.dead_letter");
    assert!(
        out.records[1].0.headers[0]
            .value
            .starts_with(b"missing event id")
    );
    assert_eq!(out.records[2].0.topic, "app.message");

    let mut stop = decoder();
    stop.cfg.outbox.bad_rows = BadRowPolicy::Stop;
    let mut o = Output::default();
    let err = stop
        .feed(1, &message("outbox", "not json"), 5, &mut o)
        .unwrap_err();
    assert!(err.to_string().contains("not JSON"), "{err}");
}

#[test]
fn the_watermark_window_drops_rows_changed_during_the_chunk() {
    let mut d = decoder();
    let rows = vec![
        vec![Some("1".into()), Some("101".into())],
        vec![Some("2".into()), Some("200".into())],
        vec![Some("3".into()), Some("300".into())],
    ];
    d.chunk = Some(Chunk::new("c1".into(), table(), rows, 3));
    let low = d.watermark("low", "c1");
    let high = d.watermark("high", "c1");
    let out = run(
        &mut d,
        &[
            relation(),
            // Before the low watermark: already in the select, emitted before the read.
            begin(1),
            update(None, "1", "101"),
            commit(200),
            begin(2),
            message(WATERMARK_PREFIX, &low),
            commit(210),
            // Inside the window: newer than (or racing) the select; the read of 2 is dropped.
            begin(3),
            update(None, "2", "201"),
            commit(220),
            begin(4),
            message(WATERMARK_PREFIX, "other-slot:high:c1"),
            message(WATERMARK_PREFIX, &high),
            commit(230),
            // After the high watermark: after the reads.
            begin(5),
            update(None, "3", "301"),
            commit(240),
        ],
    );
    assert_eq!(
        summary(&out),
        [
            r#"u {"id":1} 101"#,
            r#"u {"id":2} 201"#,
            r#"r {"id":1} 101"#,
            r#"r {"id":3} 300"#,
            r#"u {"id":3} 301"#,
        ]
    );
    let done = out.completed.expect("chunk completed");
    assert_eq!(done.last_key, Some(vec![Some("3".to_string())]));
    assert!(!done.exhausted, "a full chunk means more may follow");
    assert!(d.chunk.is_none());
}
