"""Listing and index size from Python: `Store.episodes()` against the dict-per-episode path it
replaced, and the index bytes of an episode with its spaces stored per episode or per schema.

    python python/bench_catalog.py list STORE [--repeat 5]
    python python/bench_catalog.py spaces [--episodes 2000] [--steps 50]

`list` (a store made by `trajstore synth` or `trajstore bench --mode scale`), in one process:
- baseline: `Snapshot.episodes` (every full record decoded, a dict per episode) and an
  `EpisodeInfo` made from each, as `Store.episodes()` did;
- `Store.episodes()` (catalog columns, nothing per episode) with `len()` and the `id` and
  `steps` columns; and then materialising every `EpisodeInfo` from it.
Median of `--repeat` runs each, and the ratio to the baseline.

`spaces`: `--episodes` episodes of `--steps` steps of a control-like env (obs Box f32[17],
action Box f32[6], reward) recorded into two fresh stores, one with the spaces' JSON in every
episode's metadata (as `RecordEpisodes` recorded before), one with them once per schema (as
it records now); index file bytes per episode of each (field statistics on, as by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

import trajstore
from trajstore import _spaces
from trajstore.store import EpisodeInfo


def median_seconds(f, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_list(path: str, repeat: int) -> None:
    store = trajstore.Store(path, read_only=True)
    n = len(store.episodes())

    def baseline():
        return [EpisodeInfo(**row) for row in store.snapshot().episodes(trajstore.Selection())]

    def listed():
        episodes = store.episodes()
        return len(episodes), episodes.ids, episodes.steps

    def materialised():
        return list(store.episodes())

    base = median_seconds(baseline, repeat)
    print(f"{n} episodes, median of {repeat}")
    print(f"  baseline (a dict and an EpisodeInfo per episode) {base * 1e3:9.1f} ms")
    for name, f in (("Store.episodes() + len + ids + steps", listed), ("list(Store.episodes())", materialised)):
        t = median_seconds(f, repeat)
        print(f"  {name:<47}{t * 1e3:9.1f} ms   {t / base:.3f}x the baseline")


def record(store, episodes: int, steps: int, spaces_per_episode: bool) -> None:
    import gymnasium as gym

    obs_space = _spaces.space_to_json(gym.spaces.Box(-10.0, 10.0, (17,), np.float32))
    act_space = _spaces.space_to_json(gym.spaces.Box(-1.0, 1.0, (6,), np.float32))
    spaces = {_spaces.OBSERVATION_SPACE_KEY: _spaces.dumps(obs_space), _spaces.ACTION_SPACE_KEY: _spaces.dumps(act_space)}
    fields = [("obs", "f32", (17,), "observation", "raw"), ("action", "f32", (6,), "transition", "raw"),
              ("reward", "f64", (), "transition", "raw")]
    rng = np.random.default_rng(0)
    for i in range(episodes):
        metadata = {"ignore_p2": False, **(spaces if spaces_per_episode else {})}
        r = store.begin_episode("u", "Control-v0", fields, seed=i, metadata=metadata,
                                schema_metadata=None if spaces_per_episode else spaces)
        obs = rng.normal(size=(steps + 1, 17)).astype(np.float32)
        act = rng.uniform(-1, 1, size=(steps, 6)).astype(np.float32)
        r.reset({"obs": obs[0]})
        for t in range(steps):
            r.step({"obs": obs[t + 1], "action": act[t], "reward": 0.1, "terminated": t == steps - 1, "truncated": False})
        r.commit()


def bench_spaces(episodes: int, steps: int) -> None:
    print(f"index bytes per episode, {episodes} episodes of {steps} steps (obs f32[17], action f32[6])")
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, per_episode in (("spaces in every episode's metadata", True), ("spaces once per schema", False)):
            path = os.path.join(tmp, name.replace(" ", "-"))
            store = trajstore.Store.create(path)
            record(store, episodes, steps, per_episode)
            raw = sum(e.raw_bytes for e in store.episodes())
            del store
            index = os.path.getsize(os.path.join(path, "index.redb"))
            figures[name] = index / episodes
            print(f"  {name:<36} {index / episodes:8.0f} B/episode   {index / raw:6.1%} of raw bytes")
    before, after = figures.values()
    print(f"  per schema / per episode: {after / before:.3f}x")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    listing = sub.add_parser("list")
    listing.add_argument("store")
    listing.add_argument("--repeat", type=int, default=5)
    spaces = sub.add_parser("spaces")
    spaces.add_argument("--episodes", type=int, default=2000)
    spaces.add_argument("--steps", type=int, default=50)
    args = p.parse_args()
    if args.what == "list":
        bench_list(args.store, args.repeat)
    else:
        bench_spaces(args.episodes, args.steps)


if __name__ == "__main__":
    main()
