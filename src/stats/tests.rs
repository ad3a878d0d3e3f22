use proptest::prelude::*;

use super::accumulate::FieldAccumulator;
use super::record::ElementStatsV1;
use super::*;

/// The statistics of `values` as one f64 scalar field would gather them.
fn gathered(values: &[f64]) -> ElementStats {
    let mut acc = FieldAccumulator::new(0, DType::F64, 1);
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    acc.push(&bytes);
    acc.finish().1.pop().expect("one element")
}

fn merged<'a>(parts: impl Iterator<Item = &'a ElementStats>) -> ElementStats {
    let mut total = ElementStats::default();
    for p in parts {
        total.merge(p);
    }
    total
}

fn close(a: f64, b: f64, scale: f64) -> bool {
    (a - b).abs() <= 1e-9 * scale.max(1e-300)
}

/// Values as RL fields have them: mixed signs, magnitudes over many decades, exact zeros and
/// repeats.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        4 => -1e3f64..1e3,
        2 => (-12i32..12, any::<bool>()).prop_map(|(e, neg)| {
            let v = 10f64.powi(e) * 1.2345;
            if neg { -v } else { v }
        }),
        1 => Just(0.0),
        1 => (0u8..5).prop_map(f64::from),
    ]
}

proptest! {
    #[test]
    fn merge_order_does_not_change_the_statistics(
        values in prop::collection::vec(value(), 1..600),
        cuts in prop::collection::vec(0usize..600, 0..6),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (values.len() + 1)).collect();
        cuts.push(0);
        cuts.push(values.len());
        cuts.sort_unstable();
        let parts: Vec<ElementStats> = cuts.windows(2).map(|w| gathered(&values[w[0]..w[1]])).collect();
        let forward = merged(parts.iter());
        let backward = merged(parts.iter().rev());
        // A tree: pairs first, then the pairs' sums.
        let pairs: Vec<ElementStats> = parts.chunks(2).map(|c| merged(c.iter())).collect();
        let tree = merged(pairs.iter());
        let whole = gathered(&values);
        let scale = values.iter().map(|v| v.abs()).fold(0.0, f64::max);
        for other in [&backward, &tree, &whole] {
            prop_assert_eq!(forward.count, other.count);
            prop_assert_eq!(forward.min, other.min);
            prop_assert_eq!(forward.max, other.max);
            prop_assert_eq!(&forward.sketch, &other.sketch);
            prop_assert!(close(forward.mean, other.mean, scale), "{} {}", forward.mean, other.mean);
            prop_assert!(close(forward.m2, other.m2, scale * scale * values.len() as f64),
                "{} {}", forward.m2, other.m2);
        }
    }

    #[test]
    fn quantiles_are_within_the_relative_error_of_the_order_statistic(
        parts in prop::collection::vec(prop::collection::vec(value(), 0..300), 1..5),
    ) {
        let all: Vec<f64> = parts.iter().flatten().copied().collect();
        prop_assume!(!all.is_empty());
        let stats = merged(parts.iter().map(|p| gathered(p)).collect::<Vec<_>>().iter());
        let mut sorted = all.clone();
        sorted.sort_by(f64::total_cmp);
        let summary = stats.summary(DType::F64);
        for ((name, q), estimate) in QUANTILES.iter().zip(summary.quantiles) {
            let exact = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
            let bound = RELATIVE_ACCURACY * exact.abs() * (1.0 + 1e-9) + MIN_INDEXED;
            prop_assert!((estimate - exact).abs() <= bound,
                "{name}: estimate {estimate}, exact {exact}");
        }
        let n = all.len() as f64;
        let mean = all.iter().sum::<f64>() / n;
        let std = (all.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let scale = sorted.iter().map(|v| v.abs()).fold(0.0, f64::max);
        prop_assert!(close(summary.mean, mean, scale), "{} {}", summary.mean, mean);
        prop_assert!(close(summary.std, std, scale), "{} {}", summary.std, std);
        prop_assert_eq!(summary.min, sorted[0]);
        prop_assert_eq!(summary.max, sorted[sorted.len() - 1]);
    }

    #[test]
    fn a_stored_element_decodes_to_the_same_statistics(values in prop::collection::vec(value(), 0..200)) {
        let stats = gathered(&values);
        let record = ElementStatsV1::from_stats(&stats);
        let bytes = postcard::to_allocvec(&record).unwrap();
        let back: ElementStatsV1 = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(back.to_stats(), stats);
    }
}

#[test]
fn small_integers_get_exact_quantiles() {
    let values: Vec<f64> = (0..1000).map(|i| f64::from(i % 41 - 20)).collect();
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    let s = gathered(&values).summary(DType::I32);
    for ((name, q), estimate) in QUANTILES.iter().zip(s.quantiles) {
        let exact = sorted[(q * 999.0).floor() as usize];
        assert_eq!(estimate, exact, "{name}");
    }
}

#[test]
fn non_finite_values_are_counted_apart() {
    let stats = gathered(&[1.0, f64::NAN, 3.0, f64::INFINITY, f64::NEG_INFINITY]);
    assert_eq!(stats.count, 2);
    assert_eq!(stats.non_finite, 3);
    let s = stats.summary(DType::F64);
    assert_eq!((s.mean, s.std, s.min, s.max), (2.0, 1.0, 1.0, 3.0));
}

#[test]
fn an_element_without_finite_values_reports_nan() {
    let s = gathered(&[f64::NAN]).summary(DType::F64);
    assert_eq!(s.count, 0);
    assert!(s.mean.is_nan() && s.std.is_nan() && s.min.is_nan() && s.quantiles[4].is_nan());
}

#[test]
fn every_dtype_is_read_as_its_values() {
    let cases: Vec<(DType, Vec<u8>, Vec<f64>)> = vec![
        (DType::Bool, vec![0, 1, 1], vec![0.0, 1.0, 1.0]),
        (DType::I8, vec![0xff, 2], vec![-1.0, 2.0]),
        (
            DType::U16,
            [7u16, 65535].iter().flat_map(|v| v.to_le_bytes()).collect(),
            vec![7.0, 65535.0],
        ),
        (
            DType::I64,
            [-5i64, 9].iter().flat_map(|v| v.to_le_bytes()).collect(),
            vec![-5.0, 9.0],
        ),
        (
            DType::F16,
            [half::f16::from_f32(1.5), half::f16::from_f32(-2.0)]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![1.5, -2.0],
        ),
        (
            DType::F32,
            [0.25f32, 4.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec![0.25, 4.0],
        ),
    ];
    for (dtype, bytes, values) in cases {
        let mut acc = FieldAccumulator::new(0, dtype, 1);
        acc.push(&bytes);
        let got = acc.finish().1.pop().unwrap();
        assert_eq!(got, gathered(&values), "{dtype}");
    }
}

/// Recording pushes one step at a time; reading back for stores recorded without statistics
/// pushes whole chunks: both must store the same figures, bit for bit (the folds fall at the
/// same steps).
#[test]
fn steps_pushed_one_by_one_give_the_figures_of_one_whole_push() {
    let elements = 3;
    // 1000 steps: several folds, and a partial stage at the end.
    let values: Vec<f32> = (0..1000 * elements)
        .map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 150.0)
        .collect();
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut whole = FieldAccumulator::new(0, DType::F32, elements);
    whole.push(&bytes);
    let mut stepwise = FieldAccumulator::new(0, DType::F32, elements);
    for step in bytes.chunks_exact(elements * 4) {
        stepwise.push(step);
    }
    // Uneven pieces of several steps each, across fold boundaries.
    let mut pieces = FieldAccumulator::new(0, DType::F32, elements);
    for piece in bytes.chunks(elements * 4 * 37) {
        pieces.push(piece);
    }
    let whole = whole.finish().1;
    assert_eq!(whole.len(), elements);
    assert_eq!(whole[0].count, 1000);
    for other in [stepwise.finish().1, pieces.finish().1] {
        for (a, b) in whole.iter().zip(&other) {
            assert_eq!(a.mean.to_bits(), b.mean.to_bits());
            assert_eq!(a.m2.to_bits(), b.m2.to_bits());
            assert_eq!(a, b);
        }
    }
}
