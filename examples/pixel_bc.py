"""Behaviour cloning from pixels: a small torch CNN learns a scripted expert's moves from the
frames `RecordEpisodes` recorded, trained through a 2-worker DataLoader over the store, and
is evaluated against a random policy on fresh episodes.

    python examples/pixel_bc.py                       # about a minute or two on 2 cores
    TRAJSTORE_EXAMPLE_FAST=1 python examples/pixel_bc.py

The env: an 8x8 grid drawn as a 32x32x3 frame, the agent red, the target green; four moves;
reward 1 and the episode ends on reaching the target, truncated after 20 steps. Exits 1 when
the cloned policy does not reach the target clearly more often than a random one (in fast
mode too: fewer demonstrations and epochs, the same check).
"""

from __future__ import annotations

import os
import sys
import tempfile

import gymnasium as gym
import numpy as np
import torch
from torch.utils.data import DataLoader

import trajstore
from trajstore.torch import StepDataset

FAST = os.environ.get("TRAJSTORE_EXAMPLE_FAST") == "1"
GRID, CELL = 8, 4
MOVES = np.array([(0, 1), (0, -1), (1, 0), (-1, 0)])  # (row, col) steps: right, left, down, up


class ReachTarget(gym.Env):
    observation_space = gym.spaces.Box(0, 255, (GRID * CELL, GRID * CELL, 3), np.uint8)
    action_space = gym.spaces.Discrete(4)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        cells = self.np_random.choice(GRID * GRID, size=2, replace=False)
        self.agent, self.target = np.array(divmod(int(cells[0]), GRID)), np.array(divmod(int(cells[1]), GRID))
        return self.frame(), {}

    def step(self, action):
        self.agent = np.clip(self.agent + MOVES[int(action)], 0, GRID - 1)
        reached = bool((self.agent == self.target).all())
        return self.frame(), float(reached), reached, False, {}

    def frame(self):
        f = np.zeros(self.observation_space.shape, np.uint8)
        for (r, c), channel in ((self.target, 1), (self.agent, 0)):
            f[r * CELL:(r + 1) * CELL, c * CELL:(c + 1) * CELL, channel] = 255
        return f


def expert(env: ReachTarget) -> int:
    dr, dc = env.target - env.agent
    if abs(dc) >= abs(dr) and dc != 0:
        return 0 if dc > 0 else 1
    return 2 if dr > 0 else 3


def make_env() -> gym.Env:
    return gym.wrappers.TimeLimit(ReachTarget(), max_episode_steps=20)


class Policy(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, 16, 3, stride=2), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, stride=2), torch.nn.ReLU(),
            torch.nn.Flatten(), torch.nn.Linear(32 * 7 * 7, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (B, H, W, 3) uint8
        return self.net(frames.permute(0, 3, 1, 2).float() / 255)


def record(path: str, episodes: int) -> None:
    env = trajstore.RecordEpisodes(make_env(), path, username="expert")
    for seed in range(episodes):
        env.reset(seed=seed)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(expert(env.unwrapped))
            done = terminated or truncated
    env.close()


def success_rate(act, episodes: int, first_seed: int) -> float:
    env, reached = make_env(), 0
    for seed in range(first_seed, first_seed + episodes):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            done = terminated or truncated
        reached += reward > 0
    return reached / episodes


def main() -> int:
    torch.manual_seed(0)
    episodes, epochs = (300, 4) if FAST else (1000, 8)
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/demos"
        record(path, episodes)
        store = trajstore.Store(path)
        steps = sum(e.steps for e in store.episodes(user="expert"))
        print(f"recorded {episodes} expert episodes, {steps} steps of 32x32x3 frames")
        dataset = StepDataset(path, ["obs", "action"], user="expert", rank=0, world_size=1)
        loader = DataLoader(dataset, batch_size=128, shuffle=True, num_workers=2, persistent_workers=True,
                            generator=torch.Generator().manual_seed(0))
        policy = Policy()
        opt = torch.optim.Adam(policy.parameters(), lr=2e-3)
        for epoch in range(epochs):
            total, correct, loss_sum = 0, 0, 0.0
            for batch in loader:
                logits = policy(batch["obs"])
                loss = torch.nn.functional.cross_entropy(logits, batch["action"])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += len(logits)
                correct += int((logits.argmax(1) == batch["action"]).sum())
                loss_sum += loss.detach().item() * len(logits)
            print(f"epoch {epoch}: loss {loss_sum / total:.3f}, agreement with the expert {correct / total:.1%}")

    policy.eval()
    with torch.no_grad():
        cloned = success_rate(lambda obs: int(policy(torch.from_numpy(obs)[None]).argmax()), 200, 10_000)
    rng = np.random.default_rng(0)
    random = success_rate(lambda obs: int(rng.integers(4)), 200, 10_000)
    print(f"reached the target in 20 steps: cloned policy {cloned:.0%}, random policy {random:.0%} (200 fresh episodes)")
    if cloned < random + 0.25:
        print("FAILED: the cloned policy is not clearly better than a random one", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
