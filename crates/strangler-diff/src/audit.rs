//! Rule audit: what each rule actually does to the verdicts.
//!
//! A rule "changed the verdict" of a comparison when the comparison ended as a match and the
//! rule forgave at least one would-be difference there: without the rule that difference would
//! have made it a mismatch. (A comparison that still mismatches was not changed by any rule,
//! since removing a rule can only add differences.)

use std::collections::HashMap;

use chrono::NaiveDate;
use serde::Serialize;

use crate::rules::{RuleSet, RuleWarning};
use crate::verdict::{Comparison, Verdict};

/// One rule's effect over the observed comparisons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleReport {
    /// Rule name.
    pub name: String,
    /// Rule kind (its table name).
    pub kind: String,
    /// Owner, if known.
    pub owner: Option<String>,
    /// Expiry date, if any.
    pub expires: Option<NaiveDate>,
    /// Comparisons whose verdict was `match` only thanks to this rule.
    pub comparisons_changed: u64,
    /// Would-be differences it forgave.
    pub diffs_forgiven: u64,
    /// Share of all observed leaf values it hid (0 to 1).
    pub hidden_share: f64,
}

/// The audit over everything observed so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditReport {
    /// Rule file.
    pub file: String,
    /// Comparisons observed (match, mismatch or stale).
    pub comparisons: u64,
    /// Comparisons skipped or failed, not counted above.
    pub not_compared: u64,
    /// One entry per rule, in file order.
    pub rules: Vec<RuleReport>,
    /// Expired rules and rules that never did anything.
    pub warnings: Vec<RuleWarning>,
}

#[derive(Debug, Clone, Default)]
struct Tally {
    changed: u64,
    forgiven: u64,
    hidden: u64,
}

/// Aggregates comparisons for one rule set.
#[derive(Debug, Clone)]
pub struct RuleAudit {
    rules: RuleSet,
    index: HashMap<String, usize>,
    tallies: Vec<Tally>,
    comparisons: u64,
    not_compared: u64,
    total_leaves: u64,
}

impl RuleAudit {
    /// Starts an audit of `rules`.
    pub fn new(rules: &RuleSet) -> RuleAudit {
        RuleAudit {
            index: rules
                .rules()
                .iter()
                .enumerate()
                .map(|(i, r)| (r.name.clone(), i))
                .collect(),
            tallies: vec![Tally::default(); rules.rules().len()],
            rules: rules.clone(),
            comparisons: 0,
            not_compared: 0,
            total_leaves: 0,
        }
    }

    /// Adds one comparison made with this rule set.
    pub fn observe(&mut self, c: &Comparison) {
        if matches!(c.verdict, Verdict::Error { .. } | Verdict::Skipped { .. }) {
            self.not_compared += 1;
            return;
        }
        self.comparisons += 1;
        self.total_leaves += c.total_leaves;
        let matched = c.verdict == Verdict::Match;
        for (name, n) in &c.forgiven {
            if let Some(&i) = self.index.get(name) {
                self.tallies[i].forgiven += u64::from(*n);
                if matched && *n > 0 {
                    self.tallies[i].changed += 1;
                }
            }
        }
        for (name, n) in &c.hidden_leaves {
            if let Some(&i) = self.index.get(name) {
                self.tallies[i].hidden += n;
            }
        }
    }

    /// The report; `today` decides which rules have expired (no clock is read here).
    pub fn report(&self, today: NaiveDate) -> AuditReport {
        let rules = self
            .rules
            .rules()
            .iter()
            .zip(&self.tallies)
            .map(|(r, t)| RuleReport {
                name: r.name.clone(),
                kind: r.kind.table().to_owned(),
                owner: r.owner.clone(),
                expires: r.expires,
                comparisons_changed: t.changed,
                diffs_forgiven: t.forgiven,
                hidden_share: if self.total_leaves == 0 {
                    0.0
                } else {
                    t.hidden as f64 / self.total_leaves as f64
                },
            })
            .collect::<Vec<_>>();
        let mut warnings = self.rules.expired(today);
        if self.comparisons > 0 {
            for (r, t) in self.rules.rules().iter().zip(&self.tallies) {
                if t.forgiven == 0 && t.hidden == 0 {
                    warnings.push(RuleWarning {
                        rule: r.name.clone(),
                        location: format!("{}:{}", self.rules.file(), r.line),
                        owner: r.owner.clone(),
                        message: format!(
                            "rule changed nothing in {} comparisons; remove it or check its paths",
                            self.comparisons
                        ),
                    });
                }
            }
        }
        AuditReport {
            file: self.rules.file().to_owned(),
            comparisons: self.comparisons,
            not_compared: self.not_compared,
            rules,
            warnings,
        }
    }
}
