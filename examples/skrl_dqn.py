"""skrl trained from a store-backed memory: a DQN agent on 2 CartPole envs whose replay memory
is `trajstore.skrl.StoreMemory`. Every transition lands in the store as episodes (one per
env), updates sample the store through its loader, and the memory starts from a few
demonstrations of a scripted expert recorded under the same user (demonstration-seeded DQN).

    python examples/skrl_dqn.py                       # 6000 timesteps
    TRAJSTORE_EXAMPLE_FAST=1 python examples/skrl_dqn.py

Exits 1 when no episode landed in the store or, in the full run, when the greedy policy's
mean return is not above a random policy's. Fast mode (600 timesteps) checks the plumbing
only: recording, sampling and updates run, and the evaluation is printed, not judged.
"""

from __future__ import annotations

import os
import sys
import tempfile

import gymnasium as gym
import numpy as np
import torch
from skrl.agents.torch.dqn import DQN, DQN_CFG
from skrl.envs.wrappers.torch import wrap_env
from skrl.models.torch import DeterministicMixin, Model
from skrl.trainers.torch import SequentialTrainer

import trajstore
from trajstore.skrl import StoreMemory

FAST = os.environ.get("TRAJSTORE_EXAMPLE_FAST") == "1"


class QNetwork(DeterministicMixin, Model):
    def __init__(self, observation_space, action_space):
        Model.__init__(self, observation_space=observation_space, action_space=action_space, device="cpu")
        DeterministicMixin.__init__(self)
        self.net = torch.nn.Sequential(torch.nn.Linear(self.num_observations, 64), torch.nn.ReLU(),
                                       torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, action_space.n))

    def compute(self, inputs, role=""):
        return self.net(inputs["observations"]), {}


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
    torch.manual_seed(0)
    timesteps = 600 if FAST else 6000
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/dqn"
        demo = trajstore.RecordEpisodes(gym.make("CartPole-v1"), path, username="dqn", tags=["expert"])
        for seed in range(3):
            obs, _ = demo.reset(seed=seed)
            done = False
            while not done:
                obs, _, terminated, truncated, _ = demo.step(int(obs[2] + obs[3] > 0))
                done = terminated or truncated
        demo.close()

        env = wrap_env(gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync"), wrapper="gymnasium")
        memory = StoreMemory(path, num_envs=2, username="dqn")
        models = {name: QNetwork(env.observation_space, env.action_space) for name in ("q_network", "target_q_network")}
        cfg = DQN_CFG(batch_size=64, learning_starts=100, learning_rate=1e-3, polyak=0.01, discount_factor=0.99)
        cfg.experiment.write_interval = 0
        cfg.experiment.checkpoint_interval = 0
        agent = DQN(models=models, memory=memory, observation_space=env.observation_space, action_space=env.action_space,
                    device="cpu", cfg=cfg)
        SequentialTrainer(env=env, agents=agent, cfg={"timesteps": timesteps, "headless": True, "disable_progressbar": True,
                                                      "close_environment_at_exit": False}).train()
        recorded = memory.close()
        store = trajstore.Store(path)
        steps = sum(e.steps for e in store.episodes(user="dqn"))
        print(f"{timesteps} timesteps x 2 envs: {len(recorded)} episodes recorded by the memory, "
              f"{steps} steps sampled from in the store (3 expert demonstrations included)")

    q = agent.q_network
    with torch.no_grad():
        greedy = mean_return(lambda obs: int(q.act({"observations": torch.from_numpy(obs)[None]}, role="q_network")[0].argmax()),
                             10, 1000)
    rng = np.random.default_rng(0)
    random = mean_return(lambda obs: int(rng.integers(2)), 10, 1000)
    print(f"mean return over 10 fresh episodes: DQN (greedy) {greedy:.1f}, random {random:.1f}")
    if not recorded:
        print("FAILED: no episode landed in the store", file=sys.stderr)
        return 1
    if not FAST and greedy <= random:
        print("FAILED: DQN is not better than a random policy", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
