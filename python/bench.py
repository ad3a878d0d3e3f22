"""Python-side benchmarks, each against a baseline measured in the same run.

    python python/bench.py [--episodes 40] [--steps 200]

- recording: per-step cost of `RecordEpisodes` over the same env without the wrapper
  (128x128x3 uint8 frames, durable commit per episode);
- scan: every frame of every episode through `Loader.episodes()` (zero-copy views) against
  `np.memmap` over the same raw bytes (the segment files, at each episode's payload);
- sample: random 256-step batches from `Loader.batches` against numpy fancy indexing of the
  same rows on those memmaps;
- dataloader (when torch is installed): an epoch of `trajstore.torch.StepDataset` through a
  torch DataLoader (2 workers, shuffled batches of 256) against a map-style dataset of the
  same frames on those memmaps, through the same DataLoader.
Timed rounds alternate between the two sides; the best round of each counts.

    python python/bench.py --stats-store DIR

- stats (only this, with `--stats-store`): `Store.stats` of `obs` and `action` over every
  episode and over one user's, from the index, against numpy computing the same figures
  (count, mean, std, min, max, `np.quantile(..., method="lower")`) over the values read
  from the store, and over the same values already in memory. DIR is a store of small
  episodes, e.g. the one `trajstore bench DIR --mode stats` records (100k episodes).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import numpy as np

import trajstore

ROUNDS = 3


class FrameEnv(gym.Env):
    """Serves pre-rendered 128x128x3 frames; ends after `steps` steps."""

    def __init__(self, frames: np.ndarray, steps: int):
        self.frames, self.steps, self.t = frames, steps, 0
        self.observation_space = gym.spaces.Box(0, 255, frames.shape[1:], np.uint8)
        self.action_space = gym.spaces.Discrete(9)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self.frames[0], {}

    def step(self, action):
        self.t += 1
        return self.frames[self.t % len(self.frames)], 0.0, self.t >= self.steps, False, {}


def play(env: gym.Env, episodes: int) -> float:
    start = time.perf_counter()
    for _ in range(episodes):
        env.reset()
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(0)
            done = terminated or truncated
    return time.perf_counter() - start


def touch(a: np.ndarray) -> int:
    return int(a.reshape(-1).view(np.uint64).sum())


def best(fn, rounds: int = ROUNDS) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=40)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--stats-store", help="only the stats benchmark, over this store")
    args = p.parse_args()
    if args.stats_store:
        stats(args.stats_store)
        return
    rng = np.random.default_rng(0)
    base = np.linspace(0, 200, 128 * 128 * 3).reshape(128, 128, 3)
    frames = np.stack([(base + 3 * i + rng.integers(0, 4, base.shape)).astype(np.uint8) for i in range(32)])
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        store_path = f"{tmp}/store"
        bare = play(FrameEnv(frames, args.steps), args.episodes)
        recorded = play(trajstore.RecordEpisodes(FrameEnv(frames, args.steps), store_path, username="bench"), args.episodes)
        n = args.episodes * args.steps
        mb = n * frames[0].nbytes / 1e6
        print(f"record   {n} steps: bare env {bare / n * 1e6:7.1f} us/step, with RecordEpisodes {recorded / n * 1e6:7.1f} us/step "
              f"(+{(recorded - bare) / n * 1e6:.1f} us/step, {mb / recorded:.0f} MB/s of frames, durable commit per episode)")

        store = trajstore.Store(store_path)
        ids = [e.id for e in store.episodes()]
        # The baseline maps the very same bytes (the segment files, at each episode's payload)
        # with np.memmap: same page-cache pages, so only the access path differs.
        snap = store.snapshot()
        plain_eps = []
        for i in ids:
            ((path, offset, nbytes, steps, codec),) = snap.chunks(i, "obs")
            assert codec == "raw"
            plain_eps.append(np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=(steps, 128, 128, 3)))
        total = sum(len(e) for e in plain_eps)

        scan_loader = trajstore.Loader(store, seed=0)

        def scan_store():
            # One snapshot for the whole pass, as a training job reads.
            return sum(touch(e["obs"]) for e in scan_loader.episodes()) % (1 << 64)

        def scan_plain():
            return sum(touch(e) for e in plain_eps) % (1 << 64)

        assert scan_store() == scan_plain(), "both read the same bytes"
        t_store, t_plain = best(scan_store), best(scan_plain)
        gb = total * frames[0].nbytes / 1e9
        print(f"scan     {gb:.2f} GB: trajstore {gb / t_store:5.2f} GB/s, np.memmap {gb / t_plain:5.2f} GB/s, ratio {t_plain / t_store:.2f}")

        loader = trajstore.Loader(store, seed=0)
        by_id = dict(zip(ids, plain_eps))
        batches = list(loader.batches(["obs"], 256, order="replacement"))
        rows = [[(by_id[int(e)], int(t)) for e, t in zip(b["episode"], b["step"])] for b in batches]

        def sample_store():
            for b in loader.batches(["obs"], 256, order="replacement"):
                touch(b["obs"][:1])

        def gather(r):
            # numpy fancy indexing on each episode's memmap, stacked in batch order.
            out = np.empty((len(r), 128, 128, 3), np.uint8)
            groups: dict[int, list[int]] = {}
            for k, (ep, t) in enumerate(r):
                groups.setdefault(id(ep), []).append(k)
            for ks in groups.values():
                ep = r[ks[0]][0]
                out[ks] = ep[[r[k][1] for k in ks]]
            return out

        def sample_plain():
            for r in rows:
                touch(gather(r)[:1])

        assert all(np.array_equal(b["obs"], gather(r)) for b, r in zip(batches, rows)), "same rows"
        t_store, t_plain = best(sample_store), best(sample_plain)
        gb = sum(len(r) for r in rows) * frames[0].nbytes / 1e9
        print(f"sample   {len(rows)} batches of 256: trajstore {gb / t_store:5.2f} GB/s, numpy fancy indexing on np.memmap "
              f"{gb / t_plain:5.2f} GB/s, ratio {t_plain / t_store:.2f}")
        dataloader(store_path, plain_eps, ids, frames[0].nbytes)


QUANTILES = {"q01": 0.01, "q05": 0.05, "q10": 0.10, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q90": 0.9, "q95": 0.95, "q99": 0.99}


def numpy_stats(a: np.ndarray) -> dict:
    return {"count": np.full(a.shape[1:], len(a)), "mean": a.mean(axis=0), "std": a.std(axis=0), "min": a.min(axis=0),
            "max": a.max(axis=0), "quantiles": {k: np.quantile(a, q, axis=0, method="lower") for k, q in QUANTILES.items()}}


def stats(store_path: str) -> None:
    store = trajstore.Store(store_path, read_only=True)
    for what, filters in (("every episode", {}), ("one user (u0)", {"user": "u0"})):
        ids = [e.id for e in store.episodes(**filters)]

        def index():
            return store.stats(["obs", "action"], **filters)

        def read():
            snap = store.snapshot()
            return {name: np.concatenate([np.asarray(snap.field(i, name), dtype=np.float64) for i in ids]) for name in ("obs", "action")}

        values = read()

        def compute(v=values):
            return {name: numpy_stats(a) for name, a in v.items()}

        ours, theirs = index(), compute()
        for name in ("obs", "action"):
            np.testing.assert_allclose(ours[name].mean, theirs[name]["mean"], rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(ours[name].std, theirs[name]["std"], rtol=1e-9, atol=1e-9)
            for k in QUANTILES:
                exact = theirs[name]["quantiles"][k]
                assert np.all(np.abs(ours[name].quantiles[k] - exact) <= 0.01 * np.abs(exact) + 1e-12), k
        t_index = best(index)
        t_read = best(lambda: compute(read()))
        t_compute = best(compute)
        n = sum(a.size for a in values.values())
        print(f"stats    {what}: {len(ids)} episodes, {n} values: index {t_index * 1e3:8.1f} ms; numpy over values read from the "
              f"store {t_read * 1e3:8.1f} ms (ratio {t_read / t_index:.0f}x); numpy on values in memory {t_compute * 1e3:8.1f} ms "
              f"(ratio {t_compute / t_index:.1f}x)")


def dataloader(store_path: str, plain_eps: list, ids: list, frame_bytes: int) -> None:
    try:
        import torch
        from torch.utils.data import DataLoader, Dataset
    except ImportError:
        print("dataloader: skipped (torch not installed)")
        return
    from trajstore.torch import StepDataset

    class MemmapSteps(Dataset):
        """The plain baseline: every step of the memmaps, a batch gathered by fancy indexing,
        served as StepDataset serves it (the same items: obs, episode, step as int64)."""

        def __init__(self, episodes, ids):
            self.episodes, self.ids = episodes, ids
            self.index = [(e, t) for e, ep in enumerate(episodes) for t in range(len(ep) - 1)]

        def __len__(self):
            return len(self.index)

        def __getitems__(self, indices):
            out = np.empty((len(indices), *self.episodes[0].shape[1:]), np.uint8)
            episode, step = np.empty(len(indices), np.int64), np.empty(len(indices), np.int64)
            for k, i in enumerate(indices):
                e, t = self.index[i]
                out[k], episode[k], step[k] = self.episodes[e][t], self.ids[e], t
            frames, episode, step = torch.from_numpy(out), torch.from_numpy(episode), torch.from_numpy(step)
            return [{"obs": frames[k], "episode": episode[k], "step": step[k]} for k in range(len(indices))]

    def epoch(ds) -> float:
        loader = DataLoader(ds, batch_size=256, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(0),
                            persistent_workers=False)
        start = time.perf_counter()
        for batch in loader:
            batch["obs"][:1].sum()
        return time.perf_counter() - start

    steps, plain = StepDataset(store_path, ["obs"], world_size=1, rank=0), MemmapSteps(plain_eps, ids)
    assert len(steps) == len(plain), "the same steps"
    t_store, t_plain = min(epoch(steps) for _ in range(ROUNDS)), min(epoch(plain) for _ in range(ROUNDS))
    gb = len(steps) * frame_bytes / 1e9
    print(f"dataloader {len(steps)} steps, 2 workers, batch 256: StepDataset {gb / t_store:5.2f} GB/s, memmap dataset "
          f"{gb / t_plain:5.2f} GB/s, ratio {t_plain / t_store:.2f}")


if __name__ == "__main__":
    main()
