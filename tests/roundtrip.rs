//! Random schemas and episodes are read back exactly as written, raw and lz4, in one chunk
//! or spilled across many.

use crate::util;

use proptest::prelude::*;
use trajstore::{
    ArrayRef, Codec, DType, EpisodeMeta, FieldKind, Info, Outcome, Query, Schema, Store,
    StoreOptions, Value,
};

#[derive(Clone, Debug)]
struct FieldCase {
    dtype: DType,
    shape: Vec<u32>,
    kind: FieldKind,
    codec: Codec,
}

fn field_case() -> impl Strategy<Value = FieldCase> {
    (
        prop::sample::select(DType::ALL.to_vec()),
        prop::collection::vec(1u32..6, 0..3),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(dtype, shape, obs, lz4)| FieldCase {
            dtype,
            shape,
            kind: if obs {
                FieldKind::Observation
            } else {
                FieldKind::Transition
            },
            codec: if lz4 { Codec::Lz4 } else { Codec::Raw },
        })
}

/// Deterministic, partly repetitive bytes (so lz4 sometimes compresses, sometimes not).
fn value_bytes(len: usize, salt: u64, compressible: bool) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            if compressible {
                (salt + i / 16) as u8
            } else {
                (salt.wrapping_add(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
            }
        })
        .collect()
}

fn bool_fix(dtype: DType, mut bytes: Vec<u8>) -> Vec<u8> {
    if dtype == DType::Bool {
        bytes.iter_mut().for_each(|b| *b &= 1);
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn episodes_read_back_equal(
        fields in prop::collection::vec(field_case(), 1..5),
        episodes in prop::collection::vec((1u32..40, prop::bool::ANY), 1..4),
        spill in prop::sample::select(vec![64usize, 1 << 20]),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { spill_bytes: spill, ..StoreOptions::default() };
        let store = Store::create_with(dir.path(), options).unwrap();
        let mut builder = Schema::builder();
        for (i, f) in fields.iter().enumerate() {
            builder = builder.field(&format!("f{i}"), f.dtype, &f.shape, f.kind, f.codec);
        }
        let schema = builder.build().unwrap();
        let mut expected = Vec::new();
        for (e, &(steps, compressible)) in episodes.iter().enumerate() {
            let meta = EpisodeMeta::new(format!("user{}", e % 2), "Prop-v0").tag("p").meta("e", e as i64);
            let mut w = store.begin_episode(meta, &schema).unwrap();
            // Per schema field: the bytes of every value, in order.
            let mut data: Vec<Vec<u8>> = vec![Vec::new(); schema.fields().len()];
            let mut infos = Vec::new();
            for t in 0..=steps {
                let mut values: Vec<(String, Vec<u8>)> = Vec::new();
                for (i, spec) in schema.fields().iter().enumerate() {
                    if t == 0 && spec.kind == FieldKind::Transition {
                        continue;
                    }
                    let bytes = match spec.name.as_str() {
                        "reward" => 0.5f32.to_le_bytes().to_vec(),
                        "terminated" => vec![u8::from(t == steps)],
                        "truncated" => vec![0],
                        _ => bool_fix(spec.dtype, value_bytes(spec.step_bytes(), (e as u64) << 32 | u64::from(t) << 8 | i as u64, compressible)),
                    };
                    data[i].extend_from_slice(&bytes);
                    values.push((spec.name.clone(), bytes));
                }
                let shapes: Vec<Vec<usize>> = values.iter().map(|(n, _)| schema.field(n).unwrap().shape_usize()).collect();
                let refs: Vec<(&str, ArrayRef)> = values
                    .iter()
                    .zip(&shapes)
                    .map(|((n, b), s)| (n.as_str(), ArrayRef::from_bytes(schema.field(n).unwrap().dtype, s, b)))
                    .collect();
                let info = if t % 3 == 0 { Info::from([("t".to_owned(), Value::Int(i64::from(t)))]) } else { Info::new() };
                if t == 0 { w.reset(&refs, &info).unwrap() } else { w.step(&refs, &info).unwrap() }
                infos.push(info);
            }
            let id = w.commit().unwrap();
            expected.push((id, steps, data, infos));
        }

        let reader = Store::open_read_only(dir.path()).unwrap();
        let snap = reader.snapshot().unwrap();
        prop_assert_eq!(snap.episodes(&Query::default()).unwrap().len(), episodes.len());
        for (id, steps, data, infos) in &expected {
            let e = snap.episode(*id).unwrap();
            prop_assert_eq!(e.steps(), *steps);
            prop_assert_eq!(e.outcome(), Outcome::Terminated);
            prop_assert!((e.total_return() - 0.5 * f64::from(*steps)).abs() < 1e-9);
            prop_assert_eq!(&snap.infos(&e).unwrap(), infos);
            for (i, field) in snap.fields(&e).unwrap().iter().enumerate() {
                prop_assert_eq!(&field.to_vec().unwrap(), &data[i], "field {}", field.spec().name);
                prop_assert!(field.verify().is_ok());
                if let Some(bytes) = field.contiguous().unwrap() {
                    prop_assert_eq!(&bytes[..], &data[i][..]);
                }
                // Random access to single steps agrees with the bulk read.
                let n = field.step_bytes();
                let last = field.len() - 1;
                let mut one = vec![0u8; n];
                field.read_into(last..last + 1, &mut one).unwrap();
                prop_assert_eq!(&one[..], &data[i][last * n..]);
                if field.spec().codec == Codec::Raw {
                    prop_assert_eq!(&field.raw_step(last).unwrap()[..], &data[i][last * n..]);
                }
            }
        }
        prop_assert!(snap.verify().unwrap().problems.is_empty());
    }
}

#[test]
fn raw_field_is_a_slice_of_the_map_not_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let id = util::record_small(&store, "alice", 1, 10, Codec::Raw);
    let snap = store.snapshot().unwrap();
    let e = snap.episode(id).unwrap();
    let field = snap.field(&e, "obs/frame").unwrap();
    let whole = field.contiguous().unwrap().expect("one raw chunk");
    let step3 = field.raw_step(3).unwrap();
    // Both point into the same mapping: step 3 is at 3 * 192 bytes from the field's start.
    assert_eq!(step3.as_ptr() as usize - whole.as_ptr() as usize, 3 * 192);
    assert_eq!(
        whole.as_ptr() as usize % 64,
        0,
        "payloads are 64-byte aligned"
    );
    let actions = snap.field(&e, "action").unwrap();
    assert_eq!(
        actions.as_slice::<i64>().unwrap().unwrap(),
        (1..=10).collect::<Vec<i64>>()
    );
    assert!(
        actions.as_slice::<f64>().unwrap().is_none(),
        "a typed view must match the dtype"
    );
    // The bytes outlive the snapshot and the store.
    drop(snap);
    drop(store);
    assert_eq!(&step3[..], &util::small_frame(1, 3)[..]);
}

#[test]
fn users_list_their_episodes_in_commit_order_with_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path()).unwrap();
    let a1 = util::record_small(&store, "alice", 1, 5, Codec::Raw);
    let b1 = util::record_small(&store, "bob", 2, 7, Codec::Lz4);
    let a2 = util::record_small(&store, "alice", 3, 9, Codec::Lz4);
    let snap = store.snapshot().unwrap();
    let ids: Vec<_> = snap
        .episodes(&Query::default().user("alice"))
        .unwrap()
        .iter()
        .map(|e| e.id())
        .collect();
    assert_eq!(ids, [a1, a2]);
    assert!(a1 < b1 && b1 < a2);
    let users = snap.users().unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| (u.name.as_str(), u.episodes, u.steps))
            .collect::<Vec<_>>(),
        [("alice", 2, 14), ("bob", 1, 7)]
    );
    let long = Query {
        min_steps: Some(7),
        ..Query::default()
    };
    assert_eq!(
        snap.episodes(&long)
            .unwrap()
            .iter()
            .map(|e| e.id())
            .collect::<Vec<_>>(),
        [b1, a2]
    );
    assert_eq!(
        snap.schemas().unwrap().len(),
        2,
        "raw and lz4 variants are two schemas"
    );
}

/// Every commit writes the episode's catalog row with its record: the catalog lists exactly
/// what the full records say, filters included.
#[test]
fn the_catalog_follows_every_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    for (i, user) in ["alice", "bob", "alice"].iter().enumerate() {
        util::record_small(&store, user, i as u64, 3 + i as u32, Codec::Raw);
    }
    let snap = store.snapshot().unwrap();
    let full = util::summaries_from_records(&snap);
    assert_eq!(full.len(), 3);
    assert_eq!(snap.catalog(&Query::default()).unwrap(), full);
    let alice: Vec<u32> = snap
        .catalog(&Query::default().user("alice"))
        .unwrap()
        .iter()
        .map(|e| e.steps())
        .collect();
    assert_eq!(alice, vec![3, 5]);
}
