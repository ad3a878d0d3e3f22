//! The stored form of an episode's statistics (`episode_stats`, schema/index.md): postcard,
//! field order is encoding order, never edited (a change adds an envelope variant).

use serde::{Deserialize, Serialize};

use super::ElementStats;
use super::sketch::Buckets;
#[cfg(test)]
use super::sketch::Sketch;

/// Statistics of one episode, version 1: one entry per field that has them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeStatsV1 {
    pub fields: Vec<FieldStatsV1>,
}

/// One field's statistics, per element in row-major order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldStatsV1 {
    /// Position of the field in the episode's schema.
    pub field: u32,
    pub elements: Vec<ElementStatsV1>,
}

/// One element: moments over its finite values, and its sketch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ElementStatsV1 {
    pub count: u64,
    pub mean: f64,
    pub m2: f64,
    pub min: f64,
    pub max: f64,
    pub non_finite: u64,
    /// Values of magnitude below `MIN_INDEXED`.
    pub zeros: u64,
    /// Positive values: `(key delta, count)` in increasing key order; the first delta is from
    /// key 0, each next one from the previous key.
    pub positive: Vec<(i32, u64)>,
    /// Negative values by the key of their magnitude, coded like `positive`.
    pub negative: Vec<(i32, u64)>,
}

fn delta_encode(buckets: &Buckets) -> Vec<(i32, u64)> {
    let mut previous = 0i32;
    buckets
        .iter()
        .map(|(key, n)| {
            let delta = key.wrapping_sub(previous);
            previous = key;
            (delta, n)
        })
        .collect()
}

#[cfg(test)]
fn delta_decode(coded: &[(i32, u64)]) -> Buckets {
    let mut buckets = Buckets::default();
    let mut key = 0i32;
    for (delta, n) in coded {
        key = key.wrapping_add(*delta);
        buckets.add(key, *n);
    }
    buckets
}

impl ElementStatsV1 {
    pub(crate) fn from_stats(s: &ElementStats) -> Self {
        ElementStatsV1 {
            count: s.count,
            mean: s.mean,
            m2: s.m2,
            min: s.min,
            max: s.max,
            non_finite: s.non_finite,
            zeros: s.sketch.zeros,
            positive: delta_encode(&s.sketch.positive),
            negative: delta_encode(&s.sketch.negative),
        }
    }

    /// Adds these statistics to `total` without building a sketch of their own.
    pub(crate) fn merge_into(&self, total: &mut ElementStats) {
        total.merge_moments(self.count, self.mean, self.m2, self.min, self.max);
        total.non_finite += self.non_finite;
        total.sketch.zeros += self.zeros;
        for (coded, buckets) in [
            (&self.positive, &mut total.sketch.positive),
            (&self.negative, &mut total.sketch.negative),
        ] {
            let mut key = 0i32;
            for (delta, n) in coded {
                key = key.wrapping_add(*delta);
                buckets.add(key, *n);
            }
        }
    }

    #[cfg(test)]
    pub fn to_stats(&self) -> ElementStats {
        ElementStats {
            count: self.count,
            mean: self.mean,
            m2: self.m2,
            min: self.min,
            max: self.max,
            non_finite: self.non_finite,
            sketch: Sketch {
                zeros: self.zeros,
                positive: delta_decode(&self.positive),
                negative: delta_decode(&self.negative),
            },
        }
    }
}
