//! The read API (`strangler serve`): routes from projection files map paths to parameterized
//! SELECTs over the promoted version's tables and answer JSON with freshness headers.

mod error;
mod handler;
mod rows;

pub use error::ApiError;
pub use handler::{ReadApi, app};

/// Header: RFC 3339 event time of the last event the served projection version applied.
pub const WATERMARK_HEADER: &str = "x-strangler-watermark";
/// Header: the served projection version's lag in milliseconds (0 when caught up).
pub const LAG_HEADER: &str = "x-strangler-lag-ms";
/// Header: the projection version that answered.
pub const VERSION_HEADER: &str = "x-strangler-projection-version";
