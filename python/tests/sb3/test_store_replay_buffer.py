"""Stable-Baselines3 (real): StoreReplayBuffer as a DQN's replay_buffer_class, keeping no arrays."""

import gymnasium as gym
import numpy as np
import pytest

import trajstore

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (.ci/run installs it)")
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from trajstore.sb3 import StoreReplayBuffer  # noqa: E402


class SpyBuffer(StoreReplayBuffer):
    """Keeps a copy of every transition SB3 adds, to compare samples with."""

    def add(self, obs, next_obs, action, reward, done, infos):
        if not hasattr(self, "added"):
            self.added = []
        for i in range(self.n_envs):
            timeout = bool(done[i]) and infos[i].get("TimeLimit.truncated", False)
            self.added.append((obs[i].tolist(), int(np.asarray(action).reshape(-1)[i]), next_obs[i].tolist(),
                               float(done[i] and not timeout), float(reward[i])))
        super().add(obs, next_obs, action, reward, done, infos)


def as_tuples(samples):
    return [(o.tolist(), int(a[0]), n.tolist(), float(d[0]), float(r[0]))
            for o, a, n, d, r in zip(samples.observations, samples.actions, samples.next_observations, samples.dones,
                                     samples.rewards)]


def test_dqn_trains_on_two_envs_and_samples_exactly_the_transitions_it_added(store_path):
    env = make_vec_env("CartPole-v1", n_envs=2, seed=0, env_kwargs={"max_episode_steps": 12})
    model = sb3.DQN("MlpPolicy", env, buffer_size=10_000, learning_starts=100, train_freq=1, batch_size=32, device="cpu",
                    seed=0, replay_buffer_class=SpyBuffer, replay_buffer_kwargs={"store": store_path, "username": "dqn"})
    before = [p.detach().clone() for p in model.q_net.parameters()]
    model.learn(300)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.q_net.parameters())), "DQN updated its Q-network"
    buf = model.replay_buffer
    # No observation (or any other) array of its own: SB3's buffer allocates buffer_size rows.
    assert not hasattr(buf, "observations") and not hasattr(buf, "next_observations")
    assert not [k for k, v in vars(buf).items() if isinstance(v, np.ndarray)]
    ids = buf.close()
    store = trajstore.Store(store_path)
    assert [e.id for e in store.episodes(user="dqn")] == ids
    assert buf.transitions == len(buf.added) == sum(e.steps for e in store.episodes())
    assert any(e.outcome == "truncated" for e in store.episodes()), "max_episode_steps=12 truncates some"
    every = as_tuples(buf._get_samples(np.arange(buf.transitions)))
    assert sorted(every) == sorted(buf.added), "each recorded transition, next observation from offset +1"
    # Truncation is not termination (handle_timeout_termination): done 0 where the time limit cut.
    assert sum(d for *_, d, _ in every) == sum(1 for e in store.episodes() if e.outcome == "terminated")


def test_the_newest_buffer_size_transitions_are_sampled_and_demonstrations_preload(store_path):
    expert = trajstore.RecordEpisodes(gym.make("CartPole-v1", max_episode_steps=50), store_path, username="expert")
    for seed in range(2):
        obs, _ = expert.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = expert.step(int(obs[2] + obs[3] > 0))
            done = terminated or truncated
    space = gym.make("CartPole-v1")
    buf = StoreReplayBuffer(60, space.observation_space, space.action_space, device="cpu", store=store_path,
                            preload={"user": "expert"})
    store = trajstore.Store(store_path)
    demos = [store.episode(e.id) for e in store.episodes(user="expert")]
    assert buf.transitions == 100 and buf.size() == 60 and buf.full
    # Transition k of the buffer: demos in order, next observation at offset +1.
    s = buf._get_samples(np.array([0, 49, 50, 99]))
    for row, (ep, t) in enumerate([(0, 0), (0, 49), (1, 0), (1, 49)]):
        assert np.array_equal(s.observations[row].numpy(), demos[ep]["obs"][t])
        assert np.array_equal(s.next_observations[row].numpy(), demos[ep]["obs"][t + 1])
        assert int(s.actions[row, 0]) == demos[ep]["action"][t]
    np.random.seed(0)
    sampled = buf.sample(500)
    newest = {tuple(o) for o in demos[0]["obs"][40:50].tolist() + demos[1]["obs"][:50].tolist()}  # transitions 40..99
    seen = {tuple(o) for o in sampled.observations.tolist()}
    assert seen <= newest and len(seen) > 40
    # The agent's own episodes share the demonstrations' layout and are sampled after them.
    obs = np.zeros((1, 4), np.float32)
    for t in range(5):
        buf.add(obs + t, obs + t + 1, np.array([[1]]), np.array([0.5]), np.array([t == 4]), [{}])
    assert buf.transitions == 105
    newest = buf._get_samples(np.arange(100, 105))
    assert newest.observations[:, 0].tolist() == [0, 1, 2, 3, 4] and newest.next_observations[:, 0].tolist() == [1, 2, 3, 4, 5]
    assert newest.rewards[:, 0].tolist() == [0.5] * 5 and newest.dones[:, 0].tolist() == [0, 0, 0, 0, 1]


def test_an_empty_buffer_says_why_it_cannot_sample(store_path):
    space = gym.make("CartPole-v1")
    buf = StoreReplayBuffer(10, space.observation_space, space.action_space, device="cpu", store=store_path)
    with pytest.raises(ValueError, match="once its episode ends"):
        buf.sample(4)
