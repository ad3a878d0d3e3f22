//! Compaction: the bytes of aborted recordings and unreferenced segments are reclaimed; every
//! committed episode reads the same before and after; readers with older snapshots keep
//! reading; segments a live recorder holds are skipped; repair rebuilds a compacted store.

use crate::util::{self, field_bytes, record_rich};

use std::path::Path;

use trajstore::{Codec, CompactOptions, EpisodeId, Info, Query, RepairAction, Store, StoreOptions};

/// What a reader sees of each episode, wherever its bytes are: id, user, metadata, steps,
/// every field's bytes, infos.
type Logical = Vec<(EpisodeId, String, Info, u32, Vec<Vec<u8>>, Vec<Info>)>;

fn logical(dir: &Path) -> Logical {
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    let v = snap.verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    snap.episodes(&Query::default())
        .unwrap()
        .into_iter()
        .map(|e| {
            let fields = field_bytes(&snap, &e);
            let infos = snap.infos(&e).unwrap();
            (
                e.id(),
                e.user().to_owned(),
                e.metadata().clone(),
                e.steps(),
                fields,
                infos,
            )
        })
        .collect()
}

/// Options that spill every step to the segment, so an abandoned episode leaves bytes behind.
fn spilling() -> StoreOptions {
    StoreOptions {
        spill_bytes: 1,
        ..Default::default()
    }
}

/// A store with committed episodes around an abandoned one, in one segment.
fn with_garbage(dir: &Path) {
    let store = Store::create_with(dir, spilling()).unwrap();
    record_rich(&store, "ann", 1, 5, Codec::Raw);
    util::record_small(&store, "bob", 2, 4, Codec::Lz4);
    util::abandon_small(&store, "ghost", 0, 200, Codec::Raw);
    record_rich(&store, "ann", 3, 6, Codec::Lz4);
    util::record_small(&store, "bob", 4, 3, Codec::Raw);
}

fn segment_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn retired(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("segments/retired")).map_or(0, |d| d.count())
}

#[test]
fn compacting_reclaims_what_an_aborted_recording_left_and_reads_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    with_garbage(&dir);
    let before = logical(&dir);
    let size = segment_bytes(&dir);

    let dry = trajstore::compact(
        &dir,
        &CompactOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(dry.rewritten.len(), 1);
    assert_eq!(segment_bytes(&dir), size, "a dry run changes nothing");

    let report = trajstore::compact(&dir, &CompactOptions::default()).unwrap();
    assert_eq!(report.rewritten.len(), 1, "{report:?}");
    assert_eq!(report.episodes_moved, 4);
    assert!(report.bytes_reclaimed > 200 * 192, "{report:?}");
    assert_eq!(report.pending_files, 0, "no handle open: deleted at once");
    assert_eq!(retired(&dir), 0);
    assert_eq!(segment_bytes(&dir), size - report.bytes_reclaimed);
    assert_eq!(logical(&dir), before);

    // Nothing left to gain: a second run changes nothing.
    let again = trajstore::compact(&dir, &CompactOptions::default()).unwrap();
    assert!(
        again.rewritten.is_empty() && again.dropped.is_empty(),
        "{again:?}"
    );
}

#[test]
fn compaction_while_a_snapshot_holds_maps_keeps_its_reads_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    with_garbage(&dir);
    let before = logical(&dir);
    // One handle has mapped the segment already; another has a snapshot but has read nothing.
    let mapped = Store::open_read_only(&dir).unwrap();
    let mapped_snap = mapped.snapshot().unwrap();
    let first = mapped_snap.episode(EpisodeId(1)).unwrap();
    let frames = mapped_snap.field(&first, "obs/frame").unwrap();
    let held = frames.to_vec().unwrap();
    let unmapped = Store::open_read_only(&dir).unwrap();
    let unmapped_snap = unmapped.snapshot().unwrap();

    let report = trajstore::compact(&dir, &CompactOptions::default()).unwrap();
    assert_eq!(report.rewritten.len(), 1);
    assert!(
        report.pending_files > 0,
        "handles are open: kept in retired/"
    );

    // The old snapshots still read everything, from the retired file.
    assert_eq!(frames.to_vec().unwrap(), held);
    for snap in [&mapped_snap, &unmapped_snap] {
        for (id, _, _, _, fields, _) in &before {
            let e = snap.episode(*id).unwrap();
            let got = field_bytes(snap, &e);
            assert_eq!(&got, fields, "episode {id}");
        }
    }
    assert_eq!(logical(&dir), before, "new snapshots read the new segments");
    drop((frames, first, mapped_snap, unmapped_snap));
    drop(mapped);
    assert!(retired(&dir) > 0, "another handle is still open");
    drop(unmapped);
    assert_eq!(retired(&dir), 0, "the last handle to close deletes them");
}

#[test]
fn compaction_skips_a_segment_a_live_recorder_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    with_garbage(&dir);
    // This handle's recorder keeps its segment checked out (locked) between episodes.
    let store = Store::open_with(&dir, spilling()).unwrap();
    util::record_small(&store, "cat", 5, 3, Codec::Raw);
    let report = trajstore::compact(&dir, &CompactOptions::default()).unwrap();
    assert_eq!(report.skipped_locked.len(), 1, "{report:?}");
    assert!(report.rewritten.is_empty());
    let id = util::record_small(&store, "cat", 6, 3, Codec::Raw);
    drop(store);
    util::check_small(&dir, id, 6, 3);
    let report = trajstore::compact(&dir, &CompactOptions::default()).unwrap();
    assert_eq!(report.rewritten.len(), 1, "released: compacted now");
    assert_eq!(logical(&dir).len(), 6);
}

#[test]
fn repair_after_compaction_rebuilds_the_same_episodes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    with_garbage(&dir);
    let before = logical(&dir);
    trajstore::compact(&dir, &CompactOptions::default()).unwrap();
    util::assert_repair_idle_then_rebuilds_cleanly(&dir);
    assert_eq!(logical(&dir), before);
}

#[test]
fn repair_prefers_the_compacted_copy_while_the_old_segment_still_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    with_garbage(&dir);
    let before = logical(&dir);
    // A reader keeps the replaced file in retired/; put it back under its name, as if the
    // compaction had stopped right after its index switch.
    let reader = Store::open_read_only(&dir).unwrap();
    let report = trajstore::compact(&dir, &CompactOptions::default()).unwrap();
    let old = report.rewritten[0];
    std::fs::rename(
        dir.join(format!("segments/retired/{old}.seg")),
        dir.join(format!("segments/{old}.seg")),
    )
    .unwrap();
    drop(reader);
    let healthy = trajstore::repair(&dir).unwrap();
    assert_eq!(healthy.action, RepairAction::NothingToDo, "{healthy:?}");
    assert_eq!(healthy.superseded, 4);
    let rebuilt = util::rebuild_index(&dir);
    assert!(rebuilt.unrestorable.is_empty(), "{rebuilt:?}");
    assert_eq!(rebuilt.episodes, 4);
    assert_eq!(logical(&dir), before);
}

#[test]
fn compacting_a_merged_store_moves_linked_segments_and_repair_still_rebuilds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, out) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("out"),
    );
    with_garbage(&a);
    with_garbage(&b);
    trajstore::merge(&out, &[&a, &b]).unwrap();
    let before = logical(&out);
    let report = trajstore::compact(&out, &CompactOptions::default()).unwrap();
    assert_eq!(report.rewritten.len(), 2, "{report:?}");
    assert_eq!(logical(&out), before);
    // The sources are untouched by the merged store's compaction.
    assert_eq!(logical(&a).len(), 4);
    let rebuilt = util::rebuild_index(&out);
    assert!(rebuilt.unrestorable.is_empty(), "{rebuilt:?}");
    assert_eq!(logical(&out), before);
}

#[test]
fn compaction_purges_tombstones_past_the_retention_and_reclaims_their_bytes() {
    use std::time::Duration;
    use trajstore::{CurateOptions, Target};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    with_garbage(&dir);
    let store = Store::open(&dir).unwrap();
    store
        .delete(
            &Target::ids([EpisodeId(1), EpisodeId(3)]),
            &CurateOptions::default(),
        )
        .unwrap();
    drop(store);
    let kept = logical(&dir);
    assert_eq!(kept.len(), 2);

    // Within the retention: restorable, so their segment is kept as it is.
    let within = CompactOptions {
        retention: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let report = trajstore::compact(&dir, &within).unwrap();
    assert!(report.purged.is_empty(), "{report:?}");
    assert!(report.rewritten.is_empty(), "{report:?}");

    // Past it: purged, and their bytes go with the abandoned recording's.
    let past = CompactOptions {
        retention: Some(Duration::ZERO),
        ..Default::default()
    };
    let report = trajstore::compact(&dir, &past).unwrap();
    assert_eq!(report.purged, [EpisodeId(1), EpisodeId(3)], "{report:?}");
    assert_eq!(report.rewritten.len(), 1, "{report:?}");
    assert_eq!(report.episodes_moved, 2);
    assert_eq!(logical(&dir), kept);
    let store = Store::open(&dir).unwrap();
    assert!(store.snapshot().unwrap().tombstones().unwrap().is_empty());
    drop(store);
    // Rebuilt from the segments (and the curation log), the purged episodes stay gone.
    let rebuilt = util::rebuild_index(&dir);
    assert_eq!(rebuilt.episodes, 2, "{rebuilt:?}");
    assert_eq!(logical(&dir), kept);
}
