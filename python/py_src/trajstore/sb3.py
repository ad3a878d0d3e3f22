"""Stable-Baselines3 (optional: imported only here): a replay buffer backed by a store, and
seeding SB3's own buffer with recorded demonstrations.

    model = DQN("MlpPolicy", env, replay_buffer_class=trajstore.sb3.StoreReplayBuffer,
                replay_buffer_kwargs={"store": "runs/dqn", "preload": {"user": "expert"}})
    model.learn(10_000)          # every transition lands in the store; demonstrations sampled too

    model = DQN("MlpPolicy", env)
    trajstore.sb3.fill_replay_buffer(model.replay_buffer, "demos", user="expert")

Each transition's next observation is read from the store's `T + 1` observations at offset
+1, never stored twice. `StoreReplayBuffer` keeps no observation arrays at all;
`fill_replay_buffer` copies into SB3's own buffer, which holds its copies as it always does.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._arrays import dtype_name
from .datasets import StepIndex
from .loader import Loader
from .store import EpisodeRecorder, Store

try:
    from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
    from stable_baselines3.common.type_aliases import ReplayBufferSamples
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


#: The columns a transition is served from; `next/obs` is `obs` at offset +1.
_COLUMNS = ["obs", "action", "reward", "terminated", "truncated"]


class StoreReplayBuffer(ReplayBuffer):
    """An SB3 `ReplayBuffer` whose transitions live in a store: pass it as `replay_buffer_class`
    (with `replay_buffer_kwargs={"store": path, ...}`). It holds no observation, action or
    reward arrays of its own: `add` records one episode per env (begun at the env's first
    observation, committed when SB3 reports it done: `terminated`, or `truncated` when the
    env's info says `TimeLimit.truncated`), and `sample` gathers transitions from the store,
    each next observation being the store's observation at offset +1 (observations are stored
    once, `T + 1` per episode). SB3's `optimize_memory_usage` has no effect: nothing is stored
    twice to begin with.

    As in SB3, the newest `buffer_size` transitions are sampled uniformly (`np.random`, which
    SB3 seeds); a transition is sampled once its episode is committed, so updates start after
    the first episode ends. `preload`: a selection of episodes already in the store (e.g.
    `{"user": "expert"}`, as `Store.episodes` takes it), sampled as if added first
    (demonstration-seeded training); they need `obs`, `action`, `reward`, `terminated` and
    `truncated` fields of the buffer's spaces, as `RecordEpisodes` records them."""

    def __init__(self, buffer_size: int, observation_space: Any, action_space: Any, device: Any = "auto", n_envs: int = 1,
                 optimize_memory_usage: bool = False, handle_timeout_termination: bool = True, *,
                 store: str | os.PathLike | Store, username: str = "sb3", env_id: str = "sb3", tags: Any = (),
                 preload: dict[str, Any] | None = None, verify_reads: bool = True):
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.store = store if isinstance(store, Store) else Store.create(store, verify_reads)
        self.username, self.env_id, self.tags = username, env_id, list(tags)
        # The spaces' own shapes (a Discrete action is a scalar), as RecordEpisodes records
        # them, so preloaded demonstrations and the agent's episodes share one layout.
        self._action_dtype = np.dtype(self._maybe_cast_dtype(action_space.dtype))
        self._obs_field_shape, self._action_field_shape = tuple(observation_space.shape), tuple(action_space.shape)
        self._fields = [("obs", dtype_name(observation_space.dtype), self._obs_field_shape, "observation", "raw"),
                        ("action", dtype_name(self._action_dtype), self._action_field_shape, "transition", "raw"),
                        ("reward", "f64", (), "transition", "raw")]  # Gymnasium's Python floats, as RecordEpisodes
        self._recorders: list[EpisodeRecorder | None] = [None] * n_envs
        #: (episode id, user, steps) of every sampled episode, oldest first
        self._episodes: list[tuple[int, str, int]] = []
        if preload is not None:
            self._episodes += [(e.id, e.user, e.steps) for e in self.store.episodes(**preload)]
        self._index: tuple[int, StepIndex, np.ndarray, np.ndarray] | None = None

    # -- SB3's view of the size

    @property
    def transitions(self) -> int:
        """Committed transitions this buffer samples from (preloaded ones included)."""
        return sum(steps for *_, steps in self._episodes)

    def size(self) -> int:
        return min(self.transitions, self.buffer_size)

    @property
    def pos(self) -> int:
        return self.transitions % self.buffer_size

    @pos.setter
    def pos(self, value: int) -> None:  # BaseBuffer.__init__ and reset() assign it
        pass

    @property
    def full(self) -> bool:
        return self.transitions >= self.buffer_size

    @full.setter
    def full(self, value: bool) -> None:
        pass

    def reset(self) -> None:
        """Forgets the committed episodes (they stay in the store) and the running ones."""
        for recorder in self._recorders:
            if recorder is not None:
                recorder.discard()
        self._recorders, self._episodes, self._index = [None] * self.n_envs, [], None

    # -- recording

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray,
            infos: list[dict[str, Any]]) -> None:
        obs = np.asarray(obs).reshape((self.n_envs, *self._obs_field_shape))
        next_obs = np.asarray(next_obs).reshape((self.n_envs, *self._obs_field_shape))
        action = np.asarray(action).reshape((self.n_envs, *self._action_field_shape))
        for i in range(self.n_envs):
            recorder = self._recorders[i]
            if recorder is None:
                recorder = self.store.begin_episode(self.username, self.env_id, self._fields, tags=self.tags)
                recorder.reset({"obs": obs[i]})
                self._recorders[i] = recorder
            ended = bool(done[i])
            timeout = ended and bool(infos[i].get("TimeLimit.truncated", False))
            recorder.step({"obs": next_obs[i], "action": action[i].astype(self._action_dtype, copy=False),
                           "reward": np.float64(reward[i]), "terminated": ended and not timeout, "truncated": timeout})
            if ended:
                steps = recorder.steps
                self._episodes.append((recorder.commit(), self.username, steps))
                self._recorders[i] = None

    def close(self) -> list[int]:
        """Commits the episodes still running, as they are (not done: their last step neither
        terminated nor truncated); returns the ids of every episode the buffer samples."""
        for i, recorder in enumerate(self._recorders):
            if recorder is not None:
                steps = recorder.steps
                if steps:
                    self._episodes.append((recorder.commit(), self.username, steps))
                else:
                    recorder.discard()
                self._recorders[i] = None
        return [e for e, *_ in self._episodes]

    # -- sampling

    def _step_index(self) -> tuple[StepIndex, np.ndarray, np.ndarray]:
        """A StepIndex over the buffer's episodes, each episode's first unit in it, and each
        episode's first transition number in the buffer (oldest first); rebuilt after commits."""
        if self._index is None or self._index[0] != len(self._episodes):
            users = sorted({u for _, u, _ in self._episodes})
            loader = Loader(self.store, user=users)
            starts, at = {}, 0
            for info in loader.infos():
                starts[info.id], at = at, at + info.steps
            first = np.array([starts[e] for e, *_ in self._episodes], dtype=np.int64)
            begins = np.cumsum([0] + [steps for *_, steps in self._episodes], dtype=np.int64)
            self._index = (len(self._episodes), StepIndex(loader, _COLUMNS, ["obs"]), first, begins)
        return self._index[1:]

    def _transitions(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Transitions by their number in the buffer (0 = the oldest step of the oldest episode)."""
        index, first, begins = self._step_index()
        episode = np.searchsorted(begins, indices, side="right") - 1
        return index.rows((first[episode] + indices - begins[episode]).tolist())

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        total = self.transitions
        if total == 0:
            raise ValueError("StoreReplayBuffer: no committed transition to sample yet: a transition is sampled once its "
                             "episode ends; start learning later (learning_starts) or preload demonstrations")
        indices = np.random.randint(max(0, total - self.buffer_size), total, size=batch_size)
        return self._get_samples(indices, env=env)

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> ReplayBufferSamples:
        rows = self._transitions(np.asarray(batch_inds, dtype=np.int64))
        n = len(batch_inds)
        done = rows["terminated"] | (rows["truncated"] & (not self.handle_timeout_termination))
        data: tuple[Any, ...] = (
            self._normalize_obs(rows["obs"].reshape(n, *self.obs_shape), env),
            rows["action"].reshape(n, self.action_dim).astype(self._action_dtype, copy=False),
            self._normalize_obs(rows["next/obs"].reshape(n, *self.obs_shape), env),
            done.astype(np.float32).reshape(-1, 1),
            self._normalize_reward(rows["reward"].astype(np.float32).reshape(-1, 1), env),
        )
        return ReplayBufferSamples(*(self.to_torch(array) for array in data))
