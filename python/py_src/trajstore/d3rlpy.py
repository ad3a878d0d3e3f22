"""d3rlpy (optional: imported only here): a store's episodes as a d3rlpy dataset.

    dataset = trajstore.d3rlpy.mdp_dataset("demos", user="expert")
    d3rlpy.algos.DiscreteCQLConfig().create(device="cpu:0").fit(dataset, n_steps=10_000)

Episodes are d3rlpy's episodes exactly as recorded: one `d3rlpy.dataset.Episode` per store
episode (never re-split from terminal flags), `terminated` as recorded. Observations, actions
and rewards are read-only views of the store's arrays where the store keeps them raw (no
copy). d3rlpy's episode holds `T` observations for `T` actions, so the store's final
(`T + 1`-th) observation is left out, as d3rlpy's own datasets do: a terminated episode's
last transition bootstraps from a zero observation and a truncated one's last transition is
not sampled (d3rlpy's `BasicTransitionPicker`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .store import Store

try:
    from d3rlpy.constants import ActionSpace
    from d3rlpy.dataset import Episode, InfiniteBuffer, ReplayBuffer
except ImportError as e:  # pragma: no cover - exercised only without the package
    raise ImportError("trajstore.d3rlpy needs d3rlpy: pip install d3rlpy") from e


def episodes(store: str | os.PathLike | Store, *, verify_reads: bool = True, **filters: Any) -> list[Episode]:
    """One d3rlpy `Episode` per selected episode (`filters` as `Store.episodes`), in commit order."""
    if not isinstance(store, Store):
        store = Store.open(store, read_only=True, verify_reads=verify_reads)
    out = []
    for info in store.episodes(**filters):
        ep = store.episode(info.id)
        actions = ep["action"]
        out.append(Episode(observations=ep["obs"][:-1], actions=actions.reshape(len(actions), -1),
                           rewards=ep["reward"].astype(np.float32, copy=False).reshape(-1, 1), terminated=info.outcome == "terminated"))
    return out


def mdp_dataset(store: str | os.PathLike | Store, *, action_size: int | None = None, verify_reads: bool = True,
                **filters: Any) -> ReplayBuffer:
    """A d3rlpy dataset (a `ReplayBuffer` over an `InfiniteBuffer`, what `d3rlpy.dataset.MDPDataset`
    builds) of the selected episodes. Integer actions make a discrete action space of
    `action_size` actions (default: the recorded Discrete space's `n`, else the largest action
    + 1); float actions a continuous one."""
    eps = episodes(store, verify_reads=verify_reads, **filters)
    if not eps:
        raise ValueError(f"trajstore.d3rlpy.mdp_dataset: no episode matches {filters or 'the store'}")
    discrete = np.issubdtype(eps[0].actions.dtype, np.integer)
    if discrete and action_size is None:
        action_size = _discrete_size(store, verify_reads, filters) or int(max(e.actions.max() for e in eps)) + 1
    return ReplayBuffer(InfiniteBuffer(), episodes=eps, action_space=ActionSpace.DISCRETE if discrete else ActionSpace.CONTINUOUS,
                        action_size=action_size if discrete else int(eps[0].actions.shape[1]))


def _discrete_size(store: str | os.PathLike | Store, verify_reads: bool, filters: dict[str, Any]) -> int | None:
    """`n` of the Discrete action space recorded with the first selected episode, if any."""
    if not isinstance(store, Store):
        store = Store.open(store, read_only=True, verify_reads=verify_reads)
    first = store.episode(store.episodes(**filters)[0].id)
    try:
        space = first.action_space
    except ImportError:  # the space is rebuilt with gymnasium
        return None
    return int(space.n) if space is not None and hasattr(space, "n") else None
