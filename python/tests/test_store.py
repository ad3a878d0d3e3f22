"""Reading: zero-copy arrays and their lifetime, queries, bad input."""

import gc

import numpy as np
import pytest

import trajstore

FIELDS = [
    ("obs/frame", "u8", (8, 8, 3), "observation", "raw"),
    ("obs/frame_lz4", "u8", (8, 8, 3), "observation", "lz4"),
    ("action", "i64", (), "transition", "raw"),
]


def record(store, user="alice", steps=4, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, size=(steps + 1, 8, 8, 3), dtype=np.uint8)
    r = store.begin_episode(user, "Test-v0", FIELDS, seed=seed, tags=["t"], metadata={"difficulty": 3})
    r.reset({"obs/frame": frames[0], "obs/frame_lz4": frames[0]}, {"stage": 1})
    for t in range(1, steps + 1):
        r.step(
            {"obs/frame": frames[t], "obs/frame_lz4": frames[t], "action": t, "reward": 0.5, "terminated": t == steps, "truncated": False},
            {"t": t},
        )
    return r.commit(), frames


def test_raw_fields_are_read_only_views_of_the_map_that_outlive_the_store(store_path):
    store = trajstore.Store.create(store_path)
    eid, frames = record(store)
    episode = store.episode(eid)
    raw = episode["obs/frame"]
    assert np.array_equal(raw, frames)
    assert not raw.flags.owndata and not raw.flags.writeable
    with pytest.raises(ValueError):
        raw[0, 0, 0, 0] = 1
    base = raw
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    assert not isinstance(base, (bytes, bytearray)), "a view of the map, not a copy"
    again = store.episode(eid)["obs/frame"]
    assert np.shares_memory(raw, again), "two reads view the same mapped bytes"
    lz4 = episode["obs/frame_lz4"]
    # Decoded, yet read-only like the raw field: an episode's fields behave alike whatever
    # their codec, so switching a field to lz4 breaks no reader.
    assert np.array_equal(lz4, frames) and not lz4.flags.writeable and not np.shares_memory(lz4, raw)
    with pytest.raises(ValueError):
        lz4[0, 0, 0, 0] = 1
    del store, episode, again
    gc.collect()
    assert np.array_equal(raw, frames), "the array keeps the map alive after the store is gone"


def test_metadata_queries_and_statistics(store_path):
    store = trajstore.Store.create(store_path)
    a1, _ = record(store, "alice", steps=3)
    b1, _ = record(store, "bob", steps=6)
    a2, _ = record(store, "alice", steps=9)
    assert [e.id for e in store.episodes(user="alice")] == [a1, a2]
    assert [e.id for e in store.episodes(min_steps=6)] == [b1, a2]
    assert [e.id for e in store.episodes(user=["alice", "bob"], outcome="terminated")] == [a1, b1, a2]
    info = store.episodes(user="bob")[0]
    assert (info.steps, info.total_return, info.seed, info.tags) == (6, 3.0, 0, ["t"])
    assert info.metadata == {"difficulty": 3}
    assert {u["name"]: u["episodes"] for u in store.users()} == {"alice": 2, "bob": 1}
    ep = store.episode(a2)
    assert ep.infos[0] == {"stage": 1} and ep.infos[9] == {"t": 9}
    assert list(ep["action"]) == list(range(1, 10))
    with pytest.raises(trajstore.NotFoundError):
        store.episode(999)


def test_episodes_by_id_and_from_a_loader_read_their_metadata_lazily_from_their_snapshot(store_path):
    store = trajstore.Store.create(store_path)
    ids = [record(store, user, steps=steps, seed=seed)[0] for user, steps, seed in (("alice", 3, 1), ("bob", 5, 2), ("alice", 2, 3))]
    listed = {info.id: info for info in store.episodes()}
    for eid in ids:
        episode = store.episode(eid)
        assert episode.id == eid and episode.info == listed[eid]
        assert len(episode["action"]) == listed[eid].steps
    served = list(trajstore.Loader(store, seed=0).episodes())
    assert sorted(e.id for e in served) == sorted(ids)
    assert all(e.info == listed[e.id] and len(e["obs/frame"]) == e.info.steps + 1 for e in served)
    # Read later, the metadata is still the snapshot's the episode was opened in: a relabel or
    # a delete after that changes none of it.
    unread = store.episode(ids[1])
    store.relabel(ids[1], set_user="carol")
    store.delete(ids[1])
    assert unread.info == listed[ids[1]] and unread.info.user == "bob"
    with pytest.raises(trajstore.NotFoundError):
        store.episode(ids[1])


def test_bad_input_names_the_field_expected_and_got(store_path):
    store = trajstore.Store.create(store_path)
    r = store.begin_episode("alice", "Test-v0", FIELDS)
    frame = np.zeros((8, 8, 3), np.uint8)
    # The core's checks and messages, made once: field, expected and given dtype or shape.
    # (Numeric arrays of another dtype are cast when exact, refused naming the value if not.)
    with pytest.raises(trajstore.InputError, match=r'field "obs/frame": declared dtype u8 \(uint8\), given float32: value 0.5 at index \(0, 0, 0\)'):
        r.reset({"obs/frame": frame.astype(np.float32) + 0.5, "obs/frame_lz4": frame})
    with pytest.raises(trajstore.InputError, match=r'field "obs/frame": expected shape \[8, 8, 3\], got \[3, 8, 8\]'):
        r.reset({"obs/frame": frame.reshape(3, 8, 8), "obs/frame_lz4": frame})
    with pytest.raises(trajstore.InputError, match=r'field "obs/frame": dtype complex64 cannot be stored \(bool, u8'):
        r.reset({"obs/frame": frame.astype(np.complex64), "obs/frame_lz4": frame})
    with pytest.raises(trajstore.InputError, match=r'field "obs/frame": dtype object cannot be stored'):
        r.reset({"obs/frame": frame.astype(object), "obs/frame_lz4": frame})
    with pytest.raises(trajstore.InputError, match='unknown field "obs/depth"'):
        r.reset({"obs/frame": frame, "obs/frame_lz4": frame, "obs/depth": frame})
    with pytest.raises(trajstore.InputError, match='missing field "obs/frame_lz4"'):
        r.reset({"obs/frame": frame})
    with pytest.raises(trajstore.InputError, match="before reset"):
        r.step({"obs/frame": frame, "obs/frame_lz4": frame, "action": 1, "reward": 0.0, "terminated": False, "truncated": False})
    r.reset({"obs/frame": frame, "obs/frame_lz4": frame})
    # A Python float is not cast into an integer field: the core names the dtypes.
    with pytest.raises(trajstore.InputError, match=r'field "action": expected dtype i64, got f64'):
        r.step({"obs/frame": frame, "obs/frame_lz4": frame, "action": 1.5, "reward": 0.0, "terminated": False, "truncated": False})
    with pytest.raises(trajstore.InputError, match=r'field "reward": expected shape \[\], got \[2\]'):
        r.step({"obs/frame": frame, "obs/frame_lz4": frame, "action": 1, "reward": [0.0, 1.0], "terminated": False, "truncated": False})
    assert r.steps == 0, "a refused step records nothing"
    with pytest.raises(trajstore.InputError, match="empty episode"):
        r.commit()
    with pytest.raises(trajstore.InputError, match="already committed or discarded"):
        r.step({"obs/frame": frame, "obs/frame_lz4": frame, "action": 1, "reward": 0.0, "terminated": False, "truncated": False})
    with pytest.raises(trajstore.InputError, match="invalid user name"):
        store.begin_episode("bad\nname", "Test-v0", FIELDS)
    with pytest.raises(trajstore.StoreOpenError, match="not a trajstore store"):
        trajstore.Store.open(store_path.parent / "nowhere")
    assert issubclass(trajstore.InputError, trajstore.TrajstoreError)
    assert store.episodes() == []


def test_read_only_handles_refuse_recording(store_path):
    record(trajstore.Store.create(store_path))
    ro = trajstore.Store.open(store_path, read_only=True)
    assert len(ro.episodes()) == 1
    with pytest.raises(trajstore.StoreOpenError, match="read-only"):
        ro.begin_episode("alice", "Test-v0", FIELDS)


def test_every_dtype_round_trips_whatever_numpy_calls_it(store_path):
    store = trajstore.Store.create(store_path)
    names = ["bool", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f16", "f32", "f64"]
    assert sorted(trajstore._trajstore.DTYPES) == sorted(names), "the core's dtype list"
    fields = [(f"obs/{n}", n, (2,), "observation", "raw") for n in names]
    r = store.begin_episode("alice", "Test-v0", fields)
    kinds = {"bool": np.bool_, "u8": np.uint8, "u16": np.uint16, "u32": np.uint32, "u64": np.uint64, "i8": np.int8,
             "i16": np.int16, "i32": np.int32, "i64": np.int64, "f16": np.float16, "f32": np.float32, "f64": np.float64}
    values = [{f"obs/{n}": np.array([t % 2, 1], dtype=kinds[n]) for n in names} for t in range(2)]
    # numpy's other spellings of the same types (buffer formats "q", "Q", "l" or big-endian).
    values[0]["obs/i64"] = np.array([0, 1], dtype=np.longlong)
    values[0]["obs/u64"] = np.array([0, 1], dtype=np.ulonglong)
    values[1]["obs/i32"] = np.array([1, 1], dtype=">i4")
    values[1]["obs/f64"] = [1, 1]  # Python ints into a float field: a same-kind conversion
    r.reset(values[0])
    r.step({**values[1], "reward": 1, "terminated": True, "truncated": False})
    assert [f[:3] for f in r.fields] == [*[(f"obs/{n}", n, (2,)) for n in names],
                                         ("reward", "f32", ()), ("terminated", "bool", ()), ("truncated", "bool", ())]
    episode = store.episode(r.commit())
    for n in names:
        got = episode[f"obs/{n}"]
        assert got.dtype == np.dtype(kinds[n]) and got.tolist() == [[0, 1], [1, 1]], n
    assert episode.rewards.dtype == np.float32 and episode.rewards.tolist() == [1.0]


def test_opening_a_path_without_a_store_fails_and_creates_nothing(tmp_path):
    typo = tmp_path / "demoss"
    with pytest.raises(trajstore.StoreOpenError, match=r"not a trajstore store.*trajstore init"):
        trajstore.Store(typo)
    with pytest.raises(trajstore.StoreOpenError, match="not a trajstore store"):
        trajstore.Store(typo, read_only=True)
    with pytest.raises(trajstore.StoreOpenError, match="not a trajstore store"):
        trajstore.Loader(typo)
    assert not typo.exists(), "a failed open must not leave a directory behind"


def test_creating_is_explicit_and_opens_an_existing_store_as_it_is(store_path):
    first, _ = record(trajstore.Store.create(store_path))
    assert [e.id for e in trajstore.Store.create(store_path).episodes()] == [first]
    assert [e.id for e in trajstore.Store(store_path).episodes()] == [first]
    assert trajstore.Store(store_path / "new", create=True).episodes() == []


def test_episode_reuses_its_snapshot_until_a_commit_and_sees_commits_of_other_handles(store_path):
    store = trajstore.Store.create(store_path)
    first, _ = record(store)
    a = store.episode(first)
    b = store.episode(first)
    assert a._snapshot is b._snapshot, "no commit in between: the same snapshot serves both"
    other = trajstore.Store(store_path)  # another handle, as another process would have
    second, frames = record(other, user="bob", seed=1)
    c = store.episode(second)  # committed after `a`'s snapshot: must be found
    assert c._snapshot is not a._snapshot and c.info.user == "bob"
    assert np.array_equal(c["obs/frame"], frames)
    assert store.episode(first)._snapshot is c._snapshot


def test_a_reused_snapshot_is_released_with_the_last_episode_using_it(store_path):
    # A snapshot pins the index pages it reads: the store must not keep one alive by itself.
    store = trajstore.Store.create(store_path)
    first, _ = record(store)
    e = store.episode(first)
    assert store._latest[2]() is e._snapshot
    del e
    gc.collect()
    assert store._latest[2]() is None
    assert store.episode(first).info.id == first
