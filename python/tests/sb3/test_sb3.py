"""Stable-Baselines3 (real): a DQN's replay buffer seeded from recorded episodes."""

import gymnasium as gym
import numpy as np
import pytest

import trajstore

sb3 = pytest.importorskip("stable_baselines3", reason="stable-baselines3 not installed (.ci/run installs it)")
import trajstore.sb3  # noqa: E402


@pytest.fixture
def cartpole_store(store_path):
    env = trajstore.RecordEpisodes(gym.make("CartPole-v1", max_episode_steps=40), store_path, username="expert")
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(int(obs[2] + obs[3] > 0))
            done = terminated or truncated
    return store_path


def test_replay_buffer_holds_the_recorded_transitions_and_dqn_trains_from_it(cartpole_store):
    model = sb3.DQN("MlpPolicy", gym.make("CartPole-v1"), buffer_size=1000, learning_starts=0, device="cpu", seed=0)
    added = trajstore.sb3.fill_replay_buffer(model.replay_buffer, cartpole_store)
    store = trajstore.Store(cartpole_store)
    episodes = store.episodes()
    assert added == sum(e.steps for e in episodes) == model.replay_buffer.size()
    first = store.episode(episodes[0].id)
    buf = model.replay_buffer
    t = 5
    assert np.array_equal(buf.observations[t, 0], first["obs"][t])
    assert np.array_equal(buf.next_observations[t, 0], first["obs"][t + 1]), "next observation from offset +1"
    assert buf.actions[t, 0, 0] == first["action"][t] and buf.rewards[t, 0] == first["reward"][t]
    last = first.info.steps - 1
    assert buf.dones[last, 0] == 1 and buf.timeouts[last, 0] == float(first["truncated"][last])
    model.learn(200)  # trains on the seeded buffer (and what it adds)
    assert model.replay_buffer.size() == added + 200


def test_a_small_buffer_wraps_and_the_wrong_buffer_is_refused(cartpole_store):
    space = gym.make("CartPole-v1")
    small = sb3.common.buffers.ReplayBuffer(50, space.observation_space, space.action_space, device="cpu")
    added = trajstore.sb3.fill_replay_buffer(small, cartpole_store)
    assert small.full and small.pos == added % 50
    lean = sb3.common.buffers.ReplayBuffer(50, space.observation_space, space.action_space, device="cpu",
                                           optimize_memory_usage=True, handle_timeout_termination=False)
    with pytest.raises(ValueError, match="optimize_memory_usage=False"):
        trajstore.sb3.fill_replay_buffer(lean, cartpole_store)
