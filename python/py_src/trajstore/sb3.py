"""Stable-Baselines3: seed an off-policy agent's replay buffer with recorded demonstrations
(stable-baselines3 is optional: imported only here).

    model = DQN("MlpPolicy", env)
    trajstore.sb3.fill_replay_buffer(model.replay_buffer, "demos", user="expert")
    model.learn(10_000)          # starts from the demonstrations

Each transition's next observation is read from the store's `T + 1` observations at offset
+1, never stored twice in the store; SB3's own buffer then holds its copy as it always does.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .loader import Loader
from .store import Store

try:
    from stable_baselines3.common.buffers import ReplayBuffer
except ImportError as e:  # pragma: no cover - exercised only without the package
    raise ImportError("trajstore.sb3 needs Stable-Baselines3: pip install stable-baselines3") from e


def fill_replay_buffer(buffer: ReplayBuffer, store: str | os.PathLike | Store, *, batch_size: int = 4096,
                       verify_reads: bool = True, **filters: Any) -> int:
    """Adds every step of the selected episodes (`filters` as `Store.episodes`: `user=`,
    `tags=`, `min_return=`, ...) to `buffer`, in commit order, and returns how many it added.
    A full buffer wraps around as SB3's does (oldest first). `terminated` becomes SB3's done,
    `truncated` a done that is a timeout. The store's observation and action fields must be
    the plain `obs` and `action` a Box, Discrete, MultiDiscrete or MultiBinary space records."""
    if type(buffer) is not ReplayBuffer:
        raise TypeError(f"fill_replay_buffer fills a stable_baselines3 ReplayBuffer, not {type(buffer).__name__} "
                        "(DictReplayBuffer: Dict observation spaces are not supported yet)")
    if buffer.optimize_memory_usage:
        raise ValueError("fill_replay_buffer: a ReplayBuffer with optimize_memory_usage=True keeps no next observation "
                         "of an episode's last step; create the buffer with optimize_memory_usage=False")
    if buffer.n_envs != 1:
        raise ValueError(f"fill_replay_buffer: the buffer has n_envs={buffer.n_envs}; recorded episodes fill a buffer of n_envs=1")
    loader = Loader(store, verify_reads=verify_reads, **filters)
    added = 0
    for batch in loader.batches(["obs", "action", "reward", "terminated", "truncated"], batch_size, order="sequential",
                                next=["obs"]):
        rows = int(batch["mask"].sum())
        for start in range(0, rows, buffer.buffer_size):
            added += _write(buffer, {k: v[:rows][start:start + buffer.buffer_size] for k, v in batch.items()})
    return added


def _write(buffer: ReplayBuffer, rows: dict[str, np.ndarray]) -> int:
    """Writes `rows` (at most buffer_size of them) at the buffer's position, wrapping."""
    n = len(rows["reward"])
    at = (buffer.pos + np.arange(n)) % buffer.buffer_size
    obs_shape, action_dim = buffer.obs_shape, buffer.action_dim
    buffer.observations[at, 0] = rows["obs"].reshape(n, *obs_shape)
    buffer.next_observations[at, 0] = rows["next/obs"].reshape(n, *obs_shape)
    buffer.actions[at, 0] = rows["action"].reshape(n, action_dim)
    buffer.rewards[at, 0] = rows["reward"]
    buffer.dones[at, 0] = rows["terminated"] | rows["truncated"]
    buffer.timeouts[at, 0] = rows["truncated"]
    if buffer.pos + n >= buffer.buffer_size:
        buffer.full = True
    buffer.pos = (buffer.pos + n) % buffer.buffer_size
    return n
