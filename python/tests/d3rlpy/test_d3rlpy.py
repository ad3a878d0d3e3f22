"""d3rlpy (real, its own virtualenv in .ci/run): a dataset split at the recorded episodes; an
offline algorithm fits from it."""

import gymnasium as gym
import numpy as np
import pytest

import trajstore

d3rlpy = pytest.importorskip("d3rlpy", reason="d3rlpy not installed (.ci/run installs it in .venv-d3rlpy)")
import trajstore.d3rlpy  # noqa: E402


def expert(obs):
    return int(obs[2] + obs[3] > 0)


@pytest.fixture
def demos(store_path):
    env = trajstore.RecordEpisodes(gym.make("CartPole-v1", max_episode_steps=60), store_path, username="expert")
    rng = np.random.default_rng(0)
    for seed in range(8):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:  # a noisy expert: some episodes terminate, others hit the time limit
            obs, _, terminated, truncated, _ = env.step(expert(obs) if rng.random() > 0.5 * (seed % 2) else 1 - expert(obs))
            done = terminated or truncated
    return store_path


def test_the_dataset_has_the_recorded_episodes_and_an_algorithm_fits(demos):
    store = trajstore.Store(demos)
    infos = store.episodes(user="expert")
    dataset = trajstore.d3rlpy.mdp_dataset(demos, user="expert")
    assert len(dataset.episodes) == len(infos) == 8
    assert {i.outcome for i in infos} == {"terminated", "truncated"}
    for episode, info in zip(dataset.episodes, infos):
        ep = store.episode(info.id)
        assert episode.size() == info.steps and episode.terminated == (info.outcome == "terminated")
        assert np.array_equal(episode.observations, ep["obs"][:-1])
        assert np.array_equal(episode.actions[:, 0], ep["action"]) and np.array_equal(episode.rewards[:, 0], ep["reward"])
        assert not episode.observations.flags.owndata, "a view of the store's arrays"
    assert dataset.dataset_info.action_size == 2
    assert dataset.transition_count == sum(i.steps if i.outcome == "terminated" else i.steps - 1 for i in infos)

    d3rlpy.seed(0)  # deterministic weights and batches: an unseeded fit is a flaky test
    algo = d3rlpy.algos.DiscreteBCConfig(batch_size=64).create(device="cpu:0")
    algo.fit(dataset, n_steps=300, n_steps_per_epoch=300, show_progress=False, save_interval=10**9, experiment_name=None,
             with_timestamp=False, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    states = np.concatenate([store.episode(i.id)["obs"] for i in infos])
    agreement = np.mean(algo.predict(states) == np.array([expert(s) for s in states]))
    assert agreement >= 0.8, f"DiscreteBC agrees with the expert on {agreement:.0%} of states"
    with pytest.raises(ValueError, match="no episode matches"):
        trajstore.d3rlpy.mdp_dataset(demos, user="nobody")
