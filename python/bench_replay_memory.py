"""Replay memory of the same transitions: SB3's ReplayBuffer, SB3's optimize_memory_usage=True,
and trajstore.sb3.StoreReplayBuffer.

    python python/bench_replay_memory.py [--episodes 20] [--steps 100] [--frame 84x84x3]

Every buffer gets the same transitions through `add` (pixel observations, one env, episodes
that terminate), sized to hold exactly them. Measured, per buffer:
- arrays: bytes of the numpy arrays the buffer object owns (SB3 allocates them, buffer_size
  rows, when the buffer is built; StoreReplayBuffer owns none);
- store: for StoreReplayBuffer, the observation bytes written (the index's raw bytes of the
  `obs` field, T + 1 frames per episode) and the store directory's size on disk. These bytes
  live in files and are read through the page cache (memory-mapped), not the process heap.
Ratios are against SB3's default ReplayBuffer holding the same transitions.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import gymnasium as gym
import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer

import trajstore
from trajstore.sb3 import StoreReplayBuffer


def array_bytes(buffer) -> int:
    return sum(v.nbytes for v in vars(buffer).values() if isinstance(v, np.ndarray))


def dir_bytes(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--frame", default="84x84x3")
    args = p.parse_args()
    shape = tuple(int(d) for d in args.frame.split("x"))
    obs_space, act_space = gym.spaces.Box(0, 255, shape, np.uint8), gym.spaces.Discrete(6)
    n = args.episodes * args.steps
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        buffers = {
            "SB3 ReplayBuffer": ReplayBuffer(n, obs_space, act_space, device="cpu"),
            "SB3 optimize_memory_usage=True": ReplayBuffer(n, obs_space, act_space, device="cpu", optimize_memory_usage=True,
                                                           handle_timeout_termination=False),
            "StoreReplayBuffer": StoreReplayBuffer(n, obs_space, act_space, device="cpu", store=f"{tmp}/store"),
        }
        for _ in range(args.episodes):
            obs = rng.integers(0, 255, shape, dtype=np.uint8)
            for t in range(args.steps):
                nxt = rng.integers(0, 255, shape, dtype=np.uint8)
                for b in buffers.values():
                    b.add(obs[None], nxt[None], np.array([[t % 6]]), np.array([1.0]), np.array([t == args.steps - 1]), [{}])
                obs = nxt
        store = trajstore.Store(f"{tmp}/store")
        obs_raw = sum(e.steps + 1 for e in store.episodes()) * int(np.prod(shape))
        base = array_bytes(buffers["SB3 ReplayBuffer"])
        print(f"{n} transitions of {args.frame} uint8 observations ({args.episodes} episodes of {args.steps} steps)")
        for name, b in buffers.items():
            owned = array_bytes(b)
            line = f"  {name:32s} arrays {owned / 1e6:8.2f} MB ({owned / base:.3f}x)"
            if isinstance(b, StoreReplayBuffer):
                disk = dir_bytes(f"{tmp}/store")
                line += (f"; store: obs {obs_raw / 1e6:.2f} MB ({obs_raw / base:.3f}x, T + 1 frames per episode), "
                         f"on disk {disk / 1e6:.2f} MB ({disk / base:.3f}x) in files, read through the page cache")
            print(line)


if __name__ == "__main__":
    main()
