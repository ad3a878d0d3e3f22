//! A mergeable quantile sketch with a relative-error guarantee (DDSketch, Masson, Rim and Lee,
//! VLDB 2019), with the cubically interpolated key mapping of Datadog's implementations.
//!
//! A finite value `v` with `|v| >= MIN_INDEXED` is counted in the bucket `key(|v|)` of its
//! sign's store; smaller magnitudes are counted as zeros. Every value of bucket `k` lies in
//! `[lower(k), lower(k + 1))` and `lower(k + 1) / lower(k) <= GAMMA`, so the bucket's
//! representative `2 lo hi / (lo + hi)` is within `RELATIVE_ACCURACY` (relative) of each of
//! them. Merging two sketches adds bucket counts: exact, associative and commutative, so the
//! sketch of a union does not depend on how it was split or in which order it was merged.
//!
//! The key mapping is part of the index format (schema/index.md, "episode_stats"): changing
//! any constant here changes the meaning of stored keys.

use std::collections::BTreeMap;

/// Relative accuracy `alpha` of every quantile estimate (1%).
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Magnitudes below this are counted as zeros (absolute error below it).
pub const MIN_INDEXED: f64 = 1e-12;

/// Coefficients of `P(t) = A t^3 + B t^2 + C t`, which approximates `log2(1 + t)` on
/// `[0, 1]` with `P(0) = 0` and `P(1) = 1`, so `log2_approx(s 2^e) = e + P(s - 1)` is
/// continuous and increasing (`P' > 0`: its discriminant is negative).
const A: f64 = 6.0 / 35.0;
const B: f64 = -3.0 / 5.0;
const C: f64 = 10.0 / 7.0;

/// The smallest slope of `log2_approx` against `ln v`: `min over t in [0, 1] of
/// (1 + t) P'(t) = (18 t^3 - 24 t^2 + 8 t + 50) / 35`, reached at `t = 0` and `t = 2/3`.
/// (The exact `log2` has slope `1 / ln 2 = 1.4427`: 1% more buckets than the exact mapping.)
const MIN_SLOPE: f64 = 10.0 / 7.0;

/// Keys per unit of `log2_approx`: `1 / (ln(gamma) * MIN_SLOPE)`, so a bucket spans at most
/// a factor `gamma = (1 + alpha) / (1 - alpha)` of magnitude.
fn multiplier() -> f64 {
    let gamma = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
    1.0 / (gamma.ln() * MIN_SLOPE)
}

/// `e + P(s - 1)` for `v = s 2^e` (`v` positive, normal and finite): a few integer and float
/// operations, no `ln`.
fn log2_approx(v: f64) -> f64 {
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1023;
    let significand = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let t = significand - 1.0;
    exponent as f64 + ((A * t + B) * t + C) * t
}

/// `x.floor() as i32` for `x` within the `i32` range (a key: a few thousand at most), without
/// the libm call `floor` is on baseline x86-64 (no rounding instruction before SSE4.1): this
/// runs for every recorded value.
#[inline]
fn floor_to_i32(x: f64) -> i32 {
    // `as` truncates toward zero: one too high for a negative non-integer.
    let t = x as i32;
    if f64::from(t) > x { t - 1 } else { t }
}

/// Inverse of [`log2_approx`].
fn exp2_approx(y: f64) -> f64 {
    let exponent = y.floor();
    let frac = y - exponent;
    // P is increasing on [0, 1]: bisect (query time only, a few thousand buckets at most).
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if ((A * mid + B) * mid + C) * mid < frac {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (1.0 + 0.5 * (lo + hi)) * 2f64.powi(exponent as i32)
}

/// Precomputed mapping constant (one multiply per value).
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyMapping {
    multiplier: f64,
}

impl Default for KeyMapping {
    fn default() -> Self {
        KeyMapping {
            multiplier: multiplier(),
        }
    }
}

impl KeyMapping {
    /// The bucket of a magnitude `>= MIN_INDEXED`.
    #[inline]
    pub fn key(&self, magnitude: f64) -> i32 {
        floor_to_i32(log2_approx(magnitude) * self.multiplier)
    }

    /// The smallest magnitude of bucket `key`.
    pub fn lower_bound(&self, key: i32) -> f64 {
        exp2_approx(f64::from(key) / self.multiplier)
    }

    /// The bucket's representative: within `RELATIVE_ACCURACY` of every magnitude in it.
    pub fn value(&self, key: i32) -> f64 {
        let lo = self.lower_bound(key);
        let hi = self.lower_bound(key + 1);
        2.0 * lo * hi / (lo + hi)
    }

    /// [`value`](Self::value), or the only integer the bucket can hold when its values are
    /// integers (bounds widened by rounding slack, so the integer is certain to be the value).
    fn representative(&self, key: i32, integers: bool) -> f64 {
        if integers {
            let lo = (self.lower_bound(key) * (1.0 - 1e-12)).ceil();
            let hi = (self.lower_bound(key + 1) * (1.0 + 1e-12)).floor();
            if lo == hi {
                return lo;
            }
        }
        self.value(key)
    }
}

/// Bucket counts of one sign, dense over the span of keys seen while it stays small, sparse
/// beyond (a field whose values span many orders of magnitude).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) enum Buckets {
    #[default]
    Empty,
    Dense {
        first: i32,
        counts: Vec<u64>,
    },
    Sparse(BTreeMap<i32, u64>),
}

/// Widest dense span (keys): 35 keys per octave, so about 35 orders of magnitude of 2.
const MAX_DENSE_SPAN: usize = 4096;

impl Buckets {
    #[inline]
    pub fn add(&mut self, key: i32, n: u64) {
        match self {
            Buckets::Dense { first, counts } => {
                let i = i64::from(key) - i64::from(*first);
                if i >= 0 && (i as usize) < counts.len() {
                    counts[i as usize] += n;
                    return;
                }
                self.grow_and_add(key, n);
            }
            Buckets::Empty => {
                *self = Buckets::Dense {
                    first: key,
                    counts: vec![n],
                }
            }
            Buckets::Sparse(map) => *map.entry(key).or_insert(0) += n,
        }
    }

    #[cold]
    fn grow_and_add(&mut self, key: i32, n: u64) {
        let Buckets::Dense { first, counts } = self else {
            unreachable!("only dense stores grow")
        };
        let lo = i64::from(key.min(*first));
        let hi = i64::from(key).max(i64::from(*first) + counts.len() as i64 - 1);
        let span = (hi - lo + 1) as usize;
        if span > MAX_DENSE_SPAN {
            let mut map: BTreeMap<i32, u64> = self.iter().collect();
            *map.entry(key).or_insert(0) += n;
            *self = Buckets::Sparse(map);
            return;
        }
        // Leave slack on the side that grew, so a drifting value does not regrow every step.
        let slack = (span / 4).min(MAX_DENSE_SPAN - span);
        let (new_first, new_len) = if i64::from(key) < i64::from(*first) {
            ((lo - slack as i64) as i32, span + slack)
        } else {
            (lo as i32, span + slack)
        };
        let mut grown = vec![0u64; new_len];
        let at = (i64::from(*first) - i64::from(new_first)) as usize;
        grown[at..at + counts.len()].copy_from_slice(counts);
        grown[(i64::from(key) - i64::from(new_first)) as usize] += n;
        *first = new_first;
        *counts = grown;
    }

    /// Non-empty buckets in increasing key order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (i32, u64)> + '_> {
        match self {
            Buckets::Empty => Box::new(std::iter::empty()),
            Buckets::Dense { first, counts } => Box::new(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c > 0)
                    .map(move |(i, c)| (*first + i as i32, *c)),
            ),
            Buckets::Sparse(map) => Box::new(map.iter().map(|(k, c)| (*k, *c))),
        }
    }

    pub fn merge(&mut self, other: &Buckets) {
        for (key, n) in other.iter() {
            self.add(key, n);
        }
    }
}

/// The sketch of one element: finite values only (the caller counts the others).
#[derive(Clone, Debug, Default)]
pub struct Sketch {
    pub(crate) zeros: u64,
    pub(crate) positive: Buckets,
    pub(crate) negative: Buckets,
}

impl PartialEq for Sketch {
    /// Same counts per bucket, whatever the dense or sparse layout.
    fn eq(&self, other: &Sketch) -> bool {
        self.zeros == other.zeros
            && self.positive.iter().eq(other.positive.iter())
            && self.negative.iter().eq(other.negative.iter())
    }
}

impl Sketch {
    /// Counts `n` copies of one finite value.
    #[inline]
    pub(crate) fn add(&mut self, mapping: &KeyMapping, v: f64, n: u64) {
        let magnitude = v.abs();
        if magnitude < MIN_INDEXED {
            self.zeros += n;
        } else if v > 0.0 {
            self.positive.add(mapping.key(magnitude), n);
        } else {
            self.negative.add(mapping.key(magnitude), n);
        }
    }

    /// Adds another sketch's counts (exact).
    pub fn merge(&mut self, other: &Sketch) {
        self.zeros += other.zeros;
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
    }

    /// Values counted.
    pub fn count(&self) -> u64 {
        self.zeros
            + self.positive.iter().map(|(_, n)| n).sum::<u64>()
            + self.negative.iter().map(|(_, n)| n).sum::<u64>()
    }

    /// Estimates of the values of 0-based ranks `floor(q (n - 1))` for each `q` (increasing),
    /// each within `RELATIVE_ACCURACY` of the exact order statistic (or below
    /// `MIN_INDEXED` from it, for magnitudes that small). `None` for an empty sketch.
    ///
    /// With `integers` (the values are integers), a bucket that can hold only one integer
    /// reports that integer: the exact value (buckets of magnitudes up to about 50 do).
    pub fn quantiles(&self, qs: &[f64], integers: bool) -> Vec<Option<f64>> {
        let n = self.count();
        if n == 0 {
            return vec![None; qs.len()];
        }
        let mapping = KeyMapping::default();
        // Buckets in value order, the most negative first, as (sign, key, count); a bucket's
        // representative is computed only when a rank falls in it.
        let mut negatives: Vec<(i32, u64)> = self.negative.iter().collect();
        negatives.reverse();
        let ordered = negatives
            .into_iter()
            .map(|(k, c)| (-1.0, k, c))
            .chain(std::iter::once((0.0, 0, self.zeros)))
            .chain(self.positive.iter().map(|(k, c)| (1.0, k, c)))
            .filter(|(_, _, c)| *c > 0);
        let ranks: Vec<u64> = qs
            .iter()
            .map(|q| (q.clamp(0.0, 1.0) * (n - 1) as f64).floor() as u64)
            .collect();
        let mut out = vec![None; qs.len()];
        let mut seen = 0u64;
        let mut next = 0usize;
        for (sign, key, c) in ordered {
            seen += c;
            // The bucket holds ranks seen - c ..= seen - 1.
            if next < ranks.len() && ranks[next] < seen {
                let value = if sign == 0.0 {
                    0.0
                } else {
                    sign * mapping.representative(key, integers)
                };
                while next < ranks.len() && ranks[next] < seen {
                    out[next] = Some(value);
                    next += 1;
                }
            }
            if next == ranks.len() {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_bound_holds_over_the_whole_octave() {
        // (1 + t) P'(t) >= MIN_SLOPE on [0, 1]: the relative-accuracy argument rests on it.
        for i in 0..=100_000 {
            let t = f64::from(i) / 100_000.0;
            let slope = (1.0 + t) * ((3.0 * A * t + 2.0 * B) * t + C);
            assert!(slope >= MIN_SLOPE - 1e-12, "t = {t}: slope {slope}");
        }
    }

    #[test]
    fn every_bucket_spans_at_most_gamma() {
        let m = KeyMapping::default();
        let gamma = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
        for key in (m.key(MIN_INDEXED) - 1)..(m.key(1e30) + 1) {
            let ratio = m.lower_bound(key + 1) / m.lower_bound(key);
            assert!(ratio <= gamma * (1.0 + 1e-12), "key {key}: {ratio}");
            assert!(ratio > 1.0, "key {key}");
        }
    }

    #[test]
    fn a_value_falls_in_the_bucket_whose_bounds_hold_it() {
        let m = KeyMapping::default();
        for v in [1e-12, 3.3e-7, 0.5, 1.0, 1.5, 2.0, 3.0, 1234.5, 9.9e20] {
            let k = m.key(v);
            assert!(m.lower_bound(k) <= v * (1.0 + 1e-12), "{v}");
            assert!(v < m.lower_bound(k + 1) * (1.0 + 1e-12), "{v}");
            assert!((m.value(k) - v).abs() <= RELATIVE_ACCURACY * v * (1.0 + 1e-9));
        }
    }

    #[test]
    fn keys_are_the_floor_of_the_scaled_logarithm() {
        // Keys are stored: the inlined floor must give exactly what `f64::floor` gives,
        // negative keys (magnitudes below 1) and exact integers included.
        let m = KeyMapping::default();
        let mut v = MIN_INDEXED;
        while v < 1e300 {
            for x in [v, v * 1.000_000_1, 1.0 / v] {
                let scaled = log2_approx(x) * m.multiplier;
                assert_eq!(m.key(x), scaled.floor() as i32, "{x}");
            }
            v *= 1.01;
        }
        for x in [
            -3.0, -2.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.5, -1e9, 1e9, -1e-300,
        ] {
            assert_eq!(floor_to_i32(x), x.floor() as i32, "{x}");
        }
    }

    #[test]
    fn dense_buckets_turn_sparse_past_the_span_limit() {
        let mut b = Buckets::default();
        b.add(0, 1);
        b.add(10, 2);
        b.add(-5, 1);
        assert!(matches!(b, Buckets::Dense { .. }));
        b.add(100_000, 1);
        assert!(matches!(b, Buckets::Sparse(_)));
        let all: Vec<_> = b.iter().collect();
        assert_eq!(all, vec![(-5, 1), (0, 1), (10, 2), (100_000, 1)]);
    }
}
