"""imitation (real, its own virtualenv in .ci/run): trajectories and transitions from a store;
BC trains from them and agrees with the expert."""

import gymnasium as gym
import numpy as np
import pytest

import trajstore

pytest.importorskip("imitation", reason="imitation not installed (.ci/run installs it in .venv-imitation)")
from imitation.algorithms import bc  # noqa: E402
from imitation.data import rollout  # noqa: E402
from imitation.data.types import TrajectoryWithRew, Transitions  # noqa: E402

import trajstore.imitation_data as imitation_data  # noqa: E402


def expert(obs):
    return int(obs[2] + obs[3] > 0)


@pytest.fixture
def demos(store_path):
    env = trajstore.RecordEpisodes(gym.make("CartPole-v1", max_episode_steps=200), store_path, username="expert")
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, terminated, truncated, _ = env.step(expert(obs))
            done = terminated or truncated
    return store_path


def test_trajectories_are_the_episodes_as_read_only_views(demos):
    store = trajstore.Store(demos)
    trajs = imitation_data.trajectories(demos, user="expert")
    infos = store.episodes(user="expert")
    assert len(trajs) == len(infos) == 6 and all(isinstance(t, TrajectoryWithRew) for t in trajs)
    for t, info in zip(trajs, infos):
        ep = store.episode(info.id)
        assert len(t) == info.steps and len(t.obs) == info.steps + 1
        assert np.array_equal(t.obs, ep["obs"]) and np.array_equal(t.acts, ep["action"]) and np.array_equal(t.rews, ep["reward"])
        assert t.terminal
        # Zero-copy: the arrays are the store's read-only views, not copies.
        assert not t.obs.flags.writeable and not t.obs.flags.owndata
    assert imitation_data.trajectories(demos, user="nobody") == []


def test_transitions_match_imitations_own_flattening(demos):
    trans = imitation_data.transitions(demos, user="expert")
    reference = rollout.flatten_trajectories(imitation_data.trajectories(demos, user="expert"))
    assert isinstance(trans, Transitions) and len(trans) == len(reference)
    for key in ("obs", "next_obs", "acts", "dones"):
        assert np.array_equal(getattr(trans, key), getattr(reference, key)), key
    with pytest.raises(ValueError, match="no episode matches"):
        imitation_data.transitions(demos, user="nobody")


def test_bc_trains_from_a_store_and_agrees_with_the_expert(demos):
    import torch

    # Deterministic: the policy's initial weights come from torch's global generator and the
    # batches from `rng`; unseeded, a 10-epoch run once stopped at 80% agreement (a flaky CI).
    torch.manual_seed(0)
    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    trainer = bc.BC(observation_space=env.observation_space, action_space=env.action_space,
                    demonstrations=imitation_data.transitions(demos, user="expert"), rng=rng, device="cpu")
    trainer.train(n_epochs=30, progress_bar=False)
    # Fresh states from the expert's own play, not in the store.
    states, obs = [], env.reset(seed=100)[0]
    for _ in range(300):
        states.append(obs)
        obs, _, terminated, truncated, _ = env.step(expert(obs))
        if terminated or truncated:
            obs = env.reset()[0]
    predicted, _ = trainer.policy.predict(np.array(states), deterministic=True)
    agreement = np.mean(predicted == np.array([expert(s) for s in states]))
    assert agreement >= 0.9, f"BC agrees with the expert on {agreement:.0%} of states"
