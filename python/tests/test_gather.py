"""Snapshot.gather: explicit (episode, step) pairs into one array, raw and lz4, reused."""

import numpy as np
import pytest

import trajstore

from test_store import FIELDS, record


def test_gather_reads_given_pairs_into_a_new_or_a_reused_array(store_path):
    store = trajstore.Store.create(store_path)
    (a, frames_a), (b, frames_b) = record(store, steps=4, seed=1), record(store, steps=6, seed=2)
    snap = store.snapshot()
    episodes = np.array([b, a, b, a, b], dtype=np.int64)
    steps = np.array([6, 0, 2, 4, 0], dtype=np.int64)
    want = np.stack([{a: frames_a, b: frames_b}[e][s] for e, s in zip(episodes, steps)])
    for field in ("obs/frame", "obs/frame_lz4"):
        got = snap.gather(field, episodes, steps)
        assert got.dtype == np.uint8 and got.shape == (5, 8, 8, 3) and got.flags.writeable
        assert np.array_equal(got, want), field
        out = np.zeros_like(want)
        assert snap.gather(field, list(episodes), steps.astype(np.uint32), out=out) is out
        assert np.array_equal(out, want), field
    actions = snap.gather("action", [a, b], [3, 5])
    assert actions.dtype == np.int64 and list(actions) == [4, 6]


def test_gather_refuses_bad_arguments_naming_them(store_path):
    store = trajstore.Store.create(store_path)
    a, _ = record(store, steps=4)
    snap = store.snapshot()
    out = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(trajstore.InputError, match="steps: -1 is negative"):
        snap.gather("obs/frame", [a], np.array([-1]), out=out)
    with pytest.raises(trajstore.InputError, match="episode"):
        snap.gather("obs/frame", [a], [5], out=out)
    with pytest.raises(trajstore.InputError, match="format"):
        snap.gather("obs/frame", [a], [0], out=np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(trajstore.InputError, match="writable"):
        snap.gather("obs/frame", [a], [0], out=np.zeros((1, 8, 8, 3), np.uint8)[:, ::2])
    with pytest.raises(trajstore.InputError, match=r"obs/frame.*shape \[2, 8, 8, 3\], got \[1, 8, 8, 3\]"):
        snap.gather("obs/frame", [a, a], [0, 1], out=out)
    with pytest.raises(trajstore.InputError, match="integer"):
        snap.gather("obs/frame", np.array([0.5]), [0], out=out)
    assert not out.any(), "nothing written by a refused gather"
