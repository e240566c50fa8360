//! Projection files: their shape, parsing and validation.

mod load;
mod model;
mod routes;
mod validate;

pub use load::{load_dir, parse};
pub use model::{
    BatchConfig, DedupConfig, DedupMode, Handler, PolicyConfig, ProjectionDef, ReplayConfig,
    RouteDef, RouteResult, Setup,
};
pub use routes::{RoutesFile, load_routes_dir};
pub use strangler_core::config::Problem;
pub use validate::validate_route;

#[cfg(test)]
mod tests;
