//! Projection files: their shape, parsing and validation.

mod load;
mod model;
mod validate;

pub use load::{load_dir, parse};
pub use model::{BatchConfig, Handler, PolicyConfig, ProjectionDef, RouteDef, RouteResult, Setup};
pub use strangler_core::config::Problem;

#[cfg(test)]
mod tests;
