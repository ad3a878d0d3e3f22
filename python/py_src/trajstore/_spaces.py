"""Gymnasium spaces <-> trajstore fields.

A space becomes one field per leaf: `Dict` keys and `Tuple` indices extend the field name
(`obs/ram/health`, `action/1`). The space itself is stored as JSON in the episode metadata
(no pickled objects), so `space_from_json` rebuilds the exact space without the env.
"""

from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from ._arrays import NUMPY_DTYPES, dtype_name
from ._trajstore import InputError

#: metadata keys holding the spaces of a recorded episode: in its schema's metadata (once per
#: schema, as `RecordEpisodes` records them), or in the episode's own metadata (older stores,
#: importers, or an episode whose spaces differ from its schema's first ones)
OBSERVATION_SPACE_KEY = "gymnasium/observation_space"
ACTION_SPACE_KEY = "gymnasium/action_space"


def recorded(snapshot, schema_id: int, metadata: dict, key: str) -> dict | None:
    """The space description stored under `key` for an episode: its own metadata's value
    first, else its schema's (`Snapshot.schema_metadata`); None when neither has one."""
    text = metadata.get(key)
    if text is None:
        text = snapshot.schema_metadata(schema_id).get(key)
    return None if text is None else loads(text)


def _gym():
    import gymnasium

    return gymnasium


def _bound(a: np.ndarray) -> Any:
    flat = a.reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return flat[0].item()
    return a.tolist()


def space_to_json(space) -> dict:
    """A JSON-able description of a space, complete enough to rebuild it."""
    s = _gym().spaces
    if isinstance(space, s.Box):
        return {
            "type": "Box",
            "dtype": dtype_name(space.dtype),
            "shape": list(space.shape),
            "low": _bound(space.low),
            "high": _bound(space.high),
        }
    if isinstance(space, s.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, s.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "dtype": dtype_name(space.dtype),
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
        }
    if isinstance(space, s.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, s.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    if isinstance(space, s.Tuple):
        return {"type": "Tuple", "spaces": [space_to_json(v) for v in space.spaces]}
    raise InputError(f"space {type(space).__name__} is not supported (Box, Discrete, MultiDiscrete, MultiBinary, Dict, Tuple)")


def space_from_json(d: dict):
    """Rebuilds a space described by `space_to_json`."""
    s = _gym().spaces
    t = d["type"]
    if t == "Box":
        dtype, shape = NUMPY_DTYPES[d["dtype"]], tuple(d["shape"])
        low = np.broadcast_to(np.asarray(d["low"], dtype=dtype), shape)
        high = np.broadcast_to(np.asarray(d["high"], dtype=dtype), shape)
        return s.Box(low=low, high=high, shape=shape, dtype=dtype)
    if t == "Discrete":
        return s.Discrete(d["n"], start=d["start"])
    if t == "MultiDiscrete":
        return s.MultiDiscrete(np.asarray(d["nvec"]), dtype=NUMPY_DTYPES[d["dtype"]], start=np.asarray(d["start"]))
    if t == "MultiBinary":
        return s.MultiBinary(d["n"])
    if t == "Dict":
        return s.Dict({k: space_from_json(v) for k, v in d["spaces"].items()})
    if t == "Tuple":
        return s.Tuple(tuple(space_from_json(v) for v in d["spaces"]))
    raise InputError(f"unknown space type {t!r} in stored metadata")


def leaves(d: dict, prefix: str) -> list[tuple[str, str, tuple[int, ...]]]:
    """(field name, trajstore dtype, shape) of every leaf of a described space."""
    t = d["type"]
    if t == "Box":
        return [(prefix, d["dtype"], tuple(d["shape"]))]
    if t == "Discrete":
        return [(prefix, "i64", ())]
    if t == "MultiDiscrete":
        return [(prefix, d["dtype"], tuple(np.asarray(d["nvec"]).shape))]
    if t == "MultiBinary":
        n = d["n"]
        return [(prefix, "i8", tuple(n) if isinstance(n, list) else (n,))]
    if t == "Dict":
        return [leaf for k, v in d["spaces"].items() for leaf in leaves(v, f"{prefix}/{k}")]
    if t == "Tuple":
        return [leaf for i, v in enumerate(d["spaces"]) for leaf in leaves(v, f"{prefix}/{i}")]
    raise InputError(f"unknown space type {t!r}")


def flatten(d: dict, value: Any, prefix: str) -> dict[str, Any]:
    """The leaf values of a space sample, by field name."""
    t = d["type"]
    if t == "Dict":
        out: dict[str, Any] = {}
        for k, v in d["spaces"].items():
            out.update(flatten(v, value[k], f"{prefix}/{k}"))
        return out
    if t == "Tuple":
        out = {}
        for i, v in enumerate(d["spaces"]):
            out.update(flatten(v, value[i], f"{prefix}/{i}"))
        return out
    if t == "Discrete":
        return {prefix: np.int64(value)}
    return {prefix: value}


def flattener(d: dict) -> Callable[[Any], tuple]:
    """A function from a space sample to its leaf values as a tuple, in `leaves` order: the
    structure is walked once here, not per step."""
    t = d["type"]
    if t in ("Dict", "Tuple"):
        subspaces = d["spaces"].items() if t == "Dict" else enumerate(d["spaces"])
        parts = [(k, flattener(v)) for k, v in subspaces]
        return lambda value: tuple(leaf for k, f in parts for leaf in f(value[k]))
    if t == "Discrete":
        # Discrete samples are stored as i64 (a Python int is converted natively).
        return lambda value: (value if type(value) is int else np.int64(value),)
    return lambda value: (value,)


def unflatten(d: dict, arrays: dict[str, np.ndarray], prefix: str) -> Any:
    """Rebuilds the nested structure of a space from per-field arrays (any leading axes)."""
    t = d["type"]
    if t == "Dict":
        return {k: unflatten(v, arrays, f"{prefix}/{k}") for k, v in d["spaces"].items()}
    if t == "Tuple":
        return tuple(unflatten(v, arrays, f"{prefix}/{i}") for i, v in enumerate(d["spaces"]))
    return arrays[prefix]


def dumps(space_json: dict) -> str:
    return json.dumps(space_json, separators=(",", ":"))


def loads(text: str) -> dict:
    return json.loads(text)
