"""imitation's behaviour cloning (`imitation.algorithms.bc.BC`) from a store: a scripted
CartPole expert is recorded with `RecordEpisodes`, BC trains on
`trajstore.imitation_data.transitions`, and the cloned policy plays fresh episodes against a
random policy.

    pip install imitation           # pins gymnasium 0.29: .ci/run gives it its own virtualenv
    python examples/imitation_bc.py
    TRAJSTORE_EXAMPLE_FAST=1 python examples/imitation_bc.py

Exits 1 when the cloned policy's mean return is not at least twice the random policy's (in
fast mode too: fewer demonstrations and epochs, the same check).
"""

from __future__ import annotations

import os
import sys
import tempfile

import gymnasium as gym
import numpy as np
import torch
from imitation.algorithms import bc

import trajstore
import trajstore.imitation_data

FAST = os.environ.get("TRAJSTORE_EXAMPLE_FAST") == "1"


def expert(obs) -> int:
    return int(obs[2] + obs[3] > 0)


def mean_return(act, episodes: int, first_seed: int) -> float:
    env, returns = gym.make("CartPole-v1"), []
    for seed in range(first_seed, first_seed + episodes):
        obs, _ = env.reset(seed=seed)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main() -> int:
    torch.manual_seed(0)  # the policy's initial weights: the same run every time
    demos, epochs = (5, 5) if FAST else (20, 20)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/demos"
        env = trajstore.RecordEpisodes(gym.make("CartPole-v1"), path, username="expert")
        for seed in range(demos):
            obs, _ = env.reset(seed=seed)
            done = False
            while not done:
                obs, _, terminated, truncated, _ = env.step(expert(obs))
                done = terminated or truncated
        env.close()
        transitions = trajstore.imitation_data.transitions(path, user="expert")
        print(f"recorded {demos} expert episodes: {len(transitions)} transitions")
        space = gym.make("CartPole-v1")
        trainer = bc.BC(observation_space=space.observation_space, action_space=space.action_space,
                        demonstrations=transitions, rng=np.random.default_rng(0), device="cpu")
        trainer.train(n_epochs=epochs, progress_bar=False, log_interval=10**9)
    cloned = mean_return(lambda obs: int(trainer.policy.predict(obs, deterministic=True)[0]), 10, 1000)
    rng = np.random.default_rng(0)
    random = mean_return(lambda obs: int(rng.integers(2)), 10, 1000)
    print(f"mean return over 10 fresh episodes: BC {cloned:.1f}, random {random:.1f} (expert: 500)")
    if cloned < 2 * random:
        print("FAILED: BC is not clearly better than a random policy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
