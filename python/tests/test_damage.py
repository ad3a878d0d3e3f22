"""Damaged files never panic into Python: random bit flips, truncations and appends in the
index and the segments, then everything a user reads. Only trajstore's own exceptions may come
out (a Rust panic would surface as pyo3's PanicException, a BaseException)."""

import random
import shutil

import numpy as np

import trajstore

FIELDS = [
    ("obs/frame", "u8", (8, 8, 3), "observation", "raw"),
    ("obs/lz4", "u8", (8, 8, 3), "observation", "lz4"),
    ("action", "i64", (), "transition", "raw"),
]


def build(path):
    store = trajstore.Store.create(path)
    rng = np.random.default_rng(0)
    for seed in range(4):
        frames = rng.integers(0, 255, size=(6, 8, 8, 3), dtype=np.uint8)
        r = store.begin_episode("alice" if seed % 2 else "bob", "Test-v0", FIELDS, seed=seed)
        r.reset({"obs/frame": frames[0], "obs/lz4": frames[0]}, {"stage": 1})
        for t in range(1, 6):
            r.step({"obs/frame": frames[t], "obs/lz4": frames[t], "action": t, "reward": 1.0,
                    "terminated": t == 5, "truncated": False}, {"t": t})
        r.commit()
    del store


def damage(root, rnd):
    files = [root / "index.redb", *sorted((root / "segments").iterdir())]
    target = rnd.choice(files)
    data = bytearray(target.read_bytes())
    kind = rnd.randrange(3)
    if kind == 0 and data:
        for _ in range(rnd.randint(1, 16)):
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    elif kind == 1:
        del data[rnd.randrange(len(data) + 1):]
    else:
        data += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 4096)))
    target.write_bytes(bytes(data))
    return f"{target.name}: kind {kind}"


def read_everything(path):
    store = trajstore.Store(path, read_only=True)
    store.users()
    for info in store.episodes():
        episode = store.episode(info.id)
        episode.infos
        for name in episode.field_names:
            np.asarray(episode[name]).sum()
    store.verify()


def test_damaged_files_raise_trajstore_errors_never_panics(tmp_path):
    pristine = tmp_path / "pristine"
    build(pristine)
    rnd = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for case in range(60):
        root = tmp_path / f"case-{case}"
        shutil.copytree(pristine, root)
        what = damage(root, rnd)
        try:
            read_everything(root)
            outcomes["ok"] += 1
        except trajstore.TrajstoreError as e:
            assert str(e), what
            outcomes["error"] += 1
        except BaseException as e:  # a PanicException or anything else is a failure
            raise AssertionError(f"case {case} ({what}): {type(e).__name__}: {e}") from e
        shutil.rmtree(root)
    assert outcomes["error"] > 0, outcomes
