"""The recorder's value path: whatever form a value comes in (Python number, numpy scalar,
0-d / strided / big-endian array, list), it is stored as the field's dtype, or refused by the
core naming the field; `step_in_order` (RecordEpisodes' one call per step) checks the same."""

import numpy as np
import pytest

import trajstore

FIELDS = [("obs", "f32", (2,), "observation", "raw"), ("obs/level", "i64", (), "observation", "raw"),
          ("action", "i16", (), "transition", "raw"), ("reward", "f64", (), "transition", "raw")]


def recorder(store):
    r = store.begin_episode("u", "Values-v0", FIELDS)
    r.reset({"obs": np.zeros(2, np.float32), "obs/level": 0})
    return r


@pytest.mark.parametrize("form", ["python", "numpy scalar", "0-d array", "strided", "big-endian", "list"])
def test_every_form_of_a_value_is_stored_as_the_fields_dtype(store_path, form):
    store = trajstore.Store.create(store_path)
    r = recorder(store)
    obs = {
        "python": [1.5, -2.0],
        "numpy scalar": np.array([1.5, -2.0], np.float32),
        "0-d array": np.array([1.5, -2.0], np.float32),
        "strided": np.array([1.5, 9.0, -2.0, 9.0], np.float32)[::2],
        "big-endian": np.array([1.5, -2.0], ">f4"),
        "list": [1.5, -2],
    }[form]
    level = {"python": 3, "numpy scalar": np.int64(3), "0-d array": np.array(3), "strided": np.int32(3),
             "big-endian": np.array(3, ">i8"), "list": 3}[form]
    action = {"python": 7, "numpy scalar": np.int16(7), "0-d array": np.array(7, np.int16), "strided": np.int64(7),
              "big-endian": np.array(7, ">i2"), "list": 7}[form]
    reward = {"python": 0.25, "numpy scalar": np.float32(0.25), "0-d array": np.array(0.25), "strided": 0.25,
              "big-endian": np.array(0.25, ">f8"), "list": 0.25}[form]
    r.step({"obs": obs, "obs/level": level, "action": action, "reward": reward, "terminated": True,
            "truncated": np.bool_(False)})
    e = store.episode(r.commit())
    assert e["obs"].dtype == np.float32 and e["obs"].tolist() == [[0, 0], [1.5, -2.0]]
    assert e["obs/level"].dtype == np.int64 and e["obs/level"].tolist() == [0, 3]
    assert e["action"].dtype == np.int16 and e["action"].tolist() == [7]
    assert e["reward"].tolist() == [0.25] and e["terminated"].tolist() == [True] and e["truncated"].tolist() == [False]


def test_refused_values_name_the_field_and_record_nothing(store_path):
    store = trajstore.Store.create(store_path)
    r = recorder(store)
    ok = {"obs": np.ones(2, np.float32), "obs/level": 1, "action": 1, "reward": 0.0, "terminated": False, "truncated": False}
    with pytest.raises(trajstore.InputError, match=r'field "obs".*shape'):
        r.step({**ok, "obs": np.ones(3, np.float32)})
    with pytest.raises(trajstore.InputError, match=r'field "obs/level"'):
        r.step({**ok, "obs/level": 1.5})  # a float into an int field is not cast
    with pytest.raises(trajstore.InputError, match=r'field "action"'):
        r.step({**ok, "action": "seven"})
    with pytest.raises(trajstore.InputError, match=r'field "obs/level"'):
        r.step({**ok, "obs/level": 2**70})
    with pytest.raises(trajstore.InputError, match=r'"nope"'):
        r.step({**ok, "nope": 1})
    assert r.steps == 0
    r.step(ok)
    assert r.steps == 1


def test_step_in_order_takes_one_value_per_field_and_the_core_still_checks_them(store_path):
    store = trajstore.Store.create(store_path)
    r = recorder(store)
    assert [f[0] for f in r.fields] == ["obs", "obs/level", "action", "reward", "terminated", "truncated"]
    with pytest.raises(trajstore.InputError, match=r"5 values given for the 6 fields \(obs, obs/level, action, reward, terminated, truncated\)"):
        r.step_in_order((np.ones(2, np.float32), 1, 1, 0.0, False))
    with pytest.raises(trajstore.InputError, match=r'field "obs".*shape'):
        r.step_in_order((np.ones(3, np.float32), 1, 1, 0.0, False, False))
    with pytest.raises(trajstore.InputError, match=r'field "terminated"'):
        r.step_in_order((np.ones(2, np.float32), 1, 1, 0.0, 2, False))
    assert r.steps == 0
    r.step_in_order((np.full(2, 4, np.float32), np.int64(5), np.int64(6), 1.0, True, False), {"lives": 3})
    e = store.episode(r.commit())
    assert e["obs"][1].tolist() == [4, 4] and e["obs/level"].tolist() == [0, 5] and e["action"].tolist() == [6]
    assert e.infos[1] == {"lives": 3}


def test_infos_of_plain_values_and_of_numpy_values_or_nested_dicts_are_stored_alike(store_path):
    store = trajstore.Store.create(store_path)
    r = recorder(store)
    step = {"obs": np.ones(2, np.float32), "obs/level": 1, "action": 1, "reward": 0.0, "terminated": False, "truncated": False}
    r.step(step, {"lives": 3, "x": 0.5, "won": False, "name": "a"})
    r.step({**step, "terminated": True}, {"lives": np.int64(2), "pos": {"x": np.float32(0.5)}, "path": np.array([1, 2])})
    e = store.episode(r.commit())
    assert e.infos[1] == {"lives": 3, "x": 0.5, "won": False, "name": "a"}
    assert e.infos[2] == {"lives": 2, "pos/x": 0.5, "path": [1, 2]}
