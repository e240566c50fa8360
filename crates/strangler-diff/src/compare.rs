//! The structural walk: compares two JSON documents under a rule set.
//!
//! Every rule path is advanced one segment at a time alongside the walk (see `rules::path`), so
//! finding the rules that apply at a node costs a few bit operations per pattern. Besides the
//! differences, the walk records which rule forgave how many would-be differences and how many
//! leaf values each rule hid; the audit is built from those counts.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::difference::{DiffKind, Difference};
use crate::normalize::{Num, leaves, plain_equal, type_name};
use crate::rules::path::{PathSeg, push_pointer};
use crate::rules::{ArrayMatch, RuleKind, RuleSet};

/// Arrays longer than this are not searched for a pure reordering (the search is quadratic).
const ORDER_SEARCH_MAX: usize = 512;

/// Differences plus the per-rule bookkeeping of one JSON comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonReport {
    /// What differs after the rules.
    pub differences: Vec<Difference>,
    /// Per rule (index into `RuleSet::rules`): would-be differences it forgave.
    pub forgiven: Vec<u32>,
    /// Per rule: leaf values it hid from comparison.
    pub hidden: Vec<u64>,
    /// Leaf values seen in the union of both documents.
    pub total_leaves: u64,
}

/// Compares two JSON documents under `rules`; used row by row by reconciliation.
pub fn compare_json(legacy: &Value, candidate: &Value, rules: &RuleSet) -> Vec<Difference> {
    compare_json_report(legacy, candidate, rules).differences
}

/// Like [`compare_json`], with per-rule forgiveness and hidden-leaf counts.
pub fn compare_json_report(legacy: &Value, candidate: &Value, rules: &RuleSet) -> JsonReport {
    report(Cow::Borrowed(legacy), candidate, rules)
}

/// The walk itself; an owned legacy document spares renames a deep copy.
pub(crate) fn report(legacy: Cow<'_, Value>, candidate: &Value, rules: &RuleSet) -> JsonReport {
    let mut forgiven = vec![0u32; rules.rules.len()];
    let legacy: Cow<'_, Value> = if rules.renames.is_empty() {
        legacy
    } else {
        let owned = legacy.into_owned();
        Cow::Owned(crate::rename::apply(owned, candidate, rules, &mut forgiven))
    };
    let mut walker = Walker::new(rules, forgiven);
    walker.visit(&legacy, candidate, false);
    JsonReport {
        differences: walker.diffs,
        forgiven: walker.forgiven,
        hidden: walker.hidden,
        total_leaves: walker.total,
    }
}

/// The rules that apply at one node.
#[derive(Debug, Default, Clone, Copy)]
struct Node {
    ignore: Option<usize>,
    owned: bool,
    owned_alive: bool,
    array: Option<usize>,
    null_missing: Option<usize>,
    number: Option<usize>,
    timestamp: Option<usize>,
    string: Option<usize>,
    value_map: Option<usize>,
}

/// Which `Node` field a pattern feeds; precomputed so the walk avoids rule lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ignore,
    Owned,
    Array,
    NullMissing,
    Number,
    Timestamp,
    String,
    ValueMap,
    None,
}

struct Walker<'r, 'v> {
    rules: &'r RuleSet,
    width: usize,
    slots: Vec<Slot>,
    states: Vec<u64>,
    nodes: Vec<Node>,
    segs: Vec<PathSeg<'v>>,
    diffs: Vec<Difference>,
    forgiven: Vec<u32>,
    hidden: Vec<u64>,
    total: u64,
    probe: bool,
    found: bool,
}

impl<'r, 'v> Walker<'r, 'v> {
    fn new(rules: &'r RuleSet, forgiven: Vec<u32>) -> Self {
        let width = rules.patterns.len();
        let slots = rules
            .pattern_rule
            .iter()
            .map(|&r| match rules.rules[r].kind {
                RuleKind::Ignore => Slot::Ignore,
                RuleKind::Owned => Slot::Owned,
                RuleKind::Array(_) => Slot::Array,
                RuleKind::NullMissing => Slot::NullMissing,
                RuleKind::Number(_) => Slot::Number,
                RuleKind::Timestamp(_) => Slot::Timestamp,
                RuleKind::String(_) => Slot::String,
                RuleKind::ValueMap(_) => Slot::ValueMap,
                RuleKind::Rename(_) => Slot::None,
            })
            .collect();
        let mut states = Vec::with_capacity(width * 16);
        states.extend(rules.patterns.iter().map(|p| p.start()));
        let mut walker = Walker {
            rules,
            width,
            slots,
            states,
            nodes: Vec::with_capacity(16),
            segs: Vec::with_capacity(16),
            diffs: Vec::new(),
            hidden: vec![0; rules.rules.len()],
            forgiven,
            total: 0,
            probe: false,
            found: false,
        };
        let root = walker.summarize(0);
        walker.nodes.push(root);
        walker
    }

    fn enter(&mut self, seg: PathSeg<'v>) {
        let base = self.states.len() - self.width;
        for i in 0..self.width {
            let next = self.rules.patterns[i].step(self.states[base + i], seg);
            self.states.push(next);
        }
        let node = self.summarize(base + self.width);
        self.nodes.push(node);
        self.segs.push(seg);
    }

    fn leave(&mut self) {
        self.states.truncate(self.states.len() - self.width);
        self.nodes.pop();
        self.segs.pop();
    }

    fn node(&self) -> Node {
        self.nodes.last().copied().unwrap_or_default()
    }

    /// The rules that apply given the automaton states starting at `base`.
    fn summarize(&self, base: usize) -> Node {
        let mut n = Node::default();
        let states = &self.states[base..base + self.width];
        for (i, &state) in states.iter().enumerate() {
            if state == 0 {
                continue;
            }
            let slot = self.slots[i];
            if slot == Slot::Owned {
                n.owned_alive = true;
            }
            if !self.rules.patterns[i].accepts(state) {
                continue;
            }
            let rule = self.rules.pattern_rule[i];
            let field = match slot {
                Slot::Ignore => &mut n.ignore,
                Slot::Owned => {
                    n.owned = true;
                    continue;
                }
                Slot::Array => &mut n.array,
                Slot::NullMissing => &mut n.null_missing,
                Slot::Number => &mut n.number,
                Slot::Timestamp => &mut n.timestamp,
                Slot::String => &mut n.string,
                Slot::ValueMap => &mut n.value_map,
                Slot::None => continue,
            };
            field.get_or_insert(rule);
        }
        n
    }

    fn pointer(&self) -> String {
        let mut s = String::new();
        for seg in &self.segs {
            push_pointer(&mut s, *seg);
        }
        s
    }

    fn report(&mut self, kind: DiffKind, legacy: Option<&Value>, candidate: Option<&Value>) {
        if self.probe {
            self.found = true;
            return;
        }
        self.diffs.push(Difference {
            path: self.pointer(),
            kind,
            legacy: legacy.cloned(),
            candidate: candidate.cloned(),
        });
    }

    fn forgive(&mut self, rule: usize) {
        if !self.probe {
            self.forgiven[rule] += 1;
        }
    }

    /// A subtree a rule keeps out of the comparison.
    fn hide(&mut self, rule: usize, legacy: Option<&Value>, candidate: Option<&Value>) {
        if self.probe {
            return;
        }
        let n = legacy.map_or(0, leaves).max(candidate.map_or(0, leaves));
        self.hidden[rule] += n;
        self.total += n;
        let differs = match (legacy, candidate) {
            (Some(a), Some(b)) => !plain_equal(a, b, self.rules.numbers_strict),
            _ => true,
        };
        if differs {
            self.forgiven[rule] += 1;
        }
    }

    fn owned_here(&self, owned_in: bool, n: &Node) -> bool {
        owned_in || n.owned || self.rules.owned_rule.is_none()
    }

    fn visit(&mut self, l: &'v Value, c: &'v Value, owned_in: bool) {
        let n = self.node();
        if let Some(rule) = n.ignore {
            self.hide(rule, Some(l), Some(c));
            return;
        }
        let owned = self.owned_here(owned_in, &n);
        if !owned {
            let same_container = matches!(
                (l, c),
                (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_))
            );
            if !(n.owned_alive && same_container) {
                if let Some(rule) = self.rules.owned_rule {
                    self.hide(rule, Some(l), Some(c));
                }
                return;
            }
        }
        match (l, c) {
            (Value::Object(lm), Value::Object(cm)) => self.visit_object(lm, cm, owned),
            (Value::Array(la), Value::Array(ca)) => self.visit_array(la, ca, owned, n.array),
            _ => self.visit_leaf(l, c, &n),
        }
    }

    fn visit_object(
        &mut self,
        lm: &'v Map<String, Value>,
        cm: &'v Map<String, Value>,
        owned: bool,
    ) {
        let mut common = 0;
        for (k, lv) in lm {
            self.enter(PathSeg::Key(k));
            match cm.get(k) {
                Some(cv) => {
                    common += 1;
                    self.visit(lv, cv, owned);
                }
                None => self.one_sided(Some(lv), None, owned),
            }
            self.leave();
            if self.probe && self.found {
                return;
            }
        }
        if common == cm.len() {
            return;
        }
        for (k, cv) in cm {
            if lm.contains_key(k) {
                continue;
            }
            self.enter(PathSeg::Key(k));
            self.one_sided(None, Some(cv), owned);
            self.leave();
            if self.probe && self.found {
                return;
            }
        }
    }

    /// A key or element present on one side only.
    fn one_sided(&mut self, l: Option<&'v Value>, c: Option<&'v Value>, owned_in: bool) {
        let n = self.node();
        if let Some(rule) = n.ignore {
            self.hide(rule, l, c);
            return;
        }
        if !self.owned_here(owned_in, &n) && !n.owned_alive {
            if let Some(rule) = self.rules.owned_rule {
                self.hide(rule, l, c);
            }
            return;
        }
        let Some(present) = l.or(c) else { return };
        if present.is_null()
            && let Some(rule) = n.null_missing
        {
            self.forgive(rule);
            if !self.probe {
                self.total += 1;
            }
            return;
        }
        if !self.probe {
            self.total += leaves(present);
        }
        let kind = if l.is_some() {
            DiffKind::Missing
        } else {
            DiffKind::Extra
        };
        self.report(kind, l, c);
    }

    fn visit_leaf(&mut self, l: &'v Value, c: &'v Value, n: &Node) {
        let strict = self.rules.numbers_strict;
        if !self.probe {
            self.total += leaves(l).max(leaves(c));
        }
        if plain_equal(l, c, strict) {
            return;
        }
        let mut used = [None; 4];
        let mut lv: Cow<'_, Value> = Cow::Borrowed(l);
        let kinds = &self.rules.rules;
        if let Some(rule) = n.value_map
            && let RuleKind::ValueMap(map) = &kinds[rule].kind
            && let Some(mapped) = map.lookup(l)
        {
            used[0] = Some(rule);
            lv = Cow::Borrowed(mapped);
            if plain_equal(&lv, c, strict) {
                return self.credit(&used);
            }
        }
        if let Some(rule) = n.string
            && let (RuleKind::String(s), Some(a), Some(b)) =
                (&kinds[rule].kind, lv.as_str(), c.as_str())
            && s.normalize_str(a) == s.normalize_str(b)
        {
            used[1] = Some(rule);
            return self.credit(&used);
        }
        if let Some(rule) = n.number
            && let RuleKind::Number(num) = &kinds[rule].kind
            && num.equivalent(&lv, c)
        {
            used[2] = Some(rule);
            return self.credit(&used);
        }
        if let Some(rule) = n.timestamp
            && let RuleKind::Timestamp(ts) = &kinds[rule].kind
            && ts.equivalent(&lv, c)
        {
            used[3] = Some(rule);
            return self.credit(&used);
        }
        let kind = if type_name(l, strict) == type_name(c, strict) {
            DiffKind::Value
        } else {
            DiffKind::Type
        };
        self.report(kind, Some(l), Some(c));
    }

    fn credit(&mut self, used: &[Option<usize>; 4]) {
        for rule in used.iter().flatten() {
            self.forgive(*rule);
        }
    }

    fn visit_array(&mut self, la: &'v [Value], ca: &'v [Value], owned: bool, rule: Option<usize>) {
        let mode = rule.and_then(|r| match &self.rules.rules[r].kind {
            RuleKind::Array(m) => Some((r, m)),
            _ => None,
        });
        match mode {
            None | Some((_, ArrayMatch::Ordered)) => self.array_ordered(la, ca, owned),
            Some((r, ArrayMatch::Set)) => self.array_unordered(la, ca, owned, r, None),
            Some((r, ArrayMatch::Key(key))) => self.array_unordered(la, ca, owned, r, Some(key)),
        }
    }

    fn array_ordered(&mut self, la: &'v [Value], ca: &'v [Value], owned: bool) {
        let start = self.diffs.len();
        let snapshot =
            (!self.probe && la.len() == ca.len() && (2..=ORDER_SEARCH_MAX).contains(&la.len()))
                .then(|| (self.forgiven.clone(), self.hidden.clone(), self.total));
        for (i, (lv, cv)) in la.iter().zip(ca).enumerate() {
            self.enter(PathSeg::Index(i));
            self.visit(lv, cv, owned);
            self.leave();
            if self.probe && self.found {
                return;
            }
        }
        if la.len() != ca.len() {
            if !self.probe {
                let extra = if la.len() > ca.len() {
                    &la[ca.len()..]
                } else {
                    &ca[la.len()..]
                };
                self.total += extra.iter().map(leaves).sum::<u64>();
            }
            let (nl, nc) = (Value::from(la.len()), Value::from(ca.len()));
            self.report(DiffKind::ArrayLength, Some(&nl), Some(&nc));
            return;
        }
        let Some((forgiven, hidden, total)) = snapshot else {
            return;
        };
        if self.diffs.len() == start {
            return;
        }
        let all: Vec<usize> = (0..la.len()).collect();
        let (pairs, lost, gained) = self.pair_by_probe(la, ca, &all, &all, owned);
        if !lost.is_empty() || !gained.is_empty() {
            return;
        }
        // A pure reordering: replace the element differences by one order-only difference,
        // and recount the rule bookkeeping against the true pairs.
        self.diffs.truncate(start);
        (self.forgiven, self.hidden, self.total) = (forgiven, hidden, total);
        for (i, j) in pairs {
            self.enter(PathSeg::Index(i));
            self.visit(&la[i], &ca[j], owned);
            self.leave();
        }
        self.report(DiffKind::OrderOnly, None, None);
    }

    fn array_unordered(
        &mut self,
        la: &'v [Value],
        ca: &'v [Value],
        owned: bool,
        rule: usize,
        key: Option<&str>,
    ) {
        let mut pairs = Vec::new();
        let (mut lrest, mut crest) = (Vec::new(), Vec::new());
        if let Some(key) = key {
            // key -> first unpaired candidate index; `next` chains duplicates in order
            let mut head: HashMap<Key<'v>, usize> = HashMap::with_capacity(ca.len());
            let mut next = vec![usize::MAX; ca.len()];
            for (j, cv) in ca.iter().enumerate().rev() {
                match key_of(cv, key) {
                    Some(k) => {
                        if let Some(old) = head.insert(k, j) {
                            next[j] = old;
                        }
                    }
                    None => crest.push(j),
                }
            }
            for (i, lv) in la.iter().enumerate() {
                let paired = key_of(lv, key).and_then(|k| {
                    let slot = head.get_mut(&k)?;
                    let j = *slot;
                    if j == usize::MAX {
                        return None;
                    }
                    *slot = next[j];
                    Some(j)
                });
                match paired {
                    Some(j) => pairs.push((i, j)),
                    None => lrest.push(i),
                }
            }
            let next = &next;
            crest.extend(head.into_values().flat_map(|mut j| {
                std::iter::from_fn(move || {
                    (j != usize::MAX).then(|| {
                        let out = j;
                        j = next[j];
                        out
                    })
                })
            }));
            crest.sort_unstable();
            for &(i, j) in &pairs {
                self.enter(PathSeg::Index(i));
                self.visit(&la[i], &ca[j], owned);
                self.leave();
                if self.probe && self.found {
                    return;
                }
            }
        } else {
            lrest.extend(0..la.len());
            crest.extend(0..ca.len());
        }
        let (set_pairs, lost, gained) = self.pair_by_probe(la, ca, &lrest, &crest, owned);
        if !self.probe {
            // Probing counted nothing; walk the equal pairs again for the rule bookkeeping.
            for &(i, j) in &set_pairs {
                self.enter(PathSeg::Index(i));
                self.visit(&la[i], &ca[j], owned);
                self.leave();
            }
        }
        pairs.extend(set_pairs);
        if pairs.iter().any(|(i, j)| i != j) {
            self.forgive(rule);
        }
        for i in lost {
            self.enter(PathSeg::Index(i));
            self.one_sided(Some(&la[i]), None, owned);
            self.leave();
            if self.probe && self.found {
                return;
            }
        }
        for j in gained {
            self.enter(PathSeg::Index(j));
            self.one_sided(None, Some(&ca[j]), owned);
            self.leave();
            if self.probe && self.found {
                return;
            }
        }
    }

    /// Pairs elements that compare equal under the rules; returns pairs and the leftovers.
    #[allow(clippy::type_complexity)]
    fn pair_by_probe(
        &mut self,
        la: &'v [Value],
        ca: &'v [Value],
        lidx: &[usize],
        cidx: &[usize],
        owned: bool,
    ) -> (Vec<(usize, usize)>, Vec<usize>, Vec<usize>) {
        let mut used = vec![false; cidx.len()];
        let mut pairs = Vec::new();
        let mut lost = Vec::new();
        for &i in lidx {
            self.enter(PathSeg::Index(i));
            // Same position first: the common case is an unchanged order.
            let diagonal = cidx.binary_search(&i).ok().filter(|&k| !used[k]);
            let found = diagonal
                .filter(|&k| self.probe_equal(&la[i], &ca[cidx[k]], owned))
                .or_else(|| {
                    (0..cidx.len()).find(|&k| {
                        !used[k]
                            && Some(k) != diagonal
                            && self.probe_equal(&la[i], &ca[cidx[k]], owned)
                    })
                });
            self.leave();
            match found {
                Some(k) => {
                    used[k] = true;
                    pairs.push((i, cidx[k]));
                }
                None => lost.push(i),
            }
        }
        let gained = cidx
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(j, _)| *j)
            .collect();
        (pairs, lost, gained)
    }

    fn probe_equal(&mut self, l: &'v Value, c: &'v Value, owned: bool) -> bool {
        let saved = (self.probe, self.found);
        self.probe = true;
        self.found = false;
        self.visit(l, c, owned);
        let equal = !self.found;
        (self.probe, self.found) = saved;
        equal
    }
}

/// An element's key, compared so that `1` and `1.0` pair up.
#[derive(Debug, PartialEq, Eq, Hash)]
enum Key<'v> {
    Text(&'v str),
    Int(i128),
    Float(u64),
    Other(String),
}

/// The key of an element; `None` when absent or null.
fn key_of<'v>(element: &'v Value, pointer: &str) -> Option<Key<'v>> {
    let field = match pointer.strip_prefix('/') {
        Some(name) if !name.contains(['/', '~']) => element.as_object()?.get(name)?,
        _ => element.pointer(pointer)?,
    };
    Some(match field {
        Value::Null => return None,
        Value::String(s) => Key::Text(s),
        Value::Number(n) => match Num::of(n) {
            Num::Int(i) => Key::Int(i),
            Num::Float(f) if f.fract() == 0.0 && f.abs() < 1e18 => Key::Int(f as i128),
            Num::Float(f) => Key::Float(f.to_bits()),
        },
        other => Key::Other(other.to_string()),
    })
}
