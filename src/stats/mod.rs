//! Per-element statistics of small numeric fields, gathered while an episode is recorded,
//! stored with it in the index (`episode_stats`, schema/index.md) and combined for any subset
//! of episodes without reading a frame ([`Snapshot::stats`](crate::Snapshot::stats)).
//!
//! Per element: count, mean and `M2` (sum of squared deviations), min, max and non-finite
//! count, and a [`Sketch`] of the values for quantiles. Moments combine exactly (Chan, Golub
//! and LeVeque's parallel formula); quantiles within [`RELATIVE_ACCURACY`]. Non-finite values
//! (NaN, infinities) are counted apart and enter nothing else.

mod accumulate;
mod record;
mod sketch;

pub(crate) use accumulate::EpisodeStatsBuilder;
pub use record::EpisodeStatsV1;
pub use sketch::{MIN_INDEXED, RELATIVE_ACCURACY, Sketch};

use crate::dtype::DType;
use crate::ids::EpisodeId;

/// Fields with more elements per value than this get no statistics (images, large vectors).
///
/// Why 64: an element's statistics take 40-60 bytes of moments plus about 2 bytes per sketch
/// bucket in the index, and a continuous value spread over two decades fills some 230
/// buckets; at 64 elements an episode's statistics stay within a few tens of KB at worst (the
/// episode record itself is a few hundred bytes), and 64 covers proprioceptive observations,
/// actions, rewards and flags of common benchmarks (MuJoCo locomotion except Humanoid,
/// Atari's scalar fields, CartPole-like control).
pub const MAX_STATS_ELEMENTS: usize = 64;

/// The reported quantiles, by name.
pub const QUANTILES: [(&str, f64); 9] = [
    ("q01", 0.01),
    ("q05", 0.05),
    ("q10", 0.10),
    ("q25", 0.25),
    ("q50", 0.50),
    ("q75", 0.75),
    ("q90", 0.90),
    ("q95", 0.95),
    ("q99", 0.99),
];

/// Whether a field of this element count gets statistics (every dtype is numeric; bools count
/// as 0 and 1).
pub fn has_stats(elements: usize) -> bool {
    (1..=MAX_STATS_ELEMENTS).contains(&elements)
}

/// The mergeable statistics of one element.
#[derive(Clone, Debug, PartialEq)]
pub struct ElementStats {
    /// Finite values.
    pub count: u64,
    pub mean: f64,
    /// Sum of squared deviations from the mean.
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    /// NaN and infinite values (in no other figure).
    pub non_finite: u64,
    pub sketch: Sketch,
}

impl Default for ElementStats {
    fn default() -> Self {
        ElementStats {
            count: 0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            non_finite: 0,
            sketch: Sketch::default(),
        }
    }
}

impl ElementStats {
    /// Adds another element's statistics (Chan et al.'s pairwise update for the moments).
    pub fn merge(&mut self, other: &ElementStats) {
        self.merge_moments(other.count, other.mean, other.m2, other.min, other.max);
        self.non_finite += other.non_finite;
        self.sketch.merge(&other.sketch);
    }

    pub(crate) fn merge_moments(&mut self, count: u64, mean: f64, m2: f64, min: f64, max: f64) {
        if count == 0 {
            return;
        }
        if self.count == 0 {
            (self.count, self.mean, self.m2) = (count, mean, m2);
        } else {
            let (na, nb) = (self.count as f64, count as f64);
            let n = na + nb;
            let delta = mean - self.mean;
            self.mean += delta * (nb / n);
            self.m2 += m2 + delta * delta * (na * nb / n);
            self.count += count;
        }
        self.min = self.min.min(min);
        self.max = self.max.max(max);
    }

    /// Population standard deviation (numpy's default, `ddof=0`).
    pub fn std(&self) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        (self.m2.max(0.0) / self.count as f64).sqrt()
    }

    /// The figures reported for this element; `dtype` is its field's (integer and bool
    /// fields get exact quantiles where a sketch bucket can hold only one integer).
    pub fn summary(&self, dtype: DType) -> ElementSummary {
        let qs: Vec<f64> = QUANTILES.iter().map(|(_, q)| *q).collect();
        let integers = !matches!(dtype, DType::F16 | DType::F32 | DType::F64);
        let estimates = self.sketch.quantiles(&qs, integers);
        let mut quantiles = [f64::NAN; 9];
        for (slot, estimate) in quantiles.iter_mut().zip(estimates) {
            // The true order statistic lies within [min, max]: clamping only brings the
            // estimate closer to it.
            *slot = estimate.map_or(f64::NAN, |v| v.clamp(self.min, self.max));
        }
        let empty = self.count == 0;
        ElementSummary {
            count: self.count,
            mean: if empty { f64::NAN } else { self.mean },
            std: self.std(),
            min: if empty { f64::NAN } else { self.min },
            max: if empty { f64::NAN } else { self.max },
            non_finite: self.non_finite,
            quantiles,
        }
    }
}

/// What is reported for one element of a field, over a set of episodes. Figures of an element
/// without finite values are NaN.
#[derive(Clone, Debug, PartialEq)]
pub struct ElementSummary {
    /// Finite values.
    pub count: u64,
    pub mean: f64,
    /// Population standard deviation (`ddof=0`).
    pub std: f64,
    pub min: f64,
    pub max: f64,
    /// NaN and infinite values, left out of every other figure.
    pub non_finite: u64,
    /// Estimates for [`QUANTILES`], in order: each within [`RELATIVE_ACCURACY`] of the order
    /// statistic of rank `floor(q (count - 1))` (numpy's `method="lower"`).
    pub quantiles: [f64; 9],
}

/// Statistics of one field over the episodes that have it (fields are told apart by name,
/// dtype and shape).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldSummary {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    /// Episodes whose values are included.
    pub episodes: u64,
    /// One per element, in row-major order.
    pub elements: Vec<ElementSummary>,
}

/// The result of [`Snapshot::stats`](crate::Snapshot::stats).
#[derive(Clone, Debug, PartialEq)]
pub struct StoreStats {
    /// Episodes selected.
    pub episodes: u64,
    pub fields: Vec<FieldSummary>,
    /// Selected episodes without stored statistics (recorded by an older build, or restored
    /// by `repair`) that are *not* included: never guessed.
    pub missing: Vec<EpisodeId>,
    /// Selected episodes without stored statistics whose statistics were computed from their
    /// frames (`compute_missing`) and are included.
    pub computed: Vec<EpisodeId>,
}

#[cfg(test)]
mod tests;
