//! Field statistics kept at commit (`episode_stats`, schema/index.md "Format 2"): combined
//! for a subset from the index alone, they must agree with figures computed directly from
//! the frames; episodes without stored statistics (format-1 stores, repaired indexes) are
//! listed, never guessed, and computed from the frames on request.

use crate::util;

use trajstore::{
    ArrayRef, Codec, DType, ElementSummary, EpisodeMeta, ErrorKind, FieldSummary, Info, QUANTILES,
    Query, RELATIVE_ACCURACY, Schema, Snapshot, Store, StoreStats,
};

fn schema() -> Schema {
    Schema::builder()
        .observation("obs/frame", DType::U8, &[16, 16, 3], Codec::Raw)
        .observation("obs/pos", DType::F32, &[3], Codec::Lz4)
        .transition("action", DType::I64, &[])
        .build()
        .unwrap()
}

/// A deterministic, wide-ranged position (some values negative, some tiny, one NaN per
/// episode in element 2).
fn pos(seed: u64, t: u32) -> [f32; 3] {
    let x = (seed as f32 * 0.37 + t as f32 * 0.11).sin() * 10f32.powi((t % 5) as i32 - 2);
    let nan = t == 3;
    [
        x,
        t as f32 * 0.5 - 4.0,
        if nan { f32::NAN } else { seed as f32 },
    ]
}

fn record(store: &Store, user: &str, seed: u64, steps: u32) {
    let mut w = store
        .begin_episode(EpisodeMeta::new(user, "Stats-v0"), &schema())
        .unwrap();
    let frame = vec![seed as u8; 16 * 16 * 3];
    w.reset(
        &[
            ("obs/frame", ArrayRef::new(&frame)),
            ("obs/pos", ArrayRef::new(&pos(seed, 0))),
        ],
        &Info::new(),
    )
    .unwrap();
    for t in 1..=steps {
        w.step(
            &[
                ("obs/frame", ArrayRef::new(&frame)),
                ("obs/pos", ArrayRef::new(&pos(seed, t))),
                (
                    "action",
                    ArrayRef::scalar(&((seed as i64 * 7 + t as i64) % 5 - 2)),
                ),
                ("reward", ArrayRef::scalar(&(t as f32 * 0.25))),
                ("terminated", ArrayRef::scalar(&(t == steps))),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &Info::new(),
        )
        .unwrap();
    }
    w.commit().unwrap();
}

/// Every value of one element of `field` (of this shape) over the selected episodes, read
/// from the frames.
fn values(snap: &Snapshot, query: &Query, field: &FieldSummary, element: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for e in snap.episodes(query).unwrap() {
        let f = snap.field(&e, &field.name).unwrap();
        if f.spec().shape_usize() != field.shape {
            continue; // another schema's field of that name: reported apart
        }
        let bytes = f.to_vec().unwrap();
        let dtype = f.spec().dtype;
        let elements = f.step_bytes() / dtype.size();
        for step in bytes.chunks_exact(f.step_bytes()) {
            let b = &step[element * dtype.size()..(element + 1) * dtype.size()];
            out.push(match dtype {
                DType::F32 => f64::from(f32::from_le_bytes(b.try_into().unwrap())),
                DType::F64 => f64::from_le_bytes(b.try_into().unwrap()),
                DType::I64 => i64::from_le_bytes(b.try_into().unwrap()) as f64,
                DType::I32 => f64::from(i32::from_le_bytes(b.try_into().unwrap())),
                DType::Bool | DType::U8 => f64::from(b[0]),
                other => panic!("{other} not in these tests"),
            });
        }
        assert!(element < elements);
    }
    out
}

/// Asserts `got` is what the frames say: moments exactly (to rounding), quantiles within the
/// documented relative error of numpy's `method="lower"` order statistic.
fn check_element(got: &ElementSummary, all: &[f64]) {
    let finite: Vec<f64> = all.iter().copied().filter(|v| v.is_finite()).collect();
    assert_eq!(got.count, finite.len() as u64);
    assert_eq!(got.non_finite, (all.len() - finite.len()) as u64);
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let std = (finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let scale = finite.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    assert!(
        (got.mean - mean).abs() <= 1e-12 * scale,
        "mean {} vs {mean}",
        got.mean
    );
    assert!(
        (got.std - std).abs() <= 1e-9 * scale,
        "std {} vs {std}",
        got.std
    );
    let mut sorted = finite.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(got.min, sorted[0]);
    assert_eq!(got.max, *sorted.last().unwrap());
    for ((name, q), estimate) in QUANTILES.iter().zip(got.quantiles) {
        let exact = sorted[(q * (n - 1.0)).floor() as usize];
        let bound = RELATIVE_ACCURACY * exact.abs() * (1.0 + 1e-9) + trajstore::MIN_INDEXED;
        assert!(
            (estimate - exact).abs() <= bound,
            "{name}: {estimate} vs {exact}"
        );
    }
}

fn check_all(stats: &StoreStats, snap: &Snapshot, query: &Query) {
    for field in &stats.fields {
        for (i, element) in field.elements.iter().enumerate() {
            check_element(element, &values(snap, query, field, i));
        }
    }
}

#[test]
fn one_users_statistics_from_the_index_agree_with_the_frames() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    for seed in 0..6 {
        let user = if seed % 2 == 0 { "alice" } else { "bob" };
        record(&store, user, seed, 40 + seed as u32 * 30);
    }
    let snap = store.snapshot().unwrap();
    let alice = Query::default().user("alice");
    let stats = snap.stats(&alice, &[], false).unwrap();
    assert_eq!(stats.episodes, 3);
    assert!(stats.missing.is_empty() && stats.computed.is_empty());
    let names: Vec<&str> = stats.fields.iter().map(|f| f.name.as_str()).collect();
    // The frame (768 elements per value) has none; every small field has.
    assert_eq!(
        names,
        ["obs/pos", "action", "reward", "terminated", "truncated"]
    );
    assert!(stats.fields.iter().all(|f| f.episodes == 3));
    assert_eq!(stats.fields[0].shape, [3]);
    check_all(&stats, &snap, &alice);
    // The NaN of each episode is counted apart.
    assert_eq!(stats.fields[0].elements[2].non_finite, 3);

    // The whole store, one field.
    let all = snap.stats(&Query::default(), &["obs/pos"], false).unwrap();
    assert_eq!(all.fields.len(), 1);
    assert_eq!(all.episodes, 6);
    check_all(&all, &snap, &Query::default());

    // Read-only opens see the same.
    let ro = Store::open_read_only(dir.path()).unwrap();
    assert_eq!(
        ro.snapshot().unwrap().stats(&alice, &[], false).unwrap(),
        stats
    );
}

#[test]
fn an_unknown_or_too_large_field_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    record(&store, "alice", 1, 5);
    let snap = store.snapshot().unwrap();
    let err = snap
        .stats(&Query::default(), &["obs/nope"], false)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Input);
    assert!(err.to_string().contains("obs/nope"), "{err}");
    assert!(
        err.to_string().contains("obs/pos"),
        "lists the known fields: {err}"
    );
    let err = snap
        .stats(&Query::default(), &["obs/frame"], false)
        .unwrap_err();
    assert!(err.to_string().contains("768 elements"), "{err}");
    // An empty selection is no error: no fields.
    let none = snap
        .stats(&Query::default().user("carol"), &[], false)
        .unwrap();
    assert_eq!((none.episodes, none.fields.len()), (0, 0));
}

#[test]
fn a_format_1_store_lists_its_episodes_as_missing_and_computes_them_on_request() {
    let dir = tempfile::tempdir().unwrap();
    util::copy_v1_fixture(dir.path());
    let store = Store::open_read_only(dir.path()).unwrap();
    let snap = store.snapshot().unwrap();
    let episodes = snap.episodes(&Query::default()).unwrap();
    assert!(!episodes.is_empty());
    let listed = snap.stats(&Query::default(), &[], false).unwrap();
    let ids: Vec<_> = episodes.iter().map(|e| e.id()).collect();
    assert_eq!(listed.missing, ids);
    assert!(
        listed
            .fields
            .iter()
            .all(|f| f.elements.iter().all(|e| e.count == 0))
    );
    assert!(listed.fields.is_empty());

    let computed = snap.stats(&Query::default(), &[], true).unwrap();
    assert!(computed.missing.is_empty());
    assert_eq!(computed.computed, ids);
    let names: Vec<&str> = computed.fields.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"obs/ram/health") && names.contains(&"action"),
        "{names:?}"
    );
    check_all(&computed, &snap, &Query::default());
}

#[test]
fn a_repaired_index_has_the_same_statistics_as_the_lost_one() {
    // Manifests carry no statistics: repair recomputes them from the restored frames, so
    // losing index.redb does not leave `stats` with episodes it can only list as missing.
    let dir = tempfile::tempdir().unwrap();
    let q = Query::default();
    let before = {
        let store = Store::create(dir.path()).unwrap();
        record(&store, "alice", 1, 20);
        record(&store, "bob", 2, 30);
        record(&store, "alice", 3, 7);
        store.snapshot().unwrap().stats(&q, &[], false).unwrap()
    };
    assert!(before.missing.is_empty() && !before.fields.is_empty());
    let report = util::rebuild_index(dir.path());
    assert_eq!(report.stats_saved, 3, "{report:?}");
    assert!(report.stats_problems.is_empty(), "{report:?}");
    let store = Store::open(dir.path()).unwrap();
    let snap = store.snapshot().unwrap();
    assert_eq!(snap.stats(&q, &[], false).unwrap(), before);
    check_all(&before, &snap, &q);
}

#[test]
fn saving_missing_statistics_stores_what_compute_missing_computes() {
    let dir = tempfile::tempdir().unwrap();
    util::copy_v1_fixture(dir.path());
    let q = Query::default();
    let computed = Store::open_read_only(dir.path())
        .unwrap()
        .snapshot()
        .unwrap()
        .stats(&q, &[], true)
        .unwrap();
    let store = Store::open(dir.path()).unwrap();
    let saved = store.save_missing_stats().unwrap();
    assert_eq!(saved.saved, computed.computed);
    assert!(saved.failed.is_empty());
    let snap = store.snapshot().unwrap();
    let stored = snap.stats(&q, &[], false).unwrap();
    assert!(stored.missing.is_empty() && stored.computed.is_empty());
    assert_eq!(stored.fields, computed.fields);
    // Saving upgraded the format-1 fixture (the statistics table is format 2's).
    assert_eq!(
        snap.format_version().unwrap(),
        trajstore::STORE_FORMAT_VERSION
    );
    // Nothing is left to save: a second call writes nothing.
    assert!(store.save_missing_stats().unwrap().saved.is_empty());
}

#[test]
fn episodes_recorded_with_field_stats_off_are_listed_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let options = trajstore::StoreOptions {
        field_stats: false,
        ..Default::default()
    };
    {
        let store = Store::create_with(dir.path(), options).unwrap();
        record(&store, "alice", 1, 12);
    }
    let store = Store::open(dir.path()).unwrap();
    record(&store, "alice", 2, 12);
    let stats = store
        .snapshot()
        .unwrap()
        .stats(&Query::default(), &[], false)
        .unwrap();
    let missing: Vec<u64> = stats.missing.iter().map(|id| id.get()).collect();
    assert_eq!(missing, [1]);
    assert!(stats.fields.iter().all(|f| f.episodes == 1));
}

#[test]
fn a_sparse_selection_reads_its_rows_by_lookup_and_agrees_with_the_frames() {
    // carol's two episodes are far apart among dave's: read by point lookups, not a scan.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    record(&store, "carol", 1, 15);
    for seed in 2..12 {
        record(&store, "dave", seed, 5);
    }
    record(&store, "carol", 12, 25);
    let snap = store.snapshot().unwrap();
    let carol = Query::default().user("carol");
    let stats = snap.stats(&carol, &[], false).unwrap();
    assert_eq!(stats.episodes, 2);
    assert!(stats.missing.is_empty());
    assert!(stats.fields.iter().all(|f| f.episodes == 2));
    check_all(&stats, &snap, &carol);
}

/// Records an episode of `schema()` without its frame field, so that a field with statistics
/// (`obs/pos`, raw here) is the one streamed to the segment as it comes.
fn record_without_frames(store: &Store, seed: u64, steps: u32) {
    let schema = Schema::builder()
        .observation("obs/pos", DType::F32, &[3], Codec::Raw)
        .observation("obs/vel", DType::F32, &[3], Codec::Lz4)
        .transition("action", DType::I64, &[])
        .build()
        .unwrap();
    let mut w = store
        .begin_episode(EpisodeMeta::new("frank", "Stats-v0"), &schema)
        .unwrap();
    let vel = |t| pos(seed + 100, t);
    w.reset(
        &[
            ("obs/pos", ArrayRef::new(&pos(seed, 0))),
            ("obs/vel", ArrayRef::new(&vel(0))),
        ],
        &Info::new(),
    )
    .unwrap();
    for t in 1..=steps {
        w.step(
            &[
                ("obs/pos", ArrayRef::new(&pos(seed, t))),
                ("obs/vel", ArrayRef::new(&vel(t))),
                ("action", ArrayRef::scalar(&(t as i64 % 3))),
                ("reward", ArrayRef::scalar(&(t as f32 * -0.5))),
                ("terminated", ArrayRef::scalar(&false)),
                ("truncated", ArrayRef::scalar(&(t == steps))),
            ],
            &Info::new(),
        )
        .unwrap();
    }
    w.commit().unwrap();
}

#[test]
fn statistics_gathered_while_streaming_and_spilling_equal_those_computed_from_the_frames() {
    // Raw columns' values reach the statistics in bulk as they leave the writer's buffer
    // (streamed, spilled or flushed at commit); lz4 columns' step by step. Either way the
    // stored figures must be exactly what reading the frames back gives.
    let recorded = tempfile::tempdir().unwrap();
    let options = trajstore::StoreOptions {
        stream_bytes: 40,
        spill_bytes: 3000,
        ..Default::default()
    };
    let store = Store::create_with(recorded.path(), options).unwrap();
    let computed = tempfile::tempdir().unwrap();
    let without = trajstore::StoreOptions {
        field_stats: false,
        ..Default::default()
    };
    let reference = Store::create_with(computed.path(), without).unwrap();
    for (seed, steps) in [(1, 300), (2, 7), (3, 129)] {
        // Frames stream and spill every few steps; without them `obs/pos` streams.
        record(&store, "erin", seed, steps);
        record(&reference, "erin", seed, steps);
        record_without_frames(&store, seed, steps);
        record_without_frames(&reference, seed, steps);
    }
    let got = store
        .snapshot()
        .unwrap()
        .stats(&Query::default(), &[], false)
        .unwrap();
    assert!(got.missing.is_empty());
    let want = reference
        .snapshot()
        .unwrap()
        .stats(&Query::default(), &[], true)
        .unwrap();
    assert_eq!(
        want.computed.len(),
        6,
        "computed from the frames, not stored"
    );
    // Debug prints every figure exactly (NaN included), so equal text is equal bits.
    assert_eq!(format!("{:?}", got.fields), format!("{:?}", want.fields));
    let names: Vec<&str> = got.fields.iter().map(|f| f.name.as_str()).collect();
    assert!(
        names.contains(&"obs/vel") && names.contains(&"obs/pos"),
        "{names:?}"
    );
}
