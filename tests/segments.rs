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

/// Options that stream a raw field's values to the segment once `stream_bytes` of them are
/// buffered (400: about two frames of the small schema) instead of holding them until commit.
fn streaming(stream_bytes: usize, spill_bytes: usize) -> StoreOptions {
    StoreOptions {
        stream_bytes,
        spill_bytes,
        ..StoreOptions::default()
    }
}

/// The record (64-byte header and payload) of an episode's only `obs/frame` chunk.
fn frame_record_bytes(dir: &std::path::Path, id: trajstore::EpisodeId) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let (path, offset) = util::frame_record(dir, id);
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    let extents = snap
        .field(&snap.episode(id).unwrap(), "obs/frame")
        .unwrap()
        .extents();
    assert_eq!(extents.len(), 1, "one chunk");
    let mut record = vec![0u8; 64 + extents[0].payload_len as usize];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut record, offset)
        .unwrap();
    record
}

#[test]
fn a_streamed_field_is_the_same_record_as_one_written_at_commit() {
    let held = tempfile::tempdir().unwrap();
    let held_store = Store::create(held.path()).unwrap();
    // 0: every value is streamed as it comes, from the reset's on.
    for stream_bytes in [400, 0] {
        let streamed = tempfile::tempdir().unwrap();
        let streamed_store =
            Store::create_with(streamed.path(), streaming(stream_bytes, 256 << 20)).unwrap();
        for (seed, steps) in [(1, 40), (2, 1), (3, 25)] {
            let a = util::record_small(&held_store, "a", seed, steps, Codec::Raw);
            let b = util::record_small(&streamed_store, "a", seed, steps, Codec::Raw);
            // Header (length, steps, checksum) and payload byte for byte: readers, verify,
            // repair and compaction cannot tell how the chunk was written.
            assert_eq!(
                frame_record_bytes(held.path(), a),
                frame_record_bytes(streamed.path(), b),
                "episode of seed {seed}, stream_bytes {stream_bytes}"
            );
            util::check_small(streamed.path(), b, seed, steps);
        }
        let report = streamed_store.snapshot().unwrap().verify().unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

#[test]
fn a_streamed_field_spilled_mid_episode_reads_back_in_step_order() {
    let dir = tempfile::tempdir().unwrap();
    // The small fields (14 bytes a step) pass the spill size within 70 steps: the open
    // streamed chunk is closed, every field spills, and streaming starts again.
    let store = Store::create_with(dir.path(), streaming(400, 1000)).unwrap();
    let id = util::record_small(&store, "a", 7, 200, Codec::Raw);
    let snap = store.snapshot().unwrap();
    let frames = snap.field(&snap.episode(id).unwrap(), "obs/frame").unwrap();
    assert!(
        frames.extents().len() >= 2,
        "{} chunks",
        frames.extents().len()
    );
    util::check_small(dir.path(), id, 7, 200);
    let report = snap.verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_discarded_streamed_episode_leaves_its_bytes_to_the_next_episode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::create_with(dir.path(), streaming(400, 256 << 20)).unwrap();
    util::abandon_small(&store, "a", 9, 30, Codec::Raw);
    let segment = dir.path().join("segments/0000000000000001.seg");
    let streamed = std::fs::metadata(&segment).unwrap().len();
    assert!(
        streamed > 64 * 50,
        "the discarded episode's frames reached the segment"
    );
    let id = util::record_small(&store, "a", 1, 30, Codec::Raw);
    let report = store.snapshot().unwrap().verify().unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Only the committed episode's manifest, marker and padding are unreferenced: its chunks
    // were written over the discarded frames (31 of 192 bytes).
    assert!(
        report.unreferenced_bytes < 31 * 192,
        "{} unreferenced bytes",
        report.unreferenced_bytes
    );
    util::check_small(dir.path(), id, 1, 30);
}
