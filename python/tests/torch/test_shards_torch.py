"""The torch datasets over several stores (shards recorded on several hosts) as one dataset:
every step of every store served once across 2 ranks and 2 DataLoader workers (spawn, so
the datasets pickle the path list), episodes keyed shard << 48 | id."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import trajstore
from trajstore.torch import StepDataset, WindowDataset

FIELDS = [("obs", "i64", (2,), "observation", "raw"), ("action", "i64", (), "transition", "raw")]


@pytest.fixture
def shard_paths(tmp_path):
    paths = []
    for shard, count in enumerate([3, 5]):
        store = trajstore.Store.create(tmp_path / f"host-{shard}")
        for n in range(count):
            steps = 4 + 3 * n + shard
            r = store.begin_episode("u", "Test-v0", FIELDS, seed=shard * 100 + n)
            r.reset({"obs": np.array([shard, n])})
            for t in range(1, steps + 1):
                r.step({"obs": np.array([shard, n]), "action": t, "reward": 0.0, "terminated": t == steps, "truncated": False})
            r.commit()
        paths.append(str(tmp_path / f"host-{shard}"))
    return paths


def every_step(paths):
    return {(s << 48 | e.id, t)
            for s, p in enumerate(paths) for e in trajstore.Store(p).episodes() for t in range(e.steps)}


def test_step_and_window_datasets_serve_every_step_of_every_store_once(shard_paths):
    served_steps, served_windows = [], []
    for rank in range(2):
        steps = StepDataset(shard_paths, ["obs", "action"], rank=rank, world_size=2, seed=4, even="drop")
        # even="drop" serves the smallest rank's count: count it against the rank's own share.
        own = trajstore.Loader(shard_paths, rank=rank, world_size=2, seed=4).steps
        for batch in DataLoader(steps, batch_size=8, num_workers=2, multiprocessing_context="spawn"):
            keys = batch["episode"].tolist()
            assert batch["episode"].dtype == torch.int64
            # The obs says which store and episode the row was read from.
            for key, obs in zip(keys, batch["obs"].tolist()):
                shard, _ = trajstore.split_key(key, 2)
                assert obs[0] == shard
            served_steps += zip(keys, batch["step"].tolist())
        assert len(steps) <= own
        windows = WindowDataset(shard_paths, ["obs"], batch_size=4, rank=rank, world_size=2, seed=4, order="sequential",
                                even="pad")
        for batch in DataLoader(windows, batch_size=None, num_workers=2, multiprocessing_context="spawn"):
            served_windows += zip(batch["episode"][batch["mask"]].tolist(), batch["step"][batch["mask"]].tolist())
    expected = every_step(shard_paths)
    assert set(served_windows) == expected, "every step of every store, across ranks and workers"
    assert set(served_steps) <= expected and len(set(served_steps)) == len(served_steps)
