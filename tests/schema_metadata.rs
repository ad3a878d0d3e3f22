//! Schema metadata (format 2, table `schema_metadata`): key/values stored once per schema, not
//! in every episode; a differing value stays with its episode; older stores and stores
//! without the table read as before; merge, compaction and repair keep every episode's
//! effective metadata.

use std::path::Path;

use trajstore::{ArrayRef, Codec, EpisodeId, EpisodeMeta, Info, Query, Store, Value};

use crate::util;

const OBS_SPACE: &str = "gymnasium/observation_space";

/// Records one small episode with `schema` as its schema metadata and `own` as its metadata.
fn record(store: &Store, schema: &[(&str, &str)], own: &[(&str, &str)]) -> EpisodeId {
    record_as(store, Codec::Raw, schema, own)
}

fn record_as(
    store: &Store,
    codec: Codec,
    schema: &[(&str, &str)],
    own: &[(&str, &str)],
) -> EpisodeId {
    let mut meta = EpisodeMeta::new("ann", "Test-v0");
    for (k, v) in schema {
        meta = meta.schema_meta(*k, *v);
    }
    for (k, v) in own {
        meta = meta.meta(*k, *v);
    }
    let mut w = store
        .begin_episode(meta, &util::small_schema(codec))
        .unwrap();
    let none = Info::new();
    w.reset(
        &[("obs/frame", ArrayRef::new(&util::small_frame(0, 0)))],
        &none,
    )
    .unwrap();
    w.step(
        &[
            ("obs/frame", ArrayRef::new(&util::small_frame(0, 1))),
            ("action", ArrayRef::scalar(&1i64)),
            ("reward", ArrayRef::scalar(&1.0f32)),
            ("terminated", ArrayRef::scalar(&true)),
            ("truncated", ArrayRef::scalar(&false)),
        ],
        &none,
    )
    .unwrap();
    w.commit().unwrap()
}

fn text(v: &str) -> Value {
    Value::Str(v.to_owned())
}

/// (own metadata, schema metadata) of every episode, by id.
fn metadata_of(dir: &Path) -> Vec<(EpisodeId, Info, Info)> {
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    snap.episodes(&Query::default())
        .unwrap()
        .into_iter()
        .map(|e| {
            let schema = snap.schema_metadata(e.schema_id()).unwrap();
            (e.id(), e.metadata().clone(), schema)
        })
        .collect()
}

/// An episode's own keys over its schema's: what readers see.
fn effective((_, own, schema): &(EpisodeId, Info, Info)) -> Info {
    let mut out = schema.clone();
    out.extend(own.clone());
    out
}

#[test]
fn spaces_are_stored_once_per_schema_and_a_differing_value_stays_with_its_episode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    let store = Store::create(&dir).unwrap();
    // Another field list (lz4 frames): a schema of its own, which never gets a row.
    let plain = record_as(&store, Codec::Lz4, &[], &[("level", "1")]);
    assert!(
        store
            .snapshot()
            .unwrap()
            .schema_metadata(
                store
                    .snapshot()
                    .unwrap()
                    .episode(plain)
                    .unwrap()
                    .schema_id()
            )
            .unwrap()
            .is_empty(),
        "no row, no table: read as empty"
    );
    let first = record(&store, &[(OBS_SPACE, "box-a")], &[("level", "2")]);
    let same = record(&store, &[(OBS_SPACE, "box-a")], &[]);
    let other = record(&store, &[(OBS_SPACE, "box-b")], &[]);
    let own_wins = record(&store, &[(OBS_SPACE, "box-c")], &[(OBS_SPACE, "mine")]);
    let snap = store.snapshot().unwrap();
    let schema = snap.episode(first).unwrap().schema_id();
    assert_eq!(
        snap.schema_metadata(schema).unwrap(),
        Info::from([(OBS_SPACE.to_owned(), text("box-a"))]),
        "the first committed value is the schema's"
    );
    let own = |id| snap.episode(id).unwrap().metadata().clone();
    assert_eq!(own(first), Info::from([("level".to_owned(), text("2"))]));
    assert!(
        own(same).is_empty(),
        "the same value is not copied into the episode"
    );
    assert_eq!(
        own(other),
        Info::from([(OBS_SPACE.to_owned(), text("box-b"))]),
        "a differing value stays with its episode"
    );
    assert_eq!(
        own(own_wins),
        Info::from([(OBS_SPACE.to_owned(), text("mine"))])
    );
    let plain_schema = snap.episode(plain).unwrap().schema_id();
    assert!(snap.schema_metadata(plain_schema).unwrap().is_empty());
    drop(snap);
    drop(store);

    // Repair restores every episode's effective metadata from its manifest; merge and
    // compaction keep it too.
    let before: Vec<Info> = metadata_of(&dir).iter().map(effective).collect();
    let merged = tmp.path().join("merged");
    trajstore::merge(&merged, &[&dir]).unwrap();
    let after_merge: Vec<Info> = metadata_of(&merged)
        .iter()
        .map(|e| {
            let mut m = effective(e);
            m.remove(trajstore::MERGED_FROM_STORE);
            m.remove(trajstore::MERGED_FROM_EPISODE);
            m
        })
        .collect();
    assert_eq!(after_merge, before, "merge");
    let merged_rows = metadata_of(&merged);
    assert!(
        !merged_rows[2].1.contains_key(OBS_SPACE),
        "merge files the spaces once per schema too"
    );
    util::rebuild_index(&dir);
    let repaired: Vec<Info> = metadata_of(&dir).iter().map(effective).collect();
    assert_eq!(repaired, before, "repair");
}

#[test]
fn the_v1_fixture_has_no_schema_metadata_and_reads_as_before() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("v1");
    util::copy_v1_fixture(&dir);
    let store = Store::open_read_only(&dir).unwrap();
    let snap = store.snapshot().unwrap();
    for (id, _) in snap.schemas().unwrap() {
        assert!(snap.schema_metadata(id).unwrap().is_empty());
    }
}
