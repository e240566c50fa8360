//! Pure comparison of two HTTP answers (legacy and new) under declarative rules.
//!
//! The shadow proxy mirrors a read to the new read path and hands both answers to [`compare`];
//! reconciliation compares stored rows with [`compare_json`]. Both walk the JSON structurally,
//! apply the capability's [`RuleSet`] (ignored paths, array matching, number and timestamp
//! equivalence, renames, value maps, an allow-list of owned fields), and return typed
//! [`Difference`]s keyed by JSON pointer, a [`Verdict`] and stable [`Fingerprint`]s to group
//! mismatches. [`RuleAudit`] shows what each rule forgave and hid, and [`NoiseModel`] learns
//! per-path flake rates from A/A pairs so only differences that beat the noise are reported.
//!
//! No I/O lives here apart from [`RuleSet::load`] reading one file; no clock is read either:
//! callers pass "today" and watermarks in.

mod answer;
mod audit;
mod compare;
mod difference;
mod fingerprint;
mod noise;
pub mod normalize;
mod rename;
pub mod rules;
mod text;
mod verdict;

pub use answer::{CompareInput, HttpAnswer, Watermark};
pub use audit::{AuditReport, RuleAudit, RuleReport};
pub use compare::{JsonReport, compare_json, compare_json_report};
pub use difference::{DiffKind, Difference};
pub use fingerprint::{Fingerprint, FingerprintId, fnv1a, normalize_path};
pub use noise::{NoiseModel, NoiseThresholds, PathCounts, PathNoise};
pub use rules::{RuleError, RuleErrors, RuleSet, RuleWarning};
pub use text::render_text_diff;
pub use verdict::{Comparison, Side, Verdict, compare};
