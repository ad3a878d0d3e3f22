"""Reading a recorded workload back, the same four ways on every side: scan every
observation, gather random batches of given (episode, step) pairs, and select one user's
episodes and load their observations and actions.

Every side touches every byte it returns with the same `touch` (a sum over the bytes as
uint32), so zero-copy views are not mistaken for free reads."""

from __future__ import annotations

import os

import numpy as np

from .workloads import Workload


def touch(a) -> int:
    a = np.asarray(a)
    flat = a.reshape(-1)
    if a.nbytes % 4 == 0:
        return int(flat.view(np.uint8).view(np.uint32).sum(dtype=np.uint64))
    return int(flat.view(np.uint8).sum(dtype=np.uint64))


def pairs(w: Workload, batches: int, batch: int = 256, seed: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded batches of (episode index, observation step) pairs, uniform over all steps."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(w.lengths) + 1  # T + 1 observations
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    out = []
    for _ in range(batches):
        flat = rng.integers(0, lengths.sum(), batch)
        ep = np.searchsorted(starts, flat, side="right") - 1
        out.append((ep.astype(np.int64), (flat - starts[ep]).astype(np.int64)))
    return out


class NumpyFloor:
    """The preallocated memmap store `recorders.MemmapRecorder` wrote."""

    name = "numpy"

    def __init__(self, w: Workload, directory: str):
        n = len(w.lengths)
        self.w = w
        self.table = np.memmap(f"{directory}/episodes", dtype=np.int64, mode="r", shape=(n, 4))
        obs_rows = int(self.table[-1, 0] + self.table[-1, 2] + 1)
        self.obs = np.memmap(f"{directory}/obs", dtype=w.obs_dtype, mode="r", shape=(obs_rows, *w.obs_shape))
        act_shape = () if w.discrete_actions is not None else (6,)
        act_dtype = np.int64 if w.discrete_actions is not None else np.float32
        self.action = np.memmap(f"{directory}/action", dtype=act_dtype, mode="r", shape=(int(self.table[:, 2].sum()), *act_shape))

    def scan(self) -> int:
        return sum(touch(self.obs[o: o + t + 1]) for o, _, t, _ in self.table)

    def gather(self, episodes: np.ndarray, steps: np.ndarray) -> int:
        # One fancy index over the global rows: the cheapest gather there is.
        return touch(self.obs[self.table[episodes, 0] + steps])

    def by_user(self, user: str) -> int:
        u = self.w.users.index(user)
        return sum(touch(self.obs[o: o + t + 1]) + touch(self.action[s: s + t]) for o, s, t, k in self.table if k == u)


class TrajstoreSide:
    """The store through the Python package's public API."""

    def __init__(self, w: Workload, path: str, name: str = "trajstore"):
        import trajstore

        self.trajstore, self.w, self.name = trajstore, w, name
        self.store = trajstore.Store(path, read_only=True)
        self.ids = np.asarray([e.id for e in self.store.episodes()], dtype=np.int64)
        self.snapshot = self.store.snapshot()
        self.out: np.ndarray | None = None
        # lz4 observations decode into one reused array (Episode.read(out=)); raw ones are
        # views of the memory map.
        self.lz4 = name == "trajstore-lz4"
        self.obs_buffer = np.empty((max(w.lengths) + 1, *w.obs_shape), w.obs_dtype) if self.lz4 else None

    def obs(self, e) -> np.ndarray:
        return e.read("obs", out=self.obs_buffer) if self.lz4 else e["obs"]

    def scan(self) -> int:
        return sum(touch(self.obs(e)) for e in self.trajstore.Loader(self.store, seed=0).episodes())

    def gather(self, episodes: np.ndarray, steps: np.ndarray) -> int:
        snap, ids = self.snapshot, self.ids[episodes]
        if hasattr(snap, "gather"):
            # The gather API: every pair in one call, into a reused output array.
            if self.out is None or len(self.out) != len(ids):
                self.out = np.empty((len(ids), *self.w.obs_shape), self.w.obs_dtype)
            return touch(snap.gather("obs", ids, steps, out=self.out))
        # Without it: each touched episode's array indexed separately, in batch order.
        out = np.empty((len(ids), *self.w.obs_shape), self.w.obs_dtype)
        for e in np.unique(ids):
            rows = np.flatnonzero(ids == e)
            out[rows] = np.asarray(snap.field(int(e), "obs"))[steps[rows]]
        return touch(out)

    def by_user(self, user: str) -> int:
        # Selected by the catalog's id column (no EpisodeInfo per episode), loaded by id: the
        # README's way to load a selection's fields.
        total = 0
        for episode_id in self.store.episodes(user=user).ids.tolist():
            e = self.store.episode(episode_id)
            total += touch(self.obs(e)) + touch(e["action"])
        return total


class MinariPeer:
    """Minari's datasets (one per user, HDF5) through `minari.load_dataset`."""

    name = "minari"

    def __init__(self, w: Workload, root: str, prefix: str):
        import minari

        os.environ["MINARI_DATASETS_PATH"] = os.path.abspath(root)
        self.minari, self.w, self.prefix = minari, w, prefix
        self.datasets = {u: minari.load_dataset(f"{prefix}/{u}-v0") for u in w.users}

    def scan(self) -> int:
        return sum(touch(e.observations) for u in self.w.users for e in self.datasets[u].iterate_episodes())

    def gather(self, episodes: np.ndarray, steps: np.ndarray) -> int:
        # Minari reads whole episodes: load each touched one, index the steps asked for.
        out = np.empty((len(episodes), *self.w.obs_shape), self.w.obs_dtype)
        users = len(self.w.users)
        for u, user in enumerate(self.w.users):
            mine = np.flatnonzero(episodes % users == u)
            if not len(mine):
                continue
            local = episodes[mine] // users
            wanted = np.unique(local)
            for index, e in zip(wanted, self.datasets[user].iterate_episodes(wanted.tolist())):
                rows = mine[local == index]
                out[rows] = e.observations[steps[rows]]
        return touch(out)

    def by_user(self, user: str) -> int:
        ds = self.minari.load_dataset(f"{self.prefix}/{user}-v0")
        return sum(touch(e.observations) + touch(e.actions) for e in ds.iterate_episodes())
