"""Episode.preview: contact sheets as numpy arrays, PNG and GIF files, for raw and lz4 fields."""

import numpy as np
import pytest

import trajstore

FIELDS = [
    ("obs/frame", "u8", (8, 8, 3), "observation", "raw"),
    ("obs/gray", "u8", (6, 4), "observation", "lz4"),
    ("obs/ram", "i32", (2,), "observation", "raw"),
    ("action", "i64", (), "transition", "raw"),
]


def record(store, steps=5):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(steps + 1, 8, 8, 3), dtype=np.uint8)
    gray = rng.integers(0, 255, size=(steps + 1, 6, 4), dtype=np.uint8)
    ram = np.zeros(2, np.int32)
    r = store.begin_episode("alice", "Test-v0", FIELDS)
    r.reset({"obs/frame": frames[0], "obs/gray": gray[0], "obs/ram": ram})
    for t in range(1, steps + 1):
        r.step({"obs/frame": frames[t], "obs/gray": gray[t], "obs/ram": ram, "action": t, "reward": float(t % 2), "terminated": t == steps, "truncated": False})
    return r.commit(), frames, gray


def test_sheet_is_an_rgba_array_holding_the_frames(store_path):
    store = trajstore.Store.create(store_path)
    eid, frames, gray = record(store)
    episode = store.episode(eid)
    sheet = episode.preview()
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 4
    scale = 8  # small frames are scaled up 8 times at most
    # Tile 0 at (4, 4): its bottom-right source pixel (below the step label) is the frame's.
    y, x = 4 + 7 * scale, 4 + 7 * scale
    assert np.array_equal(sheet[y, x, :3], frames[0, 7, 7])
    every = episode.preview(every=2)
    assert every.shape != sheet.shape or not np.array_equal(every, sheet)
    g = episode.preview(field="obs/gray")  # lz4, HxW
    scale = 8
    assert np.array_equal(g[4 + 5 * scale, 4 + 3 * scale, :3], [gray[0, 5, 3]] * 3)


def test_files_png_and_gif(store_path, tmp_path):
    store = trajstore.Store.create(store_path)
    eid, _, _ = record(store)
    episode = store.episode(eid)
    png = episode.preview(out=tmp_path / "sheet.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    gif = episode.preview(out=tmp_path / "anim.gif", every=2)
    assert open(gif, "rb").read(6) == b"GIF89a"
    assert episode.preview(kind="gif")[:6] == b"GIF89a"


def test_a_field_that_is_not_an_image_is_named(store_path):
    store = trajstore.Store.create(store_path)
    eid, _, _ = record(store)
    episode = store.episode(eid)
    with pytest.raises(trajstore.InputError, match=r"obs/ram.*i32\[2\], not an image.*image fields: obs/frame, obs/gray"):
        episode.preview(field="obs/ram")
    with pytest.raises(trajstore.InputError, match="unknown field"):
        episode.preview(field="nope")
    with pytest.raises(trajstore.InputError, match="every"):
        episode.preview(every=0)
