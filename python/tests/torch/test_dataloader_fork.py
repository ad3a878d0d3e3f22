"""A real torch `DataLoader` with `fork` workers over `trajstore.torch` datasets, after the
parent drew batches itself (so the library's gather threads run in the parent). Needs torch:
`.ci/run` installs it for this directory only (a large install)."""

import os

import numpy as np
import torch
from torch.utils.data import DataLoader

import trajstore
from trajstore.torch import StepDataset, WindowDataset

READ = ["obs", "obs/frame", "action"]
#: seconds a DataLoader batch may take before the test fails instead of hanging
HUNG = int(os.environ.get("TRAJSTORE_TEST_HUNG", 60))


def steps_of(batches):
    return sorted((e, t) for b in batches for e, t in zip(np.asarray(b["episode"]).tolist(), np.asarray(b["step"]).tolist()))


def window_starts(batches):
    return sorted((int(b["episode"][i, 0]), int(b["step"][i, 0])) for b in batches for i in range(len(b["episode"])))


def test_torch_dataloader_fork_workers_after_the_parent_drew_batches(frames_store):
    store = frames_store
    windows = WindowDataset(store.path, READ, batch_size=8, window=4)
    parent = list(windows)  # batches drawn in the parent, no workers
    assert parent and parent[0]["obs"].shape == (8, 4, 3)
    loader = DataLoader(windows, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=HUNG)
    workers = list(loader)
    assert window_starts(workers) == window_starts(parent)

    steps = WindowDataset(store.path, READ, batch_size=16, next=["obs"])
    everything = steps_of(steps)
    loader = DataLoader(steps, batch_size=None, num_workers=2, multiprocessing_context="fork", timeout=HUNG)
    assert steps_of(loader) == everything and len(everything) == trajstore.Loader(store).steps

    by_step = StepDataset(store.path, READ, next=["obs"])
    loader = DataLoader(by_step, batch_size=32, num_workers=2, multiprocessing_context="fork", timeout=HUNG)
    got = list(loader)
    assert sum(len(b["step"]) for b in got) == len(by_step)
    first = by_step[0]
    assert torch.equal(got[0]["obs"][0], first["obs"]) and torch.equal(got[0]["next/obs"][0], first["next/obs"])
