import numpy as np
import pytest

import trajstore

# Frames big enough that a batch is gathered on several threads (small columns run inline):
# what the fork tests need to exercise the library's thread pool.
FRAME_FIELDS = [("obs", "f32", (3,), "observation", "raw"), ("obs/frame", "u8", (64, 64, 3), "observation", "raw"),
                ("action", "i64", (), "transition", "raw")]


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def frames_store(store_path):
    """8 episodes of 30..79 steps with 64x64x3 frames."""
    store = trajstore.Store.create(store_path)
    rng = np.random.default_rng(0)
    for i in range(8):
        steps = 30 + 7 * i
        r = store.begin_episode("u", "Test-v0", FRAME_FIELDS, seed=i)
        obs = lambda: {"obs": rng.normal(size=3).astype(np.float32),  # noqa: E731
                       "obs/frame": rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)}
        r.reset(obs())
        for t in range(1, steps + 1):
            r.step({**obs(), "action": t, "reward": 1.0, "terminated": t == steps, "truncated": False})
        r.commit()
    return store
