"""Batches after `fork()`: children forked after the parent drew batches (which started the
library's gather threads) must draw batches too. This is what PyTorch's DataLoader does with
its default `fork` start method on Linux (python/tests/torch/ runs a real one). Every wait is
bounded, so a regression fails."""

import multiprocessing
import os

import numpy as np
import pytest

import trajstore

READ = ["obs", "obs/frame", "action"]
#: seconds a forked child may take before the test fails
HUNG = int(os.environ.get("TRAJSTORE_TEST_HUNG", 60))


def steps_of(batches):
    return sorted((e, t) for b in batches for e, t in zip(np.asarray(b["episode"]).tolist(), np.asarray(b["step"]).tolist()))


def test_fork_children_draw_batches_from_the_parents_loader(frames_store):
    store = frames_store
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
