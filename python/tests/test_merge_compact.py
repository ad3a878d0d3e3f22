"""Store.merge_from and Store.compact: the thin Python side of `trajstore merge` / `compact`
(the Rust tests pin the protocol)."""

import numpy as np
import pytest

import trajstore

FIELDS = [("obs", "u8", (4, 4), "observation", "raw"), ("action", "i64", (), "transition", "raw")]


def record(store, user, seed, steps):
    rec = store.begin_episode(user, "Test-v0", FIELDS, seed=seed)
    rng = np.random.default_rng(seed)
    rec.reset({"obs": rng.integers(0, 255, (4, 4), dtype=np.uint8)})
    for t in range(steps):
        rec.step({"obs": rng.integers(0, 255, (4, 4), dtype=np.uint8), "action": np.int64(t),
                  "reward": np.float32(1.0), "terminated": t == steps - 1, "truncated": False})
    return rec.commit()


def test_merge_from_maps_ids_and_reads_the_same_frames(tmp_path):
    a = trajstore.Store.create(tmp_path / "a")
    b = trajstore.Store.create(tmp_path / "b")
    ids_a = [record(a, "ann", s, 5) for s in (1, 2)]
    ids_b = [record(b, "bob", s, 3) for s in (3,)]
    out = trajstore.Store.create(tmp_path / "out")
    report = out.merge_from(tmp_path / "a", tmp_path / "b")
    assert report["schemas_added"] == 1
    mapping = [src["episodes"] for src in report["sources"]]
    assert mapping == [{ids_a[0]: 1, ids_a[1]: 2}, {ids_b[0]: 3}]
    for src, ids in ((a, mapping[0]), (b, mapping[1])):
        for old, new in ids.items():
            np.testing.assert_array_equal(out.episode(new)["obs"], src.episode(old)["obs"])
            assert out.episode(new).info.metadata["merged_from/episode"] == old
    assert out.verify()["ok"]


def test_merge_from_refuses_the_store_itself(tmp_path):
    store = trajstore.Store.create(tmp_path / "s")
    record(store, "ann", 1, 2)
    with pytest.raises(trajstore.InputError, match="output store itself"):
        store.merge_from(tmp_path / "s")


def test_compact_of_a_clean_store_rewrites_nothing_and_keeps_every_episode(tmp_path):
    store = trajstore.Store.create(tmp_path / "s")
    ids = [record(store, "ann", s, 4) for s in (1, 2)]
    before = [store.episode(i)["obs"].copy() for i in ids]
    dry = store.compact(dry_run=True)
    assert dry["dry_run"] and dry["bytes_reclaimed"] == 0
    report = store.compact()
    assert (report["rewritten"], report["dropped"], report["bytes_reclaimed"]) == ([], [], 0)
    assert report["segments"] == 1
    for i, frames in zip(ids, before):
        np.testing.assert_array_equal(store.episode(i)["obs"], frames)


def test_compact_purges_deleted_episodes_past_the_retention_only(tmp_path):
    store = trajstore.Store.create(tmp_path / "s")
    ids = [record(store, "ann", s, 4) for s in (1, 2, 3)]
    store.delete(ids[1])
    kept = store.compact(retention=3600)  # deleted just now: still restorable
    assert kept["purged"] == [] and [d["id"] for d in store.deleted()] == [ids[1]]
    report = store.compact(retention=0)
    assert report["purged"] == [ids[1]] and store.deleted() == []
    assert [e.id for e in store.episodes()] == [ids[0], ids[2]]
    with pytest.raises(trajstore.TrajstoreError):
        store.restore(ids[1])
    with pytest.raises(trajstore.InputError, match="retention"):
        store.compact(retention=-1)
