"""Objects used in a child process after fork() (multiprocessing with the fork start method,
DataLoader workers, vector envs built from a parent's objects): recording and reading through
the parent's handles works in the child, an episode in flight stays the parent's, and nothing
committed is ever lost. schema/concurrency.md, "Fork"."""

import multiprocessing as mp

import numpy as np
import pytest

import trajstore

FIELDS = [
    ("obs/frame", "u8", (8, 8, 3), "observation", "raw"),
    ("obs/lz4", "u8", (8, 8, 3), "observation", "lz4"),
    ("action", "i64", (), "transition", "raw"),
]


def frames_for(seed, steps):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 255, size=(steps + 1, 8, 8, 3), dtype=np.uint8)


def record(store, user, seed, steps=4):
    frames = frames_for(seed, steps)
    r = store.begin_episode(user, "Test-v0", FIELDS, seed=seed)
    r.reset({"obs/frame": frames[0], "obs/lz4": frames[0]})
    for t in range(1, steps + 1):
        r.step(
            {"obs/frame": frames[t], "obs/lz4": frames[t], "action": t, "reward": 1.0,
             "terminated": t == steps, "truncated": False}
        )
    return r.commit()


def check(store, eid, seed, steps=4):
    episode = store.episode(eid)
    frames = frames_for(seed, steps)
    assert np.array_equal(episode["obs/frame"], frames)
    assert np.array_equal(episode["obs/lz4"], frames)


def run_children(ctx, target, args_list, timeout=60):
    procs = [ctx.Process(target=target, args=args) for args in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout)
        assert p.exitcode == 0, f"child {p.pid} exited with {p.exitcode}"


def test_children_record_and_read_through_the_parents_store_after_fork(store_path):
    store = trajstore.Store.create(store_path)
    before = [record(store, "parent", seed) for seed in range(2)]
    snapshot_episode = store.episode(before[0])  # holds the parent's snapshot

    def child(c):
        for k in range(3):
            seed = 100 + 10 * c + k
            check(store, record(store, "child", seed), seed)
        # The parent's snapshot still reads in the child.
        assert np.array_equal(snapshot_episode["obs/frame"], frames_for(0, 4))
        assert [e.id for e in store.episodes(user="parent")][:2] == before

    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=child, args=(c,)) for c in range(4)]
    for p in procs:
        p.start()
    mine = [record(store, "parent", 50 + s) for s in range(3)]  # the parent records meanwhile
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, f"child {p.pid} exited with {p.exitcode}"

    fresh = trajstore.Store.create(store_path)
    ids = [e.id for e in fresh.episodes()]
    assert len(ids) == 2 + 4 * 3 + 3 and len(set(ids)) == len(ids), ids
    assert len(fresh.episodes(user="child")) == 12
    for seed, eid in enumerate(before):
        check(fresh, eid, seed)
    for s, eid in enumerate(mine):
        check(fresh, eid, 50 + s)
    assert fresh.verify()["ok"]
    # The parent's handles survive their copies being used and dropped in children.
    check(store, record(store, "parent", 99), 99)
    assert np.array_equal(snapshot_episode["obs/frame"], frames_for(0, 4))


def test_a_pool_of_forked_workers_records_through_one_handle(store_path):
    store = trajstore.Store.create(store_path)
    record(store, "parent", 0)
    global _POOL_STORE
    _POOL_STORE = store
    with mp.get_context("fork").Pool(2) as pool:
        ids = pool.map(_pool_record, range(6))
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6
    fresh = trajstore.Store.create(store_path)
    for seed, eid in zip(range(6), ids):
        check(fresh, eid, 200 + seed)
    assert fresh.verify()["ok"]


_POOL_STORE = None


def _pool_record(seed):
    return record(_POOL_STORE, "pool", 200 + seed)


def test_an_episode_in_flight_stays_the_parents(store_path):
    store = trajstore.Store.create(store_path)
    frames = frames_for(7, 2)
    recorder = store.begin_episode("parent", "Test-v0", FIELDS, seed=7)
    recorder.reset({"obs/frame": frames[0], "obs/lz4": frames[0]})

    def child():
        step = {"obs/frame": frames[1], "obs/lz4": frames[1], "action": 1, "reward": 1.0,
                "terminated": False, "truncated": False}
        with pytest.raises(trajstore.TrajstoreError, match="after a fork"):
            recorder.step(step)
        # A new episode in the child is fine.
        check(store, record(store, "child", 8), 8)

    run_children(mp.get_context("fork"), child, [()])
    for t in (1, 2):
        recorder.step({"obs/frame": frames[t], "obs/lz4": frames[t], "action": t,
                       "reward": 1.0, "terminated": t == 2, "truncated": False})
    eid = recorder.commit()
    check(store, eid, 7, steps=2)
    assert len(store.episodes()) == 2


def test_a_background_commit_is_waited_for_by_the_parent_only(store_path):
    store = trajstore.Store.create(store_path)
    frames = frames_for(9, 2)
    recorder = store.begin_episode("parent", "Test-v0", FIELDS, seed=9)
    recorder.reset({"obs/frame": frames[0], "obs/lz4": frames[0]})
    for t in (1, 2):
        recorder.step({"obs/frame": frames[t], "obs/lz4": frames[t], "action": t,
                       "reward": 1.0, "terminated": t == 2, "truncated": False})
    pending = recorder.commit_in_background()

    def child():
        # The commit runs on the parent's threads: the child is told so instead of hanging,
        # and its copy of the handle goes away without waiting.
        with pytest.raises(trajstore.TrajstoreError, match="after a fork"):
            pending.wait()
        check(store, record(store, "child", 10), 10)

    run_children(mp.get_context("fork"), child, [()])
    check(store, pending.wait(), 9, steps=2)
    assert len(store.episodes()) == 2


def _spawn_child(path, seed):
    store = trajstore.Store.create(path)
    check(store, record(store, "spawned", seed), seed)


def test_spawned_children_open_the_store_themselves(store_path):
    store = trajstore.Store.create(store_path)
    record(store, "parent", 0)
    run_children(mp.get_context("spawn"), _spawn_child, [(str(store_path), 300 + c) for c in range(2)])
    assert len(trajstore.Store.create(store_path).episodes(user="spawned")) == 2
