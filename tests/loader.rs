//! The loader against real stores: partition over the actual selection, batches, windows,
//! frame offsets, resume, and the replay env compared with plain snapshot reads.

use std::collections::{BTreeSet, HashMap};

use proptest::prelude::*;
use trajstore::loader::{
    Batch, Edge, FieldRequest, Loader, Order, ReplayEnv, ReplayOptions, Sampler, SamplerSpec, Seat,
    Selection,
};
use trajstore::{
    ArrayRef, Codec, DType, EpisodeId, EpisodeMeta, Error, Info, Query, ReadError, Schema, Store,
    Value,
};

/// Tiny episodes whose values say where they come from: `obs/id` = `[tag, t]` (observation
/// `t` of episode number `tag`), `obs/lz` (lz4) = 16 bytes of `t`, `action` = `tag*1000 + t`,
/// `reward` = `t`.
fn schema() -> Schema {
    Schema::builder()
        .observation("obs/id", DType::U32, &[2], Codec::Raw)
        .observation("obs/lz", DType::U8, &[16], Codec::Lz4)
        .transition("action", DType::I64, &[])
        .build()
        .expect("valid schema")
}

/// Records one episode of `steps` transitions tagged `tag`; returns its id.
fn record(store: &Store, tag: u32, steps: u32, meta: EpisodeMeta, interrupted: bool) -> EpisodeId {
    let mut w = store.begin_episode(meta, &schema()).expect("begin");
    let obs = |t: u32| ([tag, t], [t as u8; 16]);
    let (id, lz) = obs(0);
    let info = Info::from([("tag".to_owned(), Value::Int(i64::from(tag)))]);
    w.reset(
        &[
            ("obs/id", ArrayRef::new(&id)),
            ("obs/lz", ArrayRef::new(&lz)),
        ],
        &info,
    )
    .expect("reset");
    for t in 1..=steps {
        let (id, lz) = obs(t);
        let action = i64::from(tag) * 1000 + i64::from(t - 1);
        let reward = (t - 1) as f32;
        let last = t == steps && !interrupted;
        let info = Info::from([("t".to_owned(), Value::Int(i64::from(t)))]);
        w.step(
            &[
                ("obs/id", ArrayRef::new(&id)),
                ("obs/lz", ArrayRef::new(&lz)),
                ("action", ArrayRef::scalar(&action)),
                ("reward", ArrayRef::scalar(&reward)),
                ("terminated", ArrayRef::scalar(&last)),
                ("truncated", ArrayRef::scalar(&false)),
            ],
            &info,
        )
        .expect("step");
    }
    w.commit().expect("commit")
}

/// A fresh store with one episode per length; returns it and `id -> tag`.
fn store_with(lens: &[u32]) -> (tempfile::TempDir, Store, HashMap<EpisodeId, u32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).expect("create");
    let tags = lens
        .iter()
        .enumerate()
        .map(|(tag, &steps)| {
            let id = record(&store, tag as u32, steps, EpisodeMeta::new("u", "E"), false);
            (id, tag as u32)
        })
        .collect();
    (dir, store, tags)
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
        .collect()
}

fn all_batches(sampler: &mut Sampler) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut batch = Batch::new();
    while sampler.next_into(&mut batch).expect("batch") {
        out.push(batch.clone());
    }
    out
}

fn lens() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(1u32..30, 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    /// Every rank and worker built independently: disjoint, covering, balanced within one
    /// longest episode, and resuming from any position serves exactly the rest.
    #[test]
    fn ranks_partition_the_selection(lens in lens(), world in 1u32..5, workers in 1u32..3,
                                     seed: u64, epoch in 0u64..3, cut in 0usize..5) {
        let (_dir, store, tags) = store_with(&lens);
        let mut seen = BTreeSet::new();
        let mut rank_steps = Vec::new();
        for rank in 0..world {
            let mut steps = 0;
            for worker in 0..workers {
                let sel = Selection::new(Query::default(), world, rank, seed)
                    .epoch(epoch)
                    .worker(workers, worker);
                let loader = Loader::new(&store, &sel).expect("loader");
                let rows = loader.episodes().expect("catalog rows");
                for e in &rows {
                    prop_assert!(seen.insert(e.id()), "episode {} served twice", e.id());
                }
                steps += loader.steps();
                // Resume after `cut` episodes yields exactly the rest.
                let k = cut.min(loader.len());
                let cursor = loader.cursor().advanced(k as u64);
                let text = serde_json::to_string(&cursor).expect("serialize");
                let cursor = serde_json::from_str(&text).expect("deserialize");
                let resumed = Loader::resume(&store, loader.query(), cursor).expect("resume");
                prop_assert_eq!(&resumed.episodes().expect("catalog rows")[..], &rows[k..]);
            }
            rank_steps.push(steps);
        }
        prop_assert_eq!(seen.len(), tags.len());
        let longest = u64::from(*lens.iter().max().expect("non-empty"));
        let spread = rank_steps.iter().max().unwrap() - rank_steps.iter().min().unwrap();
        prop_assert!(spread <= longest, "spread {spread} > longest {longest}");
    }

    /// Batches are deterministic per seed, hold exactly the recorded values at the right
    /// offsets, flag edges, and serve every step once per epoch without replacement.
    #[test]
    fn batches_are_exact_and_deterministic(lens in lens(), seed: u64, batch in 1usize..9,
                                           zero in any::<bool>()) {
        let (_dir, store, tags) = store_with(&lens);
        let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, seed))
            .expect("loader");
        let edge = if zero { Edge::Zero } else { Edge::Clamp };
        let spec = |order| SamplerSpec::steps(vec![
            FieldRequest::new("obs/id").offsets(&[-2, -1, 0]),
            FieldRequest::next("obs/id"),
            FieldRequest::new("obs/lz"),
            FieldRequest::new("action"),
        ], batch, order).edge(edge);
        for order in [Order::Sequential, Order::Shuffle, Order::Replacement] {
            let a = all_batches(&mut Sampler::new(&loader, spec(order)).expect("sampler"));
            let b = all_batches(&mut Sampler::new(&loader, spec(order)).expect("sampler"));
            prop_assert_eq!(a.len(), b.len());
            let mut steps = Vec::new();
            for (x, y) in a.iter().zip(&b) {
                prop_assert_eq!(&x.episode, &y.episode);
                prop_assert_eq!(&x.step, &y.step);
                prop_assert_eq!(&x.columns[0].data, &y.columns[0].data);
                let stack = x.column("obs/id").expect("column");
                prop_assert_eq!(&stack.shape, &vec![x.units, 3, 2]);
                let ids = u32s(&stack.data);
                let next = u32s(&x.column("next/obs/id").expect("column").data);
                let lz = &x.column("obs/lz").expect("column").data;
                let actions = &x.column("action").expect("column").data;
                for row in 0..x.rows() {
                    let (ep, t) = (x.episode[row], x.step[row]);
                    let tag = tags[&EpisodeId(ep)];
                    steps.push((ep, t));
                    for (k, off) in [-2i64, -1, 0].into_iter().enumerate() {
                        let i = row * 3 + k;
                        let index = i64::from(t) + off;
                        let valid = stack.valid[i] == 1;
                        prop_assert_eq!(valid, index >= 0);
                        let want = match (valid, edge) {
                            (true, _) => [tag, index as u32],
                            (false, Edge::Clamp) => [tag, 0],
                            (false, Edge::Zero) => [0, 0],
                        };
                        prop_assert_eq!(&ids[i * 2..i * 2 + 2], &want[..]);
                    }
                    prop_assert_eq!(&next[row * 2..row * 2 + 2], &[tag, t + 1][..]);
                    prop_assert!(lz[row * 16..row * 16 + 16].iter().all(|&b| b == t as u8));
                    let action = i64::from_le_bytes(actions[row * 8..row * 8 + 8].try_into().unwrap());
                    prop_assert_eq!(action, i64::from(tag) * 1000 + i64::from(t));
                }
            }
            let total: u32 = lens.iter().sum();
            prop_assert_eq!(steps.len(), total as usize);
            if order != Order::Replacement {
                steps.sort_unstable();
                steps.dedup();
                prop_assert_eq!(steps.len(), total as usize, "a step served twice");
            }
        }
    }

    /// Strict windows stay inside one episode; padded windows mask exactly the rows past
    /// the end. Seeking resumes exactly.
    #[test]
    fn windows_never_cross_episodes(lens in lens(), seed: u64, len in 1u32..8, pad: bool,
                                    stop in 0usize..4) {
        let (_dir, store, tags) = store_with(&lens);
        let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, seed))
            .expect("loader");
        let spec = SamplerSpec::steps(vec![FieldRequest::new("obs/id")], 3, Order::Shuffle)
            .windows(len, pad);
        let mut sampler = Sampler::new(&loader, spec.clone()).expect("sampler");
        let expected_units: u64 = lens
            .iter()
            .map(|&t| if pad { u64::from(t) } else { u64::from(t.saturating_sub(len - 1)) })
            .sum();
        prop_assert_eq!(sampler.units(), expected_units);
        let batches = all_batches(&mut sampler);
        for b in &batches {
            let ids = u32s(&b.column("obs/id").expect("column").data);
            prop_assert_eq!(&b.column("obs/id").unwrap().shape, &vec![b.units, len as usize, 2]);
            for u in 0..b.units {
                let first = u * len as usize;
                let ep = b.episode[first];
                let steps = lens[tags[&EpisodeId(ep)] as usize];
                for j in 0..len as usize {
                    let row = first + j;
                    prop_assert_eq!(b.episode[row], ep);
                    prop_assert_eq!(b.step[row], b.step[first] + j as u32);
                    let real = b.step[row] < steps;
                    prop_assert!(pad || real, "strict window crosses the end");
                    prop_assert_eq!(b.mask[row] == 1, real);
                    let want = if real { [tags[&EpisodeId(ep)], b.step[row]] } else { [0, 0] };
                    prop_assert_eq!(&ids[row * 2..row * 2 + 2], &want[..]);
                }
            }
        }
        // Resume: seek to where an interrupted run stopped.
        let k = stop.min(batches.len());
        let mut resumed = Sampler::new(&loader, spec).expect("sampler");
        resumed.seek(batches[..k].iter().map(|b| b.units as u64).sum()).expect("seek");
        let rest = all_batches(&mut resumed);
        prop_assert_eq!(rest.len(), batches.len() - k);
        for (x, y) in rest.iter().zip(&batches[k..]) {
            prop_assert_eq!(&x.episode, &y.episode);
            prop_assert_eq!(&x.step, &y.step);
        }
    }
}

/// Replays every episode of a store and checks each value against plain snapshot reads.
#[test]
fn replay_returns_exactly_what_was_recorded_then_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).expect("create");
    for (tag, steps) in [(0, 3), (1, 1), (2, 5)] {
        record(&store, tag, steps, EpisodeMeta::new("u", "E"), tag == 1);
    }
    let snapshot = store.snapshot().expect("snapshot");
    let sel = Selection::new(Query::default(), 1, 0, 9);
    let mut env = ReplayEnv::new(&store, &sel, ReplayOptions::default()).expect("env");
    assert!(matches!(
        env.step(&0),
        Err(Error::Read(ReadError::InvalidRequest {
            what: "replay call",
            ..
        }))
    ));
    let order: Vec<EpisodeId> = (0..env.loader().len())
        .map(|i| env.loader().id_of(i))
        .collect();
    for id in order {
        let e = snapshot.episode(id).expect("episode");
        let ids = snapshot.field(&e, "obs/id").unwrap().to_vec().unwrap();
        let lz = snapshot.field(&e, "obs/lz").unwrap().to_vec().unwrap();
        let actions = snapshot.field(&e, "action").unwrap().to_vec().unwrap();
        let rewards = snapshot.field(&e, "reward").unwrap().to_vec().unwrap();
        let infos = snapshot.infos(&e).unwrap();
        let r = env.reset().expect("reset");
        assert_eq!((r.episode, r.seat), (id, Seat::P1));
        assert_eq!(r.observation.get("obs/id").unwrap().data, ids[..8]);
        assert_eq!(r.observation.get("obs/lz").unwrap().data, lz[..16]);
        assert_eq!(r.info, &infos[0]);
        let steps = e.steps() as usize;
        for t in 0..steps {
            let s = env.step(&[1u8]).expect("step");
            assert_eq!(
                s.observation.get("obs/id").unwrap().data,
                ids[(t + 1) * 8..(t + 2) * 8]
            );
            assert_eq!(
                s.observation.get("obs/lz").unwrap().data,
                lz[(t + 1) * 16..(t + 2) * 16]
            );
            let reward = f32::from_le_bytes(rewards[t * 4..t * 4 + 4].try_into().unwrap());
            assert_eq!(s.reward, f64::from(reward));
            let action = i64::from_le_bytes(actions[t * 8..t * 8 + 8].try_into().unwrap());
            assert_eq!(s.action.unwrap().to_vec::<i64>().unwrap(), vec![action]);
            assert_eq!(s.info.get("action"), Some(&Value::Int(action)));
            assert_eq!(s.info.get("t"), infos[t + 1].get("t"));
            let last = t + 1 == steps;
            assert_eq!(s.terminated || s.truncated, last);
            if last && e.outcome() == trajstore::Outcome::Interrupted {
                assert!(s.truncated && !s.terminated);
                assert_eq!(s.info.get("replay/interrupted"), Some(&Value::Bool(true)));
            }
        }
        assert!(matches!(
            env.step(&0),
            Err(Error::Read(ReadError::InvalidRequest {
                what: "replay call",
                ..
            }))
        ));
    }
    for _ in 0..2 {
        let end = env.reset().expect_err("end of data");
        assert!(matches!(
            end,
            Error::Read(ReadError::EndOfData { rank: 0, .. })
        ));
        assert_eq!(end.kind(), trajstore::ErrorKind::EndOfData);
        assert!(matches!(
            env.step(&0),
            Err(Error::Read(ReadError::InvalidRequest {
                what: "replay call",
                ..
            }))
        ));
    }
}

#[test]
fn replay_cycles_into_a_reshuffled_epoch_and_resumes() {
    let (_dir, store, _) = store_with(&[2, 2, 2, 2, 2, 2]);
    let sel = Selection::new(Query::default(), 2, 1, 5);
    let cycle = ReplayOptions { cycle: true };
    let mut env = ReplayEnv::new(&store, &sel, cycle).expect("env");
    let epoch0: Vec<EpisodeId> = (0..env.loader().len())
        .map(|i| env.loader().id_of(i))
        .collect();
    let mut served = Vec::new();
    for _ in 0..epoch0.len() * 2 {
        served.push(env.reset().expect("reset").episode);
    }
    assert_eq!(served[..epoch0.len()], epoch0[..]);
    assert_eq!(env.loader().cursor().epoch, 1);
    let epoch1 = Loader::new(&store, &sel.clone().epoch(1)).expect("loader");
    let ids1: Vec<EpisodeId> = (0..epoch1.len()).map(|i| epoch1.id_of(i)).collect();
    assert_eq!(served[epoch0.len()..], ids1[..]);

    // Loader::iter hands out the cursor to checkpoint after each episode.
    let loader = Loader::new(&store, &sel).expect("loader");
    let first = loader.iter().next().expect("an episode").expect("fields");
    assert_eq!(first.field("obs/id").unwrap().len(), 3);
    let rest = Loader::resume(&store, loader.query(), first.cursor_after).expect("resume");
    assert_eq!(
        rest.episodes().expect("catalog rows")[..],
        loader.episodes().expect("catalog rows")[1..]
    );

    // Resume mid-episode: the episode in progress restarts.
    let mut env = ReplayEnv::new(&store, &sel, ReplayOptions::default()).expect("env");
    env.reset().expect("reset");
    let second = env.reset().expect("reset").episode;
    env.step(&0).expect("step");
    let resumed = Loader::resume(&store, env.loader().query(), env.cursor()).expect("resume");
    let mut env = ReplayEnv::from_loader(resumed, ReplayOptions::default());
    assert_eq!(env.reset().expect("reset").episode, second);
}

#[test]
fn two_player_episodes_yield_a_p2_view() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).expect("create");
    let schema = Schema::builder()
        .observation("obs/p1_health", DType::I32, &[], Codec::Raw)
        .observation("obs/p2_health", DType::I32, &[], Codec::Raw)
        .transition("action", DType::I64, &[])
        .transition("action_p2", DType::I64, &[])
        .build()
        .unwrap();
    let record2 = |meta: EpisodeMeta| {
        let mut w = store.begin_episode(meta, &schema).unwrap();
        w.reset(
            &[
                ("obs/p1_health", ArrayRef::scalar(&100i32)),
                ("obs/p2_health", ArrayRef::scalar(&90i32)),
            ],
            &Info::new(),
        )
        .unwrap();
        for t in 0..2i32 {
            w.step(
                &[
                    ("obs/p1_health", ArrayRef::scalar(&(99 - t))),
                    ("obs/p2_health", ArrayRef::scalar(&(80 - t))),
                    ("action", ArrayRef::scalar(&(1i64 + i64::from(t)))),
                    ("action_p2", ArrayRef::scalar(&(7i64 + i64::from(t)))),
                    ("reward", ArrayRef::scalar(&(0.5f32 + t as f32))),
                    ("terminated", ArrayRef::scalar(&(t == 1))),
                    ("truncated", ArrayRef::scalar(&false)),
                ],
                &Info::new(),
            )
            .unwrap();
        }
        w.commit().unwrap()
    };
    let two = EpisodeMeta::new("u", "Fight")
        .meta("agents", "P1,P2")
        .meta("p2_swap", "obs/p1_health=obs/p2_health, action=action_p2");
    let a = record2(two.clone());
    let b = record2(two.meta("ignore_p2", true));
    let mut env = ReplayEnv::new(
        &store,
        &Selection::new(Query::default(), 1, 0, 0),
        ReplayOptions::default(),
    )
    .unwrap();
    let mut views = Vec::new();
    loop {
        let (episode, seat, p1) = match env.reset() {
            Ok(r) => (
                r.episode,
                r.seat,
                r.observation
                    .get("obs/p1_health")
                    .unwrap()
                    .to_vec::<i32>()
                    .unwrap()[0],
            ),
            Err(Error::Read(ReadError::EndOfData { .. })) => break,
            Err(e) => panic!("{e}"),
        };
        let s = env.step(&0).unwrap();
        let p1_next = s
            .observation
            .get("obs/p1_health")
            .unwrap()
            .to_vec::<i32>()
            .unwrap()[0];
        let p2_next = s
            .observation
            .get("obs/p2_health")
            .unwrap()
            .to_vec::<i32>()
            .unwrap()[0];
        let action = s.action.unwrap().to_vec::<i64>().unwrap()[0];
        views.push((episode, seat, p1, p1_next, p2_next, s.reward, action));
    }
    let mut views_sorted = views.clone();
    views_sorted.sort_by_key(|v| (v.0, v.1 == Seat::P2));
    assert_eq!(
        views_sorted,
        vec![
            (a, Seat::P1, 100, 99, 80, 0.5, 1),
            (a, Seat::P2, 90, 80, 99, -0.5, 7),
            (b, Seat::P1, 100, 99, 80, 0.5, 1),
        ]
    );
    // The P2 view directly follows its P1 view.
    let pa = views.iter().position(|v| v.0 == a).unwrap();
    assert_eq!(views[pa + 1].1, Seat::P2);

    // A malformed declaration is refused when the episode begins, before anything is
    // recorded, not at replay after the commit.
    let refused = |swap: &str| {
        let meta = EpisodeMeta::new("u", "Fight")
            .meta("agents", "P1,P2")
            .meta("p2_swap", swap);
        match store.begin_episode(meta, &schema) {
            Err(Error::Read(ReadError::InvalidRequest {
                what: "player layout",
                reason,
            })) => reason,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{swap:?} was accepted"),
        }
    };
    let m = refused("obs/p1_health=action");
    assert!(m.contains("differ in dtype, shape or kind"), "{m}");
    let m = refused("obs/p1=obs/p2");
    assert!(m.contains("neither a field nor a subtree"), "{m}");
    let episodes = store
        .snapshot()
        .unwrap()
        .episodes(&Query::default())
        .unwrap();
    assert_eq!(
        episodes.len(),
        2,
        "nothing of a refused episode is recorded"
    );
}

#[test]
fn p2_swap_of_subtrees_swaps_every_field_below() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::create(dir.path()).expect("create");
    let schema = Schema::builder()
        .observation("obs/P1/health", DType::I32, &[], Codec::Raw)
        .observation("obs/P1/side", DType::I32, &[], Codec::Raw)
        .observation("obs/P2/health", DType::I32, &[], Codec::Raw)
        .observation("obs/P2/side", DType::I32, &[], Codec::Raw)
        .transition("action", DType::I64, &[])
        .build()
        .unwrap();
    let meta = || EpisodeMeta::new("u", "Fight").meta("agents", "P1,P2");
    let mut w = store
        .begin_episode(meta().meta("p2_swap", "obs/P1=obs/P2"), &schema)
        .unwrap();
    let obs = |h1: i32, s1: i32, h2: i32, s2: i32| {
        [
            ("obs/P1/health", h1),
            ("obs/P1/side", s1),
            ("obs/P2/health", h2),
            ("obs/P2/side", s2),
        ]
    };
    let values = obs(100, 0, 90, 1);
    let refs: Vec<_> = values
        .iter()
        .map(|(n, v)| (*n, ArrayRef::scalar(v)))
        .collect();
    w.reset(&refs, &Info::new()).unwrap();
    let mut step: Vec<_> = refs.clone();
    step.extend([
        ("action", ArrayRef::scalar(&1i64)),
        ("reward", ArrayRef::scalar(&1.0f32)),
        ("terminated", ArrayRef::scalar(&true)),
        ("truncated", ArrayRef::scalar(&false)),
    ]);
    w.step(&step, &Info::new()).unwrap();
    w.commit().unwrap();
    let mut env = ReplayEnv::new(
        &store,
        &Selection::new(Query::default(), 1, 0, 0),
        ReplayOptions::default(),
    )
    .unwrap();
    let mut seen = Vec::new();
    while let Ok(r) = env.reset() {
        let get = |n: &str| r.observation.get(n).unwrap().to_vec::<i32>().unwrap()[0];
        seen.push((
            r.seat,
            get("obs/P1/health"),
            get("obs/P1/side"),
            get("obs/P2/health"),
        ));
    }
    assert_eq!(seen, vec![(Seat::P1, 100, 0, 90), (Seat::P2, 90, 1, 100)]);

    // Subtrees that do not match one to one are refused when the episode begins.
    let uneven = Schema::builder()
        .observation("obs/P1/health", DType::I32, &[], Codec::Raw)
        .observation("obs/P2/hp", DType::I32, &[], Codec::Raw)
        .build()
        .unwrap();
    let err = store
        .begin_episode(meta().meta("p2_swap", "obs/P1=obs/P2"), &uneven)
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("do not hold the same fields"),
        "{err}"
    );
}

#[test]
fn bad_requests_are_refused() {
    let (_dir, store, _) = store_with(&[3]);
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 0)).unwrap();
    let spec = |fields, batch| SamplerSpec::steps(fields, batch, Order::Sequential);
    let refused = |s: SamplerSpec| Sampler::new(&loader, s).err().map(|e| e.kind());
    assert_eq!(
        refused(spec(vec![FieldRequest::new("obs/id")], 0)),
        Some(trajstore::ErrorKind::Input)
    );
    assert_eq!(
        refused(spec(vec![FieldRequest::new("nope")], 1)),
        Some(trajstore::ErrorKind::Input)
    );
    assert_eq!(
        refused(spec(
            vec![FieldRequest::new("obs/id"), FieldRequest::new("obs/id")],
            1
        )),
        Some(trajstore::ErrorKind::Input)
    );
    assert_eq!(
        refused(spec(vec![FieldRequest::new("obs/id")], 1).windows(0, true)),
        Some(trajstore::ErrorKind::Input)
    );
    let rank = Loader::new(&store, &Selection::new(Query::default(), 2, 2, 0))
        .err()
        .unwrap();
    assert!(matches!(rank, Error::Read(ReadError::Partition(_))));
    // A cursor taken on another set is refused.
    let other = Loader::new(
        &store,
        &Selection::new(Query::default().user("nobody"), 1, 0, 0),
    )
    .unwrap();
    assert!(matches!(
        Loader::resume(&store, loader.query(), other.cursor()),
        Err(Error::Read(ReadError::Partition(_)))
    ));
}

/// Random access (a map-style dataset's `__getitems__`) serves the rows sequential batching
/// serves at the same unit indices, and leaves the epoch's position where it was.
#[test]
fn units_into_serves_the_sequential_units_asked_for() {
    let (_dir, store, _) = store_with(&[5, 9, 3]);
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 3)).unwrap();
    let fields = vec![FieldRequest::new("obs/id"), FieldRequest::next("obs/lz")];
    let spec = SamplerSpec::steps(fields, 1, Order::Sequential);
    let sequential = all_batches(&mut Sampler::new(&loader, spec.clone()).unwrap());
    let mut sampler = Sampler::new(&loader, spec).unwrap();
    let mut batch = Batch::new();
    let units = [16, 0, 4, 5, 13];
    sampler.units_into(&units, &mut batch).unwrap();
    assert_eq!(batch.units, units.len());
    for (row, &unit) in units.iter().enumerate() {
        let want = &sequential[unit as usize];
        assert_eq!(
            (batch.episode[row], batch.step[row]),
            (want.episode[0], want.step[0])
        );
        for (column, want) in batch.columns.iter().zip(&want.columns) {
            let bytes = want.data.len();
            assert_eq!(column.data[row * bytes..(row + 1) * bytes], want.data[..]);
        }
    }
    assert_eq!(sampler.position(), 0);
    let refused = sampler.units_into(&[17], &mut batch).unwrap_err();
    assert!(
        matches!(
            &refused,
            Error::Read(ReadError::InvalidRequest { what: "sampler unit", reason })
                if reason.contains("17 is out of range (this share has 17 units)")
        ),
        "{refused}"
    );
}

#[test]
fn prefetch_serves_the_sampler_order() {
    let (_dir, store, _) = store_with(&[5, 9, 3, 7]);
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 3)).unwrap();
    let spec = SamplerSpec::steps(vec![FieldRequest::new("obs/lz")], 4, Order::Shuffle);
    let direct = all_batches(&mut Sampler::new(&loader, spec.clone()).unwrap());
    let mut prefetch = trajstore::loader::Prefetcher::new(Sampler::new(&loader, spec).unwrap(), 2);
    let mut served = 0;
    while let Some(batch) = prefetch.next_batch() {
        let batch = batch.unwrap();
        assert_eq!(batch.step, direct[served].step);
        assert_eq!(batch.columns[0].data, direct[served].columns[0].data);
        served += 1;
        prefetch.recycle(batch);
    }
    assert_eq!(served, direct.len());
}

/// The shuffled order of a sampler is part of the resume contract (`schema/partition.md`
/// §1.5, §1.6 `sampler\0`): the same seed serves the same steps in the same order in every
/// build. Frozen output for three episodes of 3, 5 and 2 steps, seed 7, batches of 4.
#[test]
fn shuffled_sampler_order_is_frozen() {
    let (_dir, store, tags) = store_with(&[3, 5, 2]);
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 7)).expect("loader");
    let spec = SamplerSpec::steps(vec![FieldRequest::new("obs/id")], 4, Order::Shuffle);
    let served: Vec<(u32, u32)> = all_batches(&mut Sampler::new(&loader, spec).expect("sampler"))
        .iter()
        .flat_map(|b| {
            let ids = u32s(&b.column("obs/id").expect("column").data);
            (0..b.rows())
                .map(|r| {
                    let (tag, t) = (tags[&EpisodeId(b.episode[r])], b.step[r]);
                    assert_eq!(&ids[r * 2..r * 2 + 2], &[tag, t], "row {r}");
                    (tag, t)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let frozen = [
        (2, 1),
        (0, 1),
        (1, 3),
        (2, 0),
        (1, 4),
        (1, 2),
        (0, 2),
        (1, 0),
        (1, 1),
        (0, 0),
    ];
    assert_eq!(served, frozen);
}

/// A batch large enough to be gathered on the pool, a share of its units per task, holds
/// exactly what small batches (gathered on the calling thread) hold in the same order: for
/// stacked offsets at the episodes' edges, the next observation, an lz4 field (read through
/// its field, not the row table) and padded windows.
#[test]
fn pooled_and_calling_thread_gathers_agree() {
    let lens = [3000, 3, 6000, 1, 4500, 10500];
    let (_dir, store, _tags) = store_with(&lens);
    let loader = Loader::new(&store, &Selection::new(Query::default(), 1, 0, 5)).expect("loader");
    let steps = SamplerSpec::steps(
        vec![
            FieldRequest::new("obs/id").offsets(&[-2, -1, 0]),
            FieldRequest::next("obs/id"),
            FieldRequest::new("obs/lz"),
            FieldRequest::new("action"),
        ],
        1,
        Order::Shuffle,
    );
    let windows = SamplerSpec::steps(vec![FieldRequest::new("obs/id")], 1, Order::Shuffle)
        .windows(4, true)
        .edge(Edge::Zero);
    for spec in [steps, windows] {
        let units = Sampler::new(&loader, spec.clone())
            .expect("sampler")
            .units() as usize;
        // 24,000 units: above the 8,192 to 10,923 units of 32 to 24 bytes (256 KiB, the
        // sampler's TASK_MIN_BYTES) gathered on the calling thread.
        let whole = {
            let mut spec = spec.clone();
            spec.batch_size = units;
            let batches = all_batches(&mut Sampler::new(&loader, spec).expect("sampler"));
            assert_eq!(batches.len(), 1);
            batches.into_iter().next().expect("one batch")
        };
        let mut small_spec = spec.clone();
        small_spec.batch_size = 7;
        let small = all_batches(&mut Sampler::new(&loader, small_spec).expect("sampler"));
        assert_eq!(whole.episode, concat(&small, |b| &b.episode));
        assert_eq!(whole.step, concat(&small, |b| &b.step));
        for (c, column) in whole.columns.iter().enumerate() {
            let key = &column.key;
            assert_eq!(column.data, concat(&small, |b| &b.columns[c].data), "{key}");
            assert_eq!(
                column.valid,
                concat(&small, |b| &b.columns[c].valid),
                "{key}"
            );
        }
    }
}

/// Every batch's `list`, one after the other.
fn concat<T: Clone>(batches: &[Batch], list: impl Fn(&Batch) -> &Vec<T>) -> Vec<T> {
    batches
        .iter()
        .flat_map(|b| list(b).iter().cloned())
        .collect()
}
