//! `merge`: stores combined without decoding a frame; schemas deduplicated; sources that are
//! the output itself, newer or damaged refused before anything is linked; the merged store
//! rebuilt by `repair`.

use crate::util::{self, contents, copy_v1_fixture, field_bytes, populated, record_rich};

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use trajstore::{
    Codec, EpisodeId, Error, MERGED_FROM_EPISODE, MERGED_FROM_STORE, OpenError, Query, Store, Value,
};

/// Every episode's field bytes and infos, by id, as a reader sees them.
fn frames_of(dir: &Path) -> Vec<(EpisodeId, Vec<Vec<u8>>, Vec<trajstore::Info>)> {
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    snap.episodes(&Query::default())
        .unwrap()
        .into_iter()
        .map(|e| (e.id(), field_bytes(&snap, &e), snap.infos(&e).unwrap()))
        .collect()
}

fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn merge_dedups_identical_schemas_and_moves_no_frame() {
    let tmp = tempfile::tempdir().unwrap();
    let a = populated(&tmp.path().join("a")); // rich raw, small lz4, rich lz4, small raw
    let b = tmp.path().join("b").join("store");
    {
        let store = Store::create(&b).unwrap();
        util::record_small(&store, "cat", 9, 5, Codec::Raw); // same schema as in a
        record_rich(&store, "cat", 10, 4, Codec::Raw); // same schema as in a
    }
    let out = tmp.path().join("out");
    let report = trajstore::merge(&out, &[&a, &b]).unwrap();

    // 4 distinct field lists in a; b adds none.
    let snap_store = Store::open_read_only(&out).unwrap();
    let snap = snap_store.snapshot().unwrap();
    assert_eq!(snap.schemas().unwrap().len(), 4);
    assert_eq!(report.schemas_added, 4);
    assert_eq!(report.sources.len(), 2);
    assert_eq!(report.sources[0].episodes.len(), 4);
    assert_eq!(report.sources[1].episodes.len(), 2);

    // Every merged episode reads back the source's bytes and infos, under its new id, and
    // says where it came from.
    for (source, merged) in [(&a, &report.sources[0]), (&b, &report.sources[1])] {
        let originals = frames_of(source);
        let merged_frames = frames_of(&out);
        for (old, new) in &merged.episodes {
            let (_, fields, infos) = originals.iter().find(|(id, ..)| id == old).unwrap();
            let (_, got, got_infos) = merged_frames.iter().find(|(id, ..)| id == new).unwrap();
            assert_eq!(got, fields, "episode {old} -> {new}");
            assert_eq!(got_infos, infos);
            let e = snap.episode(*new).unwrap();
            let canonical = std::fs::canonicalize(source).unwrap();
            assert_eq!(
                e.metadata()[MERGED_FROM_STORE],
                Value::Str(canonical.display().to_string())
            );
            assert_eq!(
                e.metadata()[MERGED_FROM_EPISODE],
                Value::Int(old.get() as i64)
            );
        }
        // Hard links, not copies: the source's files have a second name now.
        for s in &merged.segments {
            assert!(!s.copied);
            let file = source.join("segments").join(format!("{}.seg", s.origin));
            assert_eq!(std::fs::metadata(file).unwrap().nlink(), 2);
        }
    }
    // Schemas of the same field list in both sources map to one id.
    let id_of = |source: usize, i: usize| {
        snap.episode(report.sources[source].episodes[i].1)
            .unwrap()
            .schema_id()
    };
    assert_eq!(id_of(0, 3), id_of(1, 0)); // small raw
    assert_eq!(id_of(0, 0), id_of(1, 1)); // rich raw
    // Field statistics came along: none missing, and the merged copy of a source's
    // episodes has the source's statistics.
    let all = snap.stats(&Query::default(), &["action"], false).unwrap();
    assert!(all.missing.is_empty(), "{:?}", all.missing);
    let src = Store::open_read_only(&b).unwrap();
    let src_stats = src
        .snapshot()
        .unwrap()
        .stats(&Query::default(), &["action"], false)
        .unwrap();
    let merged_b = snap
        .stats(&Query::default().user("cat"), &["action"], false)
        .unwrap();
    assert_eq!(merged_b.episodes, 2);
    assert_eq!(
        format!("{:?}", merged_b.fields),
        format!("{:?}", src_stats.fields)
    );
    let verify = snap.verify().unwrap();
    assert!(verify.problems.is_empty(), "{:?}", verify.problems);
    // The only segment holding no chunk is the one with the merged episodes' manifests.
    assert_eq!(
        verify.unreferenced_segments,
        vec![report.manifest_segment.unwrap()]
    );

    // Merging into a store that has the schema already adds no schema.
    let c = tmp.path().join("c");
    {
        let store = Store::create(&c).unwrap();
        util::record_small(&store, "dan", 11, 3, Codec::Raw);
    }
    let again = Store::open(&out).unwrap().merge_from(&[&c]).unwrap();
    assert_eq!(again.schemas_added, 0);
    assert_eq!(
        Store::open_read_only(&out)
            .unwrap()
            .snapshot()
            .unwrap()
            .episodes(&Query::default())
            .unwrap()
            .len(),
        7
    );
}

#[test]
fn merge_refuses_a_newer_format_source_before_linking_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let good = populated(&tmp.path().join("good"));
    let newer = populated(&tmp.path().join("newer"));
    util::set_format_version(&newer, 99);
    let out = tmp.path().join("out");
    let existing = Store::create(&out).unwrap();
    util::record_small(&existing, "own", 1, 3, Codec::Raw);
    let before = segment_names(&out);
    let err = existing.merge_from(&[&good, &newer]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Open(OpenError::UnsupportedFormat { found: 99, .. })
        ),
        "{err}"
    );
    assert_eq!(segment_names(&out), before, "nothing was linked");
    // A new output is not even created.
    let fresh = tmp.path().join("fresh");
    assert!(trajstore::merge(&fresh, &[&good, &newer]).is_err());
    assert!(!fresh.exists());
}

#[test]
fn merge_refuses_the_output_itself_a_repeated_source_and_a_damaged_source() {
    let tmp = tempfile::tempdir().unwrap();
    let out = populated(&tmp.path().join("out"));
    let store = Store::open(&out).unwrap();
    let err = store.merge_from(&[&out]).unwrap_err();
    assert!(err.to_string().contains("output store itself"), "{err}");

    let src = populated(&tmp.path().join("src"));
    let err = store.merge_from(&[&src, &src]).unwrap_err();
    assert!(err.to_string().contains("given twice"), "{err}");

    let before = segment_names(&out);
    let (segment, record) = util::frame_record(&src, EpisodeId(2));
    util::flip_bit(&segment, record + 64 + 5);
    let err = store.merge_from(&[&src]).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(err.to_string().contains("episode 2"), "{err}");
    assert_eq!(segment_names(&out), before, "nothing was linked");
}

#[test]
fn merge_then_repair_rebuilds_the_merged_store_with_the_same_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let a = populated(&tmp.path().join("a"));
    let b = populated(&tmp.path().join("b"));
    let out = tmp.path().join("out");
    {
        let store = Store::create(&out).unwrap();
        util::record_small(&store, "own", 1, 3, Codec::Raw);
    }
    trajstore::merge(&out, &[&a, &b]).unwrap();
    let before = contents(&out);
    assert_eq!(before.episodes.len(), 9);

    // A healthy merged index: the linked segments' own manifests (the sources' ids) are not
    // mistaken for this store's.
    util::assert_repair_idle_then_rebuilds_cleanly(&out);
    assert_eq!(contents(&out), before);
}

#[test]
fn merging_the_v1_fixture_makes_its_episodes_rebuildable() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = tmp.path().join("v1");
    copy_v1_fixture(&v1);
    let out = tmp.path().join("out");
    let report = trajstore::merge(&out, &[&v1]).unwrap();
    assert!(!report.sources[0].episodes.is_empty());
    let before = contents(&out);
    let repaired = util::rebuild_index(&out);
    assert!(repaired.unrestorable.is_empty(), "{repaired:?}");
    assert_eq!(contents(&out), before);
}

#[test]
fn a_linked_segment_without_its_sidecar_is_never_read_as_this_stores_own() {
    let tmp = tempfile::tempdir().unwrap();
    let a = populated(&tmp.path().join("a"));
    let out = tmp.path().join("out");
    let report = trajstore::merge(&out, &[&a]).unwrap();
    let linked = report.sources[0].segments[0].id;
    let sidecar = out.join("segments").join(format!("{linked}.link"));
    std::fs::remove_file(&sidecar).unwrap();
    // Readers refuse its bytes rather than misread them; verify names it.
    let store = Store::open_read_only(&out).unwrap();
    let v = store.snapshot().unwrap().verify().unwrap();
    assert!(!v.problems.is_empty());
    assert!(
        v.problems[0].error.contains("link sidecar"),
        "{:?}",
        v.problems
    );
}

#[test]
fn deleted_episodes_of_a_source_are_not_merged() {
    use trajstore::{CurateOptions, Target};
    let tmp = tempfile::tempdir().unwrap();
    let a = populated(&tmp.path().join("a"));
    Store::open(&a)
        .unwrap()
        .delete(&Target::ids([EpisodeId(2)]), &CurateOptions::default())
        .unwrap();
    let out = tmp.path().join("out");
    let report = trajstore::merge(&out, &[&a]).unwrap();
    let old: Vec<u64> = report.sources[0]
        .episodes
        .iter()
        .map(|(o, _)| o.get())
        .collect();
    assert_eq!(old, [1, 3, 4]);
    assert_eq!(report.sources[0].deleted_not_merged, 1);
    assert_eq!(contents(&out).episodes.len(), 3);
}
