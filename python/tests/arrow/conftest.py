import pytest

import trajstore

from arrow_store import record


@pytest.fixture
def mixed_store(tmp_path):
    """7 episodes of two users and two envs, every column type."""
    store = trajstore.Store.create(tmp_path / "store")
    for i in range(7):
        record(store, "alice" if i % 2 == 0 else "bob", "Pong-v5" if i < 4 else "Breakout-v5", 5 + 3 * i, seed=i,
               tags=["expert"] if i % 3 == 0 else [], metadata={"level": i, "note": f"run {i}"})
    return store
