"""A store with every column type of the steps table, and its rows as the store has them."""

import numpy as np

#: every column type of the steps table: an image (fixed-size binary), raw and lz4; a small
#: array (fixed-size list); a 2-D float array; scalars of several dtypes, bool included
FIELDS = [
    ("obs/frame", "u8", (12, 10, 3), "observation", "raw"),
    ("obs/gray", "u8", (6, 6), "observation", "lz4"),
    ("obs/ram", "i32", (4,), "observation", "raw"),
    ("obs/pose", "f16", (2, 3), "observation", "lz4"),
    ("action", "i64", (), "transition", "raw"),
    ("action/stick", "f32", (2,), "transition", "lz4"),
    ("done/round", "bool", (), "transition", "raw"),
]


def record(store, user, env, steps, seed, tags=(), metadata=None):
    rng = np.random.default_rng(seed)
    r = store.begin_episode(user, env, FIELDS, seed=seed, tags=list(tags), metadata=metadata or {})

    def obs():
        return {
            "obs/frame": rng.integers(0, 255, (12, 10, 3), dtype=np.uint8),
            "obs/gray": np.full((6, 6), rng.integers(0, 255), dtype=np.uint8),
            "obs/ram": rng.integers(-1000, 1000, 4, dtype=np.int32),
            "obs/pose": rng.normal(size=(2, 3)).astype(np.float16),
        }

    r.reset(obs())
    for t in range(1, steps + 1):
        r.step({**obs(), "action": int(rng.integers(0, 9)), "action/stick": rng.normal(size=2).astype(np.float32),
                "done/round": bool(t % 3 == 0), "reward": float(rng.normal()), "terminated": t == steps, "truncated": False})
    return r.commit()


def stored_rows(store, episode_id, fields=None):
    """The steps table's rows of an episode as the store has them: (column -> list of values)."""
    e = store.episode(episode_id)
    steps = e.info.steps
    names = fields or e.field_names
    out = {"episode": [episode_id] * (steps + 1), "step": list(range(steps + 1))}
    for name in names:
        values = e[name]
        column = [values[t] if t < len(values) else None for t in range(steps + 1)]
        out[name] = column
    return out
