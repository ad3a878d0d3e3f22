"""Batches after `fork()`: children forked after the parent drew batches (which started the
library's gather threads) must draw batches too. This is what PyTorch's DataLoader does with
its default `fork` start method on Linux. Every wait is bounded, so a regression fails."""

import multiprocessing
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import trajstore
from trajstore.torch import StepDataset, WindowDataset

# Frames big enough that a batch is gathered on several threads (small columns run inline).
FIELDS = [("obs", "f32", (3,), "observation", "raw"), ("obs/frame", "u8", (64, 64, 3), "observation", "raw"),
          ("action", "i64", (), "transition", "raw")]
READ = ["obs", "obs/frame", "action"]
#: seconds a child or a DataLoader batch may take before the test fails
HUNG = int(os.environ.get("TRAJSTORE_TEST_HUNG", 60))


def record(store, steps, seed):
    rng = np.random.default_rng(seed)
    r = store.begin_episode("u", "Test-v0", FIELDS, seed=seed)
    obs = lambda: {"obs": rng.normal(size=3).astype(np.float32),  # noqa: E731
                   "obs/frame": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)}
    r.reset(obs())
    for t in range(1, steps + 1):
        r.step({**obs(), "action": t, "reward": 1.0, "terminated": t == steps, "truncated": False})
    return r.commit()


@pytest.fixture
def store(store_path):
    s = trajstore.Store(store_path)
    for i in range(8):
        record(s, steps=30 + 7 * i, seed=i)
    return s


def steps_of(batches):
    return sorted((e, t) for b in batches for e, t in zip(np.asarray(b["episode"]).tolist(), np.asarray(b["step"]).tolist()))


def window_starts(batches):
    return sorted((int(b["episode"][i, 0]), int(b["step"][i, 0])) for b in batches for i in range(len(b["episode"])))


def test_fork_children_draw_batches_from_the_parents_loader(store):
    loader = trajstore.Loader(store, seed=1)
    batches = loader.batches(READ, 16)
    first = next(batches)  # the parent's gather threads now run
    assert store.verify()["ok"]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()

    def child(k):
        rest = steps_of(batches)  # the parent's iterator, mid-epoch
        fresh = steps_of(loader.batches(READ, 16))
        ok = trajstore.Store.open(store.path, read_only=True).verify()["ok"]
        queue.put((k, rest, fresh, ok))

    procs = [ctx.Process(target=child, args=(k,), daemon=True) for k in range(2)]
    for p in procs:
        p.start()
    results = {}
    try:
        for _ in procs:
            k, rest, fresh, ok = queue.get(timeout=HUNG)
            results[k] = (rest, fresh, ok)
    except Exception:
        pytest.fail(f"a forked child hung: {len(results)} of {len(procs)} answered within {HUNG} s")
    finally:
        for p in procs:
            p.join(timeout=HUNG if len(results) == len(procs) else 0)
            if p.is_alive():
                p.kill()
                p.join()
    assert all(p.exitcode == 0 for p in procs)
    everything = steps_of(loader.batches(READ, 16))
    assert len(everything) == loader.steps
    for rest, fresh, ok in results.values():
        assert ok and fresh == everything
        assert sorted(rest + steps_of([first])) == everything
    # The parent goes on too.
    assert steps_of(batches) == results[0][0]


def test_torch_dataloader_fork_workers_after_the_parent_drew_batches(store):
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
