"""`ImitationLearning`: replays recorded episodes as a Gymnasium env (actions ignored)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping

import gymnasium
import numpy as np

from . import _spaces
from ._trajstore import EndOfData, InputError
from ._trajstore import Replay as _NativeReplay
from ._selection import Filters, Selection
from .loader import _store
from .store import Store

if TYPE_CHECKING:
    from typing_extensions import Unpack


class ImitationLearning(gymnasium.Env):
    """DIAMBRA Arena's `ImitationLearning` loader, done right.

    `reset()` returns the first observation of the next episode of this rank's share (a
    balanced, seeded partition, not every K-th file); `step(action)` ignores the action and
    returns the recorded observation, reward, terminated, truncated and info, with the
    recorded action (the imitation target) in `info["action"]`. After the last episode,
    `reset()` raises `trajstore.EndOfData` (and `exhausted` is True) instead of serving a
    blank observation; `cycle=True` goes on with the next, reshuffled epoch. A two-player
    episode is followed by its P2 view unless it was recorded with `ignore_p2`
    (`info["seat"]` says which).

    DIAMBRA's argument names work: `ImitationLearning(path, total_cpus=K, rank=r)`.
    Reads are checked (a damaged chunk raises `trajstore.CorruptionError`);
    `verify_reads=False` opens a store path unchecked.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        path: str | os.PathLike | Store,
        rank: int = 0,
        world_size: int | None = None,
        seed: int = 0,
        epoch: int = 0,
        *,
        cycle: bool = False,
        total_cpus: int | None = None,
        cursor: Mapping[str, int] | None = None,
        verify_reads: bool = True,
        **filters: Unpack[Filters],
    ):
        if isinstance(path, (list, tuple)):
            raise TypeError("ImitationLearning takes a store path, not a list of trajectory files: record into one store with RecordEpisodes")
        if world_size is None:
            world_size = total_cpus if total_cpus is not None else 1
        elif total_cpus is not None and total_cpus != world_size:
            raise InputError(f"total_cpus={total_cpus} and world_size={world_size} disagree")
        self.store = _store(path, verify_reads)
        selection = Selection.of(filters, world_size=world_size, rank=rank, seed=seed, epoch=epoch)
        if cursor is None:
            self._native = _NativeReplay(self.store._native, selection, cycle)
        else:
            self._native = _NativeReplay.resume(self.store._native, selection, dict(cursor), cycle)
        self.exhausted = False
        self._obs_json, self._act_json = self._space_descriptions(filters)
        # None when no episode recorded its spaces (a store not written by RecordEpisodes).
        self.observation_space = _spaces.space_from_json(self._obs_json) if self._obs_json else None  # type: ignore[assignment]
        self.action_space = _spaces.space_from_json(self._act_json) if self._act_json else None  # type: ignore[assignment]

    def _space_descriptions(self, filters: Filters) -> tuple[dict | None, dict | None]:
        # Only the first episode's record is read: the share's others are never decoded here.
        snapshot, ids = self.store.snapshot(), self._native.episode_ids()
        if ids:
            first = snapshot.episode(ids[0])
        else:
            episodes = self.store.episodes(**filters)[:1]
            if not episodes:
                return None, None
            first = episodes[0].__dict__
        return tuple(_spaces.recorded(snapshot, first["schema_id"], first["metadata"], key)  # type: ignore[return-value]
                     for key in (_spaces.OBSERVATION_SPACE_KEY, _spaces.ACTION_SPACE_KEY))

    @property
    def episode_ids(self) -> list[int]:
        return self._native.episode_ids()

    @property
    def imbalance(self) -> float:
        return self._native.imbalance

    def cursor(self) -> dict[str, int]:
        """Checkpoint: pass it back as `cursor=` to resume (the episode in progress restarts)."""
        return self._native.cursor()

    def _observation(self, arrays: dict) -> Any:
        named = {name: np.asarray(buffer) for name, buffer in arrays.items()}
        if self._obs_json is None:
            return named
        return _spaces.unflatten(self._obs_json, named, "obs")

    def _action(self, buffer: Any, fields: dict) -> Any:
        if buffer is None:
            # A Dict or Tuple action space: its leaves, rebuilt in the space's structure.
            if self._act_json is None or not fields:
                return None
            return _spaces.unflatten(self._act_json, {name: np.asarray(b) for name, b in fields.items()}, "action")
        action = np.asarray(buffer)
        if self._act_json is not None and self._act_json["type"] == "Discrete":
            return int(action)
        return action

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        try:
            obs, info, episode, seat = self._native.reset()
        except EndOfData:
            self.exhausted = True
            raise
        info = dict(info, episode_id=episode, seat=seat)
        return self._observation(obs), info

    def step(self, action: Any = None):
        obs, reward, terminated, truncated, info, recorded, recorded_fields = self._native.step()
        # The core's info["action"] is widened for its info map (lists, bools as 0/1); the
        # exact recorded array, as the action space has it, is what a policy is trained on.
        info["action"] = self._action(recorded, recorded_fields)
        return self._observation(obs), reward, terminated, truncated, info
