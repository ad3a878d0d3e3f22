//! Segment life cycle: adoption by later writers, sealing at the target size, and garbage
//! left by aborted recordings.

use crate::util;

use trajstore::{Codec, Store, StoreOptions};

fn segment_count(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("segments")).unwrap().count()
}

#[test]
fn later_writers_adopt_an_unsealed_segment_instead_of_creating_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for seed in 0..3 {
        let store = Store::create(dir.path()).unwrap();
        ids.push(util::record_small(&store, "a", seed, 5, Codec::Raw));
    }
    assert_eq!(segment_count(dir.path()), 1);
    for (seed, id) in ids.into_iter().enumerate() {
        util::check_small(dir.path(), id, seed as u64, 5);
    }
}

#[test]
fn segments_are_sealed_at_the_target_size() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        segment_target_bytes: 4096,
        ..StoreOptions::default()
    };
    let store = Store::create_with(dir.path(), options).unwrap();
    let ids: Vec<_> = (0..6)
        .map(|seed| util::record_small(&store, "a", seed, 20, Codec::Raw))
        .collect();
    assert!(
        segment_count(dir.path()) >= 3,
        "{} segments",
        segment_count(dir.path())
    );
    for (seed, id) in ids.into_iter().enumerate() {
        util::check_small(dir.path(), id, seed as u64, 20);
    }
}

#[test]
fn an_aborted_episode_leaves_only_unreferenced_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // A tiny spill size makes the writer put chunks on disk before commit.
    let options = StoreOptions {
        spill_bytes: 256,
        ..StoreOptions::default()
    };
    let store = Store::create_with(dir.path(), options).unwrap();
    util::abandon_small(&store, "a", 9, 9, Codec::Lz4);
    let before = std::fs::metadata(dir.path().join("segments/0000000000000001.seg"))
        .unwrap()
        .len();
    assert!(
        before > 64 * 10,
        "the aborted episode's chunks reached the segment"
    );
    let id = util::record_small(&store, "a", 1, 10, Codec::Lz4);
    let snap = store.snapshot().unwrap();
    assert_eq!(
        snap.episodes(&trajstore::Query::default()).unwrap().len(),
        1,
        "nothing of the aborted episode is visible"
    );
    let report = snap.verify().unwrap();
    assert!(report.problems.is_empty());
    assert!(report.unreferenced_bytes >= before - 64, "{report:?}");
    util::check_small(dir.path(), id, 1, 10);
}
