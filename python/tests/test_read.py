"""Episode.read / Snapshot.read: any step range of raw and lz4 fields, decoded straight into a
caller's reused array; bad out= arrays refused naming the field; damaged lz4 blocks refused."""

import numpy as np
import pytest

import trajstore

SHAPE = (64, 64, 3)  # 12 KiB a frame: 100+ steps pass the 1 MiB parallel-decode threshold
FIELDS = [
    ("obs", "u8", SHAPE, "observation", "raw"),
    ("obs_lz4", "u8", SHAPE, "observation", "lz4"),
    ("action", "i64", (), "transition", "raw"),
]


def frames(steps, seed):
    """Compressible frames (a gradient plus a little noise), so lz4 blocks are real lz4."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 200, int(np.prod(SHAPE))).reshape(SHAPE)
    noise = lambda: rng.integers(0, 4, SHAPE) * (rng.random(SHAPE) < 0.2)  # noqa: E731
    return np.stack([(base + (3 * t) % 50 + noise()).astype(np.uint8) for t in range(steps + 1)])


def record(store, steps, seed):
    f = frames(steps, seed)
    r = store.begin_episode("u", "Test-v0", FIELDS, seed=seed)
    r.reset({"obs": f[0], "obs_lz4": f[0]})
    for t in range(1, steps + 1):
        r.step({"obs": f[t], "obs_lz4": f[t], "action": t, "reward": 1.0, "terminated": t == steps, "truncated": False})
    return r.commit(), f


@pytest.fixture
def two_episodes(store_path):
    store = trajstore.Store.create(store_path)
    (a, fa), (b, fb) = record(store, 120, seed=1), record(store, 30, seed=2)
    ((_, _, stored, _, codec),) = store.snapshot().chunks(a, "obs_lz4")
    assert codec == "lz4" and stored < 0.8 * fa.nbytes, "the lz4 field must hold real lz4 blocks"
    return store, {a: fa, b: fb}


def test_read_decodes_any_step_range_equal_to_the_full_decode(two_episodes):
    store, want = two_episodes
    for eid, f in want.items():
        e = store.episode(eid)
        full = e["obs_lz4"]
        assert not full.flags.writeable, "decoded episode fields are read-only, like mapped ones"
        assert np.array_equal(full, f)
        for name in ("obs", "obs_lz4"):
            assert np.array_equal(e.read(name), f)
            assert np.array_equal(e.read(name, 7), f[7])
            assert e.read(name, 7).shape == SHAPE
            assert np.array_equal(e.read(name, slice(3, 9)), f[3:9])
            assert np.array_equal(e.read(name, range(len(f) - 2, len(f))), f[-2:])
            assert np.array_equal(e.read(name, slice(5, None)), f[5:])
            assert e.read(name, slice(4, 4)).shape == (0, *SHAPE)
        assert list(e.read("action", slice(0, 3))) == [1, 2, 3]


def test_read_into_a_reused_out_writes_only_the_rows_read(two_episodes):
    store, want = two_episodes
    (a, fa), (b, fb) = want.items()
    out = np.full((200, *SHAPE), 7, np.uint8)
    for name in ("obs_lz4", "obs"):
        got = store.episode(a).read(name, out=out)
        assert np.shares_memory(got, out) and got.shape == fa.shape and np.array_equal(got, fa)
        got = store.episode(b).read(name, out=out)  # shorter: the first rows, a view of out
        assert np.shares_memory(got, out) and np.array_equal(got, fb)
        assert np.array_equal(out[len(fb):len(fa)], fa[len(fb):]), "rows past the read are untouched"
        assert (out[len(fa):] == 7).all()
        exact = np.empty((4, *SHAPE), np.uint8)
        assert store.snapshot().read(a, name, 10, 14, exact) is exact, "an exact-size out is returned itself"
        assert np.array_equal(exact, fa[10:14])


def test_read_refuses_a_bad_out_or_range_naming_the_field(two_episodes):
    store, want = two_episodes
    a, fa = next(iter(want.items()))
    e = store.episode(a)
    cases = [
        (np.zeros((len(fa), *SHAPE), np.float32), "obs_lz4.*format"),
        (np.zeros((len(fa), 64, 64), np.uint8), r"obs_lz4.*shape \[121, 64, 64, 3\] \(or more rows\)"),
        (np.zeros((len(fa) - 1, *SHAPE), np.uint8), r"obs_lz4.*shape \[121, 64, 64, 3\]"),
        (np.zeros((len(fa), 64, 128, 3), np.uint8)[:, :, ::2], "obs_lz4.*C-contiguous"),
    ]
    read_only = np.zeros((len(fa), *SHAPE), np.uint8)
    read_only.setflags(write=False)
    cases.append((read_only, "obs_lz4.*writable"))
    for out, match in cases:
        with pytest.raises(trajstore.InputError, match=match):
            e.read("obs_lz4", out=out)
        assert not np.asarray(out).any(), "nothing written by a refused read"
    out = np.zeros((4, *SHAPE), np.uint8)
    with pytest.raises(trajstore.InputError, match="obs_lz4"):
        e.read("obs_lz4", slice(len(fa) - 2, len(fa) + 2), out=out)
    with pytest.raises(trajstore.InputError, match="obs_lz4"):
        store.snapshot().read(a, "obs_lz4", 9, 5, out)
    assert not out.any()
    with pytest.raises(trajstore.InputError, match="nope"):
        e.read("nope")
    with pytest.raises(ValueError, match="contiguous"):
        e.read("obs", slice(0, 10, 2))


def test_gather_decodes_lz4_pairs_into_one_reused_out_across_calls(two_episodes):
    store, want = two_episodes
    ids = np.array(list(want), dtype=np.int64)
    snap = store.snapshot()
    rng = np.random.default_rng(5)
    out = np.empty((64, *SHAPE), np.uint8)
    for _ in range(3):  # 64 x 12 KiB: the parallel path of gather
        episodes = rng.choice(ids, 64)
        steps = np.array([rng.integers(0, len(want[e])) for e in episodes])
        assert snap.gather("obs_lz4", episodes, steps, out=out) is out
        assert np.array_equal(out, np.stack([want[e][s] for e, s in zip(episodes, steps)]))
    with pytest.raises(trajstore.InputError, match=r"obs_lz4.*shape \[64, 64, 64, 3\]"):
        snap.gather("obs_lz4", episodes, steps, out=out.reshape(64, -1))


def test_a_damaged_lz4_block_raises_corruption_error_not_a_panic(two_episodes, store_path):
    store, want = two_episodes
    a, fa = next(iter(want.items()))
    ((path, offset, nbytes, steps, codec),) = store.snapshot().chunks(a, "obs_lz4")
    assert codec == "lz4" and steps == len(fa)
    table = (steps * 5 + 7) // 8 * 8  # u32 block ends, u8 kinds, padded to 8 (schema/format.md)
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(table)
    ends = np.frombuffer(head, np.uint32, steps)
    assert head[steps * 4 + 40] == 0, "block 40 is an lz4 block"
    with open(path, "r+b") as f:  # block 40's tokens become huge literal runs past its end
        f.seek(offset + table + int(ends[39]))
        f.write(b"\xff" * int(ends[40] - ends[39]))
    checked = trajstore.Store(store_path, read_only=True)
    with pytest.raises(trajstore.CorruptionError, match="checksum"):
        checked.episode(a).read("obs_lz4", 40)
    unchecked = trajstore.Store(store_path, read_only=True, verify_reads=False)
    e = unchecked.episode(a)
    assert np.array_equal(e.read("obs_lz4", 39), fa[39]), "the blocks around it still decode"
    assert np.array_equal(e.read("obs_lz4", slice(41, 45)), fa[41:45])
    out = np.zeros((len(fa), *SHAPE), np.uint8)
    for read in (lambda: e.read("obs_lz4", 40), lambda: e.read("obs_lz4", out=out), lambda: e["obs_lz4"],
                 lambda: unchecked.snapshot().gather("obs_lz4", [a, a], [3, 40])):
        with pytest.raises(trajstore.CorruptionError, match=r"obs_lz4.*step 40|40.*obs_lz4|lz4"):
            read()
