//! Scheduling a batch's statement runs into steps: each step runs one statement for many events,
//! and every key's statements run in the key's event order (events of different keys have no
//! order on the bus beyond their partition, and projections may not depend on one).

use std::collections::HashMap;

/// One statement run for several units (an event's run of one handler statement).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which statement.
    pub statement: usize,
    /// Indices of the units, in arrival order; at most one per key.
    pub units: Vec<usize>,
}

/// Groups units `(key, statement)`, given in the order they must apply per key, into as few steps
/// as a greedy pass finds: a unit joins the earliest step of its statement that comes after its
/// key's previous unit, else opens a new step at the end. Units without a key are kept in their
/// mutual order as if they shared one.
pub fn schedule(units: &[(Option<&str>, usize)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    // Steps of each statement (statements are numbered from 0), in increasing step order.
    let statements = units.iter().map(|&(_, s)| s + 1).max().unwrap_or(0);
    let mut by_statement: Vec<Vec<usize>> = vec![Vec::new(); statements];
    // The step of each key's latest unit (sized up front: a batch's keys are mostly distinct).
    let mut last: HashMap<Option<&str>, usize> = HashMap::with_capacity(units.len());
    for (u, &(key, statement)) in units.iter().enumerate() {
        let after = last.get(&key).copied();
        let candidates = &mut by_statement[statement];
        let first_ok = match after {
            Some(a) => candidates.partition_point(|&s| s <= a),
            None => 0,
        };
        let step = match candidates.get(first_ok) {
            Some(&s) => s,
            None => {
                steps.push(Step {
                    statement,
                    units: Vec::new(),
                });
                candidates.push(steps.len() - 1);
                steps.len() - 1
            }
        };
        steps[step].units.push(u);
        last.insert(key, step);
    }
    steps
}
