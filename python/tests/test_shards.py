"""Several stores as one dataset from Python (schema/partition.md §7): Loader, StepIndex and
cursors over a shard list; the torch datasets' share of it is in tests/torch."""

import json

import numpy as np
import pytest

import trajstore
from trajstore.datasets import StepIndex

FIELDS = [("obs", "i64", (2,), "observation", "raw"), ("action", "i64", (), "transition", "raw")]


def record(store, shard, n, steps):
    """An episode whose observations say where they come from: obs = [shard * 1000 + n, t]."""
    r = store.begin_episode("u", "Test-v0", FIELDS, seed=shard * 1000 + n)
    r.reset({"obs": np.array([shard * 1000 + n, 0])})
    for t in range(1, steps + 1):
        r.step({"obs": np.array([shard * 1000 + n, t]), "action": t, "reward": 1.0, "terminated": t == steps, "truncated": False})
    return r.commit()


@pytest.fixture
def shards(tmp_path):
    """Three stores recorded "on three hosts": 4, 7 and 2 episodes."""
    paths = []
    for shard, count in enumerate([4, 7, 2]):
        store = trajstore.Store.create(tmp_path / f"host-{shard}")
        for n in range(count):
            record(store, shard, n, 3 + (5 * n + shard) % 11)
        paths.append(str(tmp_path / f"host-{shard}"))
    return paths


def test_ranks_and_workers_serve_every_episode_of_every_store_once(shards):
    served = []
    for rank in range(2):
        for worker in range(2):
            loader = trajstore.Loader(shards, rank=rank, world_size=2, num_workers=2, worker=worker, seed=3)
            for key, shard, episode in zip(loader.episode_ids, loader.shards(), loader.episodes()):
                assert trajstore.split_key(key, 3) == (shard, episode.info.id)
                assert episode.info.seed // 1000 == shard, "read from its own store"
                assert episode["obs"][0, 0] == episode.info.seed
                served.append((shard, episode.info.id))
    expected = [(s, e.id) for s, p in enumerate(shards) for e in trajstore.Store(p).episodes()]
    assert sorted(served) == sorted(expected) and len(expected) == 13


def test_batches_and_step_index_read_each_row_from_its_store(shards):
    loader = trajstore.Loader(shards, world_size=1, seed=1)
    seeds = {key: e.info.seed for key, e in zip(loader.episode_ids, loader.episodes())}
    rows = 0
    for batch in loader.batches(["obs"], batch_size=5, next=["obs"]):
        for key, step, obs, nxt in zip(batch["episode"], batch["step"], batch["obs"], batch["next/obs"]):
            assert obs.tolist() == [seeds[int(key)], step] and nxt.tolist() == [seeds[int(key)], step + 1]
            rows += 1
    assert rows == loader.steps
    index = StepIndex(loader, ["obs"])
    item = index[len(index) - 1]
    assert item["obs"][0] == seeds[item["episode"]]


def test_a_list_of_one_store_is_the_store(shards):
    plain = trajstore.Loader(shards[1], world_size=2, rank=1, seed=5)
    listed = trajstore.Loader([shards[1]], world_size=2, rank=1, seed=5)
    assert plain.episode_ids == listed.episode_ids and plain.cursor() == listed.cursor()
    assert "shards" not in plain.cursor(), "a single store's cursor is unchanged"


def test_resume_refuses_another_shard_order_naming_it(shards):
    loader = trajstore.Loader(shards, world_size=2, rank=0, seed=2)
    cursor = json.loads(json.dumps({**loader.cursor(), "position": 1}))
    assert len(cursor["shards"]) == 3 and [s["path"] for s in cursor["shards"]] == shards
    resumed = trajstore.Loader.resume(shards, cursor)
    assert resumed.episode_ids == loader.episode_ids[1:]
    with pytest.raises(trajstore.TrajstoreError, match=r"shard 0 .*was shard 2 .*another order"):
        trajstore.Loader.resume([shards[2], shards[1], shards[0]], cursor)
    with pytest.raises(trajstore.TrajstoreError, match=r"3 shard\(s\), 2 given"):
        trajstore.Loader.resume(shards[:2], cursor)
    with pytest.raises(trajstore.TrajstoreError, match=r"shard 0 .*selection differs"):
        trajstore.Loader.resume(shards, cursor, min_steps=6)


def test_cutoffs_fix_the_set_while_a_shard_is_still_recorded(shards):
    first = trajstore.Loader(shards, seed=0)
    record(trajstore.Store(shards[2]), 2, 50, 4)
    pinned = trajstore.Loader(shards, seed=0, cutoffs=first.cutoffs)
    assert sorted(pinned.episode_ids) == sorted(first.episode_ids)
    assert len(trajstore.Loader(shards, seed=0).episode_ids) == len(first.episode_ids) + 1
    with pytest.raises(trajstore.InputError, match=r"2 cutoff\(s\) for 3 store\(s\)"):
        trajstore.Loader(shards, cutoffs=first.cutoffs[:2])


def test_a_missing_shard_is_named(shards, tmp_path):
    with pytest.raises(trajstore.StoreOpenError, match=r"shard 1 \(.*nowhere\)"):
        trajstore.Loader([shards[0], str(tmp_path / "nowhere")])
    with pytest.raises(trajstore.TrajstoreError, match="same store"):
        trajstore.Loader([shards[0], shards[1], shards[0]])
