//! Declarative comparison rules, one TOML file per capability (`shadow-rules/*.toml`).

pub(crate) mod error;
mod model;
mod parse;
pub(crate) mod path;
mod raw;

pub use error::{RuleError, RuleErrors};
pub use model::{ArrayMatch, Rename, Rule, RuleKind, RuleSet, RuleWarning};
pub use path::{PathError, PathPattern, PathSeg};
