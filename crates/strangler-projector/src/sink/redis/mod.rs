//! The Redis sink: handlers set, update and delete hashes, JSON strings and sets under a key
//! prefix; each batch is one Lua script that applies the events' effects together with the
//! sink's own next offset per partition and the applied event ids, so a replayed batch is
//! skipped. Key layout, versions and rebuilds: docs/sinks.md.

mod render;
mod sink;

pub use render::Renderer;
pub use sink::RedisSink;
