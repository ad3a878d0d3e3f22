"""Recording a workload's episodes: a bare env loop, trajstore's `RecordEpisodes`, a
preallocated numpy memmap recorder (the floor) and Minari's `DataCollector` (the peer).

Each recorder gets the same env, the same actions and the same episodes. What each side does
per episode, for the same durability:
- trajstore: `RecordEpisodes` streams each step into the store; an episode is committed
  (segment fdatasync + index commit) when it ends;
- numpy floor: each step is copied into preallocated `np.memmap` arrays (observations, actions,
  rewards, flags), and each episode ends with `flush()` (msync) of what it wrote plus its row
  of an episode table (start, steps, user): no schema, no checksums, no index, one writer;
- Minari: `DataCollector(jpeg_encoding=False)` (lossless) buffers the episode in memory and
  writes it to its HDF5 file when it ends (no fsync), one dataset per user (Minari has no
  per-episode user label; a dataset is its unit of selection), `create_dataset` at the end."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np

from .workloads import Workload, actions


@dataclass
class Timing:
    """Seconds spent: in all, in steps that did not end an episode, and at episode ends
    (`reset()` plus the step that ended the episode: where commits and flushes happen)."""

    total: float
    in_episode: float
    in_episode_steps: int
    boundaries: float
    episodes: int

    def overhead_us(self, bare: "Timing") -> tuple[float, float]:
        """(us per in-episode step, ms per episode end) over a bare env loop's."""
        step = (self.in_episode / self.in_episode_steps - bare.in_episode / bare.in_episode_steps) * 1e6
        end = (self.boundaries - bare.boundaries) / self.episodes * 1e3
        return step, end


def play(w: Workload, episodes: range, wrap: Callable[[gym.Env], gym.Env], before_reset=None) -> Timing:
    """Plays `episodes` of the workload through `wrap(env)`."""
    env = w.env(episodes[0])
    wrapped = wrap(env)
    acts = actions(w)
    clock = time.perf_counter
    in_episode = boundaries = 0.0
    in_steps = 0
    start = clock()
    for e in episodes:
        env.set_episode(e)
        if before_reset is not None:
            before_reset(wrapped, e)
        t0 = clock()
        wrapped.reset()
        boundaries += clock() - t0
        t, done = 0, False
        while not done:
            t0 = clock()
            _, _, terminated, truncated, _ = wrapped.step(acts[t % len(acts)])
            dt = clock() - t0
            t += 1
            done = terminated or truncated
            if done:
                boundaries += dt
            else:
                in_episode += dt
                in_steps += 1
    finish = getattr(wrapped, "finish", None)
    if finish is not None:
        t0 = clock()
        finish()
        boundaries += clock() - t0
    return Timing(clock() - start, in_episode, in_steps, boundaries, len(episodes))


def bare(w: Workload, episodes: range) -> Timing:
    return play(w, episodes, lambda env: env)


def record_trajstore(w: Workload, episodes: range, path: str, codec: str = "raw") -> Timing:
    import trajstore

    def relabel(wrapped, e):
        wrapped.set_labels(username=w.user_of(e))

    return play(w, episodes, lambda env: trajstore.RecordEpisodes(env, path, username=w.user_of(episodes[0]), codec=codec), relabel)


class MemmapRecorder(gym.Wrapper):
    """The floor: rows copied into preallocated memmaps, flushed per episode."""

    def __init__(self, env: gym.Env, w: Workload, directory: str, episodes: range):
        super().__init__(env)
        os.makedirs(directory, exist_ok=True)
        steps = sum(w.lengths[e] for e in episodes)
        n = len(episodes)
        act_shape = () if w.discrete_actions is not None else (6,)
        act_dtype = np.int64 if w.discrete_actions is not None else np.float32

        def mm(name, dtype, shape):
            return np.memmap(f"{directory}/{name}", dtype=dtype, mode="w+", shape=shape)

        self.obs = mm("obs", w.obs_dtype, (steps + n, *w.obs_shape))
        self.action = mm("action", act_dtype, (steps, *act_shape))
        self.reward = mm("reward", np.float64, (steps,))
        self.terminated = mm("terminated", np.bool_, (steps,))
        self.truncated = mm("truncated", np.bool_, (steps,))
        # episode table: obs start, step start, steps, user number
        self.table = mm("episodes", np.int64, (n, 4))
        self.users = {u: i for i, u in enumerate(w.users)}
        self.w, self.episodes, self.e = w, list(episodes), 0
        self.o = self.s = 0  # next obs row, next step row
        self.o0 = self.s0 = 0

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.o0, self.s0 = self.o, self.s
        self.obs[self.o] = obs
        self.o += 1
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.obs[self.o] = obs
        s = self.s
        self.action[s] = action
        self.reward[s] = reward
        self.terminated[s] = terminated
        self.truncated[s] = truncated
        self.o, self.s = self.o + 1, s + 1
        if terminated or truncated:
            self.table[self.e] = (self.o0, self.s0, s + 1 - self.s0, self.users[self.w.user_of(self.episodes[self.e])])
            self.e += 1
            for a in (self.obs, self.action, self.reward, self.terminated, self.truncated, self.table):
                a.flush()
        return obs, reward, terminated, truncated, info


def record_numpy(w: Workload, episodes: range, directory: str) -> Timing:
    return play(w, episodes, lambda env: MemmapRecorder(env, w, directory, episodes))


class MinariRecorder(gym.Wrapper):
    """One Minari DataCollector per user; the episode's user picks the collector."""

    def __init__(self, env: gym.Env, w: Workload, root: str, prefix: str):
        super().__init__(env)
        import minari  # noqa: F401  (pip install "minari[hdf5]")
        from minari import DataCollector

        os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(root)
        self.w, self.prefix = w, prefix
        self.collectors = {u: DataCollector(env, data_format="hdf5", jpeg_encoding=False) for u in w.users}
        self.current = self.collectors[w.users[0]]

    def choose(self, episode: int) -> None:
        self.current = self.collectors[self.w.user_of(episode)]

    def reset(self, **kwargs):
        return self.current.reset(**kwargs)

    def step(self, action):
        return self.current.step(action)

    def finish(self) -> None:
        import warnings

        with warnings.catch_warnings():  # Minari asks for authors, links and descriptions
            warnings.simplefilter("ignore")
            for user, c in self.collectors.items():
                c.create_dataset(dataset_id=f"{self.prefix}/{user}-v0", algorithm_name="bench")


def record_minari(w: Workload, episodes: range, root: str, prefix: str) -> Timing:
    return play(w, episodes, lambda env: MinariRecorder(env, w, root, prefix), lambda wrapped, e: wrapped.choose(e))


def record(kind: str, w: Workload, episodes: range, target: str, prefix: str = "bench") -> Timing:
    """Records `episodes` with one recorder kind: trajstore, trajstore-lz4, numpy or minari."""
    if kind == "trajstore":
        return record_trajstore(w, episodes, target)
    if kind == "trajstore-lz4":
        return record_trajstore(w, episodes, target, codec="lz4")
    if kind == "numpy":
        return record_numpy(w, episodes, target)
    if kind == "minari":
        return record_minari(w, episodes, target, prefix)
    raise ValueError(f"unknown recorder {kind!r}")


def _share(kind: str, w: Workload, k: int, n: int, target: str, barrier, results) -> None:
    """One of `n` recorder processes: episodes k, k + n, ... after every process is ready."""
    episodes = range(k, len(w.lengths), n)
    if kind == "numpy":
        target = f"{target}/{k}"  # a memmap store has no cross-process append: a directory each
    if kind == "minari":
        import jax.tree_util  # noqa: F401  (what DataCollector imports at its first step)
        import minari  # noqa: F401
    elif kind.startswith("trajstore"):
        import trajstore  # noqa: F401
    barrier.wait()  # imports are not timed
    start = time.monotonic()
    record(kind, w, episodes, target, prefix=f"p{k}")
    results.put((start, time.monotonic()))


def record_processes(kind: str, w: Workload, target: str, n: int = 4) -> float:
    """Wall seconds for `n` processes to record the workload (a share each) into
    `target`, from the moment all of them are ready (imports are not timed)."""
    import multiprocessing

    # Forked children start in milliseconds; Minari's recorder runs jax, whose threads make
    # fork unsafe, so its children are spawned. Either way only the recording is timed.
    ctx = multiprocessing.get_context("spawn" if kind == "minari" else "fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_share, args=(kind, w, k, n, target, barrier, results)) for k in range(n)]
    for p in procs:
        p.start()
    spans = [results.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"{kind} recorder process exited with {p.exitcode}")
    return max(e for _, e in spans) - min(s for s, _ in spans)
