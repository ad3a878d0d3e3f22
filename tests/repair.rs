//! "Losing index.redb loses everything": the index is rebuilt from segment manifests by
//! `trajstore repair`, which keeps the damaged index aside and never touches a segment.

use crate::util::{self, contents, copy_v1_fixture, populated};

use std::path::{Path, PathBuf};

use trajstore::{Codec, EpisodeId, Error, OpenError, Query, RepairAction, Store};

/// Every file under `segments/`: name, length and content digest.
fn segment_files(dir: &Path) -> Vec<(String, u64, u64)> {
    let mut out: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = std::fs::read(e.path()).unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                bytes.len() as u64,
                xxhash_rust::xxh3::xxh3_64(&bytes),
            )
        })
        .collect();
    out.sort();
    out
}

pub(crate) fn damaged_copies(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("index.redb.damaged-"))
        .collect()
}

#[test]
fn a_deleted_index_is_rebuilt_with_every_episode_identical_and_the_same_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = populated(tmp.path());
    let before = contents(&dir);
    assert_eq!(before.episodes.len(), 4);
    let report = util::rebuild_index(&dir);
    assert_eq!(report.action, RepairAction::Rebuilt);
    assert_eq!(report.episodes, 4);
    assert_eq!(report.restored_with_id, 4);
    assert!(report.restored_unmarked.is_empty());
    assert!(report.unrestorable.is_empty(), "{report:?}");
    assert!(report.damaged_index.is_none(), "nothing to keep aside");
    assert_eq!(contents(&dir), before);

    // The store goes on: the next id follows the restored ones.
    let store = Store::open(&dir).unwrap();
    assert_eq!(
        util::record_small(&store, "cy", 9, 2, Codec::Raw),
        EpisodeId(5)
    );
}

#[test]
fn a_truncated_index_is_kept_aside_and_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = populated(tmp.path());
    let before = contents(&dir);
    let index = dir.join("index.redb");
    let len = std::fs::metadata(&index).unwrap().len();
    // A quarter: past the header, short of the tables' pages (a cut at half can leave every
    // live page of a small index intact, which is no damage).
    let cut = len / 4;
    let original = std::fs::read(&index).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&index)
        .unwrap()
        .set_len(cut)
        .unwrap();

    let report = trajstore::repair(&dir).unwrap();
    assert_eq!(report.action, RepairAction::Rebuilt);
    assert_eq!(contents(&dir), before);
    let aside = report.damaged_index.expect("the damaged index is kept");
    assert_eq!(damaged_copies(&dir), vec![aside.clone()]);
    assert_eq!(std::fs::read(&aside).unwrap(), original[..cut as usize]);
}

#[test]
fn an_index_overwritten_with_garbage_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = populated(tmp.path());
    let before = contents(&dir);
    let index = dir.join("index.redb");
    let len = std::fs::metadata(&index).unwrap().len() as usize;
    let mut rng = trajstore::loader::rng::SplitMix64::new(7);
    let garbage: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    std::fs::write(&index, &garbage).unwrap();

    let err = Store::open_read_only(&dir).err().expect("a damaged index");
    assert!(
        matches!(err, Error::Open(OpenError::IndexDamaged { .. })),
        "{err}"
    );
    let report = trajstore::repair(&dir).unwrap();
    assert_eq!(report.action, RepairAction::Rebuilt);
    assert_eq!(contents(&dir), before);
    assert_eq!(
        std::fs::read(report.damaged_index.unwrap()).unwrap(),
        garbage
    );
}

#[test]
fn repair_on_a_healthy_store_changes_nothing_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = populated(tmp.path());
    let index_bytes = std::fs::read(dir.join("index.redb")).unwrap();
    let segments = segment_files(&dir);

    let report = trajstore::repair(&dir).unwrap();
    assert_eq!(report.action, RepairAction::NothingToDo);
    assert!(report.index_problems.is_empty());
    assert_eq!((report.episodes, report.whole_manifests), (4, 4));
    assert_eq!(std::fs::read(dir.join("index.redb")).unwrap(), index_bytes);
    assert_eq!(segment_files(&dir), segments);
    assert!(damaged_copies(&dir).is_empty());
}

#[test]
fn repair_never_deletes_or_modifies_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let options = trajstore::StoreOptions {
        segment_target_bytes: 2048, // several segments
        ..Default::default()
    };
    let store = Store::create_with(&dir, options).unwrap();
    for seed in 0..6 {
        util::record_small(&store, "a", seed, 8, Codec::Raw);
    }
    drop(store);
    let segments = segment_files(&dir);
    assert!(segments.len() >= 3, "{segments:?}");
    std::fs::write(dir.join("index.redb"), b"not an index").unwrap();

    let report = trajstore::repair(&dir).unwrap();
    assert_eq!(report.episodes, 6);
    assert_eq!(segment_files(&dir), segments);
    assert_eq!(
        trajstore::repair(&dir).unwrap().action,
        RepairAction::NothingToDo
    );
    assert_eq!(segment_files(&dir), segments);
}

/// Offsets of the commit marker records (`DONE`) of a segment, in file order.
fn marker_offsets(segment: &Path) -> Vec<usize> {
    let bytes = std::fs::read(segment).unwrap();
    (64..bytes.len())
        .step_by(64)
        .filter(|&at| bytes[at..].starts_with(b"DONE"))
        .collect()
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut paths: Vec<_> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(paths.len(), 1);
    paths.pop().unwrap()
}

#[test]
fn an_episode_whose_commit_marker_was_lost_is_restored_with_a_fresh_id() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let raw = Codec::Raw;
    util::small_store(
        &dir,
        &[("a", 1, 4, raw), ("a", 2, 4, raw), ("a", 3, 4, raw)],
    );
    // Power loss took episode 2's marker (it is synced only by the next commit's sync).
    let segment = only_segment(&dir);
    let markers = marker_offsets(&segment);
    assert_eq!(markers.len(), 3);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[markers[1]..markers[1] + 64].fill(0);
    std::fs::write(&segment, &bytes).unwrap();

    // With a healthy index nothing happens: the index holds episode 2.
    assert_eq!(
        trajstore::repair(&dir).unwrap().action,
        RepairAction::NothingToDo
    );

    let report = util::rebuild_index(&dir);
    assert_eq!(report.restored_with_id, 2);
    assert_eq!(report.restored_unmarked.len(), 1);
    let unmarked = &report.restored_unmarked[0];
    assert_eq!((unmarked.id, unmarked.user.as_str()), (EpisodeId(4), "a"));
    // Ids 1 and 3 kept, the unmarked episode (seed 2) above every restored id.
    util::check_small(&dir, EpisodeId(1), 1, 4);
    util::check_small(&dir, EpisodeId(3), 3, 4);
    util::check_small(&dir, EpisodeId(4), 2, 4);
    let store = Store::open_read_only(&dir).unwrap();
    let ids: Vec<u64> = store
        .snapshot()
        .unwrap()
        .episodes(&Query::default())
        .unwrap()
        .iter()
        .map(|e| e.id().get())
        .collect();
    assert_eq!(ids, [1, 3, 4]);
}

/// A valid blob record header claiming `payload_len` bytes (as a killed writer leaves it when
/// the header reached the file and the payload did not).
fn torn_blob_header(payload_len: u64) -> [u8; 64] {
    let mut h = [0u8; 64];
    h[..4].copy_from_slice(b"BLOB");
    h[8..16].copy_from_slice(&payload_len.to_le_bytes());
    h[16..20].copy_from_slice(&1u32.to_le_bytes());
    h[20..24].copy_from_slice(&(payload_len as u32).to_le_bytes());
    h[24..32].copy_from_slice(&0x1234u64.to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..56]);
    h[56..].copy_from_slice(&sum.to_le_bytes());
    h
}

#[test]
fn a_torn_tail_is_scanned_past_even_when_an_adopter_appended_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    util::small_store(&dir, &[("a", 1, 4, Codec::Raw), ("a", 2, 4, Codec::Lz4)]);
    // A killed writer's tail: a record header whose 64 KiB payload never made it, and garbage.
    let segment = only_segment(&dir);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes.resize(bytes.len().div_ceil(64) * 64, 0);
    bytes.extend_from_slice(&torn_blob_header(64 << 10));
    bytes.extend(std::iter::repeat_n(0xA5u8, 300));
    std::fs::write(&segment, &bytes).unwrap();
    // A later writer adopts the segment and appends inside the range the torn header claims.
    let store = Store::open(&dir).unwrap();
    util::record_small(&store, "b", 3, 4, Codec::Raw);
    drop(store);
    assert_eq!(segment_files(&dir).len(), 1, "the segment was adopted");
    let report = util::rebuild_index(&dir);
    assert_eq!(
        (report.episodes, report.restored_with_id),
        (3, 3),
        "{report:?}"
    );
    assert!(report.garbage_bytes > 0);
    util::check_small(&dir, EpisodeId(1), 1, 4);
    util::check_small(&dir, EpisodeId(2), 2, 4);
    util::check_small(&dir, EpisodeId(3), 3, 4);
}

#[test]
fn the_v1_fixture_is_left_alone_by_repair_and_never_receives_v2_records() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v1-store");
    copy_v1_fixture(&dir);
    let before = contents(&dir);
    let index_bytes = std::fs::read(dir.join("index.redb")).unwrap();
    let v1_segments = segment_files(&dir);

    let report = trajstore::repair(&dir).unwrap();
    assert_eq!(report.action, RepairAction::NothingToDo);
    assert_eq!(report.v1_segments, [1]);
    assert_eq!(report.v1_bytes, v1_segments[0].1);
    assert_eq!(report.whole_manifests, 0);
    assert_eq!(std::fs::read(dir.join("index.redb")).unwrap(), index_bytes);
    assert_eq!(contents(&dir), before);

    // Recording into it creates a v2 segment instead of adopting the v1 one.
    let store = Store::open(&dir).unwrap();
    let id = util::record_small(&store, "new", 5, 3, Codec::Raw);
    drop(store);
    let after = segment_files(&dir);
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], v1_segments[0], "the v1 segment is untouched");
    assert_eq!(
        trajstore::repair(&dir).unwrap().action,
        RepairAction::NothingToDo
    );

    // Without the index, only the v2 episode is restorable, and the report says so.
    let report = util::rebuild_index(&dir);
    assert_eq!((report.episodes, report.restored_with_id), (1, 1));
    assert_eq!(report.v1_segments, [1]);
    assert_eq!(report.v1_bytes, v1_segments[0].1);
    util::check_small(&dir, id, 5, 3);
}

#[test]
fn opening_a_store_with_a_deleted_index_names_trajstore_repair() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = populated(tmp.path());
    std::fs::remove_file(dir.join("index.redb")).unwrap();
    let errors = [
        Store::open(&dir).err(),
        Store::open_read_only(&dir).err(),
        Store::create(&dir).err(),
    ];
    for err in errors {
        let err = err.expect("refused");
        assert!(
            matches!(err, Error::Open(OpenError::IndexDamaged { .. })),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("trajstore repair"), "{text}");
        assert!(text.contains(&dir.display().to_string()), "{text}");
    }
    assert!(
        !dir.join("index.redb").exists(),
        "create must not put an empty index over existing segments"
    );
}

#[test]
fn an_index_older_than_the_segments_is_completed_keeping_its_v1_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v1-store");
    copy_v1_fixture(&dir);
    let stale = std::fs::read(dir.join("index.redb")).unwrap();
    let store = Store::open(&dir).unwrap();
    let new_id = util::record_small(&store, "new", 5, 3, Codec::Raw);
    drop(store);
    let complete = contents(&dir);
    // The index is put back to a copy taken before the last commit (a restored backup).
    std::fs::write(dir.join("index.redb"), &stale).unwrap();

    let report = trajstore::repair(&dir).unwrap();
    assert_eq!(report.action, RepairAction::Rebuilt);
    assert!(
        report.index_problems[0].contains(&format!("episode {new_id}")),
        "{report:?}"
    );
    assert_eq!((report.restored_with_id, report.carried_over), (1, 3));
    assert_eq!(contents(&dir), complete);
    assert_eq!(std::fs::read(report.damaged_index.unwrap()).unwrap(), stale);
}

#[test]
fn an_episode_with_a_damaged_chunk_is_not_restored_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let store = Store::create(&dir).unwrap();
    util::record_small(&store, "a", 1, 4, Codec::Raw);
    let damaged = util::record_small(&store, "a", 2, 4, Codec::Raw);
    let snap = store.snapshot().unwrap();
    let extent = snap
        .field(&snap.episode(damaged).unwrap(), "obs/frame")
        .unwrap()
        .extents()
        .remove(0);
    drop((snap, store));
    let segment = only_segment(&dir);
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[extent.payload_offset as usize + 5] ^= 0xFF;
    std::fs::write(&segment, &bytes).unwrap();
    let report = util::rebuild_index(&dir);
    assert_eq!(report.episodes, 1);
    let reasons: Vec<&str> = report
        .unrestorable
        .iter()
        .map(|s| s.reason.as_str())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("obs/frame") && r.contains("checksum")),
        "{reasons:?}"
    );
    util::check_small(&dir, EpisodeId(1), 1, 4);
}

#[test]
fn a_commit_in_flight_at_a_crash_stays_uncommitted_unless_the_index_is_rebuilt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    util::small_store(&dir, &[("a", 1, 4, Codec::Raw), ("a", 2, 4, Codec::Raw)]);
    let before_third = std::fs::read(dir.join("index.redb")).unwrap();
    let store = Store::open(&dir).unwrap();
    util::record_small(&store, "b", 3, 4, Codec::Lz4);
    drop(store);
    // The state a crash between the segment sync and the index commit leaves: the third
    // episode's chunks and manifest are durable, the index never got it, no marker exists.
    let segment = only_segment(&dir);
    let last_marker = *marker_offsets(&segment).last().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .unwrap()
        .set_len(last_marker as u64)
        .unwrap();
    std::fs::write(dir.join("index.redb"), &before_third).unwrap();

    let report = trajstore::repair(&dir).unwrap();
    assert_eq!(report.action, RepairAction::NothingToDo);
    assert_eq!((report.episodes, report.uncommitted), (2, 1));

    let report = util::rebuild_index(&dir);
    assert_eq!(report.restored_with_id, 2);
    let unmarked: Vec<(EpisodeId, &str)> = report
        .restored_unmarked
        .iter()
        .map(|u| (u.id, u.user.as_str()))
        .collect();
    assert_eq!(unmarked, [(EpisodeId(3), "b")]);
    util::check_small(&dir, EpisodeId(3), 3, 4);
}

/// Replaces the commit marker at `at` (the last record of `segment`) with an aborted marker
/// (episode 0) for the same manifest, as a writer whose index commit failed leaves it.
fn abort_marker(segment: &Path, at: usize) {
    let mut bytes = std::fs::read(segment).unwrap();
    let payload_len = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
    let payload = bytes[at + 64..at + 64 + payload_len].to_vec();
    // postcard: envelope variant 0, varint episode, varint manifest offset.
    assert_eq!(payload[0], 0);
    let episode_len = payload[1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
    let mut aborted = vec![0u8, 0u8];
    aborted.extend_from_slice(&payload[1 + episode_len..]);
    let mut h = [0u8; 64];
    h[..4].copy_from_slice(b"DONE");
    h[8..16].copy_from_slice(&(aborted.len() as u64).to_le_bytes());
    h[24..32].copy_from_slice(&xxhash_rust::xxh3::xxh3_64(&aborted).to_le_bytes());
    let sum = xxhash_rust::xxh3::xxh3_64(&h[..56]);
    h[56..].copy_from_slice(&sum.to_le_bytes());
    bytes.truncate(at);
    bytes.extend_from_slice(&h);
    bytes.extend_from_slice(&aborted);
    std::fs::write(segment, &bytes).unwrap();
}

#[test]
fn a_manifest_whose_index_commit_failed_is_never_restored() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    util::small_store(&dir, &[("a", 1, 4, Codec::Raw), ("a", 2, 4, Codec::Raw)]);
    let segment = only_segment(&dir);
    abort_marker(&segment, *marker_offsets(&segment).last().unwrap());
    let report = util::rebuild_index(&dir);
    assert_eq!((report.episodes, report.aborted), (1, 1), "{report:?}");
    assert!(report.restored_unmarked.is_empty());
    util::check_small(&dir, EpisodeId(1), 1, 4);
}
