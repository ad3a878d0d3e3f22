//! Episodes and steps as record batches hold exactly the store's values.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, Int64Type, UInt32Type, UInt64Type};
use arrow_array::{Array, BooleanArray, FixedSizeBinaryArray};
use trajstore::{ArrayRef, Codec, DType, EpisodeMeta, Info, Schema, Store};
use trajstore_export::{ExportError, StepsPlan, episodes_batch};
use trajstore_testkit::fixtures::{record_small, small_frame};
use trajstore_testkit::synth::{SynthConfig, record};

fn synth_store(codec: Codec, episodes: u64) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    let config = SynthConfig {
        episodes,
        min_steps: 3,
        max_steps: 9,
        frame: [6, 5, 3],
        codec,
        seed: 7,
        ..SynthConfig::default()
    };
    record(&store, &config, |_| {}).unwrap();
    (dir, store)
}

#[test]
fn episodes_batch_holds_every_index_column() {
    let (_dir, store) = synth_store(Codec::Raw, 3);
    let snap = store.snapshot().unwrap();
    let episodes = snap.episodes(&Default::default()).unwrap();
    let batch = episodes_batch(&episodes).unwrap();
    assert_eq!(batch.num_rows(), 3);
    let ids = batch
        .column_by_name("id")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let steps = batch
        .column_by_name("steps")
        .unwrap()
        .as_primitive::<UInt32Type>();
    let users = batch.column_by_name("user").unwrap().as_string::<i32>();
    let tags = batch.column_by_name("tags").unwrap().as_list::<i32>();
    let metadata = batch.column_by_name("metadata").unwrap().as_string::<i32>();
    let seeds = batch
        .column_by_name("seed")
        .unwrap()
        .as_primitive::<UInt64Type>();
    for (i, e) in episodes.iter().enumerate() {
        assert_eq!(ids.value(i), e.id().get());
        assert_eq!(steps.value(i), e.steps());
        assert_eq!(users.value(i), e.user());
        assert_eq!(seeds.value(i), e.seed().unwrap());
        let t = tags.value(i);
        assert_eq!(t.as_string::<i32>().value(0), "synthetic");
        let meta: serde_json::Value = serde_json::from_str(metadata.value(i)).unwrap();
        assert_eq!(
            meta["difficulty"].as_i64().unwrap(),
            match e.metadata()["difficulty"] {
                trajstore::Value::Int(d) => d,
                ref v => panic!("difficulty is {v:?}"),
            }
        );
    }
}

/// The steps of every episode, row by row, against `Field::to_vec`, for raw and lz4 stores.
fn check_steps_against_store(codec: Codec) {
    let (_dir, store) = synth_store(codec, 3);
    let snap = store.snapshot().unwrap();
    let episodes = snap.episodes(&Default::default()).unwrap();
    let plan = StepsPlan::new(&snap, &episodes, None).unwrap();
    let names: Vec<&str> = plan.fields().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "obs/frame",
            "obs/ram/health",
            "action",
            "reward",
            "terminated",
            "truncated"
        ]
    );
    for e in &episodes {
        let batch = plan.episode_batch(&snap, e).unwrap();
        let t = e.steps() as usize;
        assert_eq!(batch.num_rows(), t + 1, "T + 1 rows");
        let step = batch
            .column_by_name("step")
            .unwrap()
            .as_primitive::<UInt32Type>();
        assert_eq!(step.values().to_vec(), (0..=t as u32).collect::<Vec<_>>());

        let frames: &FixedSizeBinaryArray = batch
            .column_by_name("obs/frame")
            .unwrap()
            .as_fixed_size_binary();
        let stored = snap.field(e, "obs/frame").unwrap().to_vec().unwrap();
        assert_eq!(frames.value_length(), 90);
        assert_eq!(frames.null_count(), 0, "every row has an observation");
        for row in 0..=t {
            assert_eq!(
                frames.value(row),
                &stored[row * 90..(row + 1) * 90],
                "frame {row}"
            );
        }

        let health = batch
            .column_by_name("obs/ram/health")
            .unwrap()
            .as_fixed_size_list();
        let stored: Vec<i32> =
            bytemuck_i32(&snap.field(e, "obs/ram/health").unwrap().to_vec().unwrap());
        assert_eq!(health.value_length(), 2);
        assert_eq!(
            health
                .values()
                .as_primitive::<Int32Type>()
                .values()
                .to_vec(),
            stored
        );

        let action = batch
            .column_by_name("action")
            .unwrap()
            .as_primitive::<Int64Type>();
        let stored = snap.field(e, "action").unwrap().to_vec().unwrap();
        for row in 0..t {
            assert_eq!(
                action.value(row).to_le_bytes(),
                stored[row * 8..row * 8 + 8]
            );
        }
        assert!(action.is_null(t), "the last row has no action");
        assert_eq!(action.null_count(), 1);

        let reward = batch
            .column_by_name("reward")
            .unwrap()
            .as_primitive::<Float32Type>();
        let stored = snap.field(e, "reward").unwrap().to_vec().unwrap();
        let sum: f64 = (0..t)
            .map(|row| {
                assert_eq!(
                    reward.value(row).to_le_bytes(),
                    stored[row * 4..row * 4 + 4]
                );
                f64::from(reward.value(row))
            })
            .sum();
        assert!((sum - e.total_return()).abs() < 1e-6);

        let terminated: &BooleanArray = batch.column_by_name("terminated").unwrap().as_boolean();
        let stored = snap.field(e, "terminated").unwrap().to_vec().unwrap();
        for (row, stored) in stored.iter().enumerate() {
            assert_eq!(terminated.value(row), *stored != 0);
        }
        assert!(terminated.is_null(t));
    }
}

fn bytemuck_i32(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn steps_rows_equal_the_stored_values_raw() {
    check_steps_against_store(Codec::Raw);
}

#[test]
fn steps_rows_equal_the_stored_values_lz4() {
    check_steps_against_store(Codec::Lz4);
}

#[test]
fn raw_observations_are_slices_of_the_map_not_copies() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    record_small(&store, "alice", 3, 5, Codec::Raw);
    let snap = store.snapshot().unwrap();
    let e = &snap.episodes(&Default::default()).unwrap()[0];
    let plan = StepsPlan::new(&snap, std::slice::from_ref(e), Some(&["obs/frame".into()])).unwrap();
    let batch = plan.episode_batch(&snap, e).unwrap();
    let frames = batch.column(2).as_fixed_size_binary();
    let mapped = snap
        .field(e, "obs/frame")
        .unwrap()
        .contiguous()
        .unwrap()
        .unwrap();
    assert_eq!(
        frames.value_data().as_ptr(),
        mapped.as_ptr(),
        "the column is the map"
    );
    assert_eq!(frames.value(5), small_frame(3, 5).as_slice());
}

#[test]
fn a_field_of_two_shapes_in_one_selection_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create(dir.path().join("s")).unwrap();
    record_small(&store, "alice", 1, 2, Codec::Raw); // obs/frame u8 [8, 8, 3]
    let other = Schema::builder()
        .observation("obs/frame", DType::U8, &[4, 4], Codec::Raw)
        .transition("action", DType::I64, &[])
        .build()
        .unwrap();
    let mut w = store
        .begin_episode(EpisodeMeta::new("bob", "Other-v0"), &other)
        .unwrap();
    w.reset(&[("obs/frame", ArrayRef::new(&[0u8; 16]))], &Info::new())
        .unwrap();
    w.step(
        &[
            ("obs/frame", ArrayRef::new(&[1u8; 16])),
            ("action", ArrayRef::scalar(&0i64)),
            ("reward", ArrayRef::scalar(&0.0f32)),
            ("terminated", ArrayRef::scalar(&true)),
            ("truncated", ArrayRef::scalar(&false)),
        ],
        &Info::new(),
    )
    .unwrap();
    w.commit().unwrap();
    let snap = store.snapshot().unwrap();
    let episodes = snap.episodes(&Default::default()).unwrap();
    let err = StepsPlan::new(&snap, &episodes, None).unwrap_err();
    assert!(
        matches!(&err, ExportError::FieldConflict { field, .. } if field == "obs/frame"),
        "{err}"
    );
    // Leaving the field out makes the selection exportable.
    let plan = StepsPlan::new(&snap, &episodes, Some(&["action".into()])).unwrap();
    assert_eq!(
        plan.episode_batch(&snap, &episodes[1]).unwrap().num_rows(),
        2
    );
}

#[test]
fn unknown_and_repeated_fields_are_refused_naming_them() {
    let (_dir, store) = synth_store(Codec::Raw, 1);
    let snap = store.snapshot().unwrap();
    let episodes = snap.episodes(&Default::default()).unwrap();
    let err = StepsPlan::new(&snap, &episodes, Some(&["obs/fram".into()])).unwrap_err();
    assert!(err.to_string().contains("\"obs/fram\""), "{err}");
    assert!(
        err.to_string().contains("obs/frame"),
        "lists the known fields: {err}"
    );
    let err =
        StepsPlan::new(&snap, &episodes, Some(&["action".into(), "action".into()])).unwrap_err();
    assert!(matches!(err, ExportError::BadField { .. }), "{err}");
}
