"""Behaviour cloning on CartPole, end to end through trajstore.

1. A scripted expert plays CartPole in an AsyncVectorEnv of 4 subprocesses; every sub-env is
   wrapped in `trajstore.RecordEpisodes`, so 4 processes record into one store, under two
   usernames.
2. A logistic-regression policy (numpy only) trains on shuffled loader batches of
   (observation, recorded action).
3. The policy plays 20 fresh episodes; the mean return should reach >= 475 (500 is the cap).

    python examples/cartpole_bc.py [--store DIR] [--episodes 40] [--epochs 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import gymnasium as gym
import numpy as np

import trajstore

EXPERT_WEIGHTS = np.array([0.1, 0.5, 3.0, 1.0])


def expert(obs: np.ndarray) -> np.ndarray:
    """A PD controller on the pole angle and velocities: push towards where the pole falls."""
    return (obs @ EXPERT_WEIGHTS > 0).astype(np.int64)


def make_env(store: str, username: str):
    def thunk():
        return trajstore.RecordEpisodes(gym.make("CartPole-v1"), store, username=username)

    return thunk


def record(store: str, episodes: int) -> float:
    """Plays until `episodes` episodes finished across 4 subprocesses; returns seconds."""
    start = time.perf_counter()
    envs = gym.vector.AsyncVectorEnv([make_env(store, f"expert-{i % 2}") for i in range(4)])
    obs, _ = envs.reset(seed=0)
    finished = 0
    while finished < episodes:
        obs, _, terminated, truncated, _ = envs.step(expert(obs))
        finished += int(np.sum(terminated | truncated))
    envs.close()  # episodes still running are discarded, not half-stored
    return time.perf_counter() - start


class Policy:
    """Logistic regression on standardised observations (plus a bias)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        self.mean, self.std, self.w = mean, std, np.zeros(mean.shape[-1] + 1)

    def features(self, obs: np.ndarray) -> np.ndarray:
        x = (np.asarray(obs, np.float64) - self.mean) / self.std
        return np.concatenate([x, np.ones((*x.shape[:-1], 1))], axis=-1)

    def act(self, obs: np.ndarray) -> int:
        return int(self.features(obs) @ self.w > 0)


def train(store: str, epochs: int, batch_size: int = 256, lr: float = 1.0) -> tuple[Policy, int]:
    """Fits the recorded action from the observation by minibatch SGD on loader batches."""
    loader = trajstore.Loader(store, seed=0)
    sample = next(loader.batches(["obs"], 4096, order="replacement"))["obs"]
    policy = Policy(sample.mean(axis=0), sample.std(axis=0) + 1e-8)
    seen = 0
    for _ in range(epochs):
        for batch in loader.batches(["obs", "action"], batch_size, order="shuffle"):
            x, y = policy.features(batch["obs"]), batch["action"]
            p = 1.0 / (1.0 + np.exp(-x @ policy.w))
            policy.w -= lr * x.T @ (p - y) / len(y)
            seen += len(y)
        loader = loader.next_epoch()  # a different shuffle every epoch
    return policy, seen


def evaluate(policy: Policy, episodes: int = 20) -> list[float]:
    env = gym.make("CartPole-v1")
    returns = []
    for seed in range(1000, 1000 + episodes):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy.act(obs))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="store directory (default: a temporary one)")
    parser.add_argument("--episodes", type=int, default=40, help="expert episodes to record")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--eval-episodes", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or f"{tmp}/cartpole"
        trajstore.Store.create(store)
        seconds = record(store, args.episodes)
        s = trajstore.Store(store)
        users = {u["name"]: u for u in s.users()}
        steps = sum(u["steps"] for u in users.values())
        print(f"recorded {sum(u['episodes'] for u in users.values())} expert episodes ({steps} steps) "
              f"from 4 subprocesses in {seconds:.1f} s: " + ", ".join(f"{n}: {u['episodes']}" for n, u in sorted(users.items())))
        mean_expert = np.mean([e.total_return for e in s.episodes()])
        print(f"expert mean return {mean_expert:.1f}; store verify: {'ok' if s.verify()['ok'] else 'FAILED'}")
        policy, seen = train(store, args.epochs)
        print(f"trained logistic regression on {seen} loader samples ({args.epochs} epochs of shuffled 256-step batches)")
        returns = evaluate(policy, args.eval_episodes)
        print(f"behaviour-cloned policy over {len(returns)} fresh episodes: mean return {np.mean(returns):.1f} "
              f"(min {min(returns):.0f}, max {max(returns):.0f})")


if __name__ == "__main__":
    main()
