//! Noise estimation from A/A pairs: the legacy asked twice.
//!
//! Some fields differ between two calls to the *same* system (timestamps of the response,
//! request ids, racing counters). Feeding A/A comparisons teaches each path's flake rate; an A/B
//! difference on a path is reported as real only when its rate beats the A/A rate by both a
//! relative and an absolute margin, as Twitter's Diffy does (defaults 20 % and 0.03 %). Diffy
//! counts both on the same requests; here A/A and A/B samples may differ in size, so the margins
//! compare rates:
//!
//! * absolute = `ab_rate - aa_rate` (must exceed 0.0003, i.e. 0.03 percentage points)
//! * relative = `(ab_rate - aa_rate) / (ab_rate + aa_rate)` (must exceed 0.20)

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::difference::Difference;
use crate::fingerprint::normalize_path;

/// Margins an A/B rate must beat the A/A rate by.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseThresholds {
    /// Minimum `(ab - aa) / (ab + aa)`; Diffy's default 20 % is 0.20.
    pub relative: f64,
    /// Minimum `ab - aa` as a fraction of comparisons; Diffy's default 0.03 % is 0.0003.
    pub absolute: f64,
}

impl Default for NoiseThresholds {
    fn default() -> Self {
        // Diffy's `--threshold.relative=20` and `--threshold.absolute=0.03` (both percents).
        NoiseThresholds {
            relative: 0.20,
            absolute: 0.0003,
        }
    }
}

/// Per-path counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCounts {
    /// A/A comparisons in which the path differed.
    pub aa: u64,
    /// A/B comparisons in which the path differed.
    pub ab: u64,
}

/// Learnt flake rates; serialisable so the proxy can persist it between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseModel {
    /// A/A comparisons observed.
    pub aa_total: u64,
    /// A/B comparisons observed.
    pub ab_total: u64,
    /// Counts per normalised path (array indices as `*`).
    pub paths: BTreeMap<String, PathCounts>,
}

/// One path's rates and the decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PathNoise {
    /// Normalised path.
    pub path: String,
    /// Share of A/A comparisons where it differed.
    pub aa_rate: f64,
    /// Share of A/B comparisons where it differed.
    pub ab_rate: f64,
    /// True when the A/B rate beats the noise by both margins.
    pub real: bool,
}

fn distinct_paths(diffs: &[Difference]) -> BTreeSet<String> {
    diffs.iter().map(|d| normalize_path(&d.path)).collect()
}

fn rate(n: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        n as f64 / total as f64
    }
}

impl NoiseModel {
    /// An empty model.
    pub fn new() -> NoiseModel {
        NoiseModel::default()
    }

    /// Records one A/A comparison (legacy against legacy) and its differences.
    pub fn observe_aa(&mut self, diffs: &[Difference]) {
        self.aa_total += 1;
        for p in distinct_paths(diffs) {
            self.paths.entry(p).or_default().aa += 1;
        }
    }

    /// Records one A/B comparison (legacy against candidate) and its differences.
    pub fn observe_ab(&mut self, diffs: &[Difference]) {
        self.ab_total += 1;
        for p in distinct_paths(diffs) {
            self.paths.entry(p).or_default().ab += 1;
        }
    }

    /// A/A and A/B rates of a path (normalised or not).
    pub fn rates(&self, path: &str) -> (f64, f64) {
        let counts = self
            .paths
            .get(&normalize_path(path))
            .copied()
            .unwrap_or_default();
        (
            rate(counts.aa, self.aa_total),
            rate(counts.ab, self.ab_total),
        )
    }

    /// True when differences on `path` beat the A/A noise by both margins.
    pub fn is_real(&self, path: &str, t: &NoiseThresholds) -> bool {
        let (aa, ab) = self.rates(path);
        let excess = ab - aa;
        excess > 0.0 && excess > t.absolute && excess / (ab + aa) > t.relative
    }

    /// The differences of one A/B comparison that are not explained by noise.
    pub fn real_differences<'d>(
        &self,
        diffs: &'d [Difference],
        t: &NoiseThresholds,
    ) -> Vec<&'d Difference> {
        diffs.iter().filter(|d| self.is_real(&d.path, t)).collect()
    }

    /// Every known path with its rates and decision, noisiest A/B first.
    pub fn report(&self, t: &NoiseThresholds) -> Vec<PathNoise> {
        let mut out: Vec<PathNoise> = self
            .paths
            .keys()
            .map(|p| {
                let (aa_rate, ab_rate) = self.rates(p);
                PathNoise {
                    path: p.clone(),
                    aa_rate,
                    ab_rate,
                    real: self.is_real(p, t),
                }
            })
            .collect();
        out.sort_by(|a, b| {
            b.ab_rate
                .total_cmp(&a.ab_rate)
                .then_with(|| a.path.cmp(&b.path))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::difference::DiffKind;

    fn diff(path: &str) -> Difference {
        Difference {
            path: path.into(),
            kind: DiffKind::Value,
            legacy: Some(json!(1)),
            candidate: Some(json!(2)),
        }
    }

    #[test]
    fn flaky_paths_are_noise_and_new_ones_are_real() {
        let mut m = NoiseModel::new();
        // `/served_at` flakes in every A/A pair; `/items/0/price` never does.
        for _ in 0..100 {
            m.observe_aa(&[diff("/served_at")]);
        }
        for i in 0..100 {
            let mut d = vec![diff("/served_at")];
            if i % 10 == 0 {
                d.push(diff(&format!("/items/{}/price", i % 3)));
            }
            m.observe_ab(&d);
        }
        let t = NoiseThresholds::default();
        assert!(!m.is_real("/served_at", &t), "same rate as A/A is noise");
        assert!(
            m.is_real("/items/2/price", &t),
            "10% A/B against 0% A/A is real"
        );
        assert_eq!(m.rates("/items/0/price"), (0.0, 0.1));
        let seen = [diff("/served_at"), diff("/items/5/price")];
        let real = m.real_differences(&seen, &t);
        assert_eq!(real.len(), 1);
        assert_eq!(real[0].path, "/items/5/price");
    }

    #[test]
    fn margins_are_both_required() {
        let mut m = NoiseModel::new();
        for i in 0..1000 {
            m.observe_aa(&if i < 100 { vec![diff("/a")] } else { vec![] });
            // 11% against 10%: absolute margin met, relative (1/21 < 0.2) not.
            m.observe_ab(&if i < 110 { vec![diff("/a")] } else { vec![] });
        }
        let t = NoiseThresholds::default();
        assert!(!m.is_real("/a", &t));
        let loose = NoiseThresholds {
            relative: 0.01,
            absolute: 0.0003,
        };
        assert!(m.is_real("/a", &loose));
        let strict_abs = NoiseThresholds {
            relative: 0.01,
            absolute: 0.02,
        };
        assert!(!m.is_real("/a", &strict_abs));
    }

    #[test]
    fn model_round_trips_through_json() {
        let mut m = NoiseModel::new();
        m.observe_aa(&[diff("/x/3")]);
        m.observe_ab(&[diff("/x/4"), diff("/y")]);
        let text = serde_json::to_string(&m).unwrap();
        let back: NoiseModel = serde_json::from_str(&text).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.paths["/x/*"], PathCounts { aa: 1, ab: 1 });
    }
}
