//! The validated, ready-to-match form of a rule file.

use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;

use super::error::{RuleError, RuleErrors};
use super::path::PathPattern;
use crate::normalize::{NumberRule, StringRule, TimestampRule, ValueMap};

/// How an array is matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArrayMatch {
    /// Element by element; a pure reordering is reported once as `order_only`.
    Ordered,
    /// As a multiset: elements are paired with equal elements wherever they are.
    Set,
    /// Elements paired by the value at this JSON pointer, relative to the element.
    Key(String),
}

/// A legacy path whose value now lives at another path.
#[derive(Debug, Clone)]
pub struct Rename {
    /// Where the legacy answer has it.
    pub legacy: PathPattern,
    /// Where the new answer has it.
    pub candidate: PathPattern,
}

/// What a rule does.
#[derive(Debug, Clone)]
pub enum RuleKind {
    /// Hide differences at these paths.
    Ignore,
    /// Compare only these paths.
    Owned,
    /// Match arrays this way.
    Array(ArrayMatch),
    /// Number equivalence.
    Number(NumberRule),
    /// Timestamp equivalence.
    Timestamp(TimestampRule),
    /// `null` equals an absent key.
    NullMissing,
    /// String normalisation.
    String(StringRule),
    /// Semantic value map.
    ValueMap(ValueMap),
    /// Field rename.
    Rename(Rename),
}

impl RuleKind {
    /// The table name of this kind in a rule file.
    pub fn table(&self) -> &'static str {
        match self {
            RuleKind::Ignore => "ignore",
            RuleKind::Owned => "owned",
            RuleKind::Array(_) => "array",
            RuleKind::Number(_) => "number",
            RuleKind::Timestamp(_) => "timestamp",
            RuleKind::NullMissing => "null_missing",
            RuleKind::String(_) => "string",
            RuleKind::ValueMap(_) => "value_map",
            RuleKind::Rename(_) => "rename",
        }
    }
}

/// One rule with its bookkeeping.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name within the file.
    pub name: String,
    /// What it does.
    pub kind: RuleKind,
    /// Path patterns it applies to (for a rename: the legacy path).
    pub paths: Vec<PathPattern>,
    /// Who answers for it.
    pub owner: Option<String>,
    /// After this date the audit warns.
    pub expires: Option<NaiveDate>,
    /// Why it exists.
    pub reason: Option<String>,
    /// Line of its table in the file.
    pub line: usize,
}

/// A warning about a rule, for the audit report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleWarning {
    /// Rule name.
    pub rule: String,
    /// Rule file and line, `file:line`.
    pub location: String,
    /// Owner to notify, if known.
    pub owner: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

/// Every rule for one capability, validated and compiled.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub(crate) file: String,
    pub(crate) capability: Option<String>,
    pub(crate) compare_status: bool,
    pub(crate) headers: Vec<String>,
    pub(crate) numbers_strict: bool,
    pub(crate) freshness: Option<PathPattern>,
    pub(crate) rules: Vec<Rule>,
    /// Every matchable pattern, in rule order; `pattern_rule[i]` is its rule index.
    pub(crate) patterns: Vec<PathPattern>,
    pub(crate) pattern_rule: Vec<usize>,
    pub(crate) owned_rule: Option<usize>,
    pub(crate) renames: Vec<usize>,
}

impl Default for RuleSet {
    fn default() -> Self {
        Self::empty()
    }
}

impl RuleSet {
    /// No rules: plain structural comparison of status and body.
    pub fn empty() -> RuleSet {
        RuleSet {
            file: "<none>".to_owned(),
            capability: None,
            compare_status: true,
            headers: Vec::new(),
            numbers_strict: false,
            freshness: None,
            rules: Vec::new(),
            patterns: Vec::new(),
            pattern_rule: Vec::new(),
            owned_rule: None,
            renames: Vec::new(),
        }
    }

    /// Parses and validates rule-file text; `file` names it in errors.
    pub fn parse(source: &str, file: &str) -> Result<RuleSet, RuleErrors> {
        super::parse::parse(source, file)
    }

    /// Reads and parses a rule file.
    pub fn load(path: &Path) -> Result<RuleSet, RuleErrors> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| RuleErrors {
            errors: vec![RuleError::Read {
                file: file.clone(),
                message: e.to_string(),
            }],
        })?;
        Self::parse(&source, &file)
    }

    /// The capability named in the file.
    pub fn capability(&self) -> Option<&str> {
        self.capability.as_deref()
    }

    /// The file the rules came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The rules in file order (kinds grouped as parsed).
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Lowercased header names that are compared.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Rules whose `expires` date lies before `today`.
    pub fn expired(&self, today: NaiveDate) -> Vec<RuleWarning> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let expires = rule.expires?;
                (expires < today).then(|| RuleWarning {
                    rule: rule.name.clone(),
                    location: format!("{}:{}", self.file, rule.line),
                    owner: rule.owner.clone(),
                    message: format!(
                        "rule expired on {expires}; remove it if the new read path is fixed, or extend `expires` with a reason"
                    ),
                })
            })
            .collect()
    }
}
