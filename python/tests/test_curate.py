"""Store.delete / restore / deleted / relabel / history / split: thin over the core's
curation (one index transaction each; errors from the core)."""

import numpy as np
import pytest

import trajstore


def record(store, user, steps=3, tags=()):
    rec = store.begin_episode(user, "Test-v0", [("obs", "f32", (2,), "observation", "raw"),
                                               ("action", "i64", (), "transition", "raw")], tags=list(tags))
    rec.reset({"obs": np.zeros(2, np.float32)})
    for t in range(steps):
        rec.step({"obs": np.full(2, t, np.float32), "action": np.int64(t), "reward": np.float32(1.0),
                  "terminated": t == steps - 1, "truncated": False})
    return rec.commit()


@pytest.fixture
def store(tmp_path):
    s = trajstore.Store.create(tmp_path / "s")
    ids = [record(s, "alice", 2 + i) for i in range(4)] + [record(s, "bob", 3) for _ in range(2)]
    return s, ids


def listed(s, **filters):
    return [e.id for e in s.episodes(**filters)]


def test_delete_and_restore_move_episodes_out_of_and_back_into_every_query(store):
    s, ids = store
    assert s.delete(ids[:2], by="qa") == ids[:2]
    assert listed(s) == ids[2:]
    assert [d["id"] for d in s.deleted()] == ids[:2]
    assert s.deleted()[0]["deleted_by"] == "qa"
    loader = trajstore.Loader(s, user="alice")
    assert sorted(e.id for e in loader.infos()) == ids[2:4]
    assert s.restore(ids[0]) == [ids[0]]
    assert s.restore(all=True) == [ids[1]]
    assert listed(s) == ids
    assert [list(c) for h in s.history(ids[0]) for c in h["changes"]] == [["deleted"], ["restored"]]


def test_delete_by_filters_dry_run_and_empty_selection(store):
    s, ids = store
    assert s.delete(user="bob", dry_run=True) == ids[4:]
    assert listed(s) == ids
    assert s.delete(user="nobody") == []
    assert s.delete(user="bob") == ids[4:]
    assert listed(s, user="bob") == []


def test_bad_curation_requests_raise_naming_what_was_wrong(store):
    s, ids = store
    with pytest.raises(trajstore.InputError, match="no filter given"):
        s.delete()
    with pytest.raises(trajstore.NotFoundError, match="no episode 999"):
        s.delete([ids[0], 999])
    assert listed(s) == ids, "nothing changed"
    with pytest.raises(trajstore.NotFoundError, match="is not deleted"):
        s.restore([ids[0]])
    with pytest.raises(ValueError):
        s.restore()
    with pytest.raises(trajstore.InputError, match="outcome"):
        s.relabel(ids[0], set_outcome="won")


def test_relabel_changes_labels_and_keeps_history(store):
    s, ids = store
    changed = s.relabel(ids[:2], set_user="carol", add_tags="expert", set_meta={"level": 3}, by="qa")
    assert changed == ids[:2]
    info = s.episodes(user="carol")[0]
    assert info.id == ids[0] and "expert" in info.tags and info.metadata["level"] == 3
    history = s.history(ids[0])
    assert history[0]["by"] == "qa"
    assert history[0]["changes"][0] == {"user": ("alice", "carol")}
    assert {"add_tag": "expert"} in history[0]["changes"]
    assert s.relabel(ids[:2], add_tags="expert") == [], "nothing left to change"
    assert len(s.history(ids[0])) == 1


def test_split_labels_select_through_episodes_and_the_loader(store):
    s, ids = store
    with pytest.raises(trajstore.InputError, match="no split"):
        s.episodes(split="train")
    labels = s.split({"train": 0.5, "val": 0.5}, seed=7)
    assert set(labels) == set(ids)
    val = [i for i in ids if labels[i] == "val"]
    assert listed(s, split="val") == val
    if val:
        assert sorted(e.id for e in trajstore.Loader(s, split="val").infos()) == val
    record(s, "dan")
    assert {i: l for i, l in s.split({"train": 0.5, "val": 0.5}, seed=7).items() if i in labels} == labels
    with pytest.raises(trajstore.InputError, match="sum to"):
        s.split({"train": 0.5, "val": 0.6}, seed=7)
