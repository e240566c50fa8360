//! Event contracts on real parts: Debezium messages captured from public sources against schemas
//! written for them; a projector replaying a stream of mixed versions over the built-in log
//! (SQLite), with and without an upcaster; the relay dead-lettering and stopping on violations;
//! and the `strangler contracts check` / `verify` commands with their exit codes.

mod check;
mod fixtures;
mod relay;
mod replay;

use std::path::{Path, PathBuf};

/// The registry of the test's Debezium fixtures.
fn debezium_registry_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contracts/debezium")
}

/// Writes `files` (relative path, JSON) under `dir`.
fn write_registry(dir: &Path, files: &[(&str, serde_json::Value)]) {
    for (rel, v) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("a parent")).expect("creating folders");
        std::fs::write(&p, serde_json::to_string_pretty(v).expect("json")).expect("writing");
    }
}

/// OrderPlaced v1: an order id and a total.
fn placed_v1() -> serde_json::Value {
    serde_json::json!({
        "description": "a customer placed an order",
        "x-strangler": {"does_not_imply": ["that it was paid"]},
        "type": "object",
        "required": ["order_id", "total"],
        "properties": {
            "order_id": {"type": "string"},
            "total": {"type": "number"},
            "status": {"enum": ["open", "paid"]}
        }
    })
}

/// OrderPlaced v2: adds a required `channel`, with or without the upcast step that fills it.
fn placed_v2(upcaster: bool) -> serde_json::Value {
    let mut s = placed_v1();
    s["properties"]["channel"] = serde_json::json!({"enum": ["web", "app"]});
    s["required"] = serde_json::json!(["order_id", "total", "channel"]);
    if upcaster {
        s["x-strangler"]["upcast"] = serde_json::json!([{"add": "/channel", "default": "web"}]);
    }
    s
}

pub(crate) use crate::harness::strangler_bin;
