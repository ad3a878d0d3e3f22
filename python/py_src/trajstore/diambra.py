"""DIAMBRA Arena 2.x names over a store: `make` (`diambra.arena.make`, recording episodes here
instead of into `.diambra` pickle files) and `DiambraDataLoader` (Arena's loader interface,
reading them back). diambra-arena is needed for `make` only; `ImitationLearning` (the 1.x name)
is the Gymnasium-env replay."""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np

from ._trajstore import EndOfData
from .gym import RecordEpisodes, recording_settings
from .store import Episode, Store


def _arena() -> Any:
    try:
        import diambra.arena
    except ImportError as e:
        raise ImportError("trajstore.diambra.make needs DIAMBRA Arena: pip install diambra-arena") from e
    return diambra.arena


def make(game_id: str, env_settings: Any = None, wrappers_settings: Any = None, episode_recording_settings: Any = None,
         render_mode: str | None = None, rank: int = 0, env_addresses: Sequence[str] = ("localhost:50051",),
         log_level: int = logging.INFO, **record: Any) -> Any:
    """`diambra.arena.make` with its arguments, recording into the trajstore store at
    `episode_recording_settings.dataset_path` (as `username`) where Arena would write
    `.diambra` files: below the wrappers, as Arena does, so the raw observations and actions
    are stored. `record` goes to `RecordEpisodes` (`tags=`, `metadata=`, `codec=`, ...)."""
    arena = _arena()
    env = arena.make(game_id, env_settings if env_settings is not None else arena.EnvironmentSettings(),
                     arena.WrappersSettings(), arena.RecordingSettings(), render_mode=render_mode, rank=rank,
                     env_addresses=list(env_addresses), log_level=log_level)
    if recording_settings(episode_recording_settings).get("dataset_path") is not None:
        env = RecordEpisodes(env, episode_recording_settings=episode_recording_settings, **record)
    if wrappers_settings is not None:
        from diambra.arena.wrappers.arena_wrappers import env_wrapping

        wrappers_settings.sanity_check()
        env = env_wrapping(env, wrappers_settings)
    return env


def _at(tree: Any, t: int) -> Any:
    """Step `t` of every leaf of a structure of per-step arrays."""
    if isinstance(tree, dict):
        return {k: _at(v, t) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_at(v, t) for v in tree)
    return tree[t]


class DiambraDataLoader:
    """Arena's `DiambraDataLoader(dataset_path)` over a store: `reset()` opens the next
    episode and returns how many times every episode was served (`n_loops`); `step()` returns
    `(obs, action, reward, terminated, truncated, info)` of the next step, `obs` being the
    observation the action was taken on, in the recorded space's structure (frames as arrays,
    not JPEG bytes). Episodes come in commit order; `filters` select them as
    `Store.episodes` does (`user=`, `env=`, `tags=`, ...)."""

    def __init__(self, dataset_path: str | os.PathLike | Store, log_level: int = logging.INFO, *, verify_reads: bool = True,
                 **filters: Any):
        self.logger = logging.getLogger(__name__)
        self.logger.setLevel(log_level)
        self.store = dataset_path if isinstance(dataset_path, Store) else Store.open(dataset_path, read_only=True, verify_reads=verify_reads)
        self.dataset_path = self.store.path
        self.episode_ids = [e.id for e in self.store.episodes(**filters)]
        if not self.episode_ids:
            raise EndOfData(f"{self.dataset_path}: no episodes to load" + (f" matching {filters}" if filters else ""))
        self.file_idx = 0
        self.n_loops = 0
        self.frame = np.zeros((128, 128, 1), dtype=np.uint8)
        self.episode: Episode | None = None

    def reset(self) -> int:
        self.n_loops += self.file_idx // len(self.episode_ids)
        self.file_idx %= len(self.episode_ids)
        self.episode = self.store.episode(self.episode_ids[self.file_idx])
        self.file_idx += 1
        self.logger.info("Episode summary = %s", self.episode)
        self._observations, self._actions, self._infos = self.episode.observations, self.episode.actions, self.episode.infos
        self.step_idx = 0
        return self.n_loops

    def step(self) -> tuple[Any, Any, float, bool, bool, dict[str, Any]]:
        episode = self.episode
        if episode is None:
            raise EndOfData("DiambraDataLoader.step() before reset()")
        t = self.step_idx
        if t >= episode.info.steps:
            raise EndOfData(f"episode {episode.id} has {episode.info.steps} steps, all served: call reset() for the next")
        obs = _at(self._observations, t)
        if isinstance(obs, dict) and isinstance(obs.get("frame"), np.ndarray):
            self.frame = obs["frame"]
        self.step_idx += 1
        return (obs, _at(self._actions, t), float(episode["reward"][t]), bool(episode["terminated"][t]),
                bool(episode["truncated"][t]), self._infos[t + 1])

    def render(self, waitKey: int = 1) -> bool:
        """Shows the current frame in an OpenCV window (needs opencv-python and a display)."""
        try:
            import cv2
        except ImportError as e:
            raise ImportError("DiambraDataLoader.render needs OpenCV: pip install opencv-python") from e
        try:
            cv2.namedWindow("Diambra Data Loader", cv2.WINDOW_GUI_NORMAL)
            cv2.imshow("Diambra Data Loader", self.frame)
            cv2.waitKey(waitKey)
            return True
        except cv2.error:
            return False
