"""Listing from the index's catalog: `Store.episodes()` as an `EpisodeList` whose columns and
items equal the per-episode records, the one filter path every selecting call shares, and
stores without a catalog (the v1 fixture, opened read-only) listed as before."""

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

import trajstore

FIELDS = [("obs", "f32", (3,), "observation", "raw"), ("action", "i64", (), "transition", "raw")]
COLUMNS = ["id", "schema_id", "steps", "total_return", "started_at_us", "ended_at_us", "committed_at_us",
           "raw_bytes", "stored_bytes", "user", "env", "outcome", "seed", "tags"]


def record(store, user, env, steps, seed=None, tags=(), metadata=None, truncate=False, reward=1.0):
    r = store.begin_episode(user, env, FIELDS, seed=seed, tags=list(tags), metadata=metadata)
    r.reset({"obs": np.full(3, steps, np.float32)})
    for t in range(1, steps + 1):
        last = t == steps
        r.step({"obs": np.full(3, t, np.float32), "action": t, "reward": reward, "terminated": last and not truncate,
                "truncated": last and truncate})
    return r.commit()


@pytest.fixture
def store(store_path):
    """11 episodes: 3 users, 2 envs, both outcomes, some seeds, tags and metadata; one deleted
    and one relabelled afterwards; a split set."""
    store = trajstore.Store.create(store_path)
    for i in range(12):
        record(store, ["ann", "bo", "cy"][i % 3], ["A-v0", "B-v0"][i % 2], steps=3 + 2 * i,
               seed=i if i % 4 else None, tags=["t"] * (i % 2) + ["u"] * (i % 3 == 0),
               metadata={"level": i, "name": f"n{i}"} if i % 5 else None, truncate=i % 4 == 1, reward=(-1.0) ** i)
    store.delete(5)
    store.relabel(7, add_tags="late", set_meta={"level": 70})
    store.split({"train": 0.5, "val": 0.5}, seed=3)
    return store


def test_columns_and_items_equal_the_per_episode_records(store):
    listed = store.episodes()
    assert isinstance(listed, trajstore.EpisodeList) and len(listed) == 11
    records = [store.episode(int(i)).info for i in listed.ids]  # the full-record path
    assert 5 not in [r.id for r in records]
    for name in COLUMNS:
        column = listed.column(name)
        expected = [getattr(r, "id" if name == "id" else name) for r in records]
        if isinstance(column, np.ndarray):
            assert column.shape == (11,) and not column.flags.writeable
            assert column.tolist() == expected, name
        else:
            assert column == expected, name
    assert listed.steps.tolist() == [r.steps for r in records]
    # Items are the same EpisodeInfo the record gives, metadata included.
    assert list(listed) == records
    assert listed == records and listed[:] == records and listed[::3] == records[::3]
    assert listed[-1] == records[-1] and listed[3] == records[3]
    relabelled = next(e for e in listed if e.id == 7)
    assert relabelled.metadata == {"level": 70, "name": "n6"}
    assert "late" in relabelled.tags
    with pytest.raises(IndexError):
        listed[11]
    with pytest.raises(trajstore.InputError, match='no episode column "nope"'):
        listed.column("nope")
    assert dataclasses.asdict(listed[0]) == dataclasses.asdict(records[0])


def test_every_selecting_call_agrees_on_the_filters(store):
    pa = pytest.importorskip("pyarrow")
    cutoff = store.snapshot().cutoff()
    cases = [
        {"user": "ann"},
        {"user": ["bo", "cy"], "env": "B-v0"},
        {"tags": "t"},
        {"tags": ["u", "late"]},
        {"outcome": "truncated"},
        {"min_return": 0.5},
        {"max_return": 0.5, "min_steps": 9},
        {"split": "val"},
        {"before_id": 7},
        {"split": ["train"], "outcome": ["terminated", "truncated"], "before_id": cutoff},
    ]
    for filters in cases:
        ids = [e.id for e in store.episodes(**filters)]
        assert ids, f"{filters} selects something"
        assert ids == store.episodes(**filters).ids.tolist()
        assert pa.table(store.episodes_table(**filters))["id"].to_pylist() == ids, filters
        assert sorted(trajstore.Loader(store, **filters).episode_ids) == ids, filters
        assert store.stats("obs", **filters).episodes == len(ids), filters
        if set(filters) != {"before_id"}:  # curation refuses a cutoff alone (no filter)
            assert store.delete(dry_run=True, **filters) == ids, filters
    assert len(store.episodes()) == 11, "dry runs changed nothing"


def test_a_misspelt_filter_is_refused_naming_it(store):
    with pytest.raises(TypeError, match="'usr'.*the filters are user, env"):
        store.episodes(usr="ann")
    with pytest.raises(TypeError, match="'outcomes'"):
        trajstore.Loader(store, outcomes="terminated")
    with pytest.raises(TypeError, match="'users'"):
        store.episodes_table(users=["ann"])


def test_a_store_without_a_catalog_lists_from_its_records(tmp_path):
    fixture = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "v1-store"
    shutil.copytree(fixture, tmp_path / "v1")
    old = trajstore.Store(tmp_path / "v1", read_only=True)
    assert old.snapshot().format_version() == 1
    listed = old.episodes()
    assert len(listed) > 0
    records = [old.episode(int(i)).info for i in listed.ids]
    assert list(listed) == records
    for name in COLUMNS:
        column = listed.column(name)
        got = column.tolist() if isinstance(column, np.ndarray) else column
        assert got == [getattr(r, name) for r in records], name
    user = records[0].user
    assert [e.id for e in old.episodes(user=user)] == [r.id for r in records if r.user == user]
