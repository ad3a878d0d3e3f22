"""Store.stats: per-element statistics kept at commit, combined for the whole store and for
one user's episodes, against numpy over the same values read from the frames."""

import shutil
from pathlib import Path

import numpy as np
import pytest

import trajstore

FIELDS = [
    ("obs", "f32", (2, 3), "observation", "raw"),
    ("obs/frame", "u8", (16, 16, 3), "observation", "raw"),
    ("action", "i64", (), "transition", "lz4"),
]
QUANTILES = {"q01": 0.01, "q05": 0.05, "q10": 0.10, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q90": 0.9, "q95": 0.95, "q99": 0.99}


@pytest.fixture
def store(tmp_path):
    store = trajstore.Store.create(tmp_path / "store")
    rng = np.random.default_rng(7)
    for i in range(6):
        steps = 25 + 11 * i
        r = store.begin_episode("alice" if i % 2 else "bob", "Test-v0", FIELDS, seed=i)
        # Wide magnitudes and both signs, as observations have them.
        obs = lambda: {"obs": (rng.normal(size=(2, 3)) * 10.0 ** rng.integers(-3, 4, size=(2, 3))).astype(np.float32),  # noqa: E731
                       "obs/frame": rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)}
        r.reset(obs())
        for t in range(1, steps + 1):
            r.step({**obs(), "action": int(rng.integers(-3, 9)), "reward": float(rng.normal()), "terminated": t == steps, "truncated": False})
        r.commit()
    return store


def values(store, name, **filters):
    """Every value of `name` over the selected episodes, read from the frames, as float64."""
    return np.concatenate([np.asarray(store.episode(e.id)[name], dtype=np.float64) for e in store.episodes(**filters)])


def check(stats, raw):
    assert stats.shape == raw.shape[1:]
    np.testing.assert_array_equal(stats.count, np.full(raw.shape[1:], raw.shape[0]))
    np.testing.assert_allclose(stats.mean, raw.mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.std, raw.std(axis=0), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(stats.min, raw.min(axis=0))
    np.testing.assert_array_equal(stats.max, raw.max(axis=0))
    for name, q in QUANTILES.items():
        exact = np.quantile(raw, q, axis=0, method="lower")
        assert np.all(np.abs(stats.quantiles[name] - exact) <= 0.01 * np.abs(exact) * (1 + 1e-9) + 1e-12), name


@pytest.mark.parametrize("filters", [{}, {"user": "alice"}])
def test_stats_agree_with_numpy_over_the_frames(store, filters):
    stats = store.stats(**filters)
    assert stats.episodes == len(store.episodes(**filters))
    assert stats.missing == [] and stats.computed == []
    assert list(stats) == ["obs", "action", "reward", "terminated", "truncated"]  # no frame
    for name, field in stats.items():
        assert field.episodes == stats.episodes
        check(field, values(store, name, **filters))
    # Integer fields of small magnitude get exact quantiles.
    raw = values(store, "action", **filters)
    for name, q in QUANTILES.items():
        assert stats["action"].quantiles[name] == np.quantile(raw, q, method="lower")


def test_one_field_and_its_errors(store):
    stats = store.stats("obs", user="alice")
    assert list(stats) == ["obs"]
    assert isinstance(stats["obs"].mean, np.ndarray) and stats["obs"].mean.shape == (2, 3)
    with pytest.raises(trajstore.InputError, match="obs/nope"):
        store.stats("obs/nope")
    with pytest.raises(trajstore.InputError, match="768 elements"):
        store.stats("obs/frame")
    with pytest.raises(trajstore.InputError, match="outcome"):
        store.stats(outcome="exploded")
    with pytest.raises(TypeError):
        store.stats(usr="alice")


def test_a_format_1_store_lists_missing_statistics_and_computes_them(tmp_path):
    fixture = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "v1-store"
    shutil.copytree(fixture, tmp_path / "v1")
    store = trajstore.Store(tmp_path / "v1", read_only=True)
    ids = [e.id for e in store.episodes()]
    listed = store.stats()
    assert listed.missing == ids and len(listed) == 0
    computed = store.stats(compute_missing=True)
    assert computed.computed == ids and computed.missing == []
    check(computed["obs/ram/health"], values(store, "obs/ram/health"))


def test_saved_missing_statistics_are_served_from_the_index_afterwards(tmp_path):
    fixture = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "v1-store"
    shutil.copytree(fixture, tmp_path / "v1")
    store = trajstore.Store(tmp_path / "v1")
    ids = [e.id for e in store.episodes()]
    computed = store.stats(compute_missing=True)
    assert store.save_missing_stats() == {"saved": ids, "failed": {}}
    stored = store.stats()
    assert stored.missing == [] and stored.computed == []
    check(stored["obs/ram/health"], values(store, "obs/ram/health"))
    for name in ("obs/ram/health", "action"):
        np.testing.assert_array_equal(stored[name].mean, computed[name].mean)
    assert store.save_missing_stats() == {"saved": [], "failed": {}}
