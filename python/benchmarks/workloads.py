"""The seeded workloads every side records and reads: the same env, steps and bytes.

- arcade: 40 episodes of 128x128x3 uint8 frames, Discrete(9) actions, seeded lengths
  averaging ~490 steps (~19.7k steps; `--small`: 8 episodes of ~60);
- control: 200 episodes x 1,000 steps of 17 float32 observations, 6 float32 actions
  (`--small`: 20 x 100).
Frames are pre-rendered so the env costs next to nothing: what is timed is the recorder."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Workload:
    name: str
    lengths: tuple[int, ...]  # steps of each episode, in recording order
    obs_shape: tuple[int, ...]
    obs_dtype: str
    discrete_actions: int | None  # None: a Box(6,) float32 action
    users: tuple[str, ...] = ("alice", "bob", "carol", "dave")

    @property
    def steps(self) -> int:
        return sum(self.lengths)

    @property
    def obs_bytes(self) -> int:
        return int(np.prod(self.obs_shape)) * np.dtype(self.obs_dtype).itemsize

    def user_of(self, episode: int) -> str:
        """Episodes are dealt round-robin to the users: the by-user query picks one in four."""
        return self.users[episode % len(self.users)]

    def env(self, episode: int) -> "ReplayEnv":
        return ReplayEnv(self, episode)


def arcade(small: bool = False) -> Workload:
    rng = np.random.default_rng(7)
    episodes, low, high = (8, 40, 80) if small else (40, 300, 685)
    lengths = tuple(int(n) for n in rng.integers(low, high, episodes))
    return Workload("arcade", lengths, (128, 128, 3), "uint8", 9)


def control(small: bool = False) -> Workload:
    episodes, steps = (20, 100) if small else (200, 1000)
    return Workload("control", (steps,) * episodes, (17,), "float32", None)


_FRAMES: dict[tuple, np.ndarray] = {}


def frames(w: Workload) -> np.ndarray:
    """32 pre-rendered observations (seeded), served in turn."""
    key = (w.obs_shape, w.obs_dtype)
    if key not in _FRAMES:
        rng = np.random.default_rng(0)
        if w.obs_dtype == "uint8":
            base = np.linspace(0, 200, int(np.prod(w.obs_shape))).reshape(w.obs_shape)
            f = np.stack([(base + 3 * i + rng.integers(0, 4, base.shape)).astype(np.uint8) for i in range(32)])
        else:
            f = rng.standard_normal((32, *w.obs_shape)).astype(w.obs_dtype)
        _FRAMES[key] = f
    return _FRAMES[key]


class ReplayEnv(gym.Env):
    """Serves the workload's pre-rendered observations; episode `episode` lasts its length."""

    def __init__(self, w: Workload, episode: int = 0):
        self.w, self.frames = w, frames(w)
        self.length, self.t = w.lengths[episode % len(w.lengths)], 0
        if w.obs_dtype == "uint8":
            self.observation_space = gym.spaces.Box(0, 255, w.obs_shape, np.uint8)
        else:
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, w.obs_shape, np.float32)
        if w.discrete_actions is not None:
            self.action_space = gym.spaces.Discrete(w.discrete_actions)
        else:
            self.action_space = gym.spaces.Box(-1.0, 1.0, (6,), np.float32)

    def set_episode(self, episode: int) -> None:
        self.length = self.w.lengths[episode % len(self.w.lengths)]

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self.frames[0], {}

    def step(self, action):
        self.t += 1
        return self.frames[self.t % 32], 1.0, False, self.t >= self.length, {}


def actions(w: Workload) -> list:
    """One action per step, served in turn (a policy's cost stays out of the timing)."""
    rng = np.random.default_rng(1)
    if w.discrete_actions is not None:
        return [int(a) for a in rng.integers(0, w.discrete_actions, 64)]
    return list(rng.uniform(-1, 1, (64, 6)).astype(np.float32))
