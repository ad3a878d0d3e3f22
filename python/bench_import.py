"""Import throughput against the source library's own reader on the same data, same run.

    python python/bench_import.py [--diambra-episodes 6] [--minari-episodes 200]

- diambra: `trajstore import diambra` of `.diambra` files written by DIAMBRA Arena's own
  `EpisodeRecorder` (its mocked engine, 64x64x1 frames) against reading every step of the same
  files with DIAMBRA's `DiambraDataLoader` (which also decodes each JPEG frame);
- minari: `trajstore import minari` of a CartPole dataset made by minari's `DataCollector`
  (HDF5 and Arrow backends) against reading every episode with `minari.load_dataset(...)`.
  `iterate_episodes()`.
Each import goes into a fresh store with a durable commit per episode, so the ratio is the
price of "read it once with the source library, then own it in a store". Timed rounds
alternate between the two sides; the best round of each counts.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import tempfile
import threading
import time
import unittest.mock

ROUNDS = 3


def best(fn, rounds=ROUNDS):
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def play_randomly(env, seed: int) -> int:
    """Plays one episode of random actions from `env.reset(seed=seed)`; returns its steps."""
    env.reset(seed=seed)
    steps = 0
    while True:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        steps += 1
        if terminated or truncated:
            return steps


def compare(label: str, steps: int, reader: str, read, import_round) -> None:
    """Times `read()` (the source library's reader) against `import_round(n)` (round `n`'s
    import, into a fresh store), the rounds alternating; prints the best of each and the ratio."""
    theirs, ours = [], []
    for n in range(ROUNDS):
        theirs.append(best(read, 1))
        ours.append(best(lambda: import_round(n), 1))
    t, o = min(theirs), min(ours)
    print(f"{label}, {steps} steps: {reader} {steps / t:,.0f} steps/s, "
          f"import {steps / o:,.0f} steps/s: ratio {t / o:.2f}x of the reader's throughput")


def diambra(root: str, episodes: int) -> None:
    import diambra.arena as arena
    from diambra.arena.utils.diambra_data_loader import DiambraDataLoader
    from diambra.arena.utils.engine_mock import load_mocker

    from trajstore.importers.diambra import import_files

    class Patcher:
        def __init__(self):
            self.patches = []

        def patch(self, target, new):
            self.patches.append(unittest.mock.patch(target, new))
            self.patches[-1].start()

    files_dir = os.path.join(root, "diambra")
    patcher = Patcher()
    load_mocker(patcher)
    env = arena.make("doapp", arena.EnvironmentSettings(step_ratio=6, frame_shape=(64, 64, 1)),
                     episode_recording_settings=arena.RecordingSettings(dataset_path=files_dir, username="bench"),
                     log_level=40)
    steps = 0
    for n in range(episodes):
        steps += play_randomly(env, n)
        for t in threading.enumerate():
            if t is not threading.current_thread() and not t.daemon:
                t.join()
        newest = max(glob.glob(os.path.join(files_dir, "*.diambra")), key=os.path.getmtime)
        os.rename(newest, os.path.join(files_dir, f"ep-{n:04d}.diambra"))
    env.close()
    for p in patcher.patches:
        p.stop()
    files = sorted(glob.glob(os.path.join(files_dir, "*.diambra")))

    def read_with_diambra():
        loader = DiambraDataLoader(files_dir, log_level=40)
        for _ in files:
            loader.reset()
            for _ in range(len(loader.episode_data)):
                loader.step()

    def import_round(n):
        import_files(os.path.join(root, f"store-diambra-{n}"), files)

    compare(f"diambra: {len(files)} files", steps, "DiambraDataLoader", read_with_diambra, import_round)


def minari_bench(root: str, episodes: int) -> None:
    os.environ["MINARI_DATASETS_PATH"] = os.path.join(root, "minari")
    import gymnasium as gym
    import minari

    from trajstore.importers.minari import import_dataset

    for backend in ("hdf5", "arrow"):
        env = minari.DataCollector(gym.make("CartPole-v1", max_episode_steps=200), record_infos=False,
                                   data_format=backend)
        env.action_space.seed(0)
        steps = 0
        for n in range(episodes):
            steps += play_randomly(env, n)
        dataset_id = f"bench/cartpole-{backend}-v0"
        env.create_dataset(dataset_id=dataset_id, algorithm_name="random", ref_min_score=0.0, ref_max_score=1.0)
        env.close()
        path = os.path.join(root, "minari", "bench", f"cartpole-{backend}-v0")

        def read_with_minari():
            for ep in minari.load_dataset(dataset_id).iterate_episodes():
                ep.observations, ep.actions, ep.rewards, ep.terminations, ep.truncations  # noqa: B018

        def import_round(n):
            import_dataset(os.path.join(root, f"store-minari-{backend}-{n}"), path)

        compare(f"minari ({backend}): {episodes} episodes", steps, "load_dataset", read_with_minari, import_round)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--diambra-episodes", type=int, default=6)
    p.add_argument("--minari-episodes", type=int, default=200)
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="trajstore-bench-import-")
    try:
        diambra(root, args.diambra_episodes)
        minari_bench(root, args.minari_episodes)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
