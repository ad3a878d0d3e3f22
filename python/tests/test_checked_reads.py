"""Checked reads: a flipped byte in a stored chunk raises CorruptionError on every read path,
naming user, episode, field and steps, instead of reaching training as wrong bytes."""

import numpy as np
import pytest

import trajstore

FIELDS = [
    ("obs/frame", "u8", (8, 8, 3), "observation", "raw"),
    ("obs/frame_lz4", "u8", (8, 8, 3), "observation", "lz4"),
    ("action", "i64", (), "transition", "raw"),
]


def record(store, user, steps, seed):
    rng = np.random.default_rng(seed)
    # Rows of 24 equal bytes, so the lz4 field is really compressed.
    rows = rng.integers(0, 255, size=(steps + 1, 8, 1, 1), dtype=np.uint8)
    frames = np.ascontiguousarray(np.broadcast_to(rows, (steps + 1, 8, 8, 3)))
    r = store.begin_episode(user, "Test-v0", FIELDS, seed=seed)
    r.reset({"obs/frame": frames[0], "obs/frame_lz4": frames[0]})
    for t in range(1, steps + 1):
        r.step({"obs/frame": frames[t], "obs/frame_lz4": frames[t], "action": t, "reward": 0.5, "terminated": t == steps, "truncated": False})
    return r.commit(), frames


def flip(store, episode, field, payload_byte):
    """Flips one payload byte of the field's (only) chunk in its segment file."""
    [(path, offset, length, steps, codec)] = store.snapshot().chunks(episode, field)
    assert payload_byte < length
    with open(path, "r+b") as f:
        f.seek(offset + payload_byte)
        b = f.read(1)[0]
        f.seek(offset + payload_byte)
        f.write(bytes([b ^ 0x40]))


@pytest.fixture
def damaged(store_path):
    store = trajstore.Store.create(store_path)
    good, good_frames = record(store, "alice", 10, 1)
    bad, bad_frames = record(store, "bob", 10, 2)
    flip(store, bad, "obs/frame", 3 * 192 + 5)  # step 3 of the raw frames
    flip(store, bad, "obs/frame_lz4", 60)  # past the 56-byte table: inside the blocks
    del store  # the tests open their own handles
    return store_path, good, good_frames, bad, bad_frames


def assert_names(err, bad, field):
    text = str(err.value)
    assert f'user "bob" episode {bad} field "{field}" steps 0..11' in text, text
    assert "checksum" in text and ".seg" in text, text
    assert isinstance(err.value, trajstore.TrajstoreError)


@pytest.mark.parametrize("field", ["obs/frame", "obs/frame_lz4"])
def test_flipped_byte_fails_the_episode_read_not_silently(damaged, field):
    path, good, good_frames, bad, _ = damaged
    store = trajstore.Store.open(path, read_only=True)
    episode = store.episode(bad)
    with pytest.raises(trajstore.CorruptionError) as err:
        episode[field]
    assert_names(err, bad, field)
    # Not remembered as good: asking again fails again.
    with pytest.raises(trajstore.CorruptionError):
        store.episode(bad)[field]
    # The damaged episode's other fields and the other episodes read fine.
    assert np.array_equal(episode["action"], np.arange(1, 11))
    assert np.array_equal(store.episode(good)[field], good_frames)


def test_loader_batches_touching_the_damaged_episode_fail(damaged):
    path, good, good_frames, bad, _ = damaged
    for field in ["obs/frame", "obs/frame_lz4"]:
        loader = trajstore.Loader(path)
        with pytest.raises(trajstore.CorruptionError) as err:
            for _ in loader.batches([field], batch_size=64):
                pass
        assert_names(err, bad, field)
        # Alice's share alone is served in full.
        served = [b[field] for b in trajstore.Loader(path, user="alice").batches([field], batch_size=4, order="sequential")]
        assert np.array_equal(np.concatenate(served), good_frames[:-1])


def test_verify_reads_false_reads_the_wrong_bytes(damaged):
    path, _, _, bad, bad_frames = damaged
    store = trajstore.Store.create(path, verify_reads=False)
    assert not store.verify_reads and "verify_reads=False" in repr(store)
    frames = store.episode(bad)["obs/frame"]
    assert not np.array_equal(frames, bad_frames)
    assert frames.reshape(-1)[3 * 192 + 5] == bad_frames.reshape(-1)[3 * 192 + 5] ^ 0x40
    assert store._native.verified_chunks() == 0
    batches = list(trajstore.Loader(path, user="bob", verify_reads=False).batches(["obs/frame"], batch_size=64))
    assert len(batches) == 1
    assert trajstore.Store.create(path).verify_reads


def test_checks_are_remembered(store_path):
    store = trajstore.Store.create(store_path)
    eid, frames = record(store, "alice", 5, 3)
    assert store._native.verified_chunks() == 0
    for _ in range(3):
        assert np.array_equal(store.episode(eid)["obs/frame"], frames)
        assert np.array_equal(store.episode(eid)["obs/frame_lz4"], frames)
    assert store._native.verified_chunks() == 2
