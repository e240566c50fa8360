//! Applying many events per statement: handler SQL that can run for many events at once is
//! rewritten to one multi-row statement over `UNNEST` arrays (PostgreSQL), and a batch's events
//! are scheduled into steps that keep each key's order, so a batch costs a few round trips
//! instead of one per event.

mod form;
mod lex;
mod schedule;
#[cfg(test)]
mod tests;

pub use form::{ArrayType, BatchForm, classify};
pub use schedule::{Step, schedule};
