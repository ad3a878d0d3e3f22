"""imitation (the HumanCompatibleAI library; optional: imported only here): a store's episodes
as `TrajectoryWithRew`s and `Transitions`.

    from imitation.algorithms import bc
    demos = trajstore.imitation_data.transitions("demos", user="expert")
    bc.BC(observation_space=..., action_space=..., demonstrations=demos, rng=rng).train(n_epochs=5)

`trajectories` wraps each episode's arrays without copying them: raw fields are read-only
views of the store's memory map (lz4 fields are decoded once), so a list of trajectories over
a large store costs the index read, not the frames. `transitions` gathers every step into
fresh arrays in one parallel pass of the store's loader (imitation's own
`flatten_trajectories` would concatenate the same arrays in Python).

`terminal` (and the `dones` of `transitions`) is True for episodes that ended, terminated or
truncated, as imitation's own rollouts set it, and False for an episode recorded as
interrupted. (This module is not `trajstore.imitation`, which is DIAMBRA's replay env.)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .loader import Loader
from .store import Store

try:
    from imitation.data.types import DictObs, Transitions, TrajectoryWithRew
except ImportError as e:  # pragma: no cover - exercised only without the package
    raise ImportError("trajstore.imitation_data needs imitation: pip install imitation") from e

#: Outcomes of an episode that ended (imitation's `terminal`).
_ENDED = ("terminated", "truncated")


def _store(store: str | os.PathLike | Store, verify_reads: bool) -> Store:
    return store if isinstance(store, Store) else Store.open(store, read_only=True, verify_reads=verify_reads)


def trajectories(store: str | os.PathLike | Store, *, verify_reads: bool = True, **filters: Any) -> list[TrajectoryWithRew]:
    """One `TrajectoryWithRew` per selected episode (`filters` as `Store.episodes`: `user=`,
    `tags=`, `min_return=`, ...), in commit order. `obs` has `T + 1` rows (a `DictObs` for a
    Dict observation space), `acts` and `rews` `T`; read-only views where the store's arrays
    are (raw fields), never copied here. `infos` is None (imitation's "no infos")."""
    store = _store(store, verify_reads)
    out = []
    for info in store.episodes(**filters):
        episode = store.episode(info.id)
        obs = episode.observations
        if isinstance(obs, dict):
            obs = DictObs(obs) if "obs" not in obs else obs["obs"]
        out.append(TrajectoryWithRew(obs=obs, acts=episode.actions, infos=None, terminal=info.outcome in _ENDED,
                                     rews=episode.rewards))
    return out


def transitions(store: str | os.PathLike | Store, *, batch_size: int = 65536, verify_reads: bool = True,
                **filters: Any) -> Transitions:
    """Every step of the selected episodes as one `Transitions` (episodes in commit order):
    `obs`, `next_obs` (the store's observation at offset +1), `acts`, `dones` (True on the last
    step of an episode that ended), empty `infos`. Needs a plain `obs` observation field (a
    Box or Discrete space); use `trajectories` for Dict observations."""
    store = _store(store, verify_reads)
    loader = Loader(store, **filters)
    columns: dict[str, list[np.ndarray]] = {"obs": [], "next/obs": [], "action": [], "terminated": [], "truncated": [],
                                            "episode": []}
    for batch in loader.batches(["obs", "action", "terminated", "truncated"], batch_size, order="sequential", next=["obs"]):
        rows = batch["mask"]
        for key, parts in columns.items():
            parts.append(batch[key][rows])
    if not columns["obs"]:
        raise ValueError(f"trajstore.imitation_data.transitions: no episode matches {filters or 'the store'}")
    cols = {key: np.concatenate(parts) for key, parts in columns.items()}
    # The loader serves episodes in its own (seeded) order; imitation users expect commit
    # order, as `trajectories` gives: a stable sort by episode id keeps each episode's steps
    # in order (ids grow in commit order).
    if (np.diff(cols["episode"].astype(np.int64)) < 0).any():
        by_commit = np.argsort(cols["episode"], kind="stable")
        cols = {key: value[by_commit] for key, value in cols.items()}
    n = len(cols["action"])
    return Transitions(obs=cols["obs"], acts=cols["action"], infos=np.array([{}] * n), next_obs=cols["next/obs"],
                       dones=cols["terminated"] | cols["truncated"])

