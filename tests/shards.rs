//! Several stores as one dataset (`schema/partition.md` §7): every `(shard, id)` served once
//! across ranks and workers, rows read from the right store, a list of one store unchanged,
//! cutoffs per shard, and resumes that refuse another shard list naming what differs.

use std::collections::HashMap;

use trajstore::loader::{
    Batch, FieldRequest, Loader, Order, Sampler, SamplerSpec, Selection, Shard, ShardedCursor,
    split_key,
};
use trajstore::{Codec, EpisodeId, Error, Query, ReadError, Store};
use trajstore_testkit::fixtures::{record_small, small_frame};

/// `stores` stores in `dir`, store `s` holding `count(s)` episodes, each seeded
/// `1000 * s + n` (so an episode's seed says which store it was recorded in) and `3 + n % 7`
/// steps long.
fn stores(dir: &std::path::Path, counts: &[u64]) -> Vec<Store> {
    counts
        .iter()
        .enumerate()
        .map(|(s, &count)| {
            let store = Store::create(dir.join(format!("host-{s}"))).unwrap();
            for n in 0..count {
                record_small(
                    &store,
                    "u",
                    1000 * s as u64 + n,
                    3 + (n % 7) as u32,
                    Codec::Raw,
                );
            }
            store
        })
        .collect()
}

fn shards(stores: &[Store]) -> Vec<Shard> {
    stores.iter().map(Shard::new).collect()
}

#[test]
fn several_stores_serve_every_episode_once_from_its_own_store() {
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(dir.path(), &[5, 8, 3]);
    let shards = shards(&stores);
    let (world_size, num_workers) = (2, 2);
    let mut served: Vec<(u32, u64)> = Vec::new();
    for rank in 0..world_size {
        for worker in 0..num_workers {
            let sel =
                Selection::new(Query::default(), world_size, rank, 9).worker(num_workers, worker);
            let loader = Loader::new_sharded(&shards, &sel).unwrap();
            let mut seeds = HashMap::new();
            for (i, e) in loader.episodes().unwrap().iter().enumerate() {
                let shard = loader.shard_of(i);
                assert_eq!(
                    e.seed().unwrap() / 1000,
                    u64::from(shard),
                    "episode {i} read from its store"
                );
                assert_eq!(split_key(3, loader.key_of(i)), (shard, e.id().get()));
                seeds.insert(loader.key_of(i), e.seed().unwrap());
                served.push((shard, e.id().get()));
            }
            // Rows of batches come from the episode their key names.
            let spec = SamplerSpec::steps(vec![FieldRequest::new("obs/frame")], 4, Order::Shuffle);
            let mut sampler = Sampler::new(&loader, spec).unwrap();
            let mut batch = Batch::new();
            let mut rows = 0;
            while sampler.next_into(&mut batch).unwrap() {
                let frames = &batch.column("obs/frame").unwrap().data;
                for row in 0..batch.units {
                    let seed = seeds[&batch.episode[row]];
                    assert_eq!(
                        &frames[row * 192..][..192],
                        small_frame(seed, batch.step[row])
                    );
                    rows += 1;
                }
            }
            assert_eq!(rows, loader.steps());
            for data in loader.iter() {
                let data = data.unwrap();
                assert_eq!(
                    data.field("obs/frame").unwrap().len() as u32,
                    data.episode.steps() + 1
                );
                assert_eq!(
                    split_key(3, data.key),
                    (data.shard, data.episode.id().get())
                );
            }
        }
    }
    served.sort_unstable();
    let mut expected: Vec<(u32, u64)> = stores
        .iter()
        .enumerate()
        .flat_map(|(s, store)| {
            let snap = store.snapshot().unwrap();
            snap.episodes(&Query::default())
                .unwrap()
                .into_iter()
                .map(move |e| (s as u32, e.id().get()))
        })
        .collect();
    expected.sort_unstable();
    assert_eq!(served, expected, "every (shard, id) exactly once");
}

#[test]
fn a_list_of_one_store_is_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(dir.path(), &[12]);
    for rank in 0..3 {
        let sel = Selection::new(Query::default(), 3, rank, 4).epoch(2);
        let plain = Loader::new(&stores[0], &sel).unwrap();
        let listed = Loader::new_sharded(&shards(&stores), &sel).unwrap();
        assert_eq!(plain.cursor(), listed.cursor());
        assert_eq!(plain.episode_set(), listed.episode_set());
        let ids = |l: &Loader| {
            l.episodes()
                .unwrap()
                .iter()
                .map(|e| e.id())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&plain), ids(&listed));
        assert_eq!(
            (0..listed.len())
                .map(|i| listed.key_of(i))
                .collect::<Vec<_>>(),
            ids(&listed).iter().map(|id| id.get()).collect::<Vec<_>>()
        );
        // A plain cursor resumes a loader of the list, and the other way round.
        let resumed =
            Loader::resume(&stores[0], plain.query(), listed.cursor().advanced(1)).unwrap();
        assert_eq!(ids(&resumed), ids(&plain)[1..]);
    }
}

#[test]
fn cutoffs_per_shard_fix_the_set_while_recording_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(dir.path(), &[4, 4]);
    let sel = Selection::new(Query::default(), 2, 0, 1);
    let first = Loader::new_sharded(&shards(&stores), &sel).unwrap();
    assert_eq!(first.cutoffs(), [EpisodeId(5), EpisodeId(5)]);
    record_small(&stores[1], "u", 1999, 9, Codec::Raw);
    let pinned: Vec<Shard> = stores
        .iter()
        .zip(first.cutoffs())
        .map(|(s, c)| Shard::new(s).cutoff(c))
        .collect();
    let again = Loader::new_sharded(&pinned, &sel).unwrap();
    assert_eq!(again.episode_set(), first.episode_set());
    assert_eq!(
        first.next_epoch().unwrap().episode_set(),
        first.episode_set()
    );
    let unpinned = Loader::new_sharded(&shards(&stores), &sel).unwrap();
    assert_eq!(unpinned.episode_set().len(), first.episode_set().len() + 1);
    let err = Loader::new_sharded(
        &shards(&stores),
        &Selection::new(Query::default().before(EpisodeId(3)), 2, 0, 1),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("Shard::cutoff"), "{err}");
}

#[test]
fn resume_over_shards_refuses_another_list_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(dir.path(), &[6, 3, 5]);
    let sel = Selection::new(Query::default(), 2, 1, 3).epoch(1);
    let loader = Loader::new_sharded(&shards(&stores), &sel).unwrap();
    let cursor = loader.sharded_cursor();
    let cursor = ShardedCursor {
        cursor: cursor.cursor.advanced(2),
        ..cursor
    };
    let json = serde_json::to_string(&cursor).unwrap();
    let cursor: ShardedCursor = serde_json::from_str(&json).unwrap();

    let resumed = Loader::resume_sharded(&shards(&stores), &Query::default(), &cursor).unwrap();
    let keys = |l: &Loader| (0..l.len()).map(|i| l.key_of(i)).collect::<Vec<_>>();
    assert_eq!(keys(&resumed), keys(&loader)[2..]);

    let refused = |shards: &[Shard], query: &Query| -> String {
        let err = Loader::resume_sharded(shards, query, &cursor)
            .err()
            .unwrap();
        assert!(matches!(err, Error::Read(ReadError::Partition(_))), "{err}");
        err.to_string()
    };
    let mut reordered = shards(&stores);
    reordered.swap(0, 2);
    let err = refused(&reordered, &Query::default());
    assert!(
        err.contains("shard 0") && err.contains("was shard 2") && err.contains("another order"),
        "{err}"
    );
    let err = refused(&shards(&stores[..2]), &Query::default());
    assert!(err.contains("3 shard(s), 2 given"), "{err}");
    let err = refused(
        &shards(&stores),
        &Query {
            min_steps: Some(5),
            ..Query::default()
        },
    );
    assert!(
        err.contains("shard 0") && err.contains("the selection differs"),
        "{err}"
    );
    record_small(&stores[1], "u", 1500, 4, Codec::Raw);
    let err = refused(&shards(&stores), &Query::default());
    assert!(
        err.contains("shard 1") && err.contains("cutoff 5 given"),
        "{err}"
    );
}

#[test]
fn the_same_store_listed_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let stores = stores(dir.path(), &[2, 2]);
    let again = Store::open_read_only(dir.path().join("host-0")).unwrap();
    let list = [
        Shard::new(&stores[0]),
        Shard::new(&stores[1]),
        Shard::new(&again),
    ];
    let err = Loader::new_sharded(&list, &Selection::new(Query::default(), 1, 0, 0))
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("shards 0 and 2 are the same store"),
        "{err}"
    );
    assert!(Loader::new_sharded(&[], &Selection::new(Query::default(), 1, 0, 0)).is_err());
}
