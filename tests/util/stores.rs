//! Stores the library's tests build and compare: a rich episode, a populated store, and
//! everything a reader can see of a store.

use std::path::{Path, PathBuf};

use trajstore::{
    ArrayRef, Codec, DType, Episode, EpisodeId, EpisodeMeta, Info, Query, RepairAction, Schema,
    Snapshot, Store, Value,
};

use super::record_small;

/// Everything a reader can see of a store: episodes (metadata, chunk refs, schema id), their
/// schemas, infos and field bytes, user statistics.
#[derive(Debug, PartialEq)]
pub struct Contents {
    pub episodes: Vec<(trajstore::Episode, Schema, Vec<Info>, Vec<u64>)>,
    pub users: Vec<trajstore::UserSummary>,
}

pub fn contents(dir: &Path) -> Contents {
    let store = Store::open_read_only(dir).unwrap();
    let snap = store.snapshot().unwrap();
    let episodes = snap
        .episodes(&Query::default())
        .unwrap()
        .into_iter()
        .map(|e| {
            let schema = (*snap.schema(e.schema_id()).unwrap()).clone();
            let infos = snap.infos(&e).unwrap();
            let digests = snap
                .fields(&e)
                .unwrap()
                .iter()
                .map(|f| xxhash_rust::xxh3::xxh3_64(&f.to_vec().unwrap()))
                .collect();
            (e, schema, infos, digests)
        })
        .collect();
    let mut users = snap.users().unwrap();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(snap.verify().unwrap().problems.is_empty());
    Contents { episodes, users }
}

/// An episode with metadata, tags, a seed, a second observation field and non-empty infos.
pub fn record_rich(store: &Store, user: &str, seed: u64, steps: u32, codec: Codec) -> EpisodeId {
    let schema = Schema::builder()
        .observation("obs/frame", DType::U8, &[4, 4, 3], codec)
        .observation("obs/ram/health", DType::I32, &[2], Codec::Raw)
        .transition("action", DType::I64, &[])
        .build()
        .unwrap();
    let meta = EpisodeMeta::new(user, "Fight-v1")
        .seed(seed)
        .tag("expert")
        .tag(format!("t{seed}"))
        .meta("difficulty", seed as i64)
        .meta("note", "rich");
    let mut w = store.begin_episode(meta, &schema).unwrap();
    let frame = |t: u32| vec![(seed as u8).wrapping_add(t as u8); 48];
    let hp = |t: u32| [100 - t as i32, 90];
    let mut reset_info = Info::new();
    reset_info.insert("stage".into(), Value::Int(1));
    w.reset(
        &[
            ("obs/frame", ArrayRef::new(&frame(0))),
            ("obs/ram/health", ArrayRef::new(&hp(0))),
        ],
        &reset_info,
    )
    .unwrap();
    for t in 1..=steps {
        let mut info = Info::new();
        if t % 2 == 0 {
            info.insert("combo".into(), Value::Ints(vec![t as i64, 2]));
        }
        w.step(
            &[
                ("obs/frame", ArrayRef::new(&frame(t))),
                ("obs/ram/health", ArrayRef::new(&hp(t))),
                ("action", ArrayRef::scalar(&i64::from(t))),
                ("reward", ArrayRef::scalar(&(t as f32 * 0.5))),
                ("terminated", ArrayRef::scalar(&(t == steps))),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &info,
        )
        .unwrap();
    }
    w.commit().unwrap()
}

/// A store with two users, two schemas, raw and lz4 fields; returns its directory.
pub fn populated(root: &Path) -> PathBuf {
    let dir = root.join("store");
    let store = Store::create(&dir).unwrap();
    record_rich(&store, "ann", 1, 5, Codec::Raw);
    record_small(&store, "bob", 2, 4, Codec::Lz4);
    record_rich(&store, "ann", 3, 3, Codec::Lz4);
    record_small(&store, "bob", 4, 6, Codec::Raw);
    dir
}

/// Every field's bytes of an episode, in schema order.
pub fn field_bytes(snap: &Snapshot, episode: &Episode) -> Vec<Vec<u8>> {
    snap.fields(episode)
        .unwrap()
        .iter()
        .map(|f| f.to_vec().unwrap())
        .collect()
}

/// Creates a store at `dir` holding one [`record_small`] episode per
/// `(user, seed, steps, codec)`, in order, and closes it; returns their ids.
pub fn small_store(dir: &Path, episodes: &[(&str, u64, u32, Codec)]) -> Vec<EpisodeId> {
    let store = Store::create(dir).unwrap();
    episodes
        .iter()
        .map(|&(user, seed, steps, codec)| record_small(&store, user, seed, steps, codec))
        .collect()
}

/// Every episode's catalog summary, from its full record: what the catalog must answer.
pub fn summaries_from_records(snap: &Snapshot) -> Vec<trajstore::EpisodeSummary> {
    snap.episodes(&Query::default())
        .unwrap()
        .iter()
        .map(trajstore::EpisodeSummary::from)
        .collect()
}

/// Asserts that `repair` finds nothing to do on the store at `dir`, then that it rebuilds a
/// deleted index from the segments with every episode restored (none unrestorable, none
/// restored without its commit marker).
pub fn assert_repair_idle_then_rebuilds_cleanly(dir: &Path) {
    let healthy = trajstore::repair(dir).unwrap();
    assert_eq!(healthy.action, RepairAction::NothingToDo, "{healthy:?}");
    assert!(healthy.unrestorable.is_empty(), "{healthy:?}");

    let report = super::rebuild_index(dir);
    assert_eq!(report.action, RepairAction::Rebuilt);
    assert!(report.unrestorable.is_empty(), "{report:?}");
    assert!(report.restored_unmarked.is_empty(), "{report:?}");
}
